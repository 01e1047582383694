"""Backbones: MobileNetV2 returning the feature maps at strides 4, 8, 16 and 32."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import ConvNormAct

#: (expansion t, channels c, repeats n, first stride s) of MobileNetV2, width 1.0.
MOBILENET_V2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (skipped when t == 1), 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, in_ch: int, out_ch: int, *, stride: int, expand: int, norm: bool = True) -> None:
        super().__init__()
        hidden = in_ch * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvNormAct(in_ch, hidden, 1, norm=norm))
        layers.append(ConvNormAct(hidden, hidden, 3, stride=stride, groups=hidden, norm=norm))
        layers.append(ConvNormAct(hidden, out_ch, 1, norm=norm, act=False))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return x + y if self.use_residual else y


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) without its classifier and final 1x1-to-1280 layer.

    forward(x: Tensor[B, 3, H, W]) -> [C4, C8, C16, C32], the outputs of ``features[3, 6, 13, 17]``
    with 24, 32, 96 and 320 channels at strides 4, 8, 16 and 32. H and W must be multiples of 32.
    """

    taps: tuple[int, ...] = (3, 6, 13, 17)
    out_channels: tuple[int, ...] = (24, 32, 96, 320)
    strides: tuple[int, ...] = (4, 8, 16, 32)

    def __init__(self, *, norm: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvNormAct(3, 32, 3, stride=2, norm=norm)]
        in_ch = 32
        for t, c, n, s in MOBILENET_V2_SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(in_ch, c, stride=s if i == 0 else 1, expand=t, norm=norm))
                in_ch = c
        self.features = nn.Sequential(*layers)
        if norm:
            init_weights(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs: list[Tensor] = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
        return outs


@torch.no_grad()
def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convolutions, unit batch-norm: the random start of every trainable model here."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
