"""Training the surrogate generator: faces are aligned onto the crop template, and a tiny run is seeded,
resumable and exports weights the builder loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from anonymizer.nn.surrogate import CODE_DIM, SURROGATE_SIZE, crop_template
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
    common = [
        "--data",
        str(root),
        "--faces-cache",
        str(cache),
        "--steps",
        "2",
        "--batch",
        "2",
        "--save-every",
        "1",
        "--seed",
        "0",
        "--out",
        str(tmp_path / "run"),
        "--export",
        str(tmp_path / "g.safetensors"),
        "--device",
        "cpu",
    ]
    main([*common, "--stop-after", "1"])
    assert (tmp_path / "run" / "last.pt").is_file() and not (tmp_path / "g.safetensors").exists()
    main(common)
    out = capsys.readouterr().out
    assert "resumed from" in out and "step 2: identity distance" in out
    gen = SurrogateGenerator()
    gen.load_state_dict(load_file(str(tmp_path / "g.safetensors")))
    assert all(torch.isfinite(p).all() for p in gen.parameters())


@pytest.mark.slow
def test_surrogate_training_with_a_dlib_student(few_faces, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--init starts a new run from another run's generator; --dlib-labels describes generated faces with
    dlib into the student's buffer (kept in the checkpoint, so a resumed run goes on with it) and the
    student moves away from the shipped IdentityNet once the buffer holds enough faces."""
    from anonymizer.audit.recognizers import dlib_available
    from anonymizer.nn.identity import identity_net

    if not dlib_available():
        pytest.skip("dlib (the [audit] extra) is not installed")
    root, _ = few_faces
    fs = prepare_faces(root, with_dlib=True, progress=False)
    cache = tmp_path / "faces.npz"
    np.savez(cache, names=fs.names, landmarks=fs.landmarks, descriptors=fs.descriptors)
    common = ["--data", str(root), "--faces-cache", str(cache), "--batch", "2", "--seed", "0", "--device", "cpu"]
    main([*common, "--steps", "1", "--out", str(tmp_path / "first")])
    with pytest.raises(SystemExit, match="saved by a run without student"):  # resuming it with a student: a clear stop
        main([*common, "--steps", "2", "--out", str(tmp_path / "first"), "--dlib-labels", "2"])
    run = [
        "--steps",
        "5",
        "--save-every",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--init",
        str(tmp_path / "first" / "last.pt"),
        "--dlib-labels",
        "4",
    ]
    main([*common, *run, "--stop-after", "2"])
    assert "started from the generator and critic" in capsys.readouterr().out
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert state["step"] == 2 and len(state["student"]["desc"]) == 8 and np.isfinite(state["student"]["desc"]).all()
    main([*common, *run])
    out = capsys.readouterr().out
    assert "resumed from" in out and "dlib between codes" in out
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert state["step"] == 5 and len(state["student"]["crops"]) == 20
    shipped = identity_net().state_dict()
    assert any(not torch.equal(v, shipped[k]) for k, v in state["student"]["net"].items())
    # a next stage starts from this run with its student
    main(
        [
            *common,
            "--steps",
            "1",
            "--out",
            str(tmp_path / "next"),
            "--init",
            str(tmp_path / "run" / "last.pt"),
            "--dlib-labels",
            "2",
        ]
    )
    assert "and its dlib student" in capsys.readouterr().out
    nxt = torch.load(tmp_path / "next" / "last.pt", weights_only=False)
    assert len(nxt["student"]["crops"]) == 22 and nxt["step"] == 1


