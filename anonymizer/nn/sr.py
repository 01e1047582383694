"""Super-resolution: the SRResNet generator (trained with a pixel loss, or adversarially as SRGAN) and
the VGG-style discriminator.

The generator predicts the residual over a bicubic upsampling (global residual learning): a small network
then only has to add the detail bicubic lacks, which trains far faster on a CPU. No batch-norm in the
generator (it costs speed and, in super-resolution, brings artefacts; as in EDSR).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError, WeightsError
from ._registry import register_model, with_weights
from .backbones import init_weights


class ResBlock(nn.Module):
    """conv 3x3 - PReLU - conv 3x3, scaled residual."""

    def __init__(self, ch: int, *, res_scale: float = 0.2) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.PReLU(ch), nn.Conv2d(ch, ch, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.body(x)


class SRResNet(nn.Module):
    """forward(x: Tensor[B, 3, h, w] RGB in 0..1) -> Tensor[B, 3, scale*h, scale*w] in 0..1 (not clamped).

    Head conv, ``blocks`` residual blocks with a long skip, pixel-shuffle x2 steps, tail conv; the result
    is added to the bicubic upsampling of ``x``.
    """

    def __init__(self, *, channels: int = 48, blocks: int = 8, scale: int = 4) -> None:
        super().__init__()
        if scale not in (2, 4):
            raise InputError(f"scale must be 2 or 4, got {scale}")
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(3, channels, 5, padding=2), nn.PReLU(channels))
        self.body = nn.Sequential(
            *[ResBlock(channels) for _ in range(blocks)], nn.Conv2d(channels, channels, 3, padding=1)
        )
        ups: list[nn.Module] = []
        for _ in range(scale // 2):
            ups += [nn.Conv2d(channels, channels * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(channels)]
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)
        init_weights(self)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.mul_(0.1)  # start near "bicubic": small residuals
            nn.init.zeros_(self.tail.weight)
            if self.tail.bias is not None:
                nn.init.zeros_(self.tail.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"expected Tensor[B, 3, H, W], got {tuple(x.shape)}")
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        h = self.head(x)
        h = h + self.body(h)
        return base + self.tail(self.up(h))


class Discriminator(nn.Module):
    """VGG-style: conv-LeakyReLU pairs (the second strided) with doubling widths, then a 1x1 conv to one
    logit per patch; forward returns (logits Tensor[B, 1, h', w'], [intermediate features]) so that
    training can use feature matching."""

    def __init__(self, *, channels: int = 32, stages: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin, c = 3, channels
        for i in range(stages):
            layers.append(
                nn.Sequential(
                    nn.Conv2d(cin, c, 3, padding=1),
                    nn.LeakyReLU(0.2, inplace=True),
                    nn.Conv2d(c, c, 4, stride=2, padding=1),
                    nn.BatchNorm2d(c) if i else nn.Identity(),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            )
            cin, c = c, min(c * 2, 256)
        self.stages = nn.ModuleList(layers)
        self.out = nn.Conv2d(cin, 1, 3, padding=1)
        init_weights(self)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        feats = []
        h = x * 2 - 1
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return self.out(h), feats


def _sr(name: str, weights: str | None) -> SRResNet:
    return with_weights(SRResNet(), name, weights)


@register_model("srresnet")
def srresnet(*, weights: str | None = "default") -> SRResNet:
    """4x SRResNet trained with the L1 pixel loss (models/srresnet.md); ``weights=None``: random."""
    return _sr("srresnet", weights)


@register_model("srgan")
def srgan(*, weights: str | None = "default") -> SRResNet:
    """The same generator fine-tuned adversarially (models/srgan.md); ``weights=None``: random."""
    return _sr("srgan", weights)


@register_model("sr_discriminator")
def sr_discriminator(*, weights: str | None = None) -> Discriminator:
    """The SRGAN discriminator (training only; no weights are shipped)."""
    if weights is not None:
        raise WeightsError("no discriminator weights are shipped")
    return Discriminator()
