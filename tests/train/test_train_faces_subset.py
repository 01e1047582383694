"""A seeded subset of a faces folder for a machine that takes less data: the files byte for byte, a
slim cache the trainers read, the same pick for the same seed, and nothing overwritten."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anonymizer.errors import InputError
from anonymizer.train.faces import is_held_out, main, prepare_faces, subset


def test_subset_copies_a_seeded_pick_with_its_cache(small_faces: Path, tmp_path: Path) -> None:
    assert subset(small_faces, tmp_path / "a", train=5, held_out=2, seed=0) == (5, 2)
    files = sorted(p.name for p in (tmp_path / "a").iterdir() if p.suffix == ".jpg")
    assert len(files) == 7 and sum(is_held_out(n) for n in files) == 2
    for n in files:
        assert (tmp_path / "a" / n).read_bytes() == (small_faces / n).read_bytes()
    z = np.load(tmp_path / "a" / "faces-cache.npz")
    assert list(z["names"]) == files  # name order, as the trainers read them
    full = prepare_faces(small_faces, with_dlib=False)
    row = {str(n): i for i, n in enumerate(full.names)}
    assert np.array_equal(z["landmarks"], full.landmarks[[row[n] for n in files]])
    held = [str(n) for n in full.names if is_held_out(str(n))][:2]
    assert [n for n in files if is_held_out(n)] == held  # the first held-out faces: the trainers' dev faces

    subset(small_faces, tmp_path / "b", train=5, held_out=2, seed=0)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(p.name for p in (tmp_path / "a").iterdir())
    picks = set()
    for seed in range(1, 6):
        subset(small_faces, tmp_path / f"s{seed}", train=5, held_out=0, seed=seed)
        picks.add(tuple(sorted(p.name for p in (tmp_path / f"s{seed}").iterdir())))
    assert len(picks) > 1  # the seed picks the faces


def test_subset_never_writes_into_a_full_folder(small_faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        subset(small_faces, out, train=2, held_out=1)
    with pytest.raises(SystemExit, match="taken"):
        main(["--data", str(small_faces), "--subset", str(out), "--train", "2"])
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