@pytest.mark.slow
def test_surrogate_training_with_a_palette(few_faces, tmp_path: Path) -> None:
    """--palette ships its codes inside the exported generator (a resumed run keeps them); a malformed
    palette file stops with its name; --hard-pairs keeps the closest pairs in the checkpoint and needs a
    palette."""
    from safetensors.torch import load_file

    from anonymizer.nn.surrogate import PALETTE_SIZE

    root, cache = few_faces
    pal = np.random.default_rng(0).standard_normal((PALETTE_SIZE, CODE_DIM)).astype(np.float32)
    np.save(tmp_path / "palette.npy", pal)
    common = [
        "--data",
        str(root),
        "--faces-cache",
        str(cache),
        "--steps",
        "2",
        "--batch",
        "2",
        "--seed",
        "0",
        "--save-every",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--export",
        str(tmp_path / "g.safetensors"),
        "--device",
        "cpu",
        "--palette",
        str(tmp_path / "palette.npy"),
    ]
    main([*common, "--stop-after", "1"])
    np.save(tmp_path / "palette.npy", pal[:3])  # a resumed run keeps the palette it started with
    main(common)
    np.testing.assert_array_equal(load_file(str(tmp_path / "g.safetensors"))["palette"].numpy(), pal)
    with pytest.raises(SystemExit, match="palette.npy: expected a finite, non-zero"):
        main([*common[:-4], "--out", str(tmp_path / "other"), "--palette", str(tmp_path / "palette.npy")])
    # --hard-pairs: the closest pairs of rows are measured and kept in the checkpoint
    hard = [
        *common[:-6],
        "--out",
        str(tmp_path / "hard"),
        "--init",
        str(tmp_path / "run" / "last.pt"),
        "--hard-pairs",
        "0.5",
    ]
    main(hard)
    pairs = torch.load(tmp_path / "hard" / "last.pt", weights_only=False)["hard_pairs"]
    assert pairs.shape == (4 * PALETTE_SIZE, 2) and (pairs[:, 0] != pairs[:, 1]).all() and pairs.max() < PALETTE_SIZE
    with pytest.raises(SystemExit, match="needs a palette"):
        main([*common[:-6], "--out", str(tmp_path / "none"), "--hard-pairs", "0.5"])


@pytest.mark.slow
def test_surrogate_training_learns_the_palette(few_faces, tmp_path: Path) -> None:
    """--palette-lr moves the rows that were drawn (only those), the export ships the moved rows, and a
    run stopped and resumed ends exactly where an uninterrupted one does; it needs a palette."""
    from safetensors.torch import load_file

    from anonymizer.nn.surrogate import CODE_DIM, PALETTE_SIZE

    root, cache = few_faces
    pal = np.random.default_rng(0).standard_normal((PALETTE_SIZE, CODE_DIM)).astype(np.float32)
    np.save(tmp_path / "palette.npy", pal)

    def run(name: str, *extra: str) -> None:
        main(
            [
                "--data",
                str(root),
                "--faces-cache",
                str(cache),
                "--steps",
                "2",
                "--batch",
                "2",
                "--seed",
                "0",
                "--save-every",
                "1",
                "--out",
                str(tmp_path / name),
                "--export",
                str(tmp_path / f"{name}.safetensors"),
                "--device",
                "cpu",
                "--palette",
                str(tmp_path / "palette.npy"),
                "--palette-lr",
                "0.01",
                *extra,
            ]
        )

    run("straight")
    run("stopped", "--stop-after", "1")
    run("stopped")
    learnt = load_file(str(tmp_path / "straight.safetensors"))["palette"].numpy()
    np.testing.assert_array_equal(load_file(str(tmp_path / "stopped.safetensors"))["palette"].numpy(), learnt)
    moved = np.abs(learnt - pal).max(1) > 0
    assert 2 <= moved.sum() <= 8  # two steps of two pairs: at most 8 rows were drawn
    np.testing.assert_array_equal(learnt[~moved], pal[~moved])
    with pytest.raises(SystemExit, match="--palette-lr needs a palette"):
        main(
            [
                "--data",
                str(root),
                "--faces-cache",
                str(cache),
                "--steps",
                "1",
                "--batch",
                "2",
                "--out",
                str(tmp_path / "none"),
                "--device",
                "cpu",
                "--palette-lr",
                "0.01",
            ]
        )


def test_palette_choice_prefers_codes_that_differ() -> None:
    """pair_differ counts faces on which two codes are > 0.6 apart; choose() keeps the codes that are apart
    from the others and skips near-duplicates."""
    from anonymizer.train.surrogate_palette import choose, pair_differ

    rng = np.random.default_rng(0)
    people = rng.standard_normal((4, 128)).astype(np.float32)
    people *= 2.0 / np.linalg.norm(people, axis=1, keepdims=True)  # four people, far apart
    codes = np.concatenate([people, people[:2] + 0.01])  # codes 4 and 5 duplicate codes 0 and 1
    desc = np.stack([codes + rng.normal(0, 0.01, codes.shape) for _ in range(3)])  # three faces
    differ = pair_differ(desc)
    assert differ.shape == (6, 6) and differ[0, 4] == 0 and differ[0, 1] == 1 and differ[2, 3] == 1
    assert sorted(choose(differ, np.arange(6), 4)) in ([0, 1, 2, 3], [1, 2, 3, 4], [0, 2, 3, 5], [2, 3, 4, 5])
    with pytest.raises(SystemExit, match="only 3 candidate codes"):
        choose(differ, np.arange(3), 4)


