"""Windows around detected plates for the plate box refiner (:class:`anonymizer.nn.plate_refiner.PlateRefiner`).

A window is centred on a detected box, ``WINDOW_SCALE`` (4) times as wide as the larger of the box's width and
twice its height (so a box that caught only half a plate, or a tall box, still sees the whole plate) and
half as high as wide; it is cut from the image and resized to ``WINDOW_SIZE`` (width, height) px. The
refiner's box comes back in window units (0..1 on each axis) and :func:`from_windows` maps it to pixels.
Windows are ``ndarray[N, 4]`` (cx, cy, width, height) in image pixels.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: the refiner's input, (width, height) px
WINDOW_SIZE = (128, 64)
#: window width over the larger of the box's width and twice its height
WINDOW_SCALE = 4.0
#: grey where a window runs off the image (the detector's training padding)
PAD_GREY = 114


def _check(boxes: np.ndarray, what: str = "boxes") -> np.ndarray:
    arr = np.asarray(boxes, np.float32)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputError(f"{what} must be [N, 4], got shape {arr.shape}")
    return arr


def plate_windows(boxes: np.ndarray, *, scale: float = WINDOW_SCALE) -> np.ndarray:
    """The windows (float32 [N, 4]: cx, cy, width, height) of plate ``boxes`` [N, 4] (x1, y1, x2, y2)."""
    b = _check(boxes)
    w = np.maximum(b[:, 2] - b[:, 0], 1.0)
    h = np.maximum(b[:, 3] - b[:, 1], 1.0)
    ww = scale * np.maximum(w, 2 * h)
    ratio = WINDOW_SIZE[1] / WINDOW_SIZE[0]
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, ww, ww * ratio], 1).astype(np.float32)


def cut_windows(rgb: np.ndarray, windows: np.ndarray, *, flip: np.ndarray | None = None) -> np.ndarray:
    """The ``windows`` [N, 4] of ``rgb`` (uint8 (H, W, 3)) resized to :data:`WINDOW_SIZE`: uint8 [N, h, w, 3],
    grey outside the image; ``flip`` (bool [N]) mirrors those windows left to right (training)."""
    import cv2

    win = _check(windows, "windows")
    out = np.empty((len(win), WINDOW_SIZE[1], WINDOW_SIZE[0], 3), np.uint8)
    for k, (cx, cy, ww, wh) in enumerate(win):
        sx, sy = WINDOW_SIZE[0] / ww, WINDOW_SIZE[1] / wh
        if flip is not None and flip[k]:
            m = np.array([[-sx, 0, WINDOW_SIZE[0] / 2 + sx * cx], [0, sy, WINDOW_SIZE[1] / 2 - sy * cy]])
        else:
            m = np.array([[sx, 0, WINDOW_SIZE[0] / 2 - sx * cx], [0, sy, WINDOW_SIZE[1] / 2 - sy * cy]])
        m[:, 2] += 0.5 * (np.diag(m[:, :2]) - 1)  # pixels are sampled at their centres, not corners
        shrink = min(sx, sy) < 1  # area averaging against aliasing when a large plate is shrunk
        out[k] = cv2.warpAffine(
            rgb,
            m,
            WINDOW_SIZE,
            flags=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(PAD_GREY, PAD_GREY, PAD_GREY),
        )
    return out


def to_windows(boxes: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """``boxes`` [N, 4] in image pixels as fractions (0..1 inside) of their ``windows`` [N, 4]."""
    b, w = _check(boxes), _check(windows, "windows")
    left, top = w[:, 0] - w[:, 2] / 2, w[:, 1] - w[:, 3] / 2
    return np.stack(
        [(b[:, 0] - left) / w[:, 2], (b[:, 1] - top) / w[:, 3], (b[:, 2] - left) / w[:, 2], (b[:, 3] - top) / w[:, 3]],
        1,
    ).astype(np.float32)


def from_windows(fractions: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_windows`: boxes [N, 4] (x1, y1, x2, y2) in image pixels."""
    f, w = _check(fractions, "fractions"), _check(windows, "windows")
    left, top = w[:, 0] - w[:, 2] / 2, w[:, 1] - w[:, 3] / 2
    return np.stack(
        [left + f[:, 0] * w[:, 2], top + f[:, 1] * w[:, 3], left + f[:, 2] * w[:, 2], top + f[:, 3] * w[:, 3]], 1
    ).astype(np.float32)


__all__ = ["PAD_GREY", "WINDOW_SCALE", "WINDOW_SIZE", "cut_windows", "from_windows", "plate_windows", "to_windows"]
