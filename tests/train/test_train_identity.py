"""Training IdentityNet: a smoke run on a few faces is seeded, resumable and exports safetensors; the
surrogate check's bank and fine-tuning."""

from __future__ import annotations

from pathlib import Path

import pytest

from anonymizer.audit.recognizers import dlib_available

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.slow
@pytest.mark.skipif(not dlib_available(), reason="dlib (the [audit] extra) is not installed")
def test_identity_training_smoke_and_resume(data_dir, tmp_path, capsys) -> None:
    from safetensors.torch import load_file

    from anonymizer.nn.identity import IdentityNet
    from anonymizer.train.identity import main

    common = [
        "--data",
        str(data_dir / "faces-utk"),
        "--out",
        str(tmp_path / "run"),
        "--limit",
        "60",
        "--batch",
        "16",
        "--seed",
        "1",
    ]
    main([*common, "--epochs", "2", "--stop-after", "1", "--export", str(tmp_path / "w.safetensors")])
    assert (tmp_path / "run" / "last.pt").is_file() and not (tmp_path / "w.safetensors").exists()
    main([*common, "--epochs", "2", "--export", str(tmp_path / "w.safetensors")])
    out = capsys.readouterr().out
    assert "resumed from" in out and "epoch 2: held-out" in out
    IdentityNet().load_state_dict(load_file(str(tmp_path / "w.safetensors")))


def test_bank_split_keeps_a_seeded_twentieth_out() -> None:
    import numpy as np

    from anonymizer.train.identity import bank_split

    out, train = bank_split(400, 0)
    assert len(out) == 20 and len(train) == 380
    assert sorted(np.concatenate([out, train]).tolist()) == list(range(400))
    again, _ = bank_split(400, 0)
    other, _ = bank_split(400, 1)
    assert np.array_equal(out, again) and not np.array_equal(out, other)


@pytest.mark.slow
@pytest.mark.skipif(not dlib_available(), reason="dlib (the [audit] extra) is not installed")
def test_surrogate_bank_and_fine_tuning(data_dir, tmp_path, capsys) -> None:
    """--paint-bank paints one surrogate per training face with dlib's descriptor; --bank --init fine-tunes
    from given weights on faces and their surrogates, reports the kept-out distances, and resumes."""
    import numpy as np
    from safetensors.torch import load_file

    from anonymizer.nn.identity import IdentityNet
    from anonymizer.train.identity import main

    data = ["--data", str(data_dir / "faces-utk"), "--limit", "50", "--seed", "1"]
    bank = tmp_path / "bank.npz"
    main([*data, "--paint-bank", str(bank)])
    with np.load(bank) as f:
        index, images, descriptors = f["index"], f["images"], f["descriptors"]
    assert len(index) == len(images) == len(descriptors) > 40 and np.isfinite(descriptors).all()
    assert images.dtype == np.uint8 and not (tmp_path / "bank.partial.npz").exists()
    common = [
        *data,
        "--out",
        str(tmp_path / "run"),
        "--batch",
        "16",
        "--bank",
        str(bank),
        "--init",
        str(MODELS / "identity_net.safetensors"),
    ]
    main([*common, "--epochs", "2", "--stop-after", "1"])
    out = capsys.readouterr().out
    assert "before: 2 surrogates kept out" in out and "epoch 1: 2 surrogates kept out" in out
    main([*common, "--epochs", "2", "--export", str(tmp_path / "w.safetensors")])
    out = capsys.readouterr().out
    assert "resumed from" in out and "epoch 2: 2 surrogates kept out" in out and "before:" not in out
    IdentityNet().load_state_dict(load_file(str(tmp_path / "w.safetensors")))


@pytest.mark.slow
@pytest.mark.skipif(not dlib_available(), reason="dlib (the [audit] extra) is not installed")
def test_paint_bank_keeps_partials_in_a_new_folder_and_resumes(data_dir, tmp_path) -> None:
    """The partial file is written into a folder that does not exist yet, and a bank resumed from a
    partial one equals the bank painted in one go (same faces, same candidates, same pixels)."""
    import numpy as np

    from anonymizer.train.faces import prepare_faces
    from anonymizer.train.identity import paint_bank, usable

    fs = prepare_faces(data_dir / "faces-utk", limit=20)
    idx = np.flatnonzero(usable(fs) & ~fs.held_out)[:3]
    whole = tmp_path / "new" / "folder" / "bank.npz"
    paint_bank(fs, idx, whole, seed=2, keep_every=1)
    assert whole.is_file() and not whole.with_suffix(".partial.npz").exists()
    with np.load(whole) as f:
        ref = {k: f[k] for k in ("index", "images", "descriptors")}
    resumed = tmp_path / "again" / "bank.npz"
    resumed.parent.mkdir()
    np.savez(resumed.with_suffix(".partial.npz"), images=ref["images"][:2], descriptors=ref["descriptors"][:2])
    paint_bank(fs, idx, resumed, seed=2)
    with np.load(resumed) as f:
        assert all(np.array_equal(f[k], ref[k]) for k in ref)
    assert np.array_equal(ref["index"], idx) and not resumed.with_suffix(".partial.npz").exists()
