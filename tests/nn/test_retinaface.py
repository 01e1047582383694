from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from anonymizer.errors import InputError, WeightsError
from anonymizer.nn._registry import build_model, list_models
from anonymizer.nn.detectors import FaceDetector
from anonymizer.nn.retinaface import RetinaHead, SSHLite, retinaface, retinaface_loss
from anonymizer.ops.anchors import (
    POSITIVE,
    anchors_to_boxes,
    encode_boxes,
    encode_landmarks,
    make_anchors,
    match_anchors,
)
from anonymizer.ops.boxes import box_iou


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Small CPU models run far faster on one thread than on cores shared with other work.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> FaceDetector:
    torch.manual_seed(0)
    return retinaface().eval()


N_ANCHORS_128x160 = 2 * (16 * 20 + 8 * 10 + 4 * 5)


# model ----------------------------------------------------------------------------------------------


def test_forward_shapes_no_nan(model: FaceDetector) -> None:
    x = torch.rand(2, 3, 128, 160) * 255
    with torch.inference_mode():
        out = model(x)
    assert set(out) == {"logits", "boxes", "landmarks", "anchors"}
    assert out["logits"].shape == (2, N_ANCHORS_128x160)
    assert out["boxes"].shape == (2, N_ANCHORS_128x160, 4)
    assert out["landmarks"].shape == (2, N_ANCHORS_128x160, 10)
    assert torch.equal(out["anchors"], make_anchors([(16, 20), (8, 10), (4, 5)]))
    for v in out.values():
        assert torch.isfinite(v).all()
    # the face prior: an untrained head calls almost nothing a face
    assert torch.sigmoid(out["logits"]).mean() < 0.05


