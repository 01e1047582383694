"""Necks: a top-down feature pyramid with learned 2x upsampling (the CenterFace / FPN form)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..errors import InputError
from .layers import ConvNormAct


class Upsample2x(nn.Sequential):
    """ConvTranspose2d(k=2, s=2, no bias) -> BatchNorm2d -> ReLU: doubles height and width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(channels, channels, 2, stride=2, bias=False)
        # eps is CenterFace's; kept for every variant so that converted and trained necks agree.
        self.bn = nn.BatchNorm2d(channels, eps=1e-3)
        self.act = nn.ReLU(inplace=True)


class TopDownFPN(nn.Module):
    """Feature pyramid: 1x1 laterals on every level, merged coarse-to-fine with learned upsampling.

    forward(feats: [C4, C8, C16, C32]) -> [P4, P8, P16, P32], each with ``channels`` channels:
    P32 = lateral3(C32); P_k = up_k(P_2k) + lateral_k(C_k), with ReLU after every lateral.
    ``laterals[i]`` and ``deconv_layers[i]`` belong to level i (0 = stride 4); ``deconv_layers[i]``
    upsamples level i + 1 to level i, so ``deconv_layers[2]`` is the first one applied.
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 24, *, norm: bool = True) -> None:
        super().__init__()
        self.channels = channels
        self.laterals = nn.ModuleList(ConvNormAct(c, channels, 1, norm=norm) for c in in_channels)
        self.deconv_layers = nn.ModuleList(Upsample2x(channels) for _ in range(len(in_channels) - 1))

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        if len(feats) != len(self.laterals):
            raise InputError(f"expected {len(self.laterals)} feature maps, got {len(feats)}")
        y = self.laterals[-1](feats[-1])
        outs = [y]
        for i in range(len(feats) - 2, -1, -1):
            y = self.deconv_layers[i](y) + self.laterals[i](feats[i])
            outs.append(y)
        return outs[::-1]
