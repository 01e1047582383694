"""Licence plates: how many the plate detector lets a solid box cover, by plate width, on the held-out tenth of
../shared/data/plates-train (anonymizer.train.plates.is_held_out; never trained on).

    python benchmarks/plates.py --weights-file runs/plates.safetensors [--threshold 0.3] [--scales 1 2]

Each photo: the detector at each of ``--scales`` (whole photo, enlarged for small plates), boxes above the
threshold merged by NMS, each filled solid after growing it 10%. A plate counts as covered when at least 70%
of its labelled box changed. Printed: covered by width (< 16, 16-32, 32-64, > 64 px and all), the share of
the other pixels changed (outside every labelled plate grown 1.2x), and photos/s (2 threads).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from _data import DATA, require

from anonymizer.nn import build_model, prepare_batch
from anonymizer.nn.runtime import configure_runtime
from anonymizer.ops.boxes import nms
from anonymizer.train.plates import load_split

BINS = ((0, 16), (16, 32), (32, 64), (64, 10_000))


def find_plates(model: torch.nn.Module, rgb: np.ndarray, threshold: float, scales: list[float]) -> np.ndarray:
    """float32 [K, 4] plate boxes in ``rgb``'s pixels."""
    found, scores = [], []
    for s in scales:
        img = rgb if s == 1 else cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        with torch.inference_mode():
            ((boxes, sc, _),) = model.detect(
                prepare_batch([torch.from_numpy(np.ascontiguousarray(img))]), threshold=threshold
            )
        found.append(boxes / s)
        scores.append(sc)
    boxes, sc = torch.cat(found), torch.cat(scores)
    return boxes[nms(boxes, sc, 0.3)].numpy()


def cover(rgb: np.ndarray, boxes: np.ndarray, grow: float = 1.1) -> np.ndarray:
    out = rgb.copy()
    h, w = rgb.shape[:2]
    for x1, y1, x2, y2 in boxes:
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * grow / 2, (y2 - y1) * grow / 2
        out[
            max(0, int(cy - hh)) : min(h, int(np.ceil(cy + hh))), max(0, int(cx - hw)) : min(w, int(np.ceil(cx + hw)))
        ] = 0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights-file", type=Path, required=True)
    ap.add_argument("--threshold", type=float, default=0.3)
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0])
    args = ap.parse_args()
    configure_runtime(2)
    from safetensors.torch import load_file

    model = build_model("centerface", weights="default")  # the folded (no batch-norm) network, then the plate weights
    model.load_state_dict(load_file(str(args.weights_file)))
    model.eval()
    images, labels = load_split(require(DATA / "plates-train"), held_out=True)
    covered: dict[tuple[int, int], list[bool]] = {b: [] for b in BINS}
    changed_out = total_out = 0
    t = time.perf_counter()
    for rgb, plates in zip(images, labels, strict=True):
        out = cover(rgb, find_plates(model, rgb, args.threshold, args.scales))
        diff = (out != rgb).any(axis=2)
        for x1, y1, x2, y2 in plates:
            region = diff[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))]
            width = x2 - x1
            b = next(b for b in BINS if b[0] <= width < b[1])
            covered[b].append(region.size > 0 and float(region.mean()) >= 0.7)
        inside = (cover(np.ones_like(rgb), plates, 1.2) == 0).any(axis=2)
        changed_out += int((diff & ~inside).sum())
        total_out += int((~inside).sum())
    rate = len(images) / (time.perf_counter() - t)
    every = [c for v in covered.values() for c in v]
    print(
        f"plates-train held-out: {len(images)} photos, {len(every)} plates; threshold {args.threshold}, "
        f"scales {args.scales}"
    )
    print("| plate width | plates | covered |")
    print("|---|---:|---:|")
    for (lo, hi), v in covered.items():
        name = f"< {hi} px" if lo == 0 else (f"> {lo} px" if hi > 1000 else f"{lo}-{hi} px")
        print(f"| {name} | {len(v)} | {np.mean(v) if v else float('nan'):.1%} |")
    print(f"| all | {len(every)} | {np.mean(every):.1%} |")
    print(f"other pixels changed: {changed_out / max(total_out, 1):.2%}; {rate:.1f} photos/s")


if __name__ == "__main__":
    main()
