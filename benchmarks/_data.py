"""Shared helpers for the benchmark scripts: the labelled dev photos in ../shared/data (research-only)."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__import__("os").environ.get("ANONYMIZER_DATA", ROOT.parent / "shared" / "data"))
DLIB = DATA / "dlib-faces"


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"{path}: not found; these numbers need the research data in ../shared/data (see README)")
    return path


def dlib_faces() -> list[tuple[Path, np.ndarray]]:
    """The 9 labelled PASCAL VOC photos and their face boxes, ndarray[N, 4] (x1, y1, x2, y2) pixels."""
    out = []
    for xml in ("training.xml", "testing.xml"):
        root = ET.parse(require(DLIB) / xml).getroot()
        for im in root.iter("image"):
            boxes = [
                [int(b.get("left")), int(b.get("top")), int(b.get("left")) + int(b.get("width")), int(b.get("top")) + int(b.get("height"))]
                for b in im.iter("box")
            ]
            out.append((DLIB / im.get("file"), np.asarray(boxes, dtype=np.float32).reshape(-1, 4)))
    return out
