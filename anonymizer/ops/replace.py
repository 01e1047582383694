"""Replacement methods: what goes where a face was. All take and return RGB uint8 (H, W, 3) arrays.

- ``solid``: an opaque fill; nothing of the face survives.
- ``pixelate``: a mosaic whose block size is relative to the face (``blocks`` across the face width).
- ``blur``: a heavy size-relative Gaussian plus noise; the weakest method: blurred faces can still be
  matched by recognisers, so prefer ``solid`` or ``pixelate`` for strong anonymity.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..defaults import COVER_METHODS
from ..errors import InputError

METHODS = COVER_METHODS


def _check(patch: np.ndarray) -> None:
    if patch.dtype != np.uint8 or patch.ndim != 3 or patch.shape[2] != 3:
        raise InputError(f"expected an RGB uint8 (H, W, 3) patch, got {patch.dtype} {patch.shape}")


def solid(patch: np.ndarray, *, color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    _check(patch)
    out = np.empty_like(patch)
    out[:] = np.asarray(color, dtype=np.uint8)
    return out


def pixelate(patch: np.ndarray, *, face_width: float, blocks: int = 8) -> np.ndarray:
    """Mosaic with square blocks of ``face_width / blocks`` pixels (at least 2), each its area mean."""
    _check(patch)
    if blocks < 1:
        raise InputError(f"pixelate blocks must be >= 1, got {blocks}")
    h, w = patch.shape[:2]
    block = max(2.0, face_width / blocks)
    sw, sh = max(1, round(w / block)), max(1, round(h / block))
    small = cv2.resize(patch, (sw, sh), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def blur(
    patch: np.ndarray, *, face_width: float, strength: float = 0.25, noise: float = 8.0, seed: int = 0
) -> np.ndarray:
    """Gaussian blur with sigma = ``strength * face_width`` plus Gaussian noise of std ``noise``."""
    _check(patch)
    sigma = max(1.0, strength * face_width)
    out = cv2.GaussianBlur(patch, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    if noise > 0:
        rng = np.random.default_rng(seed)
        out = np.clip(out.astype(np.float32) + rng.normal(0, noise, out.shape), 0, 255).astype(np.uint8)
    return out


def replace_patch(
    patch: np.ndarray, method: str, *, face_width: float, color: tuple[int, int, int] = (0, 0, 0)
) -> np.ndarray:
    """Dispatch to one of :data:`METHODS`."""
    if method == "solid":
        return solid(patch, color=color)
    if method == "pixelate":
        return pixelate(patch, face_width=face_width)
    if method == "blur":
        return blur(patch, face_width=face_width)
    raise InputError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")


def composite(image: np.ndarray, replacement: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """image * (1 - alpha) + replacement * alpha, rounded; where alpha == 1 the result is exactly ``replacement``."""
    if image.shape != replacement.shape or alpha.shape != image.shape[:2]:
        raise InputError(f"shapes differ: image {image.shape}, replacement {replacement.shape}, alpha {alpha.shape}")
    a = alpha[:, :, None]
    out = image.astype(np.float32) * (1.0 - a) + replacement.astype(np.float32) * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
