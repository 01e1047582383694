"""IdentityNet: a compact residual network mapping an aligned face crop to a 128-d identity embedding.

It is distilled from dlib's face-recognition ResNet (see models/identity_net.md): the embedding lives in
dlib's descriptor space, so Euclidean distances compare with dlib's (same person below about 0.6). It is
differentiable, so generators can be trained against it (an identity-change loss), and it needs no dlib.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import InputError
from ._registry import register_model, with_weights
from .backbones import init_weights
from .layers import ConvNormAct

#: Side of the aligned crop (pixels); landmarks go to :data:`anonymizer.ops.align.TEMPLATE_112` scaled.
IDENTITY_CROP = 96
EMBEDDING_DIM = 128
#: Same-person threshold for IdentityNet distances: the one at which its decisions agree best with dlib's
#: at 0.6 on the held-out faces-utk pairs (calibrated by benchmarks/identity.py; see the model card).
IDENTITY_THRESHOLD = 0.5
#: Per-channel mean and std of the RGB input in 0..1 (ImageNet's, a neutral choice).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (1x1 projection when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, *, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(in_ch, out_ch, 3, stride=stride),
            ConvNormAct(out_ch, out_ch, 3, act=False),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and in_ch == out_ch
            else ConvNormAct(in_ch, out_ch, 1, stride=stride, act=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.skip(x))


class IdentityNet(nn.Module):
    """forward(x: Tensor[B, 3, 96, 96] RGB in 0..1, aligned) -> Tensor[B, 128] embedding (dlib space).

    Widths 32-64-128-256 at strides 2-4-8-16, global average pooling, a linear embedding layer.
    """

    def __init__(self, *, widths: tuple[int, int, int, int] = (32, 64, 128, 256), dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(ConvNormAct(3, w0, 3, stride=2), ConvNormAct(w0, w0, 3))
        self.stages = nn.Sequential(
            BasicBlock(w0, w1, stride=2),
            BasicBlock(w1, w1),
            BasicBlock(w1, w2, stride=2),
            BasicBlock(w2, w2),
            BasicBlock(w2, w3, stride=2),
            BasicBlock(w3, w3),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.1)
        self.embed = nn.Linear(w3, dim)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"expected Tensor[B, 3, H, W], got {tuple(x.shape)}")
        mean, std = self.get_buffer("mean"), self.get_buffer("std")
        x = (x - mean) / std
        x = self.stages(self.stem(x))
        return self.embed(self.drop(self.pool(x).flatten(1)))


@register_model("identity_net")
def identity_net(*, weights: str | None = "default") -> IdentityNet:
    """IdentityNet with the weights shipped in models/ (``weights=None``: random, for tests and training)."""
    return with_weights(IdentityNet(), "identity_net", weights)