def test_row_weights_hand_out_near_duplicates_less_often() -> None:
    """row_weights minimises the chance that two independent draws are the same person: rows that are the
    same person as several others share what one distinct row gets, and the chance drops below uniform's."""
    from anonymizer.train.surrogate_palette import row_weights

    same = np.eye(6)
    same[np.ix_([3, 4, 5], [3, 4, 5])] = 1.0  # rows 3, 4 and 5 are one person; 0, 1, 2 are distinct
    p = row_weights(same)
    assert abs(p.sum() - 1) < 1e-9 and (p >= 0).all()
    np.testing.assert_allclose(p[:3], 0.25, atol=1e-3)  # four people, each a quarter of the draws
    np.testing.assert_allclose(p[3:].sum(), 0.25, atol=1e-3)
    u = np.full(6, 1 / 6)
    assert p @ same @ p < u @ same @ u - 0.05  # 0.25 against 0.333
    with pytest.raises(ValueError, match="square"):
        row_weights(np.ones((3, 4)))


def test_weigh_with_extra_codes_drops_unfound_ones_and_spreads_weight_over_distinct_people(tmp_path: Path) -> None:
    """weigh() with extra codes: a code the detector misses in most faces is left out, two codes that are the
    same person share one person's weight, and the copy's palette (the kept codes, in order) and weights
    load into the generator with their new size."""
    from safetensors.torch import load_file

    from anonymizer.nn.surrogate import SurrogateGenerator
    from anonymizer.train.surrogate_palette import weigh

    rng = np.random.default_rng(0)
    codes = rng.standard_normal((5, CODE_DIM)).astype(np.float32)  # 3 rows, then 2 extra codes
    person = rng.standard_normal((4, 128)).astype(np.float32) * 3.0  # 4 people, far apart
    who = {0: 0, 1: 0, 2: 1, 3: 2, 4: 3}  # rows 0 and 1 are the same person
    faces = 4

    def look(code: np.ndarray, net: int = 0) -> tuple[np.ndarray, np.ndarray]:
        i = int(np.flatnonzero((codes == code).all(1))[0])
        found = np.array([True] * faces) if i != 3 else np.array([True, False, False, False])
        return np.repeat(person[who[i]][None], faces, 0), found

    gen = SurrogateGenerator()
    gen.palette.copy_(torch.from_numpy(np.resize(codes[:3], (gen.palette.shape[0], CODE_DIM))))
    state = {k: v.clone() for k, v in gen.state_dict().items()}
    out = tmp_path / "more.safetensors"
    weigh(state, codes, look, out=out, source="test", rows=3, min_face=0.5)
    saved = load_file(str(out))
    np.testing.assert_array_equal(saved["palette"].numpy(), codes[[0, 1, 2, 4]])
    w = saved["palette_weight"].double().numpy()
    np.testing.assert_allclose(w, [1 / 6, 1 / 6, 1 / 3, 1 / 3], atol=1e-3)
    again = SurrogateGenerator()
    again.load_state_dict(saved)
    assert again.palette.shape == (4, CODE_DIM) and again.row_weights is not None
    assert all(torch.equal(saved[k], state[k]) for k in state if not k.startswith("palette"))
    with pytest.raises(SystemExit, match="no code is found as a face"):
        weigh(state, codes, look, out=tmp_path / "none.safetensors", source="test", rows=3, min_face=1.0 + 1e-9)
    assert not (tmp_path / "none.safetensors").exists()
    assert not saved["palette_net"].any()  # one network paints every row

    # another generator's rows (--join): painted by their own network, and the copy carries it
    seen: list[tuple[int, int]] = []

    def look_joined(code: np.ndarray, net: int = 0) -> tuple[np.ndarray, np.ndarray]:
        seen.append((int(np.flatnonzero((codes == code).all(1))[0]), net))
        return look(code, net)

    other = SurrogateGenerator()
    joined = {
        **state,
        **{f"alt.0.{k}": v.clone() for k, v in other.state_dict().items() if not k.startswith("palette")},
    }
    out = tmp_path / "ensemble.safetensors"
    weigh(joined, codes, look_joined, out=out, source="test", rows=3, min_face=0.5, nets=np.array([0, 0, 0, 1, 1]))
    assert seen == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1)]
    saved = load_file(str(out))
    assert saved["palette_net"].tolist() == [0, 0, 0, 1]  # code 3 (not found as a face) left out with its network
    ens = SurrogateGenerator()
    ens.load_state_dict(saved)
    assert len(ens.alt) == 1 and torch.equal(ens.alt[0].code_mlp[0].weight, other.code_mlp[0].weight)


