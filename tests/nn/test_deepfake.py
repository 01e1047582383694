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


def test_the_mobilenet_variant_starts_from_the_face_detectors_backbone() -> None:
    from anonymizer.nn.deepfake import DeepfakeMobileNet
    from anonymizer.nn.detectors import centerface

    model = DeepfakeMobileNet(size=160).start_from_centerface().eval()
    detector = centerface().backbone.state_dict()
    assert all(torch.equal(v, detector[k]) for k, v in model.backbone.state_dict().items())
    with torch.no_grad():
        crops = torch.rand(2, 3, DEEPFAKE_SIZE, DEEPFAKE_SIZE)
        y = model(crops)  # resized to 160 inside
        same = model(torch.nn.functional.interpolate(crops, size=(160, 160), mode="bilinear", align_corners=False))
    assert y.shape == (2,) and torch.isfinite(y).all() and torch.allclose(y, same)
    with pytest.raises(ValueError, match="multiple of 32"):
        DeepfakeMobileNet(size=100)
    with pytest.raises(ValueError, match=r"Tensor\[B, 3, H, W\]"):
        model(torch.rand(3, 64, 64))


def test_the_shipped_classifier_is_the_mobilenet_at_192_with_its_own_weights() -> None:
    """The declared weights load into the 192-px network and are not CenterFace's backbone any more."""
    from anonymizer.nn.deepfake import DEEPFAKE_MOBILENET_SIZE
    from anonymizer.nn.detectors import centerface

    model = build_model("deepfake_mobilenet")
    assert model.size == DEEPFAKE_MOBILENET_SIZE == 192 and not model.training
    detector = centerface().backbone.state_dict()
    assert not all(torch.equal(v, detector[k]) for k, v in model.backbone.state_dict().items())
    random = build_model("deepfake_mobilenet", weights=None)
    assert not torch.equal(random.head[1].weight, model.head[1].weight)
