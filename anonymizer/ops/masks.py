"""Region masks: ellipses or boxes around faces, grown by a scale factor, with feathered edges.

Masks are float32 alpha maps in 0..1: 1 inside the (scaled) shape, falling linearly to 0 across the
feather band *outside* it, so feathering never uncovers any pixel of the scaled shape.
"""

from __future__ import annotations

import numpy as np

from ..defaults import SHAPES
from ..errors import InputError


def region_window(
    box: tuple[float, float, float, float] | np.ndarray,
    size: tuple[int, int],
    *,
    scale: float = 1.0,
    feather: float = 0.0,
) -> tuple[int, int, int, int]:
    """Integer (x1, y1, x2, y2) of the pixels a region's mask can touch, clipped to ``size`` = (H, W)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    grow = scale * (1.0 + feather) / 2
    hw, hh = (x2 - x1) * grow, (y2 - y1) * grow
    h, w = size
    return (
        max(0, int(np.floor(cx - hw))),
        max(0, int(np.floor(cy - hh))),
        min(w, int(np.ceil(cx + hw)) + 1),
        min(h, int(np.ceil(cy + hh)) + 1),
    )


def region_alpha(
    box: tuple[float, float, float, float] | np.ndarray,
    window: tuple[int, int, int, int],
    *,
    shape: str = "ellipse",
    scale: float = 1.0,
    feather: float = 0.0,
) -> np.ndarray:
    """Alpha (float32, window-sized) of one region inside ``window`` (from :func:`region_window`).

    box: (x1, y1, x2, y2) face box in pixels; the shape is the box scaled by ``scale`` about its centre
    (an inscribed ellipse for ``shape="ellipse"``). ``feather`` is the width of the outer fall-off band
    as a fraction of the scaled shape's half-size. Pixel (i, j) is sampled at its centre (j + 0.5, i + 0.5).
    """
    if shape not in SHAPES:
        raise InputError(f"mask shape must be one of {SHAPES}, got {shape!r}")
    if scale <= 0:
        raise InputError(f"mask scale must be > 0, got {scale}")
    if feather < 0:
        raise InputError(f"feather must be >= 0, got {feather}")
    x1, y1, x2, y2 = (float(v) for v in box)
    wx1, wy1, wx2, wy2 = window
    rx = max((x2 - x1) * scale / 2, 0.5)
    ry = max((y2 - y1) * scale / 2, 0.5)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    xs = (np.arange(wx1, wx2, dtype=np.float32) + 0.5 - cx) / rx
    ys = (np.arange(wy1, wy2, dtype=np.float32) + 0.5 - cy) / ry
    if shape == "ellipse":
        d = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    else:
        d = np.maximum(np.abs(ys)[:, None], np.abs(xs)[None, :])
    if feather == 0:
        return (d <= 1.0).astype(np.float32)
    return np.clip(1.0 - (d - 1.0) / feather, 0.0, 1.0).astype(np.float32)


def union_mask(
    boxes: np.ndarray,
    size: tuple[int, int],
    *,
    shape: str = "ellipse",
    scale: float = 1.0,
    feather: float = 0.0,
) -> np.ndarray:
    """Union (max) of the alphas of ``boxes`` (ndarray[N, 4]) over an image of ``size`` = (H, W)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    out = np.zeros(size, dtype=np.float32)
    for box in boxes:
        win = region_window(box, size, scale=scale, feather=feather)
        if win[2] <= win[0] or win[3] <= win[1]:
            continue
        a = region_alpha(box, win, shape=shape, scale=scale, feather=feather)
        sl = (slice(win[1], win[3]), slice(win[0], win[2]))
        np.maximum(out[sl], a, out=out[sl])
    return out


def box_coverage(alpha: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Share of the central half of ``box`` (x1, y1, x2, y2 pixels, clipped to the image) where ``alpha``
    (float [H, W]) >= 0.5; 0 when that part lies outside the image. How well a replacement covers a face."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    ih, iw = alpha.shape
    a, b = max(0, int(round(x1 + w / 4))), max(0, int(round(y1 + h / 4)))
    c, d = min(iw, int(round(x2 - w / 4))), min(ih, int(round(y2 - h / 4)))
    if c <= a or d <= b:
        return 0.0
    return float((alpha[b:d, a:c] >= 0.5).mean())
