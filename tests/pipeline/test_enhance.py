"""Super-resolution of whole images: tiles join without seams; bad input; the CLI writes PNGs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anonymizer.errors import InputError
from anonymizer.nn.sr import SRResNet
from anonymizer.pipeline import enhance as enh


@pytest.fixture()
def random_model(monkeypatch):
    torch.manual_seed(0)
    net = SRResNet().eval()
    with torch.no_grad():
        for p in net.tail.parameters():
            p.normal_(0, 0.05)  # a visible residual, so that seams would show
    monkeypatch.setattr(enh, "_model", lambda name: net)
    return net


def test_tiles_join_without_seams(random_model) -> None:
    rng = np.random.default_rng(0)
    rgb = (rng.random((70, 90, 3)) * 255).astype(np.uint8)
    whole = enh.enhance_array(rgb, tile=512)
    tiled = enh.enhance_array(rgb, tile=32, pad=24)
    assert whole.shape == (280, 360, 3) and whole.dtype == np.uint8
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"model": "nope"}, "unknown super-resolution model"), ({"scale": 2}, "only --scale 4"), ({"tile": 2}, "tile must be")],
)
def test_bad_arguments(random_model, kw, message) -> None:
    with pytest.raises(InputError, match=message):
        enh.enhance_array(np.zeros((8, 8, 3), np.uint8), **kw)
    with pytest.raises(InputError, match="RGB uint8"):
        enh.enhance_array(np.zeros((8, 8), np.uint8))
