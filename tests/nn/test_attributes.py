"""FaceAttributes: the shipped head reads sex and rough age from real faces' IdentityNet descriptors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anonymizer.api import get_finder
from anonymizer.media.image import load_image
from anonymizer.nn import build_model, face_attributes, list_models
from anonymizer.nn.attributes import AGE_BANDS, AGE_MIDS, FaceAttributes
from anonymizer.pipeline.donor_painter import DonorPainter

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def painter() -> DonorPainter:
    return DonorPainter()


def _largest(rgb: np.ndarray):  # noqa: ANN202 (a Face)
    return max(get_finder().find(rgb), key=lambda f: f.width)


def test_registered_with_declared_weights() -> None:
    assert "face_attributes" in list_models()
    model = build_model("face_attributes")
    assert isinstance(model, FaceAttributes) and not model.training
    assert len(AGE_BANDS) == len(AGE_MIDS) and list(AGE_BANDS) == sorted(AGE_BANDS)
    with pytest.raises(ValueError, match="expected Tensor"):
        model(torch.zeros(2, 64))


def test_real_faces_read_as_their_sex_and_age(painter: DonorPainter) -> None:
    """Public-domain sample photos: an astronaut (a woman of about 40), an admiral (a woman of about 80),
    and the Solvay conference's men, most of them past 40."""
    looks = {}
    for name in ("astronaut.png", "grace_hopper.jpg"):
        rgb = load_image(SAMPLES / name).rgb
        looks[name] = painter.looks(painter.describe(rgb, _largest(rgb)))
    assert looks["astronaut.png"][0] > 0.5 and 25 < looks["astronaut.png"][1] < 60
    assert looks["grace_hopper.jpg"][1] > 50
    rgb = load_image(SAMPLES / "group_solvay_1927_closeup.jpg").rgb
    men = [painter.looks(painter.describe(rgb, f)) for f in get_finder().find(rgb) if f.height >= 40]
    assert len(men) >= 5
    assert np.mean([f < 0.5 for f, _ in men]) >= 0.8 and np.median([a for _, a in men]) > 35


def test_predict_is_a_probability_and_an_age_in_range() -> None:
    model = face_attributes(weights=None)
    female, age = model.predict(torch.randn(4, 128))
    assert female.shape == age.shape == (4,)
    assert ((female >= 0) & (female <= 1)).all() and ((age >= min(AGE_MIDS)) & (age <= max(AGE_MIDS))).all()
