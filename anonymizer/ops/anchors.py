"""Anchor boxes for anchor-based (RetinaFace / SSD) face heads: generation, matching, box coding.

Anchors are ``Tensor[A, 4]`` (cx, cy, w, h) in pixels of the network input. Boxes are ``Tensor[N, 4]``
(x1, y1, x2, y2) in pixels, x2/y2 exclusive (as in :mod:`anonymizer.ops.boxes`). Landmarks are
``Tensor[N, 5, 2]`` (x, y) in pixels: left eye, right eye, nose, left and right mouth corners.

Deltas use the SSD / RetinaFace parameterisation with ``variances = (v_centre, v_size)``:
centre offsets are divided by ``v_centre * anchor size`` and log size ratios by ``v_size``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import InputError
from .boxes import box_iou

#: RetinaFace's pyramid strides and the square anchor sides (pixels) used at each of them.
RETINAFACE_STRIDES: tuple[int, ...] = (8, 16, 32)
RETINAFACE_ANCHOR_SIZES: tuple[tuple[float, ...], ...] = ((16, 32), (64, 128), (256, 512))
RETINAFACE_VARIANCES: tuple[float, float] = (0.1, 0.2)

#: Labels returned by :func:`match_anchors`.
POSITIVE = 1
NEGATIVE = 0
IGNORE = -1

# Largest decoded size ratio to the anchor (as torchvision's bbox_xform_clip): keeps exp() finite on
# untrained outputs without limiting any real face (512 px anchors times 62.5 is far beyond any input).
_MAX_LOG_RATIO = math.log(1000.0 / 16)


def make_anchors(
    feature_sizes: Sequence[tuple[int, int]],
    strides: Sequence[int] = RETINAFACE_STRIDES,
    sizes_per_level: Sequence[Sequence[float]] = RETINAFACE_ANCHOR_SIZES,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Square anchors for every cell of every pyramid level.

    feature_sizes: one (height, width) in cells per level; strides: the level's stride in pixels;
    sizes_per_level: the anchor sides in pixels at each level. Returns ``Tensor[A, 4]`` (cx, cy, w, h)
    with ``A = sum(h * w * len(sizes))``, ordered level by level, then row-major over cells (y, then x),
    then by size: the order of a ``[B, k * C, h, w]`` head output permuted to ``[B, h, w, k, C]``.
    The anchor of cell (i, j) is centred at ``((j + 0.5) * stride, (i + 0.5) * stride)``.
    """
    if not (len(feature_sizes) == len(strides) == len(sizes_per_level)):
        raise InputError(
            "make_anchors needs one feature size, stride and size list per level, got "
            f"{len(feature_sizes)} feature sizes, {len(strides)} strides, {len(sizes_per_level)} size lists"
        )
    parts: list[Tensor] = []
    for level, ((h, w), stride, sizes) in enumerate(zip(feature_sizes, strides, sizes_per_level, strict=True)):
        if h < 0 or w < 0:
            raise InputError(f"feature size of level {level} must be non-negative, got {h}x{w}")
        if stride <= 0:
            raise InputError(f"stride of level {level} must be > 0, got {stride}")
        if len(sizes) == 0 or any(s <= 0 for s in sizes):
            raise InputError(f"anchor sizes of level {level} must be a non-empty list of sides > 0, got {sizes}")
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * stride
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * stride
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        k = len(sizes)
        side = torch.tensor(list(sizes), device=device, dtype=dtype)
        centres = torch.stack([cx, cy], dim=-1).reshape(h * w, 1, 2).expand(h * w, k, 2)
        wh = side[None, :, None].expand(h * w, k, 2)
        parts.append(torch.cat([centres, wh], dim=-1).reshape(h * w * k, 4))
    if not parts:
        return torch.zeros((0, 4), device=device, dtype=dtype)
    return torch.cat(parts, dim=0)


