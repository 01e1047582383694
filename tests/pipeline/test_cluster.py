"""--backend ray on a local Ray with 2 CPUs: the same outputs as the local backend, pieces of a video
joined back exactly, a vault that restores, a killed worker, and resuming from the manifest."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from videoclips import decode, face_centre, make_clip  # noqa: E402

from anonymizer import Key  # noqa: E402
from anonymizer.nn.runtime import configure_runtime  # noqa: E402
from anonymizer.pipeline.batch import plan_jobs, run_jobs  # noqa: E402
from anonymizer.pipeline.cluster import MANIFEST, plan_pieces, run_on_ray  # noqa: E402
from anonymizer.pipeline.jobs import anonymize_file  # noqa: E402
from anonymizer.pipeline.options import AnonymizeOptions  # noqa: E402
from anonymizer.pipeline.video import restore_video  # noqa: E402

OPTS = AnonymizeOptions(detect_every=3)
FAST_KDF = {"kdf": "scrypt", "kdf_params": {"n": 2**15, "r": 8, "p": 1}}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, samples) -> Path:
    """Three small photos and a 60-frame clip with a keyframe every 12 frames (1 s)."""
    d = tmp_path_factory.mktemp("cluster") / "in"
    (d / "photos").mkdir(parents=True)
    for name in ("astronaut.png", "camera.png", "grace_hopper.jpg"):
        shutil.copy(samples / name, d / "photos" / name)
    make_clip(d / "walk.mp4", frames=60, gop=12, speed=3)
    return d


def _local(folder: Path, out: Path, opts: AnonymizeOptions = OPTS, key: Key | None = None) -> None:
    """The local backend at one thread, as each Ray worker here runs (more threads sum in another order)."""
    before = torch.get_num_threads()
    configure_runtime(1)
    try:
        jobs = plan_jobs([folder], out)
        report = run_jobs(jobs, lambda j: anonymize_file(j, opts, key, None))
    finally:
        torch.set_num_threads(before)
    assert report.ok


def _covered(frame: np.ndarray, i: int) -> bool:
    x, y = face_centre(i, 3)
    return float(frame[y - 10 : y + 10, x - 10 : x + 10].mean()) < 40  # solid black fill


def _outputs(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_a_video_is_cut_at_keyframes(folder) -> None:
    job = plan_jobs([folder / "walk.mp4"], folder.parent / "x")[0]
    pieces = plan_pieces(job, OPTS, 1.5)
    assert [(p.start, p.first_frame) for p in pieces] == [
        (None, 0),
        (pytest.approx(2.0, abs=0.02), 24),
        (pytest.approx(4.0, abs=0.02), 48),
    ]
    assert [p.end for p in pieces][-1] is None and pieces[0].end == pieces[1].start
    assert len(plan_pieces(job, OPTS, 0)) == 1  # 0: one worker per video
    assert len(plan_pieces(job, AnonymizeOptions(start=1.0), 1.5)) == 1  # a span is done in one piece
    assert len(plan_pieces(job, AnonymizeOptions(targets=("face", "person")), 1.5)) == 3  # persons in pieces too


def test_persons_in_pieces_are_counted_and_restored(local_ray, folder, tmp_path) -> None:
    key = Key.from_password("cluster password", **FAST_KDF)
    out = tmp_path / "ray"
    rows: list[dict] = []
    opts = AnonymizeOptions(method="solid", targets=("face", "person"))
    report = run_on_ray(
        plan_jobs([folder / "walk.mp4"], out),
        out,
        opts,
        key,
        None,
        workers=2,
        segment_seconds=1.5,
        on_result=lambda job, row, error: rows.append(row or {"error": error}),
    )
    assert report.ok and rows[0]["pieces"] == 3 and rows[0]["person_tracks"] >= 0 and rows[0]["frames"] == 60
    restored = tmp_path / "restored.mp4"
    assert restore_video(out / "walk.mp4", restored, key) >= 60


def test_ray_gives_the_local_backend_outputs(local_ray, folder, tmp_path) -> None:
    _local(folder, tmp_path / "local")
    rows = []
    report = run_on_ray(
        plan_jobs([folder], tmp_path / "ray"),
        tmp_path / "ray",
        OPTS,
        None,
        None,
        workers=2,
        segment_seconds=1.5,
        on_result=lambda j, r, e: rows.append((r, e)),
    )
    assert report.ok and len(report.done) == 4 and all(e is None for _, e in rows)
    assert _outputs(tmp_path / "ray") == sorted([*_outputs(tmp_path / "local"), MANIFEST])
    for name in ("astronaut.png", "camera.png", "grace_hopper.jpg"):  # photos: byte for byte
        assert (tmp_path / "ray" / "photos" / name).read_bytes() == (tmp_path / "local" / "photos" / name).read_bytes()
    video_row = next(r for r, _ in rows if r and r["path"].endswith("walk.mp4"))
    assert video_row["pieces"] == 3 and video_row["frames"] == 60
    src, local, joined = (
        decode(folder / "walk.mp4"),
        decode(tmp_path / "local" / "walk.mp4"),
        decode(tmp_path / "ray" / "walk.mp4"),
    )
    assert len(joined[0]) == len(local[0]) == 60
    assert joined[1] == local[1] == src[1]  # every timestamp
    assert joined[2] and joined[2] == src[2]  # audio copied packet for packet
    assert all(_covered(f, i) for i, f in enumerate(joined[0]))  # across the joins too
    assert not _covered(src[0][30], 30)
    assert not list((tmp_path / "ray").rglob(".*part*"))  # no pieces or temporaries left


def test_a_segmented_video_restores_exactly_from_one_vault(local_ray, folder, tmp_path) -> None:
    key = Key.from_password("cluster password", **FAST_KDF)
    out = tmp_path / "ray"
    job = plan_jobs([folder / "walk.mp4"], out)
    report = run_on_ray(job, out, OPTS, key, None, workers=2, segment_seconds=1.5)
    assert report.ok
    restored = tmp_path / "restored.mp4"
    assert restore_video(out / "walk.mp4", restored, key) >= 60
    src, back = decode(folder / "walk.mp4"), decode(restored)
    for i in (0, 23, 24, 47, 48, 59):  # both sides of each join
        x, y = face_centre(i, 3)
        assert np.array_equal(back[0][i][y - 30 : y + 30, x - 30 : x + 30], src[0][i][y - 30 : y + 30, x - 30 : x + 30])
    with pytest.raises(Exception, match="wrong|password"):
        restore_video(out / "walk.mp4", tmp_path / "nope.mp4", Key.from_password("not it", **FAST_KDF))


def test_a_piece_sends_no_face_in_clear(folder, tmp_path) -> None:
    """What a piece returns travels through Ray's object store (shared memory, spilled to disk, other
    nodes): its original regions come back sealed for the driver's key of this run, not as images."""
    import pickle

    from anonymizer import Identity, VaultError
    from anonymizer.pipeline.cluster import Worker
    from anonymizer.vault import open_vault
    from anonymizer.vault.keys import public_bytes

    driver = Identity.generate()
    key = Key.from_password("cluster password", **FAST_KDF).for_workers()
    job = plan_jobs([folder / "walk.mp4"], tmp_path / "out")[0]
    (tmp_path / "out").mkdir()
    result = Worker(OPTS, key, None, 1, public_bytes(driver.public_key)).piece(
        job, tmp_path / "out" / "piece.mp4", None, 2.0, None
    )
    assert "error" not in result and result["count"] > 0
    wire = pickle.dumps(result)
    assert b"\x89PNG" not in wire and b"IHDR" not in wire  # no image in clear
    records = open_vault(result["sealed"], driver)[1]
    assert len(records) == result["count"] and all(r.payload.startswith(b"\x89PNG") for r in records)
    with pytest.raises(VaultError):
        open_vault(result["sealed"], Identity.generate())


