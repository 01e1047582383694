"""Deepfake training data and a tiny run: swaps change only their mask, dev sets pair every real face with
one fake of each kind, and training is seeded and resumable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anonymizer.nn.surrogate import crop_template
from anonymizer.train.deepfake import dev_sets, face_swap


def _faces(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    crops = rng.integers(30, 220, (n, 128, 128, 3), dtype=np.uint8)
    lms = np.repeat(crop_template(128)[None], n, axis=0)
    return crops, lms


def test_face_swap_changes_only_the_face() -> None:
    crops, lms = _faces()
    out = face_swap(crops[0], lms[0], crops[1], np.random.default_rng(3))
    assert out.shape == crops[0].shape and out.dtype == np.uint8
    assert np.array_equal(out[:4, :4], crops[0][:4, :4])  # corners untouched
    y, x = crop_template(128)[2].astype(int)[::-1]
    assert np.abs(out[y - 3 : y + 3, x - 3 : x + 3].astype(int) - crops[0][y - 3 : y + 3, x - 3 : x + 3]).mean() > 5


def test_dev_sets_are_fixed() -> None:
    crops, lms = _faces()
    a, b = dev_sets(crops, lms), dev_sets(crops, lms)
    assert set(a) == {"real", "sbi", "swap"} and all(len(v) == 4 for v in a.values())
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_dev_sets_with_our_surrogates() -> None:
    crops, lms = _faces(3)
    a = dev_sets(crops, lms, surrogates=True)
    assert set(a) == {"real", "sbi", "swap", "surrogate"}
    assert np.array_equal(a["surrogate"], dev_sets(crops, lms, surrogates=True)["surrogate"])  # fixed seeds
    y, x = crop_template(128)[2].astype(int)[::-1]
    for fake, real in zip(a["surrogate"], crops, strict=True):
        assert np.array_equal(fake[:4, :4], real[:4, :4])  # outside the face: untouched
        assert np.abs(fake[y - 4 : y + 4, x - 4 : x + 4].astype(int) - real[y - 4 : y + 4, x - 4 : x + 4]).mean() > 5


def test_photo_surrogates_paint_the_photo_and_align_it(tmp_path: Path) -> None:
    """photo_surrogates paints a real photo's face through the pipeline and aligns the result onto the
    classifier's crop: the face changes, the photo's background in the crop does not, and the same rng
    gives the same fakes (another seed another surrogate)."""
    from PIL import Image

    from anonymizer.api import get_finder
    from anonymizer.pipeline.deepfake import align_for_deepfake
    from anonymizer.train.deepfake import photo_surrogates

    rgb = np.asarray(Image.open(Path(__file__).parents[2] / "samples" / "grace_hopper.jpg").convert("RGB"))
    Image.fromarray(rgb).save(tmp_path / "a.png")
    face = get_finder().find(rgb)[0]
    lm = np.array(face.landmarks, np.float32)[None]
    a = photo_surrogates(tmp_path, np.array(["a.png"]), lm, np.random.default_rng(0))
    b = photo_surrogates(tmp_path, np.array(["a.png"]), lm, np.random.default_rng(0))
    c = photo_surrogates(tmp_path, np.array(["a.png"]), lm, np.random.default_rng(1))
    original = align_for_deepfake(rgb, face)
    assert a.shape == (1, 128, 128, 3) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(a[0, :6, :6], original[:6, :6])  # a corner of the crop: outside the face
    y, x = crop_template(128)[2].astype(int)[::-1]
    assert np.abs(a[0, y - 8 : y + 8, x - 8 : x + 8].astype(int) - original[y - 8 : y + 8, x - 8 : x + 8]).mean() > 5


@pytest.mark.slow
def test_deepfake_training_resumes_and_exports(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import load_file

    from anonymizer.nn.deepfake import DeepfakeMobileNet, DeepfakeNet
    from anonymizer.train.deepfake import main
    from anonymizer.train.faces import is_held_out, prepare_faces

    src = data_dir / "faces-utk"
    names = sorted(p.name for p in src.iterdir() if p.suffix == ".jpg")
    picked = [n for n in names if not is_held_out(n)][:8] + [n for n in names if is_held_out(n)][:4]
    root = tmp_path / "faces"
    root.mkdir()
    for n in picked:
        (root / n).write_bytes((src / n).read_bytes())
    fs = prepare_faces(root, with_dlib=False, progress=False)
    np.savez(tmp_path / "lm.npz", names=fs.names, landmarks=fs.landmarks)
    common = [
        "--arch",
        "compact",
        "--data",
        str(root),
        "--faces-cache",
        str(tmp_path / "lm.npz"),
        "--steps",
        "2",
        "--batch",
        "4",
        "--save-every",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--export",
        str(tmp_path / "w.safetensors"),
        "--device",
        "cpu",
        "--surrogates",
        "4",
    ]
    main([*common, "--stop-after", "1"])
    assert not (tmp_path / "w.safetensors").exists()
    main(common)
    out = capsys.readouterr().out
    assert "resumed from" in out and "step 2: dev AUC sbi" in out and "surrogate" in out.split("step 2: dev AUC")[1]
    DeepfakeNet().load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    # the larger network, its backbone started from the face detector's
    mobile = [*common[:-8], "--out", str(tmp_path / "mobile"), "--export", str(tmp_path / "m.safetensors")]
    main([*mobile, "--device", "cpu", "--surrogates", "0", "--arch", "mobilenet", "--input-size", "96"])
    assert "step 2: dev AUC sbi" in capsys.readouterr().out
    DeepfakeMobileNet(size=96).load_state_dict(load_file(str(tmp_path / "m.safetensors")))
    # the surrogate fakes through the photo pipeline: the dev set gets them too
    main(
        [
            *common[:-10],
            "--out",
            str(tmp_path / "photos"),
            "--device",
            "cpu",
            "--surrogates",
            "3",
            "--painted",
            "photos",
            "--init",
            str(tmp_path / "w.safetensors"),
        ]
    )
    out = capsys.readouterr().out
    assert "through the photo pipeline" in out and "surrogate" in out.split("step 2: dev AUC")[1]
