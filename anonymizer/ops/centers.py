"""Decoding of centre-based (CenterNet / CenterFace) dense face maps into boxes and landmarks."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError

Decoded = tuple[Tensor, Tensor, Tensor]


def decode_center_maps(
    heatmap: Tensor,
    scale: Tensor,
    offset: Tensor,
    landmarks: Tensor,
    *,
    threshold: float,
    stride: int = 4,
) -> list[Decoded]:
    """Boxes, scores and landmarks at every heat-map cell above ``threshold`` (no suppression).

    heatmap: Tensor[B, 1, h, w] face probability; scale: Tensor[B, 2, h, w] log(height/stride),
    log(width/stride); offset: Tensor[B, 2, h, w] sub-cell centre offset (y, x); landmarks:
    Tensor[B, 10, h, w], (y, x) of 5 points relative to the box's top-left corner, in box heights
    and widths. Returns one (boxes Tensor[N, 4] x1 y1 x2 y2, scores Tensor[N], landmarks
    Tensor[N, 5, 2] as (x, y)) per image, in pixels of the network input.
    """
    if heatmap.ndim != 4 or heatmap.shape[1] != 1:
        raise InputError(f"heatmap must be Tensor[B, 1, h, w], got shape {tuple(heatmap.shape)}")
    b, _, h, w = heatmap.shape
    for name, t, c in (("scale", scale, 2), ("offset", offset, 2), ("landmarks", landmarks, 10)):
        if tuple(t.shape) != (b, c, h, w):
            raise InputError(f"{name} must be Tensor[{b}, {c}, {h}, {w}], got shape {tuple(t.shape)}")
    out: list[Decoded] = []
    for i in range(b):
        ys, xs = torch.nonzero(heatmap[i, 0] > threshold, as_tuple=True)
        scores = heatmap[i, 0, ys, xs]
        s_h = torch.exp(scale[i, 0, ys, xs]) * stride
        s_w = torch.exp(scale[i, 1, ys, xs]) * stride
        cx = (xs.to(s_w.dtype) + offset[i, 1, ys, xs] + 0.5) * stride
        cy = (ys.to(s_h.dtype) + offset[i, 0, ys, xs] + 0.5) * stride
        x1 = cx - s_w / 2
        y1 = cy - s_h / 2
        boxes = torch.stack([x1, y1, x1 + s_w, y1 + s_h], dim=1)
        lm = landmarks[i][:, ys, xs].T.reshape(-1, 5, 2)  # (y, x) per point
        lm_xy = torch.stack([lm[..., 1] * s_w[:, None] + x1[:, None], lm[..., 0] * s_h[:, None] + y1[:, None]], -1)
        out.append((boxes, scores, lm_xy))
    return out
