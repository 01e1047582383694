"""The plate detector's card picture: held-out street photos (never trained on) with its detections.

    python benchmarks/plates_picture.py [-o models/plates.png] [--photos 8]
    python benchmarks/plates_picture.py --closeups -o models/plate_refiner.png

Each tile: a held-out photo of ../shared/data/plates-train (the photos with the widest plates first, then
the smallest: the near and the distant), the shipped PlateFinder's plates as green boxes with their score,
labelled plates it covered thin white, labelled plates it left uncovered (under 70% of the box) red.
``--closeups``: the close-ups of ``benchmarks/plates.py --closeups`` (held-out plates enlarged to 100-180 px)
instead, each detector box before the refiner fitted it drawn thin orange beside the green fitted one.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import cv2
import numpy as np
from _data import DATA, ROOT, require
from PIL import Image

from anonymizer.media.files import write_atomic
from anonymizer.pipeline.plates import PlateFinder, cover_plates
from anonymizer.train.plates import load_split

TILE = (480, 360)


def tile(finder: PlateFinder, rgb: np.ndarray, labels: np.ndarray, raw: PlateFinder | None = None) -> np.ndarray:
    """One photo with the plates ``finder`` covers; ``raw``: a finder without the refiner, whose boxes (the
    detector's own, as the refiner is given them) are drawn thin orange."""
    plates = finder.find(rgb)
    _, _, diff = cover_plates(rgb, plates)
    out = rgb.copy()
    for p in raw.find(rgb) if raw is not None else ():
        x1, y1, x2, y2 = (int(round(v)) for v in p.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (255, 140, 0), 1)
    for x1, y1, x2, y2 in labels.astype(int):
        hit = diff[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)].mean() >= 0.7
        cv2.rectangle(out, (x1 - 1, y1 - 1), (x2 + 1, y2 + 1), (255, 255, 255) if hit else (255, 0, 0), 1)
    for p in plates:
        x1, y1, x2, y2 = (int(round(v)) for v in p.box)
        cv2.rectangle(out, (x1 - 3, y1 - 3), (x2 + 3, y2 + 3), (0, 230, 0), 2)
        cv2.putText(out, f"{p.score:.2f}", (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 230, 0), 1)
    scale = min(TILE[0] / out.shape[1], TILE[1] / out.shape[0])
    small = cv2.resize(out, (round(out.shape[1] * scale), round(out.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    canvas = np.full((TILE[1], TILE[0], 3), 255, np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small
    return canvas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "models" / "plates.png")
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--closeups", action="store_true", help="close-ups of the held-out plates, boxes before fitting")
    args = ap.parse_args()
    images, labels = load_split(require(DATA / "plates-train"), held_out=True)
    if args.closeups:
        from plates import closeups

        images, labels = closeups(images, labels)
    widest = [float((b[:, 2] - b[:, 0]).max()) if len(b) else 0.0 for b in labels]
    order = np.argsort(widest)
    half = args.photos // 2
    picked = [*order[::-1][:half], *order[: args.photos - half]]
    finder = PlateFinder()
    raw = None
    if args.closeups:
        raw = PlateFinder(refine=False)
        raw.model = finder.model
    tiles = [tile(finder, images[i], labels[i], raw) for i in picked]
    rows = [np.concatenate(tiles[k : k + 4], 1) for k in range(0, len(tiles), 4)]
    buf = io.BytesIO()  # a 256-colour PNG: a tenth of the bytes, the boxes and faces unchanged to the eye
    Image.fromarray(np.concatenate(rows, 0)).quantize(256, dither=Image.Dither.NONE).save(buf, format="PNG")
    write_atomic(args.output, buf.getvalue())
    print(f"{len(tiles)} held-out photos drawn into {args.output}")


if __name__ == "__main__":
    main()
