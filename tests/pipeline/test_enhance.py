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
    [
        ({"model": "nope"}, "unknown super-resolution model"),
        ({"scale": 2}, "only scale 4"),
        ({"tile": 2}, "tile must be"),
    ],
)
def test_bad_arguments(random_model, kw, message) -> None:
    with pytest.raises(InputError, match=message):
        enh.enhance_array(np.zeros((8, 8, 3), np.uint8), **kw)
    with pytest.raises(InputError, match="RGB uint8"):
        enh.enhance_array(np.zeros((8, 8), np.uint8))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def face_crop(samples) -> np.ndarray:
    """A 200x200 crop around the face the real detector finds in grace_hopper.jpg (not training data)."""
    from anonymizer import api

    img = api._load(samples / "grace_hopper.jpg").rgb
    faces = api.detect_faces(img).faces
    assert faces, "the detector must find Grace Hopper's face"
    x1, y1, x2, y2 = max(faces, key=lambda f: f.score).box
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 1.6
    from PIL import Image

    crop = Image.fromarray(img).crop((int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2)))
    return np.asarray(crop.resize((200, 200), Image.Resampling.LANCZOS))


@pytest.mark.parametrize(("model", "gain"), [("srresnet", 1.5), ("srgan", 1.0)])
def test_shipped_models_beat_bicubic_on_a_face(face_crop: np.ndarray, model: str, gain: float) -> None:
    from PIL import Image

    from anonymizer import enhance
    from anonymizer.train.sr import lowres

    lr = lowres(face_crop)
    assert lr.shape == (50, 50, 3)
    bicubic = np.asarray(Image.fromarray(lr).resize((200, 200), Image.Resampling.BICUBIC))
    sr = enhance(lr, model=model)
    assert sr.shape == (200, 200, 3) and sr.dtype == np.uint8
    assert _psnr(sr, face_crop) > _psnr(bicubic, face_crop) + gain
