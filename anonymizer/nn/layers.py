"""Small building blocks shared by the model stack."""

from __future__ import annotations

from torch import nn


class ConvNormAct(nn.Sequential):
    """Conv2d -> BatchNorm2d (or nothing) -> ReLU (or nothing).

    ``norm=False`` builds the inference form whose batch-norm has been folded into the convolution
    (the convolution then carries a bias); the two forms have the same ``conv`` parameter names.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        *,
        stride: int = 1,
        groups: int = 1,
        norm: bool = True,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=not norm)
        self.norm = nn.BatchNorm2d(out_ch) if norm else nn.Identity()
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