def anchors_to_boxes(anchors: Tensor) -> Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2), any leading shape."""
    _check_last(anchors, 4, "anchors")
    half = anchors[..., 2:] / 2
    return torch.cat([anchors[..., :2] - half, anchors[..., :2] + half], dim=-1)


def encode_boxes(boxes_xyxy: Tensor, anchors: Tensor, variances: Sequence[float] = RETINAFACE_VARIANCES) -> Tensor:
    """Regression targets of ``boxes_xyxy: Tensor[..., N, 4]`` against their ``anchors: Tensor[N, 4]``.

    Returns ``Tensor[..., N, 4]``: ((cx - a_cx) / (v0 a_w), (cy - a_cy) / (v0 a_h), log(w / a_w) / v1,
    log(h / a_h) / v1). Every box must have positive width and height.
    """
    v0, v1 = _check_variances(variances)
    _check_pair(boxes_xyxy, anchors, 4, "boxes")
    wh = boxes_xyxy[..., 2:] - boxes_xyxy[..., :2]
    if wh.numel() and bool((wh <= 0).any()):
        raise InputError("boxes to encode must have x2 > x1 and y2 > y1 (positive width and height)")
    centre = (boxes_xyxy[..., :2] + boxes_xyxy[..., 2:]) / 2
    d_centre = (centre - anchors[:, :2]) / (v0 * anchors[:, 2:])
    d_size = torch.log(wh / anchors[:, 2:]) / v1
    return torch.cat([d_centre, d_size], dim=-1)


def decode_boxes(deltas: Tensor, anchors: Tensor, variances: Sequence[float] = RETINAFACE_VARIANCES) -> Tensor:
    """Inverse of :func:`encode_boxes`: ``deltas: Tensor[..., A, 4]`` -> boxes ``Tensor[..., A, 4]`` (x1, y1, x2, y2).

    Size deltas are clipped so that a box is at most 62.5 times its anchor (finite output on any input).
    """
    v0, v1 = _check_variances(variances)
    _check_pair(deltas, anchors, 4, "box deltas")
    centre = anchors[:, :2] + deltas[..., :2] * v0 * anchors[:, 2:]
    wh = anchors[:, 2:] * torch.exp((deltas[..., 2:] * v1).clamp(max=_MAX_LOG_RATIO))
    return torch.cat([centre - wh / 2, centre + wh / 2], dim=-1)


def encode_landmarks(landmarks: Tensor, anchors: Tensor, variances: Sequence[float] = RETINAFACE_VARIANCES) -> Tensor:
    """Regression targets of ``landmarks: Tensor[..., N, 5, 2]`` (x, y) px against ``anchors: Tensor[N, 4]``.

    Returns ``Tensor[..., N, 10]``: (x0, y0, x1, y1, ...) with each point's offset from the anchor centre
    divided by ``v0 * anchor size``.
    """
    v0, _ = _check_variances(variances)
    if landmarks.ndim < 3 or tuple(landmarks.shape[-2:]) != (5, 2):
        raise InputError(f"landmarks must be Tensor[..., N, 5, 2], got shape {tuple(landmarks.shape)}")
    _check_anchors(anchors)
    if landmarks.shape[-3] != anchors.shape[0]:
        raise InputError(
            f"landmarks and anchors must pair up: got {landmarks.shape[-3]} landmark sets "
            f"and {anchors.shape[0]} anchors"
        )
    d = (landmarks - anchors[:, None, :2]) / (v0 * anchors[:, None, 2:])
    return d.flatten(-2)


def decode_landmarks(deltas: Tensor, anchors: Tensor, variances: Sequence[float] = RETINAFACE_VARIANCES) -> Tensor:
    """Inverse of :func:`encode_landmarks`: ``deltas: Tensor[..., A, 10]`` -> ``Tensor[..., A, 5, 2]`` (x, y) px."""
    v0, _ = _check_variances(variances)
    _check_pair(deltas, anchors, 10, "landmark deltas")
    d = deltas.unflatten(-1, (5, 2))
    return anchors[:, None, :2] + d * v0 * anchors[:, None, 2:]


def match_anchors(
    gt_boxes: Tensor,
    anchors: Tensor,
    *,
    pos_iou: float = 0.35,
    neg_iou: float = 0.35,
    min_forced_iou: float = 0.2,
) -> tuple[Tensor, Tensor]:
    """Assign ground-truth faces to anchors (SSD / RetinaFace matching).

    gt_boxes: Tensor[M, 4] (x1, y1, x2, y2) px; anchors: Tensor[A, 4] (cx, cy, w, h) px.
    An anchor is positive when its best IoU with any gt is ``>= pos_iou``, negative when it is
    ``< neg_iou`` and ignored in between. Then each gt's best anchor is made positive and matched to
    that gt, whatever its IoU, as long as the IoU is ``>= min_forced_iou`` (RetinaFace's 0.2: a face much
    smaller than every anchor is not forced onto one, since its regression target would be extreme);
    when two gts share a best anchor, the later gt gets it.

    Returns ``(matched, labels)``, both ``Tensor[A]`` int64: ``matched`` is the index of the gt an anchor
    regresses to, -1 wherever the anchor is not positive; ``labels`` is :data:`POSITIVE` (1),
    :data:`NEGATIVE` (0) or :data:`IGNORE` (-1). With no gts every anchor is negative.
    """
    if gt_boxes.ndim != 2 or gt_boxes.shape[1] != 4:
        raise InputError(f"gt_boxes must be Tensor[M, 4] (x1, y1, x2, y2), got shape {tuple(gt_boxes.shape)}")
    _check_anchors(anchors)
    if not 0.0 <= neg_iou <= pos_iou <= 1.0:
        raise InputError(f"need 0 <= neg_iou <= pos_iou <= 1, got neg_iou={neg_iou}, pos_iou={pos_iou}")
    n_anchors, n_gt = anchors.shape[0], gt_boxes.shape[0]
    device = anchors.device
    matched = torch.full((n_anchors,), -1, dtype=torch.long, device=device)
    labels = torch.full((n_anchors,), NEGATIVE, dtype=torch.long, device=device)
    if n_gt == 0 or n_anchors == 0:
        return matched, labels

    iou = box_iou(gt_boxes.to(device), anchors_to_boxes(anchors))  # [M, A]
    best_iou, best_gt = iou.max(dim=0)  # per anchor
    labels[best_iou >= neg_iou] = IGNORE
    pos = best_iou >= pos_iou
    labels[pos] = POSITIVE
    matched[pos] = best_gt[pos]

    # Force each gt's best anchor; scatter_reduce(amax) makes "later gt wins" deterministic.
    gt_best_iou, gt_best_anchor = iou.max(dim=1)  # per gt
    ok = gt_best_iou >= min_forced_iou
    if bool(ok.any()):
        forced = torch.full((n_anchors,), -1, dtype=torch.long, device=device)
        gt_idx = torch.arange(n_gt, device=device)[ok]
        forced.scatter_reduce_(0, gt_best_anchor[ok], gt_idx, reduce="amax", include_self=True)
        hit = forced >= 0
        matched[hit] = forced[hit]
        labels[hit] = POSITIVE
    return matched, labels


def _check_variances(variances: Sequence[float]) -> tuple[float, float]:
    if len(variances) != 2 or any(v <= 0 for v in variances):
        raise InputError(f"variances must be two numbers > 0 (centre, size), got {tuple(variances)}")
    return float(variances[0]), float(variances[1])


def _check_last(t: Tensor, size: int, name: str) -> None:
    if t.ndim < 1 or t.shape[-1] != size:
        raise InputError(f"{name} must be Tensor[..., {size}], got shape {tuple(t.shape)}")


def _check_anchors(anchors: Tensor) -> None:
    if anchors.ndim != 2 or anchors.shape[1] != 4:
        raise InputError(f"anchors must be Tensor[A, 4] (cx, cy, w, h), got shape {tuple(anchors.shape)}")


def _check_pair(t: Tensor, anchors: Tensor, size: int, name: str) -> None:
    if t.ndim < 2 or t.shape[-1] != size:
        raise InputError(f"{name} must be Tensor[..., N, {size}], got shape {tuple(t.shape)}")
    _check_anchors(anchors)
    if t.shape[-2] != anchors.shape[0]:
        raise InputError(f"{name} and anchors must pair up: got {t.shape[-2]} {name} and {anchors.shape[0]} anchors")
