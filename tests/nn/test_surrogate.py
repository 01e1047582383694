"""The surrogate generator: output equals the input outside the face mask, the code changes the face, the
same code gives the same output; heatmaps and masks sit on the landmarks; the critic sees two scales."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anonymizer.nn import build_model
from anonymizer.nn.surrogate import CODE_DIM, SURROGATE_SIZE, crop_template, face_mask, landmark_heatmaps


def _inputs(batch: int = 2):
    torch.manual_seed(0)
    lm = torch.tensor(crop_template())[None].repeat(batch, 1, 1)
    return torch.rand(batch, 3, SURROGATE_SIZE, SURROGATE_SIZE), lm


def test_heatmaps_peak_on_landmarks_and_mask_covers_the_face() -> None:
    _, lm = _inputs(1)
    hm = landmark_heatmaps(lm)
    assert hm.shape == (1, 5, SURROGATE_SIZE, SURROGATE_SIZE)
    for k, (x, y) in enumerate(lm[0].tolist()):
        peak = int(hm[0, k].argmax())
        assert abs(peak % SURROGATE_SIZE - x) <= 1 and abs(peak // SURROGATE_SIZE - y) <= 1
    m = face_mask(lm)[0, 0]
    for x, y in lm[0].tolist():
        assert m[int(y), int(x)] == 1  # eyes, nose and mouth are replaced
    assert m[2, 2] == 0 and m[2, -3] == 0 and 0.2 < float(m.mean()) < 0.6


def test_generator_keeps_the_outside_and_follows_the_code() -> None:
    gen = build_model("surrogate", weights=None)
    with torch.no_grad():  # a random FiLM start is the identity: give the code some say
        for mod in gen.modules():
            if type(mod).__name__ == "FiLM":
                mod.proj.weight.normal_(0, 0.2)
    img, lm = _inputs()
    mask, hm = face_mask(lm), landmark_heatmaps(lm)
    z = torch.randn(2, CODE_DIM)
    with torch.no_grad():
        a, b, c = gen(img, mask, hm, z), gen(img, mask, hm, z), gen(img, mask, hm, torch.randn(2, CODE_DIM))
    assert a.shape == img.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    outside = (mask == 0).expand_as(img)
    assert torch.equal(a[outside], img[outside])
    assert torch.equal(a, b)
    inside = (mask == 1).expand_as(img)
    assert float((a - c)[inside].abs().mean()) > 0.01


def test_discriminator_two_scales() -> None:
    disc = build_model("surrogate_discriminator")
    img, lm = _inputs()
    logits, feats = disc(img, landmark_heatmaps(lm))
    s = SURROGATE_SIZE // 8  # three stride-2 convolutions, then the half-resolution critic
    assert [tuple(t.shape) for t in logits] == [(2, 1, s, s), (2, 1, s // 2, s // 2)] and len(feats) == 6


def test_palette_is_saved_with_the_weights_and_old_weights_load_without_one_and_other_sizes_load() -> None:
    from anonymizer.nn.surrogate import PALETTE_SIZE, SurrogateGenerator

    gen = SurrogateGenerator()
    assert gen.palette.shape == (PALETTE_SIZE, CODE_DIM) and not gen.has_palette
    gen.palette.normal_()
    sd = gen.state_dict()
    again = SurrogateGenerator()
    again.load_state_dict(sd)
    assert again.has_palette and torch.equal(again.palette, gen.palette)
    assert again.row_weights is None  # no row weights: rows are handed out equally often
    gen.palette_weight.uniform_(0.5, 2.0)
    again.load_state_dict(gen.state_dict())
    np.testing.assert_array_equal(again.row_weights, gen.palette_weight.double().numpy())  # type: ignore[arg-type]
    old = {
        k: v for k, v in sd.items() if k not in ("palette", "palette_weight", "palette_net")
    }  # saved before the palette existed
    fresh = SurrogateGenerator()
    fresh.load_state_dict(old)
    assert (
        not fresh.has_palette
        and fresh.row_weights is None
        and torch.equal(fresh.code_mlp[0].weight, gen.code_mlp[0].weight)
    )
    more = dict(
        {k: v for k, v in sd.items() if k != "palette_net"},  # surrogate_palette --weigh --extra, before ensembles
        palette=torch.randn(100, CODE_DIM),
        palette_weight=torch.rand(100),
    )
    big = SurrogateGenerator()
    big.load_state_dict(more)
    assert torch.equal(big.palette, more["palette"]) and big.row_weights is not None and len(big.row_weights) == 100
    assert torch.equal(big.state_dict()["palette"], more["palette"])  # saved again with its 100 rows
    big.set_palette(torch.ones(5, CODE_DIM))  # new rows, handed out equally often
    assert big.palette.shape == (5, CODE_DIM) and big.row_weights is None
    for codes, weights in (
        (torch.ones(5, CODE_DIM + 1), None),
        (torch.ones(0, CODE_DIM), None),
        (torch.ones(5, CODE_DIM), torch.ones(4)),
    ):
        try:
            big.set_palette(codes, weights)
        except ValueError as e:
            assert "expected a palette" in str(e)
        else:
            raise AssertionError("a palette of the wrong shape must be refused")
    assert big.palette.shape == (5, CODE_DIM)  # unchanged by the refused ones
    for wrong in (
        dict(sd, palette=torch.ones(3, CODE_DIM + 1)),  # codes of another length
        dict(sd, palette=torch.ones(3, CODE_DIM)),
    ):  # 3 rows, but 64 row weights
        try:
            SurrogateGenerator().load_state_dict(wrong)
        except RuntimeError as e:
            assert "palette" in str(e)
        else:
            raise AssertionError("a palette of the wrong shape must not load")


def test_an_ensemble_paints_each_row_with_its_own_network_and_loads_from_its_weights() -> None:
    """Weights with ``alt.K.`` keys load as an ensemble: net 0 paints as the plain generator, net 1 as the
    other one, per batch or per sample; rows may only name networks the weights hold."""
    import pytest

    from anonymizer.nn.surrogate import SurrogateGenerator

    torch.manual_seed(1)
    own, other = SurrogateGenerator(), SurrogateGenerator()
    with torch.no_grad():
        for g in (own, other):
            for mod in g.modules():
                if type(mod).__name__ == "FiLM":
                    mod.proj.weight.normal_(0, 0.2)
    sd = {**own.state_dict(), **{f"alt.0.{k}": v for k, v in other.state_dict().items() if not k.startswith("palette")}}
    sd["palette"] = torch.randn(3, CODE_DIM)
    sd["palette_weight"] = torch.ones(3)
    sd["palette_net"] = torch.tensor([0, 1, 1])
    ens = SurrogateGenerator()
    ens.load_state_dict(sd)
    assert len(ens.alt) == 1 and ens.row_nets.tolist() == [0, 1, 1]
    img, lm = _inputs(3)
    mask, hm = face_mask(lm), landmark_heatmaps(lm)
    z = torch.randn(3, CODE_DIM)
    with torch.no_grad():
        mine, theirs = own(img, mask, hm, z), other(img, mask, hm, z)
        assert torch.allclose(ens(img, mask, hm, z), mine, atol=1e-5) and torch.allclose(
            ens(img, mask, hm, z, 1), theirs, atol=1e-5
        )
        assert not torch.allclose(mine, theirs, atol=1e-2)
        mixed = ens(img, mask, hm, z, torch.tensor([1, 0, 1]))
        assert torch.allclose(mixed[[0, 2]], theirs[[0, 2]], atol=1e-5) and torch.allclose(mixed[1], mine[1], atol=1e-5)
        with pytest.raises(ValueError, match="net must be 0 .. 1"):
            ens(img, mask, hm, z, 2)
    again = SurrogateGenerator()
    again.load_state_dict(ens.state_dict())  # saved and loaded again: still an ensemble
    assert len(again.alt) == 1 and again.row_nets.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="name networks up to 2 but the weights hold 1"):
        SurrogateGenerator().load_state_dict(dict(sd, palette_net=torch.tensor([0, 1, 2])))
    with pytest.raises(ValueError, match="name networks 0 .. 1"):
        ens.set_palette(torch.ones(2, CODE_DIM), nets=torch.tensor([0, 2]))
    plain = SurrogateGenerator()
    plain.load_state_dict(own.state_dict())
    assert len(plain.alt) == 0 and not plain.row_nets.any()


@pytest.mark.parametrize("name", ["surrogate_discriminator", "sr_discriminator"])
def test_training_only_critics_refuse_weights_with_a_weights_error(name: str) -> None:
    from anonymizer.errors import WeightsError

    with pytest.raises(WeightsError, match="weights"):
        build_model(name, weights="default")
    assert build_model(name, weights=None) is not None
