"""The person Mask R-CNN with random heads: forward contracts in eval and train mode, the CenterFace
backbone start, the float16 export round trip, and the builder's argument checks."""

from __future__ import annotations

import pytest
import torch

from anonymizer.nn import build_model
from anonymizer.nn.masks import centerface_backbone_state, half_state, person_maskrcnn, set_test_size


def test_eval_forward_shapes() -> None:
    torch.manual_seed(0)
    model = person_maskrcnn(weights=None).eval()
    set_test_size(model, 128)
    with torch.no_grad():
        out = model([torch.rand(3, 120, 160), torch.rand(3, 96, 96)])
    assert len(out) == 2
    for o, (h, w) in zip(out, [(120, 160), (96, 96)], strict=True):
        n = len(o["scores"])
        assert o["boxes"].shape == (n, 4) and o["masks"].shape == (n, 1, h, w) and torch.isfinite(o["boxes"]).all()


def test_train_forward_gives_finite_losses() -> None:
    torch.manual_seed(0)
    model = person_maskrcnn(weights=None).train()
    masks = torch.zeros(1, 128, 96, dtype=torch.uint8)
    masks[0, 20:120, 30:70] = 1
    target = {"boxes": torch.tensor([[30.0, 20.0, 70.0, 120.0]]), "labels": torch.tensor([1]), "masks": masks}
    losses = model([torch.rand(3, 128, 96)], [target])
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())


def test_centerface_start_and_half_export() -> None:
    model = build_model("person_maskrcnn", weights=None, backbone_init="centerface")
    ref = centerface_backbone_state()
    got = model.backbone.state_dict()
    assert ref and all(torch.equal(got[k], v) for k, v in ref.items())
    half = half_state(model)
    assert half["backbone.body.features.0.conv.weight"].dtype == torch.float16
    again = person_maskrcnn(weights=None)
    again.load_state_dict({k: v.float() for k, v in half.items()})
    with pytest.raises(ValueError, match="backbone_init"):
        person_maskrcnn(weights=None, backbone_init="imagenet")
