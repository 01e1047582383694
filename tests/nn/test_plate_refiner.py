"""PlateRefiner: the second look that fits a detected plate's box."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from anonymizer.errors import InputError
from anonymizer.nn import PlateRefiner, build_model, list_models
from anonymizer.ops.boxes import iou_matrix
from anonymizer.pipeline.plates import cover_plates, refine_boxes
from anonymizer.types import Plate
from anonymizer.weights import get_weights, is_ready

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from videoclips import car_photo  # noqa: E402


def test_registered_with_declared_weights_and_checked_input() -> None:
    assert "plate_refiner" in list_models()
    spec = get_weights("plate_refiner")
    assert spec.model == "plate_refiner" and "CC BY 4.0" in spec.licence and is_ready(spec)
    model = build_model("plate_refiner", weights=None)
    assert isinstance(model, PlateRefiner)
    with torch.inference_mode():
        out = model(torch.rand(2, 3, 64, 128) * 255)
        assert out.shape == (2, 5) and bool(torch.isfinite(out).all())
        assert model(torch.zeros(0, 3, 64, 128)).shape == (0, 5)
    with pytest.raises(InputError, match="64, 128"):
        model(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("width", [30, 60, 120])
def test_a_box_over_part_of_a_drawn_plate_grows_to_the_plate(width: int) -> None:
    img, box = car_photo(width)
    plate = np.array([box], np.float32)
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    bad = np.array(
        [
            [x1, y1, x1 + w / 2, y2],  # the left half
            [x1 + w / 3, y1 + h / 4, x2 + w / 4, y2 - h / 4],  # shifted right, too low
            [x1 - w / 6, y1 - h / 4, x2 + w / 6, y2 + h / 4],  # too large
        ],
        np.float32,
    )
    fitted, prob = refine_boxes(build_model("plate_refiner"), img, bad)
    before, after = iou_matrix(bad, plate)[:, 0], iou_matrix(fitted, plate)[:, 0]
    assert (after > before).all(), (before, after)
    for k, (wrong, right) in enumerate(zip(bad, fitted, strict=True)):
        # covered as the pipeline covers it (grown PLATE_MASK_SCALE): the whole plate, little around it
        changed = cover_plates(img, [Plate(box=tuple(map(float, right)), score=1.0)])[2]
        assert changed[y1:y2, x1:x2].mean() >= 0.95 and changed.sum() < 5 * w * h, (right, box)
        if k < 2:  # the partial boxes as given leave part of the plate showing
            was = cover_plates(img, [Plate(box=tuple(map(float, wrong)), score=1.0)])[2]
            assert was[y1:y2, x1:x2].mean() < 0.95
    assert (prob >= 0.5).all()


def test_boxes_on_no_plate_score_low() -> None:
    img, _ = car_photo(60)
    sky = np.array([[20, 20, 80, 40], [500, 60, 560, 80]], np.float32)  # the drawn scene's empty sky
    _, prob = refine_boxes(build_model("plate_refiner"), img, sky)
    assert (prob < 0.5).all(), prob
    none = refine_boxes(build_model("plate_refiner"), img, np.zeros((0, 4), np.float32))
    assert none[0].shape == (0, 4) and none[1].shape == (0,)
