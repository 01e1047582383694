"""PlateRefiner: a second look at each detected licence plate, to fit its box (issue 37).

The plate detector reads a plate's box off one cell of its stride-4 maps: a tenth of its boxes are a third
too narrow or cover half the plate, which is why boxes were grown 1.6x before covering (and why close-ups
of one car had 3-4% of their other pixels covered). The refiner sees a window around each detected box
(:mod:`anonymizer.ops.plate_windows`: four times the box, 128x64 px) and returns the plate's box in it,
with a score that the window's centre holds a plate. Trained by ``python -m anonymizer.train.plate_refiner``
(models/plate_refiner.md).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import InputError
from ..ops.plate_windows import WINDOW_SIZE
from ._registry import register_model, with_weights


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PlateRefiner(nn.Module):
    """forward(x: Tensor[B, 3, 64, 128] RGB float 0..255) -> Tensor[B, 5]: the plate's box (x1, y1, x2, y2)
    as fractions of the window (0..1 inside it), and the logit that the window's centre holds a plate."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        c = width
        self.features = nn.Sequential(
            _block(3, c, 2),  # 32 x 64
            _block(c, c, 1),
            _block(c, 2 * c, 2),  # 16 x 32
            _block(2 * c, 2 * c, 1),
            _block(2 * c, 3 * c, 2),  # 8 x 16
            _block(3 * c, 3 * c, 1),
            _block(3 * c, 4 * c, 2),  # 4 x 8
        )
        cells = (WINDOW_SIZE[1] // 16) * (WINDOW_SIZE[0] // 16)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * c * cells, 256), nn.ReLU(inplace=True), nn.Linear(256, 5))

    def forward(self, x: Tensor) -> Tensor:
        want = (3, WINDOW_SIZE[1], WINDOW_SIZE[0])
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise InputError(f"expected Tensor[B, {want[0]}, {want[1]}, {want[2]}], got {tuple(x.shape)}")
        out: Tensor = self.head(self.features((x - 127.5) / 64.0))
        # the box starts about the window's middle (where the detected box sits) plus what was learned
        prior = out.new_tensor([3 / 8, 3 / 8, 5 / 8, 5 / 8, 0.0])
        return out + prior


@register_model("plate_refiner")
def plate_refiner(*, weights: str | None = "default") -> PlateRefiner:
    """PlateRefiner with the weights shipped in models/ (``weights=None``: random, for tests and training)."""
    return with_weights(PlateRefiner(), "plate_refiner", weights)


__all__ = ["PlateRefiner", "plate_refiner"]
