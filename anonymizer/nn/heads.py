"""Dense face heads. Every head maps pyramid levels to a dict of maps and decodes them.

Contract shared by all heads (so that :class:`~anonymizer.nn.detectors.FaceDetector` can hold any):
``forward(levels: list[Tensor]) -> dict[str, Tensor]`` and
``decode(outputs, *, threshold) -> list[(boxes Tensor[N, 4], scores Tensor[N], landmarks Tensor[N, 5, 2])]``
in pixels of the network input, before non-maximum suppression.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..ops.centers import Decoded, decode_center_maps
from .layers import ConvNormAct


class CenterHead(nn.Module):
    """Anchor-free centre head (CenterNet / CenterFace) on the stride-4 pyramid level.

    Outputs: ``heatmap`` [B, 1, h, w] (sigmoid), ``scale`` [B, 2, h, w] log-size (h, w),
    ``offset`` [B, 2, h, w] (y, x), ``landmarks`` [B, 10, h, w] (y, x) x 5.
    """

    stride = 4

    def __init__(self, channels: int = 24, *, norm: bool = True) -> None:
        super().__init__()
        self.conv = ConvNormAct(channels, channels, 3, norm=norm)
        self.heatmap = nn.Conv2d(channels, 1, 1)
        self.scale = nn.Conv2d(channels, 2, 1)
        self.offset = nn.Conv2d(channels, 2, 1)
        self.landmarks = nn.Conv2d(channels, 10, 1)
        # Focal-loss prior: start with a low face probability everywhere.
        assert self.heatmap.bias is not None
        nn.init.constant_(self.heatmap.bias, -4.6)

    def forward(self, levels: Sequence[Tensor]) -> dict[str, Tensor]:
        h = self.conv(levels[0])
        return {
            "heatmap": torch.sigmoid(self.heatmap(h)),
            "scale": self.scale(h),
            "offset": self.offset(h),
            "landmarks": self.landmarks(h),
        }

    def decode(self, outputs: dict[str, Tensor], *, threshold: float) -> list[Decoded]:
        return decode_center_maps(
            outputs["heatmap"],
            outputs["scale"],
            outputs["offset"],
            outputs["landmarks"],
            threshold=threshold,
            stride=self.stride,
        )
