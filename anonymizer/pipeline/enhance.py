"""4x super-resolution of whole images, in overlapping tiles so that memory stays bounded."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import InputError
from ..ops.checks import require_rgb

SR_MODELS = ("srresnet", "srgan")
SR_SCALE = 4
#: Input tiles of this side (pixels), each read with TILE_PAD extra pixels of context on every side; the
#: padding exceeds the network's receptive field, so tiles join without seams.
TILE = 128
TILE_PAD = 24


@lru_cache(maxsize=2)
def _model(name: str):  # noqa: ANN202 (an SRResNet; torch is imported lazily)
    from ..nn import build_model

    return build_model(name)


def enhance_array(
    rgb: np.ndarray, *, model: str = "srresnet", scale: int = SR_SCALE, tile: int = TILE, pad: int = TILE_PAD
) -> np.ndarray:
    """Upscale an RGB uint8 (H, W, 3) array ``scale`` times with the named model; returns uint8
    (scale*H, scale*W, 3). Images larger than ``tile`` are processed tile by tile."""
    import torch

    if model not in SR_MODELS:
        raise InputError(f"unknown super-resolution model {model!r}; expected one of {', '.join(SR_MODELS)}")
    if scale != SR_SCALE:
        raise InputError(f"only scale {SR_SCALE} is supported (the models are trained for 4x), got {scale}")
    require_rgb(rgb)
    if tile < 8 or pad < 0:
        raise InputError(f"tile must be >= 8 and pad >= 0, got {tile}, {pad}")
    net = _model(model)
    h, w = rgb.shape[:2]
    out = np.empty((h * scale, w * scale, 3), np.uint8)
    x = torch.tensor(rgb).permute(2, 0, 1)[None].float().div_(255.0)  # a copy: read-only inputs are fine
    with torch.inference_mode():
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
                a, b = max(0, y0 - pad), max(0, x0 - pad)
                c, d = min(h, y1 + pad), min(w, x1 + pad)
                sr = net(x[:, :, a:c, b:d])[0]
                sr = sr[:, (y0 - a) * scale : (y1 - a) * scale, (x0 - b) * scale : (x1 - b) * scale]
                out[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = (
                    sr.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
                )
    return out
