"""MediaPipe's selfie segmentation (Apache-2.0; its general 256x256 model), converted into our torch stack:
the probability that each pixel is a person, for people who fill the frame (portraits, video calls,
close-ups), where the person Mask R-CNN, trained on street photos, comes apart (models/selfie_segmentation.md).

The network is a MobileNetV3-style encoder (hard-swish, squeeze-and-excitation) with a small decoder; it is
written here as a program (:data:`PROGRAM`) that :class:`SelfieSegmentation` runs op by op, read once from the
tflite file by :mod:`anonymizer.nn.selfie_tflite` and checked against it on every conversion.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from ._registry import register_model, with_weights

#: Side of the square input, RGB float 0..1, NCHW.
SELFIE_INPUT = 256

#: The network, op by op; tensor 0 is the input, every op writes the next tensor, the last is the output
#: (a person probability map, 1 x 256 x 256). Entries:
#: ("conv", x, in, out, kernel, stride, TF 'SAME' padding, groups, y) and ("deconv", x, in, out, kernel,
#: stride, y) (a transposed convolution with TF 'SAME' cropping), each with a bias;
#: ("pool", x, k, y) (average over k x k, stride k); ("add" | "mul", a, b, y) (broadcasting);
#: ("relu" | "hswish" | "sigmoid", x, y); ("resize", x, height, width, y) (bilinear, half-pixel centres).
PROGRAM: tuple[tuple[Any, ...], ...] = (
    ("conv", 0, 3, 16, 3, 2, True, 1, 1),
    ("hswish", 1, 2),
    ("conv", 2, 16, 16, 1, 1, True, 1, 3),
    ("relu", 3, 4),
    ("conv", 4, 16, 16, 3, 2, True, 16, 5),
    ("relu", 5, 6),
    ("pool", 6, 64, 7),
    ("conv", 7, 16, 8, 1, 1, False, 1, 8),
    ("relu", 8, 9),
    ("conv", 9, 8, 16, 1, 1, False, 1, 10),
    ("sigmoid", 10, 11),
    ("mul", 6, 11, 12),
    ("conv", 12, 16, 16, 1, 1, True, 1, 13),
    ("conv", 13, 16, 72, 1, 1, True, 1, 14),
    ("relu", 14, 15),
    ("conv", 15, 72, 72, 3, 2, True, 72, 16),
    ("relu", 16, 17),
    ("conv", 17, 72, 24, 1, 1, True, 1, 18),
    ("conv", 18, 24, 88, 1, 1, True, 1, 19),
    ("relu", 19, 20),
    ("conv", 20, 88, 88, 3, 1, True, 88, 21),
    ("relu", 21, 22),
    ("conv", 22, 88, 24, 1, 1, True, 1, 23),
    ("add", 23, 18, 24),
    ("conv", 24, 24, 96, 1, 1, True, 1, 25),
    ("hswish", 25, 26),
    ("conv", 26, 96, 96, 5, 2, True, 96, 27),
    ("hswish", 27, 28),
    ("pool", 28, 16, 29),
    ("conv", 29, 96, 24, 1, 1, False, 1, 30),
    ("relu", 30, 31),
    ("conv", 31, 24, 96, 1, 1, False, 1, 32),
    ("sigmoid", 32, 33),
    ("mul", 28, 33, 34),
    ("conv", 34, 96, 32, 1, 1, True, 1, 35),
    ("conv", 35, 32, 128, 1, 1, True, 1, 36),
    ("hswish", 36, 37),
    ("conv", 37, 128, 128, 5, 1, True, 128, 38),
    ("hswish", 38, 39),
    ("pool", 39, 16, 40),
    ("conv", 40, 128, 32, 1, 1, False, 1, 41),
    ("relu", 41, 42),
    ("conv", 42, 32, 128, 1, 1, False, 1, 43),
    ("sigmoid", 43, 44),
    ("mul", 39, 44, 45),
    ("conv", 45, 128, 32, 1, 1, True, 1, 46),
    ("add", 46, 35, 47),
    ("conv", 47, 32, 128, 1, 1, True, 1, 48),
    ("hswish", 48, 49),
    ("conv", 49, 128, 128, 5, 1, True, 128, 50),
    ("hswish", 50, 51),
    ("pool", 51, 16, 52),
    ("conv", 52, 128, 32, 1, 1, False, 1, 53),
    ("relu", 53, 54),
    ("conv", 54, 32, 128, 1, 1, False, 1, 55),
    ("sigmoid", 55, 56),
    ("mul", 51, 56, 57),
    ("conv", 57, 128, 32, 1, 1, True, 1, 58),
    ("add", 58, 47, 59),
    ("conv", 59, 32, 96, 1, 1, True, 1, 60),
    ("hswish", 60, 61),
    ("conv", 61, 96, 96, 5, 1, True, 96, 62),
    ("hswish", 62, 63),
    ("pool", 63, 16, 64),
    ("conv", 64, 96, 24, 1, 1, False, 1, 65),
    ("relu", 65, 66),
    ("conv", 66, 24, 96, 1, 1, False, 1, 67),
    ("sigmoid", 67, 68),
    ("mul", 63, 68, 69),
    ("conv", 69, 96, 32, 1, 1, True, 1, 70),
    ("add", 70, 59, 71),
    ("conv", 71, 32, 96, 1, 1, True, 1, 72),
    ("hswish", 72, 73),
    ("conv", 73, 96, 96, 5, 1, True, 96, 74),
    ("hswish", 74, 75),
    ("pool", 75, 16, 76),
    ("conv", 76, 96, 24, 1, 1, False, 1, 77),
    ("relu", 77, 78),
    ("conv", 78, 24, 96, 1, 1, False, 1, 79),
    ("sigmoid", 79, 80),
    ("mul", 75, 80, 81),
    ("conv", 81, 96, 32, 1, 1, True, 1, 82),
    ("add", 82, 71, 83),
    ("pool", 83, 16, 84),
    ("conv", 83, 32, 128, 1, 1, False, 1, 85),
    ("conv", 84, 32, 128, 1, 1, False, 1, 86),
    ("relu", 85, 87),
    ("sigmoid", 86, 88),
    ("mul", 87, 88, 89),
    ("resize", 89, 32, 32, 90),
    ("conv", 90, 128, 24, 1, 1, False, 1, 91),
    ("add", 24, 91, 92),
    ("pool", 92, 32, 93),
    ("conv", 93, 24, 24, 1, 1, False, 1, 94),
    ("relu", 94, 95),
    ("conv", 95, 24, 24, 1, 1, False, 1, 96),
    ("sigmoid", 96, 97),
    ("mul", 24, 97, 98),
    ("add", 98, 91, 99),
    ("conv", 99, 24, 24, 1, 1, False, 1, 100),
    ("relu", 100, 101),
    ("conv", 101, 24, 24, 3, 1, True, 24, 102),
    ("relu", 102, 103),
    ("add", 101, 103, 104),
    ("resize", 104, 64, 64, 105),
    ("conv", 105, 24, 16, 1, 1, False, 1, 106),
    ("add", 13, 106, 107),
    ("pool", 107, 64, 108),
    ("conv", 108, 16, 16, 1, 1, False, 1, 109),
    ("relu", 109, 110),
    ("conv", 110, 16, 16, 1, 1, False, 1, 111),
    ("sigmoid", 111, 112),
    ("mul", 13, 112, 113),
    ("add", 113, 106, 114),
    ("conv", 114, 16, 16, 1, 1, False, 1, 115),
    ("relu", 115, 116),
    ("conv", 116, 16, 16, 3, 1, True, 16, 117),
    ("relu", 117, 118),
    ("add", 116, 118, 119),
    ("resize", 119, 128, 128, 120),
    ("conv", 120, 16, 16, 1, 1, False, 1, 121),
    ("add", 2, 121, 122),
    ("pool", 122, 128, 123),
    ("conv", 123, 16, 16, 1, 1, False, 1, 124),
    ("relu", 124, 125),
    ("conv", 125, 16, 16, 1, 1, False, 1, 126),
    ("sigmoid", 126, 127),
    ("mul", 2, 127, 128),
    ("add", 128, 121, 129),
    ("conv", 129, 16, 16, 1, 1, False, 1, 130),
    ("relu", 130, 131),
    ("conv", 131, 16, 16, 3, 1, True, 16, 132),
    ("relu", 132, 133),
    ("add", 131, 133, 134),
    ("deconv", 134, 16, 1, 2, 2, 135),
    ("sigmoid", 135, 136),
)


def _same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """TensorFlow's 'SAME' padding (the extra pixel, when odd, after)."""
    h, w = x.shape[2:]
    ph = max((-(-h // stride) - 1) * stride + kernel - h, 0)
    pw = max((-(-w // stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)) if ph or pw else x


class SelfieSegmentation(nn.Module):
    """``forward(x)``: x Tensor[N, 3, 256, 256] RGB 0..1 -> Tensor[N, 1, 256, 256], the person probability."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for entry in PROGRAM:
            if entry[0] == "conv":
                _, _, cin, cout, k, stride, _, groups, _ = entry
                layers.append(nn.Conv2d(cin, cout, k, stride, groups=groups))
            elif entry[0] == "deconv":
                _, _, cin, cout, k, stride, _ = entry
                layers.append(nn.ConvTranspose2d(cin, cout, k, stride))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, SELFIE_INPUT, SELFIE_INPUT):
            raise InputError(f"selfie segmentation input must be Tensor[N, 3, 256, 256], got {tuple(x.shape)}")
        tensors = [x]
        layer = iter(self.layers)
        for entry in PROGRAM:
            tensors.append(self._step(entry, tensors, layer))
        return tensors[-1]

    @staticmethod
    def _step(entry: tuple[Any, ...], t: list[Tensor], layer: Any) -> Tensor:
        op = entry[0]
        if op == "conv":
            conv = next(layer)
            x = t[entry[1]]
            return conv(_same_pad(x, entry[4], entry[5]) if entry[6] else x)
        if op == "deconv":
            deconv, x, k, s = next(layer), t[entry[1]], entry[4], entry[5]
            y, start = deconv(x), max(k - s, 0) // 2
            return y[:, :, start : start + x.shape[2] * s, start : start + x.shape[3] * s]
        if op == "pool":
            return F.avg_pool2d(t[entry[1]], entry[2], entry[2])
        if op in ("add", "mul"):
            a, b = t[entry[1]], t[entry[2]]
            return a + b if op == "add" else a * b
        if op == "resize":
            return F.interpolate(t[entry[1]], size=(entry[2], entry[3]), mode="bilinear", align_corners=False)
        x = t[entry[1]]
        if op == "relu":
            return F.relu(x)
        return F.hardswish(x) if op == "hswish" else torch.sigmoid(x)


@register_model("selfie_segmentation")
def selfie_segmentation(*, weights: str | None = "default") -> SelfieSegmentation:
    """MediaPipe's selfie segmentation with the weights converted from its tflite file and shipped in
    models/ (``weights=None``: the same network, randomly initialised, for tests)."""
    return with_weights(SelfieSegmentation(), "selfie_segmentation", weights)
