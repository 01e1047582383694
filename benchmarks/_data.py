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
                [
                    int(b.get("left")),
                    int(b.get("top")),
                    int(b.get("left")) + int(b.get("width")),
                    int(b.get("top")) + int(b.get("height")),
                ]
                for b in im.iter("box")
            ]
            out.append((DLIB / im.get("file"), np.asarray(boxes, dtype=np.float32).reshape(-1, 4)))
    return out


WIDER = DATA / "wider-dev"


def wider_dev(*, full: bool = False) -> list[tuple[Path, np.ndarray, np.ndarray, tuple[int, int] | None]]:
    """The 199 crowded WIDER FACE val photos of wider-dev and their face boxes.

    Returns (path, boxes ndarray[N, 4] (x1, y1, x2, y2) in pixels of the 416x416 file, ignore ndarray[N] bool,
    size). ``ignore`` marks rows WIDER flags invalid and zero-size boxes: detections matching them are
    neither hits nor false positives. ``size`` is None, or with ``full`` the (width, height) of the
    original photo (1024 x H, heights.csv): resizing the file and the boxes to it undoes the stretch, so
    faces have their real shape and roughly their real size (but the 416 px file's blur).
    """
    root = require(WIDER)
    heights = {}
    if full:
        import csv

        with open(root / "heights.csv", newline="") as f:
            heights = {r["event_path"]: int(r["H_final"]) for r in csv.DictReader(f) if r["H_final"]}
    lines = (root / "gt.txt").read_text().split("\n")
    out, i = [], 0
    while i < len(lines) and lines[i].strip():
        name, n = lines[i].strip(), int(lines[i + 1])
        rows = np.array([[float(v) for v in lines[i + 2 + k].split()] for k in range(n)], np.float32).reshape(-1, 10)
        i += 2 + max(n, 1)
        boxes = np.concatenate([rows[:, :2], rows[:, :2] + rows[:, 2:4]], axis=1)
        ignore = (rows[:, 7] == 1) | (rows[:, 2] <= 0) | (rows[:, 3] <= 0)
        size = None
        if full:
            size = (1024, heights[name])
            boxes = boxes * np.array([1024 / 416, size[1] / 416] * 2, np.float32)
        out.append((root / "images" / Path(name).name, boxes, ignore, size))
    return out