@pytest.mark.slow
def test_palette_weigh_writes_weighted_generator_weights(few_faces, tmp_path: Path) -> None:
    """--weigh paints the shipped palette (an ensemble's: each row by its own network) into training faces
    and writes a copy of the weights whose only change is the row weights, which the builder loads; it
    refuses an --out that is not .safetensors or that is its own input."""
    pytest.importorskip("dlib")
    from safetensors.torch import load_file

    from anonymizer.nn.surrogate import SurrogateGenerator
    from anonymizer.train.surrogate_palette import main as palette_main
    from anonymizer.weights import ensure_weights, get_weights

    shipped = ensure_weights(get_weights("surrogate"))
    out = tmp_path / "weighed.safetensors"
    root, _ = few_faces
    palette_main(["--data", str(root), "--weights", str(shipped), "--faces", "2", "--weigh", "--out", str(out)])
    before, after = load_file(str(shipped)), load_file(str(out))
    assert set(after) == set(before) | {"palette_weight", "palette_net"}
    assert after["palette_net"].any()  # the shipped ensemble's rows keep their networks (checked just below)
    assert all(torch.equal(before[k], after[k]) for k in before if k != "palette_weight")
    w = after["palette_weight"].double().numpy()
    assert abs(w.sum() - 1) < 1e-5 and (w >= 0).all()
    gen = SurrogateGenerator()
    gen.load_state_dict(after)
    assert gen.row_weights is not None
    with pytest.raises(SystemExit, match="weighed.npy: --weigh writes generator weights"):
        palette_main(
            ["--data", str(root), "--weights", str(shipped), "--weigh", "--out", str(tmp_path / "weighed.npy")]
        )
    with pytest.raises(SystemExit, match="weighed.safetensors: --weigh writes a copy"):  # never over its input
        palette_main(["--data", str(root), "--weights", str(out), "--weigh", "--out", str(out)])
    assert load_file(str(out))["palette_weight"].double().numpy().tolist() == w.tolist()
    more = tmp_path / "more.safetensors"  # the rows and 3 extra codes, those dlib's detector misses left out
    palette_main(
        [
            "--data",
            str(root),
            "--weights",
            str(shipped),
            "--faces",
            "2",
            "--weigh",
            "--extra",
            "3",
            "--min-face",
            "0.5",
            "--out",
            str(more),
        ]
    )
    pal, own = load_file(str(more))["palette"].numpy(), before["palette"].numpy()
    rows = [i for i, row in enumerate(pal) if (own == row).all(1).any()]
    assert rows == list(range(len(rows))) and len(rows) >= len(own) - 8 and len(pal) <= len(own) + 3  # rows first
    src = [int(np.flatnonzero((own == row).all(1))[0]) for row in pal[rows]]
    nets = load_file(str(more))["palette_net"].numpy()
    assert (nets[rows] == before["palette_net"].numpy()[src]).all() and not nets[
        len(rows) :
    ].any()  # extra codes: network 0
    big = SurrogateGenerator()
    big.load_state_dict(load_file(str(more)))
    assert big.palette.shape == pal.shape and big.row_weights is not None
    with pytest.raises(SystemExit, match="--extra, --min-face, --join and --drop-unweighted go with --weigh"):
        palette_main(["--data", str(root), "--weights", str(shipped), "--extra", "3", "--out", str(tmp_path / "p.npy")])
    with pytest.raises(SystemExit, match="--min-face within 0..1"):
        palette_main(
            [
                "--data",
                str(root),
                "--weights",
                str(shipped),
                "--weigh",
                "--min-face",
                "2",
                "--out",
                str(tmp_path / "m.safetensors"),
            ]
        )
    with pytest.raises(SystemExit, match="--targets takes a plain generator, not an ensemble"):
        palette_main(
            [
                "--data",
                str(root),
                "--weights",
                str(shipped),
                "--faces",
                "2",
                "--targets",
                "--out",
                str(tmp_path / "t.npy"),
            ]
        )


