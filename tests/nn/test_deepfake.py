"""The deepfake classifier: one logit per image for batches of 0-2, finite, and bad shapes refused."""

from __future__ import annotations

import pytest
import torch

from anonymizer.nn import build_model
from anonymizer.nn.deepfake import DEEPFAKE_SIZE


@pytest.mark.parametrize("batch", [0, 1, 2])
def test_forward_shapes(batch: int) -> None:
    torch.manual_seed(0)
    model = build_model("deepfake", weights=None).eval()
    with torch.no_grad():
        y = model(torch.rand(batch, 3, DEEPFAKE_SIZE, DEEPFAKE_SIZE))
    assert y.shape == (batch,) and torch.isfinite(y).all()


def test_bad_input() -> None:
    model = build_model("deepfake", weights=None)
    with pytest.raises(ValueError, match=r"Tensor\[B, 3, H, W\]"):
        model(torch.rand(3, 64, 64))
