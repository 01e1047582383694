"""Training the surrogate generator: faces are aligned onto the crop template, and a tiny run is seeded,
resumable and exports weights the builder loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from anonymizer.nn.surrogate import SURROGATE_SIZE, crop_template
from anonymizer.train.faces import is_held_out, prepare_faces
from anonymizer.train.surrogate import aligned_faces, main


@pytest.fixture(scope="module")
def few_faces(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    src = data_dir / "faces-utk"
    names = [n for n in sorted(p.name for p in src.iterdir() if p.suffix == ".jpg") if not is_held_out(n)][:8]
    dst = tmp_path_factory.mktemp("faces")
    for n in names:
        shutil.copy2(src / n, dst / n)
    fs = prepare_faces(dst, with_dlib=False, progress=False)
    cache = dst.parent / "faces.npz"
    np.savez(cache, names=fs.names, landmarks=fs.landmarks)
    return dst, cache


def test_faces_are_aligned_onto_the_template(few_faces) -> None:
    root, cache = few_faces
    crops, lms = aligned_faces(root, held_out=False, cache=cache)
    assert crops.shape[1:] == (SURROGATE_SIZE, SURROGATE_SIZE, 3) and crops.dtype == np.uint8 and len(crops) >= 6
    assert np.abs(lms - crop_template()).max() < 12  # a similarity fit: close to the template, not equal


@pytest.mark.slow
def test_surrogate_training_resumes_and_exports(few_faces, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file

    from anonymizer.nn.surrogate import SurrogateGenerator

    root, cache = few_faces
    common = ["--data", str(root), "--faces-cache", str(cache), "--steps", "2", "--batch", "2", "--save-every", "1",
              "--seed", "0", "--out", str(tmp_path / "run"), "--export", str(tmp_path / "g.safetensors"), "--device", "cpu"]
    main([*common, "--stop-after", "1"])
    assert (tmp_path / "run" / "last.pt").is_file() and not (tmp_path / "g.safetensors").exists()
    main(common)
    out = capsys.readouterr().out
    assert "resumed from" in out and "step 2: identity distance" in out
    gen = SurrogateGenerator()
    gen.load_state_dict(load_file(str(tmp_path / "g.safetensors")))
    assert all(torch.isfinite(p).all() for p in gen.parameters())