@pytest.mark.slow
def test_surrogate_training_from_weights_with_row_targets(
    few_faces, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--init from a .safetensors takes the generator alone (fresh critic, warmed up first); --row-targets
    adds a term that changes what the generator learns (the same run without it ends elsewhere); bad
    targets, targets without a palette or for a palette of another size and weights that are not a
    generator's stop with the file named; --palette replaces a larger palette from --init and its weights."""
    from safetensors.torch import load_file, save_file

    from anonymizer.nn.surrogate import CODE_DIM, PALETTE_SIZE

    root, cache = few_faces
    rng = np.random.default_rng(0)
    np.save(tmp_path / "palette.npy", rng.standard_normal((PALETTE_SIZE, CODE_DIM)).astype(np.float32))
    np.save(tmp_path / "targets.npy", rng.normal(0, 0.5, (PALETTE_SIZE, 128)).astype(np.float32))
    base = [
        "--data",
        str(root),
        "--faces-cache",
        str(cache),
        "--batch",
        "2",
        "--seed",
        "0",
        "--save-every",
        "1",
        "--device",
        "cpu",
    ]
    main(
        [
            *base,
            "--steps",
            "1",
            "--out",
            str(tmp_path / "first"),
            "--export",
            str(tmp_path / "first.safetensors"),
            "--palette",
            str(tmp_path / "palette.npy"),
        ]
    )
    capsys.readouterr()

    def run(name: str, *extra: str) -> dict[str, torch.Tensor]:
        main(
            [
                *base,
                "--steps",
                "2",
                "--out",
                str(tmp_path / name),
                "--export",
                str(tmp_path / f"{name}.safetensors"),
                "--init",
                str(tmp_path / "first.safetensors"),
                "--critic-warmup",
                "2",
                *extra,
            ]
        )
        return load_file(str(tmp_path / f"{name}.safetensors"))

    plain = run("plain")
    out = capsys.readouterr()
    assert "started from the generator weights" in out.out and "critic warm-up" in out.err
    pulled = run("pulled", "--row-targets", str(tmp_path / "targets.npy"), "--w-target", "5")
    assert "tgt=" in capsys.readouterr().err
    assert torch.equal(plain["palette"], pulled["palette"])  # the palette came with the weights
    assert any(not torch.equal(plain[k], pulled[k]) for k in plain if k.endswith("weight"))
    np.save(tmp_path / "bad.npy", np.zeros((3, 128), np.float32))
    with pytest.raises(SystemExit, match="bad.npy: expected finite"):
        run("bad", "--row-targets", str(tmp_path / "bad.npy"))
    with pytest.raises(SystemExit, match="--row-targets needs a palette"):
        main([*base, "--steps", "1", "--out", str(tmp_path / "nopal"), "--row-targets", str(tmp_path / "targets.npy")])
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(SystemExit, match="other.safetensors: not surrogate generator weights"):
        main([*base, "--steps", "1", "--out", str(tmp_path / "other"), "--init", str(tmp_path / "other.safetensors")])
    wide = dict(
        plain,
        palette=torch.randn(100, CODE_DIM),
        palette_weight=torch.rand(100),  # as --weigh --extra writes
        palette_net=torch.zeros(100, dtype=torch.int64),
    )
    save_file(wide, str(tmp_path / "wide.safetensors"))
    with pytest.raises(SystemExit, match="targets.npy: 64 row targets for a palette of 100 rows"):
        main(
            [
                *base,
                "--steps",
                "1",
                "--out",
                str(tmp_path / "wide_t"),
                "--init",
                str(tmp_path / "wide.safetensors"),
                "--row-targets",
                str(tmp_path / "targets.npy"),
            ]
        )
    with pytest.raises(SystemExit, match="--palette-lr learns a palette of 64 rows; this generator's has 100"):
        main(
            [
                *base,
                "--steps",
                "1",
                "--out",
                str(tmp_path / "wide_lr"),
                "--init",
                str(tmp_path / "wide.safetensors"),
                "--palette-lr",
                "1e-3",
            ]
        )
    main(
        [
            *base,
            "--steps",
            "1",
            "--out",
            str(tmp_path / "wide_p"),
            "--init",
            str(tmp_path / "wide.safetensors"),
            "--palette",
            str(tmp_path / "palette.npy"),
            "--critic-warmup",
            "0",
            "--export",
            str(tmp_path / "wide_p.safetensors"),
        ]
    )
    narrowed = load_file(str(tmp_path / "wide_p.safetensors"))  # --palette replaces the 100 rows and their weights
    assert torch.equal(narrowed["palette"], torch.from_numpy(np.load(tmp_path / "palette.npy")))
    assert not narrowed["palette_weight"].any()
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(SystemExit, match="corrupt.safetensors: not surrogate generator weights"):
        main(
            [*base, "--steps", "1", "--out", str(tmp_path / "corrupt"), "--init", str(tmp_path / "corrupt.safetensors")]
        )
    ensemble = {
        **plain,
        **{f"alt.0.{k}": v.clone() for k, v in plain.items() if not k.startswith("palette")},
    }  # --weigh --join
    save_file(ensemble, str(tmp_path / "ensemble.safetensors"))
    with pytest.raises(SystemExit, match="ensemble.safetensors: an ensemble of 2 generators"):
        main([*base, "--steps", "1", "--out", str(tmp_path / "ens"), "--init", str(tmp_path / "ensemble.safetensors")])


def test_row_targets_are_far_apart_and_go_to_the_nearest_rows() -> None:
    """assign_targets keeps candidates that are far apart (a near-duplicate is left out) and gives each row
    the chosen candidate closest to it, each candidate to one row."""
    from anonymizer.train.surrogate_palette import assign_targets

    far = np.eye(4) * 3.0
    cands = np.concatenate([far, far[:1] + 0.01])  # candidate 4 duplicates candidate 0
    rows = far[[2, 0, 3, 1]] + 0.1
    out = assign_targets(cands, rows)
    np.testing.assert_allclose(out, far[[2, 0, 3, 1]], atol=0.02)
    assert len({tuple(np.round(r, 1)) for r in out}) == 4
    with pytest.raises(ValueError, match="3 candidates for 4 rows"):
        assign_targets(far[:3], rows)


def test_stranger_paint_replaces_only_the_masked_region() -> None:
    """stranger_paint warps the other face onto each crop's landmarks and changes pixels only where the
    mask is on."""
    from anonymizer.nn.surrogate import face_mask
    from anonymizer.train.surrogate_palette import stranger_paint

    tpl = crop_template()
    crop = np.full((1, SURROGATE_SIZE, SURROGATE_SIZE, 3), 100, np.uint8)
    crop[0, :, :, 0] = np.linspace(50, 150, SURROGATE_SIZE, dtype=np.uint8)  # some spread for colour matching
    other = np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    lm_other = tpl * 3.0 + 10.0  # the other face, three times larger
    alpha = face_mask(torch.from_numpy(tpl[None]))[:, 0].numpy()
    out = stranger_paint(other, lm_other, crop, tpl[None], alpha > 0.5, alpha)
    assert out.shape == crop.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0][alpha[0] == 0], crop[0][alpha[0] == 0])
    assert np.abs(out[0][alpha[0] == 1].astype(int) - crop[0][alpha[0] == 1]).mean() > 10


