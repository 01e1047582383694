"""Mask IoU and COCO-style AP on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from anonymizer.ops.metrics import average_precision, mask_iou


def _box_mask(x1: int, y1: int, x2: int, y2: int, size: int = 20) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[y1:y2, x1:x2] = True
    return m


def test_mask_iou_values() -> None:
    a = np.stack([_box_mask(0, 0, 10, 10), _box_mask(0, 0, 5, 10), np.zeros((20, 20), bool)])
    g = np.stack([_box_mask(0, 0, 10, 10), _box_mask(10, 10, 20, 20)])
    iou = mask_iou(a, g)
    np.testing.assert_allclose(iou, [[1, 0], [0.5, 0], [0, 0]])
    with pytest.raises(ValueError, match="one size"):
        mask_iou(a, np.zeros((1, 10, 10), bool))


def test_ap_perfect_and_empty() -> None:
    assert average_precision([(np.array([0.9, 0.8]), np.eye(2))], 0.5) == pytest.approx(1.0)
    assert average_precision([(np.zeros(0), np.zeros((0, 3)))], 0.5) == 0.0
    assert np.isnan(average_precision([(np.array([0.9]), np.zeros((1, 0)))], 0.5))


def test_ap_false_positive_ranked_first_halves_the_start() -> None:
    # two images, one object each: a false positive at 0.95, then both objects found at 0.9 and 0.8.
    # precision envelope: 2/3 up to recall 1 -> AP = 2/3
    imgs = [(np.array([0.95, 0.9]), np.array([[0.1], [0.8]])), (np.array([0.8]), np.array([[0.6]]))]
    assert average_precision(imgs, 0.5) == pytest.approx(2 / 3)
    # at IoU 0.75 only the first image's object is found (recall 1/2, precision 1/2 there) -> 51/101 * 1/2
    assert average_precision(imgs, 0.75) == pytest.approx(0.5 * 51 / 101)


def test_ap_duplicate_detection_is_a_false_positive() -> None:
    one = [(np.array([0.9, 0.8]), np.array([[0.9], [0.9]]))]
    assert average_precision(one, 0.5) == pytest.approx(1.0)  # the duplicate comes after full recall
    dup_first = [(np.array([0.9, 0.8, 0.7]), np.array([[0.9, 0.0], [0.9, 0.0], [0.0, 0.9]]))]
    # recall 1/2 at precision 1, then the duplicate, then recall 1 at precision 2/3
    assert average_precision(dup_first, 0.5) == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)


def test_roc_auc() -> None:
    from anonymizer.ops.metrics import roc_auc

    assert roc_auc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert roc_auc(np.array([0.1]), np.array([0.9])) == 0.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([0.5])) == 0.5  # ties count half
    assert roc_auc(np.array([0.9, 0.3]), np.array([0.5, 0.1])) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="at least one"):
        roc_auc(np.array([]), np.array([0.1]))
