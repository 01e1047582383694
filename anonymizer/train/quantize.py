"""Calibrate the int8 face detector (anonymizer.nn.quantized, models/centerface_int8.md).

    python -m anonymizer.train.quantize --data ../shared/data --out models/centerface_int8.safetensors

The float CenterFace is equalized and given the x86 backend's observers; the calibration photos go through
it one at a time (at most :data:`LONGEST` pixels on their longer side, padded to multiples of 32 as the
finder pads them) and the observers' histograms and ranges are saved, with the scale and zero point each
histogram gives (searched once here, not at every start). None of the photos is a WIDER crowd
(wider-dev is where the int8 detector is measured: ``python benchmarks/coverage.py --model centerface_int8``)
nor the clip of ``benchmarks/video.py``: street and parking photos (plates-train), pedestrians (Penn-Fudan),
the labelled dlib-faces photos and one frame of each of the first talking-head clips (videos-real).
Deterministic: the same files in the same order, on the same number of threads, give the same bytes.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

#: calibration photos are shrunk to at most this many pixels on their longer side (the video frames' size)
LONGEST = 1280
#: photos from each folder (sorted by name), and talking-head clips (one frame each, FRAME)
PER_FOLDER, CLIPS, FRAME = 20, 20, 10


def calibration_images(data: Path) -> list[Path | tuple[Path, int]]:
    """The calibration inputs under ``data`` (the shared data folder), in order: photos, then (clip, frame)."""
    photos = sorted((data / "plates-train" / "images").glob("*"))[:PER_FOLDER]
    photos += sorted((data / "pennfudan" / "PNGImages").glob("*.png"))[:PER_FOLDER]
    photos += sorted((data / "dlib-faces").glob("*.jpg"))
    clips: list[Path | tuple[Path, int]] = [(p, FRAME) for p in sorted((data / "videos-real").glob("*.mp4"))[:CLIPS]]
    if not photos or not clips:
        raise SystemExit(f"calibration data not found under {data} (plates-train, pennfudan, dlib-faces, videos-real)")
    return [*photos, *clips]


def read_rgb(item: Path | tuple[Path, int]) -> np.ndarray:
    """A photo, or frame ``k`` of a clip, as uint8 RGB shrunk to :data:`LONGEST` on its longer side."""
    if isinstance(item, tuple):
        cap = cv2.VideoCapture(str(item[0]))
        cap.set(cv2.CAP_PROP_POS_FRAMES, item[1])
        ok, frame = cap.read()
        cap.release()
        if not ok:
            raise SystemExit(f"{item[0]}: cannot read frame {item[1]}")
        bgr = np.asarray(frame)
    else:
        photo = cv2.imread(str(item))
        if photo is None:
            raise SystemExit(f"{item}: not a readable image")
        bgr = np.asarray(photo)
    s = LONGEST / max(bgr.shape[:2])
    if s < 1:
        bgr = cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def batches(items: list[Path | tuple[Path, int]]) -> Iterator[torch.Tensor]:
    from ..nn.detectors import prepare_batch

    for item in tqdm(items, desc="calibrating", unit="photo"):
        yield prepare_batch([torch.from_numpy(read_rgb(item))])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    ap.add_argument("--out", type=Path, required=True, help="the ranges, e.g. models/centerface_int8.safetensors")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    args = ap.parse_args(argv)

    from ..nn import centerface
    from ..nn.quantized import calibrate
    from ..nn.runtime import configure_runtime
    from .common import save_weights

    configure_runtime(args.threads)
    items = calibration_images(args.data)
    state = calibrate(centerface().eval(), batches(items))
    save_weights(state, args.out, source=f"anonymizer.train.quantize on {len(items)} photos and frames")
    print(f"{len(state)} observer tensors and scales from {len(items)} photos and frames -> {args.out}")


if __name__ == "__main__":
    main()