def test_age_of_reads_faces_utk_names() -> None:
    """age_of: the leading age of a faces-utk name (what --targets keeps adults by), -1 for other names."""
    from anonymizer.train.faces import age_of

    assert age_of("23_1_0_20170109142408075.jpg.chip.jpg") == 23 and age_of("1_0_2_x.jpg") == 1
    assert age_of("portrait.jpg") == -1 and age_of("_1_0.jpg") == -1


def test_palette_join_options_go_with_weigh_and_name_a_missing_file(tmp_path: Path) -> None:
    """--join and --drop-unweighted only weigh; a --join file that does not exist is named."""
    from anonymizer.nn.surrogate import SurrogateGenerator
    from anonymizer.train.common import save_weights
    from anonymizer.train.surrogate_palette import main as palette_main

    weights = tmp_path / "g.safetensors"
    save_weights(SurrogateGenerator().state_dict(), weights, "test")
    with pytest.raises(SystemExit, match="--join and --drop-unweighted go with --weigh"):
        palette_main(
            [
                "--data",
                str(tmp_path),
                "--weights",
                str(weights),
                "--join",
                str(weights),
                "--out",
                str(tmp_path / "p.npy"),
            ]
        )
    with pytest.raises(SystemExit, match="--join and --drop-unweighted go with --weigh"):
        palette_main(
            ["--data", str(tmp_path), "--weights", str(weights), "--drop-unweighted", "--out", str(tmp_path / "p.npy")]
        )
    with pytest.raises(SystemExit, match="missing.safetensors: no such weights file \\(--join\\)"):
        palette_main(
            [
                "--data",
                str(tmp_path),
                "--weights",
                str(weights),
                "--weigh",
                "--join",
                str(tmp_path / "missing.safetensors"),
                "--out",
                str(tmp_path / "w.safetensors"),
            ]
        )