def test_batch_items_are_independent_in_eval(model: FaceDetector) -> None:
    x = torch.rand(2, 3, 64, 64) * 255
    with torch.inference_mode():
        both, one = model(x), model(x[1:])
    torch.testing.assert_close(both["logits"][1:], one["logits"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(both["boxes"][1:], one["boxes"], atol=1e-4, rtol=1e-4)


def test_decode_threshold_one_gives_empty_results(model: FaceDetector) -> None:
    x = torch.rand(2, 3, 128, 160) * 255
    with torch.inference_mode():
        decoded = model.head.decode(model(x), threshold=1.0)  # type: ignore[operator]
        detected = model.detect(x, threshold=1.0)
    for results in (decoded, detected):
        assert len(results) == 2
        for boxes, scores, lms in results:
            assert boxes.shape == (0, 4) and scores.shape == (0,) and lms.shape == (0, 5, 2)


def test_decode_places_boxes_and_landmarks_on_their_anchors() -> None:
    head = RetinaHead(24)
    anchors = make_anchors([(4, 4), (2, 2), (1, 1)])
    a = anchors.shape[0]
    logits = torch.full((1, a), -10.0)
    logits[0, 5] = 10.0
    outputs = {
        "logits": logits,
        "boxes": torch.zeros(1, a, 4),
        "landmarks": torch.zeros(1, a, 10),
        "anchors": anchors,
    }
    ((boxes, scores, lms),) = head.decode(outputs, threshold=0.5)
    torch.testing.assert_close(boxes, anchors_to_boxes(anchors[5:6]))
    torch.testing.assert_close(scores, torch.sigmoid(torch.tensor([10.0])))
    torch.testing.assert_close(lms, anchors[5:6, None, :2].expand(1, 5, 2))
    with pytest.raises(InputError, match="lack anchors"):
        head.decode({k: v for k, v in outputs.items() if k != "anchors"}, threshold=0.5)
    with pytest.raises(InputError, match=r"landmarks must be Tensor\[1, 42, 10\]"):
        head.decode({**outputs, "landmarks": torch.zeros(1, a, 5, 2)}, threshold=0.5)


def test_anchors_are_cached_per_size_and_not_state() -> None:
    head = RetinaHead(24)
    levels = [torch.zeros(1, 24, 64 // s, 64 // s) for s in (4, 8, 16, 32)]
    with torch.inference_mode():
        first = head(levels)["anchors"]
    assert head(levels)["anchors"] is first
    other = [torch.zeros(1, 24, 96 // s, 64 // s) for s in (4, 8, 16, 32)]
    assert head(other)["anchors"].shape == (2 * (12 * 8 + 6 * 4 + 3 * 2), 4)
    assert not any("anchor" in k for k in head.state_dict())
    # anchors first built under inference_mode must still serve a training step
    out = head(levels)
    loss = retinaface_loss(out, [{"boxes": torch.tensor([[10.0, 10.0, 40.0, 44.0]])}])
    loss["total"].backward()


def test_head_bad_input() -> None:
    with pytest.raises(InputError, match="reads pyramid levels"):
        RetinaHead(24)([torch.zeros(1, 24, 8, 8)] * 3)
    with pytest.raises(InputError, match="one level index, stride and anchor size list per level"):
        RetinaHead(24, strides=(8, 16))
    with pytest.raises(InputError, match="multiple of 4"):
        SSHLite(10)


def test_builder_registered_and_weights_refused() -> None:
    assert "retinaface" in list_models()
    model = build_model("retinaface", weights=None)
    assert isinstance(model, FaceDetector) and isinstance(model.head, RetinaHead)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())
    for name in ("default", "retinaface-mobilenet"):
        with pytest.raises(WeightsError, match="no pretrained RetinaFace weights are declared yet"):
            retinaface(weights=name)


# loss -----------------------------------------------------------------------------------------------


def _perfect_outputs(anchors: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Outputs that predict ``targets`` exactly: +-20 logits, the encoded deltas on positives."""
    logits, boxes, lms = [], [], []
    for t in targets:
        matched, labels = match_anchors(t["boxes"], anchors)
        pos = labels == POSITIVE
        lg = torch.full((anchors.shape[0],), -20.0)
        lg[pos] = 20.0
        b = torch.zeros(anchors.shape[0], 4)
        m = torch.zeros(anchors.shape[0], 10)
        if pos.any():
            b[pos] = encode_boxes(t["boxes"][matched[pos]], anchors[pos])
            m[pos] = encode_landmarks(t["landmarks"][matched[pos]], anchors[pos])
        logits.append(lg)
        boxes.append(b)
        lms.append(m)
    return {
        "logits": torch.stack(logits),
        "boxes": torch.stack(boxes),
        "landmarks": torch.stack(lms),
        "anchors": anchors,
    }


def _targets() -> list[dict[str, torch.Tensor]]:
    face = torch.tensor([[40.0, 30.0, 80.0, 80.0]])
    points = torch.tensor([[[52.0, 48], [68, 48], [60, 58], [54, 68], [66, 68]]])
    return [
        {"boxes": face, "landmarks": points},
        {"boxes": torch.zeros(0, 4), "landmarks": torch.zeros(0, 5, 2)},
    ]


def test_loss_is_zero_for_perfect_outputs() -> None:
    anchors = make_anchors([(16, 16), (8, 8), (4, 4)])
    losses = retinaface_loss(_perfect_outputs(anchors, _targets()), _targets())
    assert set(losses) == {"classification", "boxes", "landmarks", "total"}
    for v in losses.values():
        assert v.shape == () and v.item() < 1e-6


def test_loss_hard_negative_mining_counts() -> None:
    anchors = make_anchors([(16, 16), (8, 8), (4, 4)])
    targets = _targets()
    outputs = _perfect_outputs(anchors, targets)
    n_pos = int((match_anchors(targets[0]["boxes"], anchors)[1] == POSITIVE).sum())
    assert n_pos > 1
    # every negative at logit 0 costs log(2); image 0 keeps 3 * n_pos of them, the faceless image 3 * 1
    outputs["logits"] = torch.where(outputs["logits"] > 0, outputs["logits"], torch.zeros(()))
    losses = retinaface_loss(outputs, targets, neg_pos_ratio=3)
    expected = (3 * n_pos + 3) * math.log(2) / n_pos
    assert losses["classification"].item() == pytest.approx(expected, rel=1e-4)
    # the mined negatives are the hardest: one loud negative is always among them
    outputs["logits"][1, 0] = 5.0
    loud = retinaface_loss(outputs, targets, neg_pos_ratio=1)["classification"].item()
    softplus5 = math.log1p(math.exp(5.0))  # BCE of logit 5 against label 0
    assert loud == pytest.approx((n_pos * math.log(2) + softplus5) / n_pos, rel=1e-4)


def test_loss_landmarks_only_where_valid_and_weights() -> None:
    anchors = make_anchors([(16, 16), (8, 8), (4, 4)])
    targets = _targets()
    outputs = _perfect_outputs(anchors, targets)
    outputs["landmarks"] = outputs["landmarks"] + 1.0  # wrong by 1 everywhere
    assert retinaface_loss(outputs, targets)["landmarks"].item() == pytest.approx(10 * 0.5)
    invalid = [{**targets[0], "landmarks_valid": torch.tensor([False])}, targets[1]]
    assert retinaface_loss(outputs, invalid)["landmarks"].item() == 0.0
    no_points = [{"boxes": t["boxes"]} for t in targets]
    assert retinaface_loss(outputs, no_points)["landmarks"].item() == 0.0
    outputs["boxes"] = outputs["boxes"] + 1.0
    losses = retinaface_loss(outputs, targets, box_weight=2.0, landmark_weight=0.5)
    assert losses["boxes"].item() == pytest.approx(4 * 0.5)
    expected = losses["classification"] + 2.0 * losses["boxes"] + 0.5 * losses["landmarks"]
    assert losses["total"].item() == pytest.approx(expected.item())


def test_loss_zero_size_faces_match_nothing() -> None:
    anchors = make_anchors([(16, 16), (8, 8), (4, 4)])
    targets = [{"boxes": torch.tensor([[30.0, 30.0, 30.0, 60.0]]), "landmarks": torch.zeros(1, 5, 2)}]
    outputs = _perfect_outputs(anchors, [{"boxes": torch.zeros(0, 4)}])
    outputs["boxes"] = outputs["boxes"] + 1.0
    losses = retinaface_loss(outputs, targets)
    assert losses["boxes"].item() == 0.0 and losses["landmarks"].item() == 0.0
    assert losses["total"].item() < 1e-6


def test_loss_bad_targets() -> None:
    anchors = make_anchors([(16, 16), (8, 8), (4, 4)])
    outputs = _perfect_outputs(anchors, _targets())
    face = _targets()[0]
    with pytest.raises(InputError, match="one target per image: got 1 targets for a batch of 2"):
        retinaface_loss(outputs, [face])
    with pytest.raises(InputError, match="target 1 has no 'boxes'"):
        retinaface_loss(outputs, [face, {}])
    with pytest.raises(InputError, match=r"target 1: boxes must be Tensor\[N, 4\]"):
        retinaface_loss(outputs, [face, {"boxes": torch.zeros(4)}])
    with pytest.raises(InputError, match=r"target 0: landmarks must be Tensor\[1, 5, 2\]"):
        retinaface_loss(outputs, [{**face, "landmarks": torch.zeros(1, 10)}, face])
    with pytest.raises(InputError, match=r"target 1: boxes must have x2 >= x1"):
        retinaface_loss(outputs, [face, {"boxes": torch.tensor([[50.0, 10, 40, 20]])}])
    with pytest.raises(InputError, match="landmarks_valid must be a bool"):
        retinaface_loss(outputs, [{**face, "landmarks_valid": torch.tensor([1])}, face])


# training -------------------------------------------------------------------------------------------


def _synthetic_face(size: int = 128) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Noise background with a bright ellipse 'face' (dark eyes, nose, mouth corners) and its labels."""
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, size, size, generator=g) * 80
    cx, cy, rx, ry = 62.0, 66.0, 20.0, 26.0
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
    img[:, inside] = torch.tensor([230.0, 190.0, 160.0])[:, None]
    points = torch.tensor([[54.0, 58], [70, 58], [62, 68], [56, 78], [68, 78]])
    for x, y in points.long().tolist():
        img[:, y - 2 : y + 2, x - 2 : x + 2] = 20.0
    target = {"boxes": torch.tensor([[cx - rx, cy - ry, cx + rx, cy + ry]]), "landmarks": points[None]}
    return img[None], target


@torch.no_grad()
def _recalibrate_batch_norm(model: nn.Module, x: torch.Tensor) -> None:
    """Set batch-norm running statistics to those of ``x`` (a few dozen fast steps leave them stale)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass gives exactly this batch's statistics
    model.train()
    model(x)
    model.eval()


def test_tiny_overfit_then_detect() -> None:
    torch.manual_seed(0)
    model = retinaface()
    x, target = _synthetic_face()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(40):
        loss = retinaface_loss(model(x), [target])["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.1 * losses[0], losses

    _recalibrate_batch_norm(model, x)
    with torch.inference_mode():
        ((boxes, scores, lms),) = model.detect(x, threshold=0.5)
    assert boxes.shape[0] >= 1
    assert box_iou(boxes[:1], target["boxes"]).item() > 0.5
    assert (lms[0] - target["landmarks"][0]).abs().max().item() < 8.0
