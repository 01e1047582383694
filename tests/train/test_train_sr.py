"""Training the super-resolution models: tiny runs are seeded, resumable (also after a time limit) and
export weights the builders load; the resumed run ends where an uninterrupted one does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anonymizer.train.faces import prepare_faces
from anonymizer.train.sr import lowres, main


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_lowres_is_pil_bicubic_quarter() -> None:
    hr = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    lr = lowres(hr)
    assert lr.shape == (50, 50, 3) and lr.dtype == np.uint8
    assert abs(float(lr.mean()) - float(hr.mean())) < 2


@pytest.mark.slow
def test_srresnet_resumes_to_the_same_weights(
    small_faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from anonymizer.nn.sr import SRResNet

    common = [
        "--model",
        "srresnet",
        "--data",
        str(small_faces),
        "--steps",
        "6",
        "--batch",
        "4",
        "--patch",
        "12",
        "--save-every",
        "3",
        "--seed",
        "3",
        "--device",
        "cpu",
    ]
    main([*common, "--out", str(tmp_path / "a"), "--stop-after", "3", "--export", str(tmp_path / "a.safetensors")])
    assert (tmp_path / "a" / "last.pt").is_file() and not (tmp_path / "a.safetensors").exists()
    main([*common, "--out", str(tmp_path / "a"), "--export", str(tmp_path / "a.safetensors")])
    out = capsys.readouterr().out
    assert "resumed from" in out and "step 6: held-out PSNR" in out and "training faces: 12; validation: 4" in out
    main([*common, "--out", str(tmp_path / "b"), "--export", str(tmp_path / "b.safetensors")])
    a, b = _weights(tmp_path / "a.safetensors"), _weights(tmp_path / "b.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    SRResNet().load_state_dict(a)


@pytest.mark.slow
def test_srgan_time_limit_then_resume(small_faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import save_file

    from anonymizer.nn.sr import SRResNet

    fs = prepare_faces(small_faces, with_dlib=False, progress=False)
    cache = tmp_path / "faces.npz"
    np.savez(cache, names=fs.names, landmarks=fs.landmarks)
    torch.manual_seed(0)
    init = SRResNet()
    save_file({k: v.contiguous() for k, v in init.state_dict().items()}, str(tmp_path / "init.safetensors"))
    common = [
        "--model",
        "srgan",
        "--data",
        str(small_faces),
        "--faces-cache",
        str(cache),
        "--init",
        str(tmp_path / "init.safetensors"),
        "--steps",
        "2",
        "--batch",
        "2",
        "--save-every",
        "10",
        "--seed",
        "0",
        "--out",
        str(tmp_path / "g"),
        "--export",
        str(tmp_path / "g.safetensors"),
        "--device",
        "cpu",
    ]
    main([*common, "--time-limit", "0"])  # stops after its first step, with a checkpoint
    out = capsys.readouterr().out
    assert "stopped at step 1 of 2" in out and not (tmp_path / "g.safetensors").exists()
    main(common)
    out = capsys.readouterr().out
    assert "resumed from" in out and "step 2: held-out PSNR" in out
    trained = _weights(tmp_path / "g.safetensors")
    assert any(not torch.equal(trained[k], v) for k, v in init.state_dict().items())
