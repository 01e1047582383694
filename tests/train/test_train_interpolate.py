"""Interpolating two sets of weights: the straight line between them, checked shapes and buffers, a real
generator that still loads, and clear errors that name the file or the tensor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from anonymizer.nn.surrogate import SurrogateGenerator
from anonymizer.train.interpolate import interpolate, main


def _pair() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(3, 4, generator=g), "count": torch.tensor([7], dtype=torch.int64), "only_a": torch.ones(2)}
    b = {"w": torch.randn(3, 4, generator=g), "count": torch.tensor([7], dtype=torch.int64), "only_b": torch.zeros(2)}
    return a, b


def test_ends_and_midpoint_of_the_line() -> None:
    a, b = _pair()
    at0, left_out = interpolate(a, b, 0.0)
    at1, _ = interpolate(a, b, 1.0)
    mid, _ = interpolate(a, b, 0.5)
    assert torch.equal(at0["w"], a["w"]) and torch.equal(at1["w"], b["w"])
    assert torch.allclose(mid["w"], (a["w"] + b["w"]) / 2, atol=1e-6)
    assert not torch.allclose(mid["w"], a["w"]) and not torch.allclose(mid["w"], b["w"])
    assert torch.equal(mid["count"], a["count"]) and mid["count"].dtype == torch.int64
    assert left_out == ["only_a", "only_b"] and set(mid) == {"w", "count"}


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_the_line_is_refused(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        interpolate(*_pair(), alpha)


def test_mismatched_tensors_are_named() -> None:
    a, b = _pair()
    with pytest.raises(ValueError, match="^w: A has"):
        interpolate(a, {**b, "w": torch.zeros(4, 3)}, 0.5)
    with pytest.raises(ValueError, match="count: non-float tensors differ"):
        interpolate(a, {**b, "count": torch.tensor([8])}, 0.5)
    with pytest.raises(ValueError, match="share no tensors"):
        interpolate({"x": torch.ones(1)}, {"y": torch.ones(1)}, 0.5)


def test_cli_mixes_two_generators_that_still_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    one, two = SurrogateGenerator(), SurrogateGenerator()
    save_file(one.state_dict(), str(tmp_path / "one.safetensors"))
    save_file(two.state_dict(), str(tmp_path / "two.safetensors"))
    main(
        [
            str(tmp_path / "one.safetensors"),
            str(tmp_path / "two.safetensors"),
            "--alpha",
            "0.25",
            "--out",
            str(tmp_path / "mix.safetensors"),
        ]
    )
    mixed = load_file(str(tmp_path / "mix.safetensors"))
    gen = SurrogateGenerator()
    gen.load_state_dict(mixed)  # strict: every tensor of the model is there
    key = next(k for k, v in one.state_dict().items() if v.is_floating_point() and v.abs().sum() > 0)
    want = one.state_dict()[key] * 0.75 + two.state_dict()[key] * 0.25
    assert torch.allclose(mixed[key], want, atol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))


def test_cli_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    save_file({"w": torch.ones(2)}, str(good))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    with pytest.raises(SystemExit, match="bad.safetensors: cannot read"):
        main([str(good), str(bad), "--alpha", "0.5", "--out", str(tmp_path / "o.safetensors")])
    with pytest.raises(SystemExit, match="missing.safetensors: cannot read"):
        main(
            [
                str(good),
                str(tmp_path / "missing.safetensors"),
                "--alpha",
                "0.5",
                "--out",
                str(tmp_path / "o.safetensors"),
            ]
        )
    with pytest.raises(SystemExit, match="overwrite an input"):
        main([str(good), str(good), "--alpha", "0.5", "--out", str(good)])
    assert good.read_bytes() and not (tmp_path / "o.safetensors").exists()