def test_a_killed_worker_leaves_nothing_missing_or_twice(local_ray, folder, tmp_path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(3):
        for p in (folder / "photos").iterdir():
            shutil.copy(p, photos / f"{k}_{p.name}")
    killed, live = [], []

    def watch(actors) -> None:
        live[:] = actors

    def kill_one(job, row, error) -> None:
        if not killed:
            victim = live[0]
            ray.kill(victim, no_restart=True)
            killed.append(victim)

    out = tmp_path / "out"
    report = run_on_ray(
        plan_jobs([photos], out), out, OPTS, None, None, workers=2, on_result=kill_one, on_workers=watch
    )
    assert killed and report.retries >= 1
    assert report.ok and sorted(report.done) == sorted(photos.iterdir())
    names = sorted(p.name for p in photos.iterdir())
    assert _outputs(out) == sorted([*names, MANIFEST])
    entries = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    assert sorted(e["output"] for e in entries) == names  # each file recorded once
    _local(photos, tmp_path / "local")
    assert all((out / n).read_bytes() == (tmp_path / "local" / n).read_bytes() for n in names)


def test_a_second_run_resumes_from_the_manifest(local_ray, folder, tmp_path) -> None:
    out = tmp_path / "out"
    photos = folder / "photos"
    assert run_on_ray(plan_jobs([photos], out), out, OPTS, None, None, workers=2).ok
    (out / "camera.png").unlink()
    again = run_on_ray(plan_jobs([photos], out), out, OPTS, None, None, workers=2)
    assert again.done == [photos / "camera.png"] and len(again.skipped) == 2
    other = AnonymizeOptions(detect_every=3, method="pixelate")  # other options: everything is done again
    assert len(run_on_ray(plan_jobs([photos], out), out, other, None, None, workers=2).done) == 3


def test_pieces_keep_rotation_and_variable_frame_rate(local_ray, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "turned.mp4", frames=36, gop=12, speed=3, rotation=90)
    make_clip(src / "vfr.mkv", frames=36, gop=12, speed=3, vfr=True)
    rows = []
    report = run_on_ray(
        plan_jobs([src], tmp_path / "out"),
        tmp_path / "out",
        OPTS,
        None,
        None,
        workers=2,
        segment_seconds=0.9,
        on_result=lambda j, r, e: rows.append(r),
    )
    assert report.ok and all(r["pieces"] == 3 for r in rows)
    for name in ("turned.mp4", "vfr.mkv"):
        a, b = decode(src / name), decode(tmp_path / "out" / name)
        assert len(b[0]) == 36 and b[1] == a[1] and b[2] == a[2] and b[3] == a[3]  # frames, pts, audio, rotation
