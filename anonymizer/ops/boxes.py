"""Box helpers. Boxes are ``Tensor[N, 4]`` (x1, y1, x2, y2) in pixels, x2/y2 exclusive."""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor

from ..errors import InputError


def _check_boxes(boxes: Tensor) -> None:
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(f"boxes must be Tensor[N, 4], got shape {tuple(boxes.shape)}")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the boxes kept by non-maximum suppression, highest score first.

    A box is dropped when its IoU with a higher-scoring kept box exceeds ``iou_threshold``.
    """
    _check_boxes(boxes)
    if scores.shape != (boxes.shape[0],):
        raise InputError(f"scores must be Tensor[{boxes.shape[0]}], got shape {tuple(scores.shape)}")
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    return torchvision.ops.nms(boxes.float(), scores.float(), iou_threshold)


def scale_boxes(boxes: Tensor, factor: float) -> Tensor:
    """Grow (factor > 1) or shrink boxes about their centres; each side is multiplied by ``factor``."""
    _check_boxes(boxes)
    if factor <= 0:
        raise InputError(f"box scale factor must be > 0, got {factor}")
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) * (factor / 2)
    return torch.cat([centre - half, centre + half], dim=1)


def clip_boxes(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip boxes to an image of ``size`` = (height, width)."""
    _check_boxes(boxes)
    h, w = size
    out = boxes.clone()
    out[:, 0::2] = out[:, 0::2].clamp(0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0, h)
    return out


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU, Tensor[N, M]."""
    _check_boxes(a)
    _check_boxes(b)
    return torchvision.ops.box_iou(a.float(), b.float())
