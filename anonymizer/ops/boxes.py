"""Box helpers. Boxes are ``Tensor[N, 4]`` (x1, y1, x2, y2) in pixels, x2/y2 exclusive.

NMS and IoU are written here in plain torch, with torchvision's arithmetic (float32, the same order of
operations, a stable sort by score): importing torchvision costs about a second and a half, which every
short video or small batch would pay (tests/ops/test_boxes.py checks both against torchvision's)."""

from __future__ import annotations

import numpy as np
import torch
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
    boxes, scores = boxes.float(), scores.float()
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order].numpy()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    suppressed = np.zeros(len(b), bool)
    keep = []
    for i in range(len(b)):  # greedy, as torchvision's CPU kernel: a kept box suppresses the worse it overlaps
        if suppressed[i]:
            continue
        keep.append(i)
        rest = b[i + 1 :]
        w = np.maximum(np.minimum(b[i, 2], rest[:, 2]) - np.maximum(b[i, 0], rest[:, 0]), np.float32(0))
        h = np.maximum(np.minimum(b[i, 3], rest[:, 3]) - np.maximum(b[i, 1], rest[:, 1]), np.float32(0))
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):  # two empty boxes: 0/0, never suppressed
            suppressed[i + 1 :] |= inter / (area[i] + area[i + 1 :] - inter) > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


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
    return _iou(a.float(), b.float())


def _iou(a: Tensor, b: Tensor) -> Tensor:
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def drop_contained(boxes: Tensor, scores: Tensor, *, min_inside: float = 0.8, min_area_ratio: float = 2.0) -> Tensor:
    """Indices of the boxes kept when each box that lies inside a larger, better-scoring box is dropped.

    A box is dropped when at least ``min_inside`` of its area lies inside another box that has at least
    ``min_area_ratio`` times its area and a score at least as high: the eye or cheek "faces" a detector finds
    inside a large face at a higher resolution. Real faces are almost never nested so (2 of 4,331 WIDER
    faces are 80% inside a face twice their size). Returns indices in ascending order.
    """
    _check_boxes(boxes)
    if scores.shape != (boxes.shape[0],):
        raise InputError(f"scores must be Tensor[{boxes.shape[0]}], got shape {tuple(scores.shape)}")
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    b = boxes.float()
    area = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=1)
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)  # [i, j]: box i's area inside box j
    inside = inter >= min_inside * area[:, None].clamp(min=1e-9)
    larger = area[None, :] >= min_area_ratio * area[:, None]
    better = scores[None, :] >= scores[:, None]
    dropped = (inside & larger & better).any(dim=1)
    return torch.nonzero(~dropped).flatten()


# numpy boxes [4] or [N, 4] (x1, y1, x2, y2) in pixels, for the trackers and the evaluations


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of numpy boxes a[N, 4] and b[M, 4]: float [N, M] (zeros [N, 0] / [0, M] when either is empty)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def inside_share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The share of each box a[N, 4]'s area that lies inside each box b[M, 4]: float [N, M] (zeros [N, 0] /
    [0, M] when either is empty)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None) / np.maximum(area[:, None], 1e-9)


def union_box(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    """The smallest box holding boxes ``a`` (or nothing) and ``b``, float32 [4]."""
    if a is None:
        return b.astype(np.float32)
    return np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])]).astype(np.float32)


def grow_box(box: np.ndarray, factor: float) -> np.ndarray:
    """``box`` scaled by ``factor`` about its centre, float32 [4]."""
    c = (box[:2] + box[2:]) / 2
    half = (box[2:] - box[:2]) / 2 * factor
    return np.concatenate([c - half, c + half]).astype(np.float32)
