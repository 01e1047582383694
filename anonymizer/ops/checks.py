"""Input checks shared by the pure functions and pipelines."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def require_rgb(rgb: object) -> None:
    """Raise InputError unless ``rgb`` is an RGB uint8 (H, W, 3) array."""
    if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
        raise InputError(f"expected an RGB uint8 (H, W, 3) array, got {getattr(rgb, 'shape', type(rgb))}")
