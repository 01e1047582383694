"""Box helpers: dropping detections nested inside a larger, better face."""

from __future__ import annotations

import pytest
import torch

from anonymizer.errors import InputError
from anonymizer.ops.boxes import drop_contained


def test_eye_sized_boxes_inside_a_large_face_are_dropped() -> None:
    boxes = torch.tensor([[78.0, 183, 502, 733], [135, 259, 331, 487], [286, 273, 499, 513], [251, 410, 431, 620]])
    scores = torch.tensor([0.98, 0.72, 0.67, 0.30])  # Tom_Cruise_avp_2014_4.jpg before the fix
    assert drop_contained(boxes, scores).tolist() == [0]


def test_neighbours_and_better_inner_faces_are_kept() -> None:
    boxes = torch.tensor(
        [
            [0.0, 0, 100, 100],  # a large face
            [90, 10, 140, 60],  # overlaps it by a fifth only: a neighbour
            [200, 0, 300, 100],  # a large box with a low score ...
            [220, 20, 260, 60],  # ... around a small face that scores higher: both kept
            [400, 0, 460, 60],  # inside a box of similar size (not twice its area)
            [405, 5, 455, 55],
        ]
    )
    scores = torch.tensor([0.9, 0.5, 0.3, 0.8, 0.9, 0.5])
    assert drop_contained(boxes, scores).tolist() == [0, 1, 2, 3, 4, 5]


def test_thresholds_are_honoured() -> None:
    boxes = torch.tensor([[0.0, 0, 100, 100], [-15, 0, 35, 50]])  # 70% of the small box inside
    scores = torch.tensor([0.9, 0.5])
    assert drop_contained(boxes, scores).tolist() == [0, 1]
    assert drop_contained(boxes, scores, min_inside=0.7).tolist() == [0]
    assert drop_contained(boxes, scores, min_inside=0.7, min_area_ratio=5.0).tolist() == [0, 1]


def test_empty_and_single() -> None:
    assert drop_contained(torch.zeros(0, 4), torch.zeros(0)).shape == (0,)
    assert drop_contained(torch.tensor([[0.0, 0, 0, 0]]), torch.tensor([0.5])).tolist() == [0]  # zero area


@pytest.mark.parametrize(
    ("boxes", "scores"), [(torch.zeros(2, 3), torch.zeros(2)), (torch.zeros(2, 4), torch.zeros(3))]
)
def test_bad_input(boxes: torch.Tensor, scores: torch.Tensor) -> None:
    with pytest.raises(InputError, match="must be Tensor"):
        drop_contained(boxes, scores)
