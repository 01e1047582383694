"""Draw the default detector's boxes, scores and landmarks on a sample photo (the model card's picture).

python benchmarks/detections_picture.py [PHOTO] [-o models/centerface.png] [--model centerface_int8]

With ``--model``, that registered face detector's instead (models/centerface_int8.png:
``--model centerface_int8 -o models/centerface_int8.png``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
from _data import ROOT

from anonymizer.media.files import write_atomic
from anonymizer.media.image import encode_image, load_image
from anonymizer.pipeline.photo import FaceFinder

COLOURS = [(255, 0, 0), (0, 160, 255), (0, 200, 0), (255, 0, 255), (255, 200, 0)]  # landmark order


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("photo", nargs="?", default=str(ROOT / "samples" / "group_solvay_1927_closeup.jpg"))
    ap.add_argument("-o", "--output", default=str(ROOT / "models" / "centerface.png"))
    ap.add_argument("--model", default="centerface", help="the face detector (default: %(default)s)")
    args = ap.parse_args()
    rgb = load_image(args.photo).rgb.copy()
    faces = FaceFinder(args.model).find(rgb)
    for f in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        cv2.rectangle(rgb, (x1, y1), (x2, y2), (0, 255, 0), 2)
        cv2.putText(rgb, f"{f.score:.2f}", (x1, max(10, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1)
        for (x, y), c in zip(f.landmarks, COLOURS, strict=True):
            cv2.circle(rgb, (int(round(x)), int(round(y))), 2, c, -1)
    write_atomic(Path(args.output), encode_image(rgb, format="png"))
    print(f"{len(faces)} faces drawn into {args.output}")


if __name__ == "__main__":
    main()
