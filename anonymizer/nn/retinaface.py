"""RetinaFace: the anchor-based face head on the shared MobileNetV2 + FPN stack, its loss and builder.

The head follows the contract in :mod:`anonymizer.nn.heads`, so :class:`~anonymizer.nn.detectors.FaceDetector`
holds it like the centre head. No pretrained weights are declared yet: the builder gives a randomly
initialised network, ready for training with :func:`retinaface_loss`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError, WeightsError
from ..ops.anchors import (
    NEGATIVE,
    POSITIVE,
    RETINAFACE_ANCHOR_SIZES,
    RETINAFACE_STRIDES,
    RETINAFACE_VARIANCES,
    decode_boxes,
    decode_landmarks,
    encode_boxes,
    encode_landmarks,
    make_anchors,
    match_anchors,
)
from ..ops.centers import Decoded
from ._registry import register_model
from .backbones import MobileNetV2, init_weights
from .detectors import FaceDetector
from .layers import ConvNormAct
from .necks import TopDownFPN

#: Initial face probability of every anchor (focal-loss style prior, stabilises the first steps).
_PRIOR_PROB = 0.01


class SSHLite(nn.Module):
    """Small SSH context module: 3x3, 5x5 and 7x7 receptive fields (stacked 3x3 convs), concatenated.

    forward(x: Tensor[B, C, h, w]) -> Tensor[B, C, h, w]; the branches have C/2, C/4 and C/4 channels,
    so ``channels`` must be a multiple of 4.
    """

    def __init__(self, channels: int, *, norm: bool = True) -> None:
        super().__init__()
        if channels % 4:
            raise InputError(f"SSH context channels must be a multiple of 4, got {channels}")
        half, quarter = channels // 2, channels // 4
        self.conv3 = ConvNormAct(channels, half, 3, norm=norm, act=False)
        self.conv5_1 = ConvNormAct(channels, quarter, 3, norm=norm)
        self.conv5_2 = ConvNormAct(quarter, quarter, 3, norm=norm, act=False)
        self.conv7_2 = ConvNormAct(quarter, quarter, 3, norm=norm)
        self.conv7_3 = ConvNormAct(quarter, quarter, 3, norm=norm, act=False)

    def forward(self, x: Tensor) -> Tensor:
        t = self.conv5_1(x)
        return F.relu(torch.cat([self.conv3(x), self.conv5_2(t), self.conv7_3(self.conv7_2(t))], dim=1))


class RetinaHead(nn.Module):
    """Anchor-based multi-task head (RetinaFace) on pyramid levels P8, P16 and P32.

    Per level: an :class:`SSHLite` context module, then 1x1 convolutions giving, for each of the
    level's ``k`` anchors per cell, one face logit, 4 box deltas and 10 landmark deltas.

    forward(levels: [P4, P8, P16, P32], each Tensor[B, channels, H/s, W/s]) -> dict with
    ``logits`` Tensor[B, A] (sigmoid gives the face probability), ``boxes`` Tensor[B, A, 4] and
    ``landmarks`` Tensor[B, A, 10] (deltas, see :mod:`anonymizer.ops.anchors`), and ``anchors``
    Tensor[A, 4] (cx, cy, w, h) in input pixels, in the order of :func:`~anonymizer.ops.anchors.make_anchors`.
    """

    def __init__(
        self,
        channels: int = 24,
        *,
        level_indices: Sequence[int] = (1, 2, 3),
        strides: Sequence[int] = RETINAFACE_STRIDES,
        anchor_sizes: Sequence[Sequence[float]] = RETINAFACE_ANCHOR_SIZES,
        variances: Sequence[float] = RETINAFACE_VARIANCES,
        norm: bool = True,
    ) -> None:
        super().__init__()
        if not (len(level_indices) == len(strides) == len(anchor_sizes)):
            raise InputError(
                "RetinaHead needs one level index, stride and anchor size list per level, got "
                f"{len(level_indices)}, {len(strides)} and {len(anchor_sizes)}"
            )
        self.level_indices = tuple(int(i) for i in level_indices)
        self.strides = tuple(int(s) for s in strides)
        self.anchor_sizes = tuple(tuple(float(a) for a in sizes) for sizes in anchor_sizes)
        self.variances = (float(variances[0]), float(variances[1]))
        self.context = nn.ModuleList(SSHLite(channels, norm=norm) for _ in self.strides)
        self.cls = nn.ModuleList(nn.Conv2d(channels, len(a), 1) for a in self.anchor_sizes)
        self.box = nn.ModuleList(nn.Conv2d(channels, len(a) * 4, 1) for a in self.anchor_sizes)
        self.ldm = nn.ModuleList(nn.Conv2d(channels, len(a) * 10, 1) for a in self.anchor_sizes)
        # Anchors depend only on the feature sizes: cached, and kept out of the state dict.
        self._anchor_cache: dict[tuple[object, ...], Tensor] = {}
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        init_weights(self)
        prior_bias = -math.log((1 - _PRIOR_PROB) / _PRIOR_PROB)
        for group in (self.cls, self.box, self.ldm):
            for conv in group:
                if isinstance(conv, nn.Conv2d) and conv.bias is not None:
                    nn.init.normal_(conv.weight, std=0.01)
                    nn.init.constant_(conv.bias, prior_bias if group is self.cls else 0.0)

    def anchors(self, feature_sizes: Sequence[tuple[int, int]], *, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Anchors Tensor[A, 4] (cx, cy, w, h) for these per-level (height, width) feature sizes."""
        key = (tuple(feature_sizes), device, dtype)
        cached = self._anchor_cache.get(key)
        if cached is None:
            # A normal tensor even when first built under inference_mode, so training can reuse it.
            with torch.inference_mode(False):
                cached = make_anchors(feature_sizes, self.strides, self.anchor_sizes, device=device, dtype=dtype)
            if len(self._anchor_cache) >= 16:  # many input sizes (e.g. video of varying size): stay bounded
                self._anchor_cache.clear()
            self._anchor_cache[key] = cached
        return cached

    def forward(self, levels: Sequence[Tensor]) -> dict[str, Tensor]:
        if len(levels) <= max(self.level_indices):
            raise InputError(f"RetinaHead reads pyramid levels {self.level_indices}, got only {len(levels)} levels")
        logits: list[Tensor] = []
        boxes: list[Tensor] = []
        ldms: list[Tensor] = []
        sizes: list[tuple[int, int]] = []
        for i, li in enumerate(self.level_indices):
            x = self.context[i](levels[li])
            b, _, h, w = x.shape
            sizes.append((h, w))
            # [B, k*C, h, w] -> [B, h, w, k*C] -> [B, h*w*k, C]: the anchor order of make_anchors.
            logits.append(self.cls[i](x).permute(0, 2, 3, 1).reshape(b, -1))
            boxes.append(self.box[i](x).permute(0, 2, 3, 1).reshape(b, -1, 4))
            ldms.append(self.ldm[i](x).permute(0, 2, 3, 1).reshape(b, -1, 10))
        lg = torch.cat(logits, dim=1)
        return {
            "logits": lg,
            "boxes": torch.cat(boxes, dim=1),
            "landmarks": torch.cat(ldms, dim=1),
            "anchors": self.anchors(sizes, device=lg.device, dtype=lg.dtype),
        }

    def decode(self, outputs: Mapping[str, Tensor], *, threshold: float) -> list[Decoded]:
        """Per image: (boxes Tensor[N, 4] (x1, y1, x2, y2), scores Tensor[N], landmarks Tensor[N, 5, 2] (x, y)),
        in input pixels, for every anchor whose face probability is above ``threshold``; no suppression."""
        return decode_retina_outputs(outputs, threshold=threshold, variances=self.variances)


