"""Deepfake detection: classifiers of aligned face crops. The audit's is :class:`DeepfakeMobileNet` (CenterFace's
backbone at 192 px, builder ``deepfake_mobilenet``); :class:`DeepfakeNet` is the earlier compact one.

forward(x: Tensor[B, 3, 128, 128] RGB in 0..1, aligned onto :func:`anonymizer.nn.surrogate.crop_template`,
so the face and its blending boundary are in view) -> logits Tensor[B]: sigmoid gives the probability
that the face is synthetic or manipulated.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import InputError
from ._registry import register_model, with_weights
from .backbones import MobileNetV2, init_weights

DEEPFAKE_SIZE = 128
#: The shipped :class:`DeepfakeMobileNet`'s input: the 128-px crop scaled up inside the network.
DEEPFAKE_MOBILENET_SIZE = 192
#: (expansion, channels, repeats, first stride) of the MBConv stages.
STAGES = ((1, 24, 1, 1), (4, 32, 2, 2), (4, 48, 2, 2), (4, 96, 3, 2), (4, 128, 2, 1))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, reduced, 1),
            nn.SiLU(),
            nn.Conv2d(reduced, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.fc(x)


class MBConv(nn.Module):
    """1x1 expand -> 3x3 depthwise -> squeeze-excite -> 1x1 project (batch-norm, SiLU), residual when shapes allow."""

    def __init__(self, cin: int, cout: int, *, expand: int, stride: int) -> None:
        super().__init__()
        hid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.SiLU()]
        layers += [
            nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False),
            nn.BatchNorm2d(hid),
            nn.SiLU(),
            SqueezeExcite(hid, max(8, cin // 4)),
            nn.Conv2d(hid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class DeepfakeNet(nn.Module):
    def __init__(self, *, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.SiLU()]
        cin = 24
        for t, c, n, s in STAGES:
            for i in range(n):
                layers.append(MBConv(cin, c, expand=t, stride=s if i == 0 else 1))
                cin = c
        layers += [nn.Conv2d(cin, 320, 1, bias=False), nn.BatchNorm2d(320), nn.SiLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(320, 1))
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"expected Tensor[B, 3, H, W], got {tuple(x.shape)}")
        return self.head(self.features(x * 2 - 1))[:, 0]


@register_model("deepfake")
def deepfake(*, weights: str | None = "default") -> DeepfakeNet:
    """The earlier, compact synthetic-face classifier (models/deepfake.md, "The earlier compact network");
    ``weights=None``: random."""
    return with_weights(DeepfakeNet(), "deepfake", weights)


class DeepfakeMobileNet(nn.Module):
    """The audit's synthetic-face classifier (models/deepfake.md): CenterFace's MobileNetV2 (no batch-norm, as
    its converted weights are; 1.8 M parameters) over the aligned crop resized to ``size`` px, its stride-16
    and stride-32 features pooled, concatenated and classified.

    forward(x: Tensor[B, 3, H, W] RGB in 0..1) -> logits Tensor[B]."""

    def __init__(self, *, size: int = DEEPFAKE_SIZE, dropout: float = 0.2) -> None:
        super().__init__()
        if size % 32:
            raise InputError(f"the input size must be a multiple of 32, got {size}")
        self.size = size
        self.backbone = MobileNetV2(norm=False)
        width = sum(self.backbone.out_channels[-2:])
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"expected Tensor[B, 3, H, W], got {tuple(x.shape)}")
        if x.shape[2:] != (self.size, self.size):
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        levels = self.backbone(x * 255.0)[-2:]  # the detector's input: RGB in 0..255
        return self.head(torch.cat([level.mean((2, 3)) for level in levels], 1))[:, 0]

    def start_from_centerface(self) -> DeepfakeMobileNet:
        """Load the backbone of the shipped CenterFace detector (its face features, trained on WIDER FACE)."""
        from .detectors import centerface

        self.backbone.load_state_dict(centerface().backbone.state_dict())
        return self


@register_model("deepfake_mobilenet")
def deepfake_mobilenet(*, weights: str | None = "default", size: int = DEEPFAKE_MOBILENET_SIZE) -> DeepfakeMobileNet:
    """:class:`DeepfakeMobileNet` at ``size`` px with the declared weights ``deepfake_mobilenet`` (or another
    declared name); ``weights=None``: random. Training starts from :meth:`DeepfakeMobileNet.start_from_centerface`."""
    return with_weights(DeepfakeMobileNet(size=size), "deepfake_mobilenet", weights)
