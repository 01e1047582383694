"""IdentityNet: the forward contract with random weights; with the shipped weights, distances that
separate people and track dlib's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from anonymizer.nn import build_model
from anonymizer.nn.identity import EMBEDDING_DIM, IDENTITY_CROP, IdentityNet
from anonymizer.weights import get_weights, is_ready


def test_forward_contract_random_weights() -> None:
    torch.manual_seed(0)
    model = build_model("identity_net", weights=None)
    assert isinstance(model, IdentityNet) and not model.training
    for b in (0, 1, 2):
        with torch.inference_mode():
            y = model(torch.rand(b, 3, IDENTITY_CROP, IDENTITY_CROP))
        assert y.shape == (b, EMBEDDING_DIM) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="expected Tensor"):
        model(torch.rand(1, 1, IDENTITY_CROP, IDENTITY_CROP))


def test_gradients_flow_to_the_input() -> None:
    """Generators train against it: the embedding must be differentiable in the pixels."""
    model = build_model("identity_net", weights=None)
    x = torch.rand(2, 3, IDENTITY_CROP, IDENTITY_CROP, requires_grad=True)
    model(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.skipif(not is_ready(get_weights("identity_net")), reason="IdentityNet weights not in models/")
def test_shipped_weights_separate_people_and_see_through_nothing(samples) -> None:
    from anonymizer.api import anonymize_image, detect_faces
    from anonymizer.audit.recognizers import IdentityNetRecognizer, distance

    rec = IdentityNetRecognizer()
    imgs = {n: np.asarray(Image.open(samples / n).convert("RGB")) for n in ("astronaut.png", "grace_hopper.jpg")}
    faces = {n: detect_faces(imgs[n]).faces[0] for n in imgs}
    a = rec.embed(imgs["astronaut.png"], faces["astronaut.png"])
    b = rec.embed(imgs["grace_hopper.jpg"], faces["grace_hopper.jpg"])
    assert distance(a, b) > rec.threshold
    flipped = np.ascontiguousarray(imgs["astronaut.png"][:, ::-1])
    f = detect_faces(flipped).faces[0]
    assert distance(a, rec.embed(flipped, f)) < rec.threshold  # the same person, mirrored
    solid = anonymize_image(imgs["astronaut.png"], method="solid").image
    assert distance(a, rec.embed(solid, faces["astronaut.png"])) > rec.threshold
