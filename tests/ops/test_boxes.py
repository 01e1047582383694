"""Box helpers: dropping detections nested inside a larger, better face."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anonymizer.errors import InputError
from anonymizer.ops.boxes import box_iou, drop_contained, grow_box, inside_share, iou_matrix, nms, union_box


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


def test_numpy_iou_matrix_matches_the_tensor_one_and_handles_empty_sets() -> None:
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], np.float32)
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 5, 10, 15]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy(), atol=1e-6)
    assert iou_matrix(a, b[:0]).shape == (2, 0) and iou_matrix(a[:0], b).shape == (0, 3)


def test_union_and_growth_of_numpy_boxes() -> None:
    a, b = np.array([0, 0, 10, 10], np.float32), np.array([5, -5, 20, 8], np.float32)
    np.testing.assert_array_equal(union_box(a, b), [0, -5, 20, 10])
    np.testing.assert_array_equal(union_box(None, b), b)
    np.testing.assert_allclose(grow_box(a, 2.0), [-5, -5, 15, 15])
    assert grow_box(a, 1.5).dtype == np.float32


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("n", [0, 1, 2, 40, 600])
def test_nms_and_iou_match_torchvision_exactly(n: int, threshold: float) -> None:
    torchvision = pytest.importorskip("torchvision")  # the slow reference: importing it costs a second
    g = torch.Generator().manual_seed(n)
    xy = torch.rand(n, 2, generator=g) * 300
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 60 + 1], 1)
    scores = torch.rand(n, generator=g).round(decimals=1)  # many ties: the order among them must match too
    if n > 10:
        boxes[:3] = boxes[3:6]  # duplicates
        boxes[7, 2:] = boxes[7, :2]  # an empty box
    assert torch.equal(nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold))
    torch.testing.assert_close(
        box_iou(boxes, boxes), torchvision.ops.box_iou(boxes, boxes), rtol=0, atol=0, equal_nan=True
    )


def test_detecting_faces_does_not_import_torchvision() -> None:
    import subprocess
    import sys

    code = "import sys; from anonymizer.api import get_finder; get_finder(); print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"  # a second and a half saved on every start


def test_inside_share_is_the_part_of_each_box_inside_the_other() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    b = np.array([[5, 0, 100, 100], [0, 0, 10, 10]], np.float32)
    share = inside_share(a, b)
    np.testing.assert_allclose(share, [[0.5, 1.0], [1.0, 0.0]])
    assert inside_share(b, a)[0, 1] == pytest.approx(100 / (95 * 100))  # not symmetric
    assert inside_share(a, np.zeros((0, 4), np.float32)).shape == (2, 0)
