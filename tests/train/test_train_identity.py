"""Training IdentityNet: a smoke run on a few faces is seeded, resumable and exports safetensors."""

from __future__ import annotations

import pytest

from anonymizer.audit.recognizers import dlib_available


@pytest.mark.slow
@pytest.mark.skipif(not dlib_available(), reason="dlib (the [audit] extra) is not installed")
def test_identity_training_smoke_and_resume(data_dir, tmp_path, capsys) -> None:
    from safetensors.torch import load_file

    from anonymizer.nn.identity import IdentityNet
    from anonymizer.train.identity import main

    common = ["--data", str(data_dir / "faces-utk"), "--out", str(tmp_path / "run"), "--limit", "60", "--batch", "16", "--seed", "1"]
    main([*common, "--epochs", "2", "--stop-after", "1", "--export", str(tmp_path / "w.safetensors")])
    assert (tmp_path / "run" / "last.pt").is_file() and not (tmp_path / "w.safetensors").exists()
    main([*common, "--epochs", "2", "--export", str(tmp_path / "w.safetensors")])
    out = capsys.readouterr().out
    assert "resumed from" in out and "epoch 2: held-out" in out
    IdentityNet().load_state_dict(load_file(str(tmp_path / "w.safetensors")))
