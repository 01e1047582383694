"""Masks, replacement methods and box helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anonymizer.errors import InputError
from anonymizer.ops.boxes import box_iou, clip_boxes, nms, scale_boxes
from anonymizer.ops.centers import decode_center_maps
from anonymizer.ops.masks import region_alpha, region_window, union_mask
from anonymizer.ops.replace import blur, composite, pixelate, replace_patch, solid


def test_ellipse_mask_matches_slow_reference() -> None:
    box = (10.0, 20.0, 50.0, 80.0)
    size = (120, 100)
    win = region_window(box, size, scale=1.5)
    alpha = region_alpha(box, win, scale=1.5)
    ref = np.zeros(size, np.float32)
    cx, cy, rx, ry = 30.0, 50.0, 30.0, 45.0
    for i in range(size[0]):
        for j in range(size[1]):
            ref[i, j] = ((j + 0.5 - cx) / rx) ** 2 + ((i + 0.5 - cy) / ry) ** 2 <= 1
    full = np.zeros(size, np.float32)
    full[win[1] : win[3], win[0] : win[2]] = alpha
    np.testing.assert_array_equal(full, ref)


def test_feather_only_grows_outward() -> None:
    box = np.array([[20, 20, 60, 60]], np.float32)
    hard = union_mask(box, (100, 100), scale=1.2)
    soft = union_mask(box, (100, 100), scale=1.2, feather=0.3)
    assert (soft[hard == 1] == 1).all()  # feathering never uncovers the shape
    assert ((soft > 0) & (soft < 1)).sum() > 0
    assert (soft > 0).sum() > (hard > 0).sum()


def test_box_shape_and_union() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], np.float32)
    m = union_mask(boxes, (20, 20), shape="box")
    assert m[0:15, 0:15].sum() == 10 * 10 * 2 - 25
    assert union_mask(np.zeros((0, 4)), (4, 4)).sum() == 0


@pytest.mark.parametrize(
    ("kw", "match"), [({"shape": "star"}, "mask shape"), ({"scale": 0}, "mask scale"), ({"feather": -1}, "feather")]
)
def test_mask_bad_options(kw, match) -> None:
    with pytest.raises(InputError, match=match):
        region_alpha((0, 0, 4, 4), (0, 0, 4, 4), **kw)


def test_methods_remove_the_face_detail() -> None:
    rng = np.random.default_rng(0)
    patch = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert (solid(patch, color=(1, 2, 3)) == np.array([1, 2, 3], np.uint8)).all()
    pix = pixelate(patch, face_width=64, blocks=8)
    assert len(np.unique(pix.reshape(-1, 3), axis=0)) <= 8 * 8
    assert (pix[:8, :8] == pix[0, 0]).all()
    bl = blur(patch, face_width=64, noise=0)
    assert bl.std() < patch.std() / 5
    assert not np.array_equal(blur(patch, face_width=64), bl)  # noise is added


def test_replace_bad_input() -> None:
    with pytest.raises(InputError, match="unknown method"):
        replace_patch(np.zeros((4, 4, 3), np.uint8), "swirl", face_width=4)
    with pytest.raises(InputError, match="RGB uint8"):
        solid(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="shapes differ"):
        composite(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8), np.zeros((4, 4), np.float32))


def test_composite_exact_where_alpha_is_one() -> None:
    img = np.full((2, 2, 3), 200, np.uint8)
    rep = np.zeros((2, 2, 3), np.uint8)
    out = composite(img, rep, np.array([[1, 0], [0.5, 0]], np.float32))
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [200] * 3 and out[1, 0].tolist() == [100] * 3


def test_box_helpers() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.3).tolist() == [0, 2]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.3).shape == (0,)
    assert scale_boxes(boxes[:1], 2.0).tolist() == [[-5, -5, 15, 15]]
    assert clip_boxes(torch.tensor([[-5.0, -5, 15, 15]]), (10, 12)).tolist() == [[0, 0, 12, 10]]
    assert box_iou(boxes[:1], boxes[:1]).item() == pytest.approx(1.0)
    with pytest.raises(InputError, match=r"Tensor\[N, 4\]"):
        nms(torch.zeros(3), scores, 0.3)
    with pytest.raises(InputError, match="scores"):
        nms(boxes, scores[:2], 0.3)


def test_decode_center_maps_geometry() -> None:
    b, h, w = 2, 8, 8
    heat = torch.zeros(b, 1, h, w)
    heat[1, 0, 3, 5] = 0.9
    scale = torch.zeros(b, 2, h, w)
    scale[1, :, 3, 5] = torch.log(torch.tensor([5.0, 2.5]))  # 20 px tall, 10 px wide at stride 4
    offset = torch.zeros(b, 2, h, w)
    lms = torch.zeros(b, 10, h, w)
    lms[1, 0, 3, 5], lms[1, 1, 3, 5] = 0.25, 0.5  # first point: y at 1/4 of the height, x at the middle
    out = decode_center_maps(heat, scale, offset, lms, threshold=0.5, stride=4)
    assert [o[0].shape[0] for o in out] == [0, 1]
    assert out[0][2].shape == (0, 5, 2)
    box = out[1][0][0].tolist()
    assert box == pytest.approx([(5.5 * 4) - 5, (3.5 * 4) - 10, (5.5 * 4) + 5, (3.5 * 4) + 10])
    assert out[1][2][0, 0].tolist() == pytest.approx([box[0] + 5, box[1] + 5])
    with pytest.raises(InputError, match="scale"):
        decode_center_maps(heat, scale[:, :1], offset, lms, threshold=0.5)
