"""The donor bank shipped in models/donors/: it loads, its files agree, its meshes fit its crops, its
triangulation covers the face; a missing or damaged bank is a WeightsError naming the file."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from anonymizer import weights
from anonymizer.audit.recognizers import dlib_available
from anonymizer.errors import WeightsError
from anonymizer.pipeline.donors import (
    BANK_FILE,
    COLLECTIONS,
    DISTANCES,
    GROUPS,
    INDEX_FILE,
    SEXES,
    DonorBank,
    default_path,
    head_pose,
    mirror_permutation,
    mirrored,
)

#: eye corners (their means are the eye centres), nose tip, mouth corners: what a face swap must cover
EYES = ((33, 133), (362, 263))
NOSE_TIP = 1
MOUTH = (61, 291)


@pytest.fixture(scope="module")
def bank() -> DonorBank:
    return DonorBank.load()


@pytest.fixture()
def small(tmp_path: Path, bank: DonorBank) -> Path:
    """A valid three-donor copy of the shipped bank, to damage."""
    root = tmp_path / "donors"
    root.mkdir()
    tensors = load_file(str(bank.root / BANK_FILE))
    per_donor = {k: (v if k in ("triangles", "reference") else v[:3]).copy() for k, v in tensors.items()}
    per_donor[DISTANCES] = tensors[DISTANCES][:3, :3].copy()
    save_file(per_donor, str(root / BANK_FILE))
    with open(bank.root / INDEX_FILE, newline="") as f:
        lines = f.read().splitlines()
    (root / INDEX_FILE).write_text("\n".join(lines[:4]) + "\n")
    for name in bank.files[:3]:
        shutil.copy2(bank.root / name, root / name)
    assert len(DonorBank.load(root)) == 3
    return root


def test_shipped_bank_loads_and_sizes_agree(bank: DonorBank) -> None:
    n = len(bank)
    assert n == 400 and bank.root == default_path() == weights.MODELS_DIR / "donors"
    assert bank.meshes.shape == (n, 468, 3) and bank.meshes.dtype == np.float32
    assert bank.poses.shape == bank.labs.shape == (n, 3) and bank.presence.shape == (n,)
    assert bank.triangles.dtype == np.int32 and bank.triangles.ndim == 2 and bank.triangles.shape[1] == 3
    assert set(bank.codes) == {"sex", "group", "collection", "glasses"}
    assert set(bank.traits) == {"female", "age", "hair", "sharp"}
    assert all(t.shape == (n,) and t.dtype == np.float32 for t in bank.traits.values())
    assert bank.codes["sex"].max() < len(SEXES) and bank.codes["group"].max() < len(GROUPS)
    assert set(np.unique(bank.codes["collection"])) == set(range(len(COLLECTIONS)))  # both collections present
    assert bank.files == tuple(f"d{i:04d}.jpg" for i in range(n))
    assert bank.size == 256
    for i in (0, n // 2, -1):
        img = bank.image(i)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8 and img.std() > 10
        assert bank.mesh(i).shape == (468, 3) and bank.pose(i).shape == bank.lab(i).shape == (3,)
    assert np.isfinite(bank.meshes).all() and np.isfinite(bank.poses).all() and np.isfinite(bank.labs).all()
    with pytest.raises(IndexError, match="out of range"):
        bank.mesh(n)
    with pytest.raises(ValueError):  # the arrays are read-only
        bank.meshes[0, 0, 0] = 0


def test_index_agrees_with_the_tensors(bank: DonorBank) -> None:
    lab = np.array([[float(r["L"]), float(r["a"]), float(r["b"])] for r in bank.rows])
    np.testing.assert_allclose(lab, bank.labs, atol=0.006)
    assert [SEXES[c] for c in bank.codes["sex"]] == [r["sex"] for r in bank.rows]
    assert [COLLECTIONS[c] for c in bank.codes["collection"]] == [r["collection"] for r in bank.rows]
    assert all(r["source_file"] for r in bank.rows)


def test_donors_pass_the_filters(bank: DonorBank) -> None:
    """Near-frontal, a face for sure, the mesh inside the crop, the eyes level and in the same place."""
    assert (bank.presence >= 0.9).all()
    assert (np.abs(bank.poses[:, :2]) <= 18).all()
    xy = bank.meshes[..., :2]
    assert (xy >= 0).all() and (xy <= bank.size - 1).all()
    left = xy[:, list(EYES[0])].mean(1)
    right = xy[:, list(EYES[1])].mean(1)
    assert np.abs(left[:, 1] - right[:, 1]).max() < 0.02 * bank.size  # level
    centre = (left + right) / 2
    assert (centre.std(0) < 0.02 * bank.size).all()  # in the same place in every crop


def _inside_any(points: np.ndarray, tri_xy: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """bool (P,): each point (P, 2) lies in (or on) at least one triangle (T, 3, 2)."""
    a, b, c = tri_xy[:, 0], tri_xy[:, 1], tri_xy[:, 2]
    v0, v1 = b - a, c - a
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    p = points[:, None] - a[None]
    u = (p[..., 0] * v1[:, 1] - p[..., 1] * v1[:, 0]) / det
    v = (v0[:, 0] * p[..., 1] - v0[:, 1] * p[..., 0]) / det
    return ((u >= -eps) & (v >= -eps) & (u + v <= 1 + eps)).any(1)


def test_triangles_index_the_mesh_and_cover_the_face(bank: DonorBank) -> None:
    tri = bank.triangles
    assert tri.min() >= 0 and tri.max() < 468
    assert len(np.unique(tri)) == 468  # every point is in the warp
    assert (tri[:, 0] != tri[:, 1]).all() and (tri[:, 1] != tri[:, 2]).all() and (tri[:, 0] != tri[:, 2]).all()
    for i in range(len(bank)):
        xy = bank.meshes[i, :, :2].astype(np.float64)
        keys = np.stack([xy[list(EYES[0])].mean(0), xy[list(EYES[1])].mean(0), xy[NOSE_TIP], *xy[list(MOUTH)]])
        assert _inside_any(keys, xy[tri]).all(), f"donor {i}"
    # on the mean mesh the triangles tile the face: no overlaps (their areas add up to their union's)
    mean = bank.meshes[..., :2].mean(0).astype(np.float64)
    p = mean[tri]
    u, v = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    areas = np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]) / 2
    scale = 8
    union = np.zeros((bank.size * scale, bank.size * scale), np.uint8)
    for t in np.round(p * scale).astype(np.int32):
        cv2.fillConvexPoly(union, t, 1)
    assert abs(union.sum() / scale**2 - areas.sum()) < 0.02 * areas.sum()


def test_the_mirror_pairs_each_point_with_one_other(bank: DonorBank) -> None:
    pairs = mirror_permutation(bank.reference)
    assert sorted(pairs.tolist()) == list(range(len(bank.reference)))  # one to one
    assert (pairs[pairs] == np.arange(len(pairs))).all()  # the mirror of the mirror is the point itself
    assert pairs[EYES[0][0]] == EYES[1][1] and pairs[EYES[0][1]] == EYES[1][0]  # outer with outer
    assert pairs[MOUTH[0]] == MOUTH[1] and pairs[NOSE_TIP] == NOSE_TIP
    # pairs mirror each other: x opposite, y and z alike (the reference is symmetric about x = 0)
    ref = bank.reference
    assert np.abs(ref[pairs, 0] + ref[:, 0]).max() < 0.05 and np.abs(ref[pairs, 1:] - ref[:, 1:]).max() < 0.05


def test_a_mirrored_donor_turns_the_other_way(bank: DonorBank) -> None:
    pairs = mirror_permutation(bank.reference)
    turned = int(np.argmax(np.abs(bank.poses[:, 0])))
    image, mesh = bank.image(turned), bank.mesh(turned)
    before = image.copy(), mesh.copy()
    flipped, moved = mirrored(image, mesh, pairs)
    assert (flipped == image[:, ::-1]).all() and flipped.flags.c_contiguous
    # the bank's own crop and mesh are left as they were
    assert (image == before[0]).all() and (bank.mesh(turned) == before[1]).all()
    yaw, pitch, roll = head_pose(mesh, bank.reference)
    assert abs(yaw) > 15
    assert np.allclose(head_pose(moved, bank.reference), [-yaw, pitch, -roll], atol=0.5)
    # each point still names the same part of the face: the left eye's corners are on the photo's left
    assert moved[EYES[0][0], 0] < moved[EYES[1][1], 0]
    mirror_twice = mirrored(flipped, moved, pairs)
    assert (mirror_twice[0] == image).all() and np.allclose(mirror_twice[1], mesh)


def test_missing_bank_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(WeightsError, match="donor bank is missing") as err:
        DonorBank.load(tmp_path)
    assert err.value.path == str(tmp_path / BANK_FILE)
    monkeypatch.setattr(weights, "MODELS_DIR", tmp_path)  # the default is found where the weights are
    with pytest.raises(WeightsError) as err:
        DonorBank.load()
    assert err.value.path == str(tmp_path / "donors" / BANK_FILE)


def test_corrupt_bank_names_the_file(small: Path) -> None:
    (small / BANK_FILE).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(WeightsError, match="safetensors") as err:
        DonorBank.load(small)
    assert err.value.path == str(small / BANK_FILE)


def test_inconsistent_tensors_name_the_file(small: Path) -> None:
    tensors = load_file(str(small / BANK_FILE))
    save_file({**tensors, "pose": tensors["pose"][:2].copy()}, str(small / BANK_FILE))
    with pytest.raises(WeightsError, match=r"'pose' must be float32 \[N, 3\] with N = 3.*\[2, 3\]") as err:
        DonorBank.load(small)
    assert err.value.path == str(small / BANK_FILE)
    save_file({k: v for k, v in tensors.items() if k != "lab"}, str(small / BANK_FILE))
    with pytest.raises(WeightsError, match="missing tensors lab"):
        DonorBank.load(small)
    bad = tensors["triangles"].copy()
    bad[0, 0] = 468
    save_file({**tensors, "triangles": bad}, str(small / BANK_FILE))
    with pytest.raises(WeightsError, match="'triangles' must index the 468 mesh points"):
        DonorBank.load(small)


def test_index_with_another_n_names_the_file(small: Path) -> None:
    lines = (small / INDEX_FILE).read_text().splitlines()
    (small / INDEX_FILE).write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(WeightsError, match="2 rows, the bank 3 donors") as err:
        DonorBank.load(small)
    assert err.value.path == str(small / INDEX_FILE)
    (small / INDEX_FILE).unlink()
    with pytest.raises(WeightsError, match="donor index is missing") as err:
        DonorBank.load(small)
    assert err.value.path == str(small / INDEX_FILE)


def test_missing_or_corrupt_image_names_the_file(small: Path) -> None:
    with open(small / INDEX_FILE, newline="") as f:
        names = [r["file"] for r in csv.DictReader(f)]
    (small / names[2]).unlink()
    with pytest.raises(WeightsError, match="donor image is missing") as err:
        DonorBank.load(small)
    assert err.value.path == str(small / names[2])
    shutil.copy2(small / names[0], small / names[2])
    data = (small / names[1]).read_bytes()
    (small / names[1]).write_bytes(data[: len(data) // 3])  # the header survives: found when decoded
    loaded = DonorBank.load(small)
    with pytest.raises(WeightsError, match="unreadable donor image") as err:
        loaded.image(1)
    assert err.value.path == str(small / names[1])
    (small / names[1]).write_bytes(b"not a jpeg")
    with pytest.raises(WeightsError, match="unreadable donor image") as err:
        DonorBank.load(small)
    assert err.value.path == str(small / names[1])


def test_the_shipped_bank_holds_suitable_donors_of_both_sexes_and_many_ages(bank: DonorBank) -> None:
    from anonymizer.pipeline.donor_swap import HAIR_SHARE, donor_weights, hair_share

    assert (donor_weights(bank) == 1).all()  # the selection keeps only suitable donors
    for i in (0, len(bank) // 2, -1):  # the stored hair trait is what the image gives
        assert abs(bank.traits["hair"][i] - hair_share(bank.image(i), bank.mesh(i))) < 1e-5
    assert (bank.traits["hair"] <= HAIR_SHARE).all() and not bank.codes["glasses"].any()
    female, age = bank.traits["female"], bank.traits["age"]
    assert 0.3 < (female > 0.5).mean() < 0.7
    assert (age < 20).sum() >= 10 and (age >= 55).sum() >= 10
    known = bank.codes["sex"] > 0  # the source's folder names agree with the looks read from the faces
    assert ((female[known] > 0.5) == (bank.codes["sex"][known] == SEXES.index("female"))).mean() > 0.9


def test_donors_of_unclear_or_contradicted_sex_are_set_aside() -> None:
    from anonymizer.train.donor_spread import clear_looks

    female = np.array([0.95, 0.05, 0.5, 0.95, 0.95, 0.5])
    age = np.array([30.0, 30.0, 30.0, 30.0, 30.0, 6.0])
    recorded = np.array([SEXES.index("female"), 0, 0, SEXES.index("male"), 0, 0], np.uint8)
    # clear and agreeing; clear, not recorded; unclear; contradicted; clear; a child (sex hard to read)
    assert clear_looks(female, age, recorded).tolist() == [True, True, False, False, True, True]


def test_competing_donors_are_alike_in_looks() -> None:
    from anonymizer.train.donor_spread import competing

    female = np.array([0.9, 0.8, 0.1, 0.9, 0.9])
    age = np.array([30.0, 40.0, 30.0, 60.0, 30.0])
    tone = np.array([60.0, 62.0, 60.0, 60.0, 80.0])
    rival = competing(female, age, tone)
    assert rival[0, 1] and not rival[0, 2] and not rival[0, 3] and not rival[0, 4]  # sex, age, tone apart
    assert (rival == rival.T).all() and rival.diagonal().all()


def test_thin_hubs_sets_aside_the_crowded_first() -> None:
    from anonymizer.train.donor_spread import share_apart, thin_hubs

    rng = np.random.default_rng(0)
    # a tight cluster of 6 look-alikes and 6 points far from everything
    pts = np.concatenate([rng.normal(0, 0.05, (6, 8)), 3 * np.eye(8)[:6] + np.arange(6)[:, None] * 2.0])
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    kept = thin_hubs(dist, 7, 0.7)
    # five of the look-alikes go; one of them stays with the six loners
    assert len(kept) == 7 and set(range(6, 12)) <= set(kept)
    assert share_apart(dist, kept, 0.7) == 1.0 and share_apart(dist, np.arange(12), 0.7) < 1.0
    assert len(thin_hubs(dist, 12, 0.7)) == 12
    # donors that never compete (an infinite distance; here odd and even ones) are not each other's
    # look-alikes: one look-alike of each parity stays
    apart = np.where(np.arange(12)[:, None] % 2 == np.arange(12)[None] % 2, dist, np.inf)
    kept = thin_hubs(apart, 8, 0.7)
    assert set(range(6, 12)) <= set(kept) and sorted(k % 2 for k in kept if k < 6) == [0, 1]
    rival = np.isfinite(apart)
    assert share_apart(dist, np.arange(12), 0.7, rival) > share_apart(dist, np.arange(6), 0.7, rival) == 0.0


def test_the_selection_writes_a_bank_of_the_kept_donors_with_their_traits(small: Path, tmp_path: Path) -> None:
    from anonymizer.train.donor_spread import write_selection

    pool = DonorBank.load(small)
    out = tmp_path / "chosen"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier bank")
    traits = {
        "female": np.array([0.9, 0.1], np.float32),
        "age": np.array([30.0, 60.0], np.float32),
        "hair": np.array([0.0, 0.1], np.float32),
    }
    write_selection(pool, np.array([2, 0]), traits, np.array([[0.0, 0.8], [0.8, 0.0]]), out)
    bank = DonorBank.load(out)
    assert bank.distances is not None and bank.distances.dtype == np.float32
    assert bank.distances.tolist() == [[0.0, np.float32(0.8)], [np.float32(0.8), 0.0]]
    assert bank.files == ("d0000.jpg", "d0001.jpg") and not (out / "stale.txt").exists()  # replaced whole
    assert (out / "d0000.jpg").read_bytes() == (small / pool.files[2]).read_bytes()  # the pool's bytes
    np.testing.assert_array_equal(bank.meshes, pool.meshes[[2, 0]])
    np.testing.assert_array_equal(bank.triangles, pool.triangles)
    assert bank.traits["age"].tolist() == [30.0, 60.0] and bank.traits["female"].dtype == np.float32
    assert [r["source_file"] for r in bank.rows] == [pool.rows[2]["source_file"], pool.rows[0]["source_file"]]
    assert [r["age"] for r in bank.rows] == ["30.000", "60.000"]
    assert not (tmp_path / "chosen.tmp").exists() and not (tmp_path / "chosen.old").exists()


def test_donor_distances_must_be_square(small: Path) -> None:
    tensors = load_file(str(small / BANK_FILE))
    tensors[DISTANCES] = np.zeros((3, 2), np.float32)
    save_file(tensors, str(small / BANK_FILE))
    with pytest.raises(WeightsError, match="dlib_distance") as err:
        DonorBank.load(small)
    assert str(small / BANK_FILE) in str(err.value)


@pytest.mark.skipif(not dlib_available(), reason="dlib (the [audit] extra) is not installed")
def test_the_bank_carries_dlibs_distances_between_its_donors(bank: DonorBank, small: Path) -> None:
    from anonymizer.train.donor_spread import donor_distances, main

    # the shipped distances are dlib's for these crops (a bank rebuilt without them would spread nothing)
    three = DonorBank.load(small)
    assert three.distances is not None
    np.testing.assert_allclose(donor_distances(three), three.distances, atol=1e-5)
    assert bank.distances is not None and np.allclose(bank.distances, bank.distances.T)
    assert np.all(np.diag(bank.distances) == 0) and (bank.distances[~np.eye(len(bank), dtype=bool)] > 0.2).all()
    # --distances-only (re)writes them in place, the rest of the bank untouched
    before = load_file(str(small / BANK_FILE))
    save_file({k: v for k, v in before.items() if k != DISTANCES}, str(small / BANK_FILE))
    assert DonorBank.load(small).distances is None
    main(["--distances-only", "--out", str(small)])
    after = load_file(str(small / BANK_FILE))
    assert set(after) == set(before) and all(np.array_equal(after[k], before[k]) for k in before if k != DISTANCES)
    np.testing.assert_allclose(after[DISTANCES], before[DISTANCES], atol=1e-5)
