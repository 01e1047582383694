from __future__ import annotations

import pytest
import torch

from anonymizer.errors import InputError
from anonymizer.ops.anchors import (
    IGNORE,
    NEGATIVE,
    POSITIVE,
    anchors_to_boxes,
    decode_boxes,
    decode_landmarks,
    encode_boxes,
    encode_landmarks,
    make_anchors,
    match_anchors,
)
from anonymizer.ops.boxes import box_iou


def _anchors_for(h: int, w: int) -> torch.Tensor:
    return make_anchors([(h // s, w // s) for s in (8, 16, 32)])


def _random_boxes(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    wh = torch.rand(n, 2, generator=g) * 150 + 2
    return torch.cat([xy, xy + wh], dim=1)


def _random_anchors(n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.rand(n, 2, generator=g) * 200, torch.rand(n, 2, generator=g) * 300 + 8], dim=1)


# make_anchors ---------------------------------------------------------------------------------------


def test_make_anchors_count_order_and_centres() -> None:
    anchors = _anchors_for(128, 160)  # levels of 16x20, 8x10 and 4x5 cells, 2 anchors per cell
    assert anchors.shape == (2 * (16 * 20 + 8 * 10 + 4 * 5), 4)
    assert anchors.dtype == torch.float32
    # level 0: cell (0, 0) with both sizes, then cell (0, 1), ...
    assert anchors[0].tolist() == [4.0, 4.0, 16.0, 16.0]
    assert anchors[1].tolist() == [4.0, 4.0, 32.0, 32.0]
    assert anchors[2].tolist() == [12.0, 4.0, 16.0, 16.0]
    assert anchors[2 * 20].tolist() == [4.0, 12.0, 16.0, 16.0]  # first cell of row 1
    level1 = 2 * 16 * 20
    assert anchors[level1].tolist() == [8.0, 8.0, 64.0, 64.0]
    assert anchors[level1 + 1].tolist() == [8.0, 8.0, 128.0, 128.0]
    assert anchors[-1].tolist() == [(4 + 0.5) * 32, (3 + 0.5) * 32, 512.0, 512.0]
    # every centre lies on its level's grid of (j + 0.5) * stride
    for sl, stride in ((slice(0, level1), 8), (slice(level1 + 160, None), 32)):
        frac = anchors[sl, :2] / stride - 0.5
        assert torch.equal(frac, frac.round())


def test_make_anchors_custom_levels_dtype_and_empty() -> None:
    a = make_anchors([(2, 3)], [4], [(10,)], dtype=torch.float64)
    assert a.shape == (6, 4) and a.dtype == torch.float64
    assert a[:, 0].tolist() == [2.0, 6.0, 10.0] * 2
    assert a[:, 1].tolist() == [2.0] * 3 + [6.0] * 3
    assert make_anchors([], [], []).shape == (0, 4)
    assert make_anchors([(0, 5)], [8], [(16,)]).shape == (0, 4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([(4, 4)], [8, 16], [(16,)]), "one feature size, stride and size list per level"),
        (([(4, 4)], [0], [(16,)]), "stride of level 0 must be > 0"),
        (([(4, 4)], [8], [()]), "anchor sizes of level 0"),
        (([(4, 4)], [8], [(16, -2)]), "anchor sizes of level 0"),
        (([(-1, 4)], [8], [(16,)]), "feature size of level 0"),
    ],
)
def test_make_anchors_bad_input(args: tuple, message: str) -> None:
    with pytest.raises(InputError, match=message):
        make_anchors(*args)


# box and landmark coding --------------------------------------------------------------------------------


def test_box_round_trip_and_known_values() -> None:
    boxes, anchors = _random_boxes(50), _random_anchors(50)
    deltas = encode_boxes(boxes, anchors)
    assert deltas.shape == (50, 4)
    torch.testing.assert_close(decode_boxes(deltas, anchors), boxes, atol=1e-4, rtol=0)
    # a box equal to its anchor has zero deltas; a twice-as-wide box moved right by one anchor width
    a = torch.tensor([[50.0, 40.0, 20.0, 10.0]])
    torch.testing.assert_close(encode_boxes(anchors_to_boxes(a), a), torch.zeros(1, 4))
    shifted = torch.tensor([[50.0, 35.0, 90.0, 45.0]])  # centre (70, 40), 40x10
    expected = torch.tensor([[20 / (0.1 * 20), 0.0, torch.log(torch.tensor(2.0)) / 0.2, 0.0]])
    torch.testing.assert_close(encode_boxes(shifted, a), expected)


def test_box_coding_batched_and_custom_variances() -> None:
    anchors = _random_anchors(7)
    boxes = torch.stack([_random_boxes(7, seed=2), _random_boxes(7, seed=3)])
    deltas = encode_boxes(boxes, anchors, (0.2, 0.5))
    assert deltas.shape == (2, 7, 4)
    torch.testing.assert_close(deltas[1], encode_boxes(boxes[1], anchors, (0.2, 0.5)))
    torch.testing.assert_close(decode_boxes(deltas, anchors, (0.2, 0.5)), boxes, atol=1e-4, rtol=0)


def test_decode_boxes_stays_finite_on_huge_deltas() -> None:
    anchors = _random_anchors(3)
    out = decode_boxes(torch.full((3, 4), 1e4), anchors)
    assert torch.isfinite(out).all()


def test_landmark_round_trip() -> None:
    g = torch.Generator().manual_seed(4)
    anchors = _random_anchors(20)
    lms = torch.rand(20, 5, 2, generator=g) * 300
    deltas = encode_landmarks(lms, anchors)
    assert deltas.shape == (20, 10)
    # layout: (x0, y0, x1, y1, ...), each relative to the anchor centre in units of v0 * anchor size
    torch.testing.assert_close(deltas[:, 2], (lms[:, 1, 0] - anchors[:, 0]) / (0.1 * anchors[:, 2]))
    torch.testing.assert_close(deltas[:, 3], (lms[:, 1, 1] - anchors[:, 1]) / (0.1 * anchors[:, 3]))
    back = decode_landmarks(deltas, anchors)
    assert back.shape == (20, 5, 2)
    torch.testing.assert_close(back, lms, atol=1e-4, rtol=0)
    batched = decode_landmarks(torch.stack([deltas, deltas]), anchors)
    assert batched.shape == (2, 20, 5, 2)


def test_coding_empty_in_empty_out() -> None:
    none = torch.zeros(0, 4)
    assert encode_boxes(none, none).shape == (0, 4)
    assert decode_boxes(none, none).shape == (0, 4)
    assert encode_landmarks(torch.zeros(0, 5, 2), none).shape == (0, 10)
    assert decode_landmarks(torch.zeros(0, 10), none).shape == (0, 5, 2)


def test_coding_bad_input() -> None:
    anchors = _random_anchors(3)
    with pytest.raises(InputError, match=r"boxes must be Tensor\[..., N, 4\], got shape \(3, 5\)"):
        encode_boxes(torch.zeros(3, 5), anchors)
    with pytest.raises(InputError, match="must pair up: got 2 boxes and 3 anchors"):
        encode_boxes(_random_boxes(2), anchors)
    with pytest.raises(InputError, match=r"anchors must be Tensor\[A, 4\]"):
        decode_boxes(torch.zeros(3, 4), torch.zeros(3, 3))
    with pytest.raises(InputError, match="positive width and height"):
        encode_boxes(torch.tensor([[10.0, 10, 10, 20], [0, 0, 5, 5], [0, 0, 5, 5]]), anchors)
    with pytest.raises(InputError, match="variances"):
        encode_boxes(_random_boxes(3), anchors, (0.1,))
    with pytest.raises(InputError, match=r"landmarks must be Tensor\[..., N, 5, 2\]"):
        encode_landmarks(torch.zeros(3, 4, 2), anchors)
    with pytest.raises(InputError, match="must pair up"):
        encode_landmarks(torch.zeros(2, 5, 2), anchors)
    with pytest.raises(InputError, match=r"landmark deltas must be Tensor\[..., N, 10\]"):
        decode_landmarks(torch.zeros(3, 5, 2), anchors)


# matching -------------------------------------------------------------------------------------------


def test_match_face_gets_its_best_anchor_and_far_anchors_are_negative() -> None:
    anchors = _anchors_for(128, 128)
    gt = torch.tensor([[40.0, 30.0, 80.0, 80.0]])
    matched, labels = match_anchors(gt, anchors)
    assert matched.shape == labels.shape == (anchors.shape[0],)
    assert matched.dtype == labels.dtype == torch.long
    iou = box_iou(gt, anchors_to_boxes(anchors))[0]
    best = int(iou.argmax())
    assert labels[best] == POSITIVE and matched[best] == 0
    assert torch.equal(labels == POSITIVE, iou >= 0.35)  # this face needs no forcing
    assert torch.equal(matched >= 0, labels == POSITIVE)
    far = iou == 0
    assert far.sum() > 100
    assert (labels[far] == NEGATIVE).all() and (matched[far] == -1).all()


def test_match_forces_the_best_anchor_of_a_small_face() -> None:
    anchors = _anchors_for(64, 64)
    # 9x9 face centred on the stride-8 cell (2, 2): IoU 81/256 ~ 0.32 with its 16 px anchor, below pos_iou
    gt = torch.tensor([[15.5, 15.5, 24.5, 24.5]])
    matched, labels = match_anchors(gt, anchors)
    best = int(box_iou(gt, anchors_to_boxes(anchors))[0].argmax())
    assert anchors[best].tolist() == [20.0, 20.0, 16.0, 16.0]
    assert torch.nonzero(labels == POSITIVE).flatten().tolist() == [best]
    assert matched[best] == 0
    # a 4x4 face overlaps every anchor by < min_forced_iou (0.2): not forced, unless asked for
    tiny = torch.tensor([[18.0, 18.0, 22.0, 22.0]])
    assert (match_anchors(tiny, anchors)[1] != POSITIVE).all()
    assert (match_anchors(tiny, anchors, min_forced_iou=0.0)[1] == POSITIVE).sum() == 1


def test_match_two_faces_sharing_a_best_anchor_later_one_wins() -> None:
    anchors = _anchors_for(64, 64)
    gt = torch.tensor([[15.5, 15.5, 24.5, 24.5], [15.5, 15.5, 24.5, 24.5]])
    matched, labels = match_anchors(gt, anchors)
    assert torch.nonzero(labels == POSITIVE).flatten().tolist() == [int(torch.nonzero(matched >= 0))]
    assert matched[matched >= 0].tolist() == [1]


def test_match_ignore_band() -> None:
    anchors = _anchors_for(128, 128)
    gt = torch.tensor([[10.0, 20.0, 60.0, 64.0], [70.0, 70.0, 120.0, 126.0]])
    matched, labels = match_anchors(gt, anchors, pos_iou=0.5, neg_iou=0.3)
    iou, best_gt = box_iou(gt, anchors_to_boxes(anchors)).max(dim=0)
    forced = set(box_iou(gt, anchors_to_boxes(anchors)).argmax(dim=1).tolist())
    for a in range(anchors.shape[0]):
        if a in forced:
            assert labels[a] == POSITIVE
        elif iou[a] >= 0.5:
            assert labels[a] == POSITIVE and matched[a] == best_gt[a]
        elif iou[a] >= 0.3:
            assert labels[a] == IGNORE and matched[a] == -1
        else:
            assert labels[a] == NEGATIVE and matched[a] == -1
    assert (labels == IGNORE).any() and (labels == POSITIVE).sum() > 2


def test_match_empty_gt_and_empty_anchors() -> None:
    anchors = _anchors_for(64, 64)
    matched, labels = match_anchors(torch.zeros(0, 4), anchors)
    assert matched.shape == labels.shape == (anchors.shape[0],)
    assert (labels == NEGATIVE).all() and (matched == -1).all()
    matched, labels = match_anchors(torch.tensor([[0.0, 0, 10, 10]]), torch.zeros(0, 4))
    assert matched.shape == labels.shape == (0,)


def test_match_bad_input() -> None:
    anchors = _anchors_for(64, 64)
    with pytest.raises(InputError, match=r"gt_boxes must be Tensor\[M, 4\].*got shape \(4,\)"):
        match_anchors(torch.zeros(4), anchors)
    with pytest.raises(InputError, match=r"anchors must be Tensor\[A, 4\]"):
        match_anchors(torch.zeros(1, 4), anchors[:, :2])
    with pytest.raises(InputError, match="neg_iou <= pos_iou"):
        match_anchors(torch.zeros(1, 4), anchors, pos_iou=0.3, neg_iou=0.5)