def _check_outputs(outputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    missing = [k for k in ("logits", "boxes", "landmarks", "anchors") if k not in outputs]
    if missing:
        raise InputError(f"RetinaFace outputs lack {', '.join(missing)}; got keys {sorted(outputs)}")
    logits, boxes, ldms, anchors = (outputs[k] for k in ("logits", "boxes", "landmarks", "anchors"))
    if logits.ndim != 2:
        raise InputError(f"logits must be Tensor[B, A], got shape {tuple(logits.shape)}")
    b, a = logits.shape
    for name, t, shape in (("boxes", boxes, (b, a, 4)), ("landmarks", ldms, (b, a, 10)), ("anchors", anchors, (a, 4))):
        if tuple(t.shape) != shape:
            raise InputError(f"{name} must be Tensor{list(shape)}, got shape {tuple(t.shape)}")
    return logits, boxes, ldms, anchors


def decode_retina_outputs(
    outputs: Mapping[str, Tensor], *, threshold: float, variances: Sequence[float] = RETINAFACE_VARIANCES
) -> list[Decoded]:
    """Decode :class:`RetinaHead` outputs; see :meth:`RetinaHead.decode`."""
    logits, boxes, ldms, anchors = _check_outputs(outputs)
    scores = torch.sigmoid(logits)
    out: list[Decoded] = []
    for i in range(logits.shape[0]):
        keep = torch.nonzero(scores[i] > threshold).squeeze(1)
        a = anchors[keep]
        out.append(
            (
                decode_boxes(boxes[i, keep], a, variances),
                scores[i, keep],
                decode_landmarks(ldms[i, keep], a, variances),
            )
        )
    return out


def retinaface_loss(
    outputs: Mapping[str, Tensor],
    targets: Sequence[Mapping[str, Tensor]],
    *,
    neg_pos_ratio: int = 3,
    box_weight: float = 2.0,
    landmark_weight: float = 1.0,
    pos_iou: float = 0.35,
    neg_iou: float = 0.35,
    variances: Sequence[float] = RETINAFACE_VARIANCES,
) -> dict[str, Tensor]:
    """RetinaFace multi-task loss with online hard negative mining.

    outputs: :meth:`RetinaHead.forward`'s dict. targets: one dict per image with ``boxes`` Tensor[N, 4]
    (x1, y1, x2, y2) px, optionally ``landmarks`` Tensor[N, 5, 2] (x, y) px and ``landmarks_valid``
    Tensor[N] bool (default: all valid when landmarks are given, none otherwise).

    Anchors are matched with :func:`~anonymizer.ops.anchors.match_anchors`. Classification is
    binary cross-entropy with logits on the positives and, per image, the
    ``neg_pos_ratio * max(positives, 1)`` negatives with the highest loss (so images without faces
    still teach the background); box and landmark losses are smooth-L1 on encoded deltas of the positives
    (landmarks only where valid). Boxes of zero width or height match no anchor. Classification and box
    losses are divided by the number of positives, the landmark loss by the number of positives with valid
    landmarks (each at least 1).

    Returns ``classification``, ``boxes``, ``landmarks`` (unweighted) and
    ``total = classification + box_weight * boxes + landmark_weight * landmarks``, all scalars.
    """
    logits, box_d, ldm_d, anchors = _check_outputs(outputs)
    b, n_anchors = logits.shape
    if len(targets) != b:
        raise InputError(f"need one target per image: got {len(targets)} targets for a batch of {b}")
    if neg_pos_ratio < 0:
        raise InputError(f"neg_pos_ratio must be >= 0, got {neg_pos_ratio}")
    device, dtype = logits.device, logits.dtype

    labels = torch.empty((b, n_anchors), dtype=torch.long, device=device)
    box_t = torch.zeros((b, n_anchors, 4), dtype=dtype, device=device)
    ldm_t = torch.zeros((b, n_anchors, 10), dtype=dtype, device=device)
    ldm_ok = torch.zeros((b, n_anchors), dtype=torch.bool, device=device)
    for i, t in enumerate(targets):
        gt_boxes, gt_ldms, gt_valid = _check_target(t, i)
        gt_boxes = gt_boxes.to(device=device, dtype=dtype)
        matched, lab = match_anchors(gt_boxes, anchors, pos_iou=pos_iou, neg_iou=neg_iou)
        labels[i] = lab
        pos = torch.nonzero(lab == POSITIVE).squeeze(1)
        if pos.numel() == 0:
            continue
        gi = matched[pos]
        box_t[i, pos] = encode_boxes(gt_boxes[gi], anchors[pos], variances)
        if gt_ldms is not None:
            ldm_t[i, pos] = encode_landmarks(gt_ldms.to(device=device, dtype=dtype)[gi], anchors[pos], variances)
            ldm_ok[i, pos] = gt_valid.to(device)[gi]

    pos_mask = labels == POSITIVE
    n_pos = pos_mask.sum(dim=1)  # [B]

    cls_all = F.binary_cross_entropy_with_logits(logits, pos_mask.to(dtype), reduction="none")
    # Hard negative mining: rank the negatives of each image by their loss, keep the top ones.
    with torch.no_grad():
        neg_candidates = labels == NEGATIVE
        rank_loss = cls_all.detach().masked_fill(~neg_candidates, -1.0)
        order = rank_loss.argsort(dim=1, descending=True)
        rank = order.argsort(dim=1)
        n_neg = torch.minimum(neg_pos_ratio * n_pos.clamp(min=1), neg_candidates.sum(dim=1))
        neg_mask = rank < n_neg[:, None]
    norm_pos = n_pos.sum().clamp(min=1).to(dtype)
    cls_loss = cls_all[pos_mask | neg_mask].sum() / norm_pos

    box_loss = F.smooth_l1_loss(box_d[pos_mask], box_t[pos_mask], reduction="sum") / norm_pos
    ldm_loss = F.smooth_l1_loss(ldm_d[ldm_ok], ldm_t[ldm_ok], reduction="sum") / ldm_ok.sum().clamp(min=1).to(dtype)
    total = cls_loss + box_weight * box_loss + landmark_weight * ldm_loss
    return {"classification": cls_loss, "boxes": box_loss, "landmarks": ldm_loss, "total": total}


def _check_target(t: Mapping[str, Tensor], i: int) -> tuple[Tensor, Tensor | None, Tensor]:
    if "boxes" not in t:
        raise InputError(f"target {i} has no 'boxes'; got keys {sorted(t)}")
    boxes = t["boxes"]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(f"target {i}: boxes must be Tensor[N, 4] (x1, y1, x2, y2), got shape {tuple(boxes.shape)}")
    if bool((boxes[:, 2:] < boxes[:, :2]).any()):
        raise InputError(f"target {i}: boxes must have x2 >= x1 and y2 >= y1, got {boxes.tolist()}")
    n = boxes.shape[0]
    ldms = t.get("landmarks")
    if ldms is None:
        return boxes, None, torch.zeros(n, dtype=torch.bool)
    if tuple(ldms.shape) != (n, 5, 2):
        raise InputError(f"target {i}: landmarks must be Tensor[{n}, 5, 2] (x, y), got shape {tuple(ldms.shape)}")
    valid = t.get("landmarks_valid")
    if valid is None:
        valid = torch.ones(n, dtype=torch.bool, device=boxes.device)
    elif valid.dtype != torch.bool or tuple(valid.shape) != (n,):
        raise InputError(
            f"target {i}: landmarks_valid must be a bool Tensor[{n}], got {valid.dtype} of shape {tuple(valid.shape)}"
        )
    return boxes, ldms, valid


@register_model("retinaface")
def retinaface(*, weights: str | None = None) -> FaceDetector:
    """RetinaFace: MobileNetV2, 24-channel FPN, anchor-based head on strides 8, 16 and 32.

    Input and output as :class:`~anonymizer.nn.detectors.FaceDetector` (float RGB 0..255, sides multiples of 32).
    Only ``weights=None`` (random initialisation, for training and tests) exists for now.
    """
    if weights is not None:
        raise WeightsError(
            f"no pretrained RetinaFace weights are declared yet (asked for {weights!r}); pass weights=None "
            "and train the model"
        )
    backbone = MobileNetV2(norm=True)
    neck = TopDownFPN(backbone.out_channels, 24, norm=True)
    init_weights(neck)
    return FaceDetector(backbone, neck, RetinaHead(neck.channels, norm=True))
