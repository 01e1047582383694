"""Videos stored turned (a display-rotation tag): faces are found on the upright frame and mapped back.

``rotation`` is the tag in degrees, a multiple of 90: the frame is shown after ``rotation / 90``
counter-clockwise quarter turns (``np.rot90``'s direction)."""

from __future__ import annotations

import numpy as np


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """``rgb`` (H x W x C) as shown: turned ``rotation / 90`` times counter-clockwise; the same array at 0."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=k)) if k else rgb


def points_back(points: np.ndarray, rotation: int, w: int, h: int) -> np.ndarray:
    """Points (..., 2) in pixels of the upright frame, as float32 in pixels of the stored ``w`` x ``h``
    frame (see :func:`boxes_back`)."""
    k = (rotation // 90) % 4
    out = points.astype(np.float32).copy()
    ch = h if k % 2 == 0 else w  # height of the rotated image the points live in
    for _ in range(k):
        out = np.stack([ch - out[..., 1], out[..., 0]], axis=-1)  # undo one CCW turn
        ch = w if ch == h else h
    return out


def boxes_back(boxes: np.ndarray, rotation: int, w: int, h: int) -> np.ndarray:
    """Boxes [N, 4] (x1, y1, x2, y2) found on ``np.rot90(frame, k)`` (k = rotation / 90) mapped back to the
    stored frame of ``w`` x ``h``. One CCW turn sends stored (x, y) to (y, w - x)."""
    k = (rotation // 90) % 4
    out = boxes.copy()
    cw, ch = (w, h) if k % 2 == 0 else (h, w)  # size of the rotated image the boxes live in
    for _ in range(k):
        # undo one CCW turn of an image of size cw x ch: (x', y') came from (cw_prev - y', x')
        prev_w = ch
        x1, y1, x2, y2 = out[:, 0].copy(), out[:, 1].copy(), out[:, 2].copy(), out[:, 3].copy()
        out = np.stack([prev_w - y2, x1, prev_w - y1, x2], axis=1)
        cw, ch = ch, cw
    return out
