"""Videos through the CLI: batches mixing photos and videos, bad videos, restore."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from videoclips import decode, make_clip  # noqa: E402

from anonymizer.cli.app import app  # noqa: E402


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "walk.mp4", frames=12)


def test_batch_with_photos_videos_and_bad_videos(clip, samples, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(clip, src / "good.mp4")
    shutil.copy(samples / "astronaut.png", src / "photo.png")
    (src / "empty.mp4").write_bytes(b"")
    (src / "truncated.mp4").write_bytes(clip.read_bytes()[:3000])
    (src / "text.mov").write_text("not a video")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["anonymize", str(src), "-o", str(out), "--json", "--detect-every", "2"])
    assert r.exit_code == 1
    rows = {Path(row["path"]).name: row for row in map(json.loads, r.stdout.splitlines())}
    assert rows["good.mp4"]["frames"] == 12 and rows["good.mp4"]["tracks"] >= 1
    assert rows["photo.png"]["faces"] == 1
    for bad in ("empty.mp4", "truncated.mp4", "text.mov"):
        assert bad in rows[bad]["error"]
        assert any(bad in line for line in r.stderr.splitlines() if line.startswith("error:"))
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4", "photo.png"]  # nothing partial
    # the summary says what it counts: faces in photos, tracks (faces followed across frames) in videos
    tracks = rows["good.mp4"]["tracks"]
    assert f"1 face(s) covered in 1 photo(s); {tracks} face track(s) covered over 12 frame(s) in 1 video(s)" in r.stderr
    frames, _, audio, _ = decode(out / "good.mp4")
    assert len(frames) == 12 and audio


def test_video_restore_through_the_cli(clip, tmp_path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("video password")
    runner = CliRunner()
    r = runner.invoke(
        app, ["anonymize", str(clip), "-o", str(tmp_path / "a"), "--lossless", "--password-file", str(pw)]
    )
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "a" / "walk.mp4.vault").is_file()
    r = runner.invoke(app, ["restore", str(tmp_path / "a"), "-o", str(tmp_path / "r"), "--password-file", str(pw)])
    assert r.exit_code == 0, r.stderr
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["walk.mp4"]
    original, _, _, _ = decode(clip)
    restored, _, _, _ = decode(tmp_path / "r" / "walk.mp4")
    assert all(np.array_equal(a, b) for a, b in zip(original, restored, strict=True))


def _file_size_limit(limit: int):
    def apply() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_disk_that_fills_up_fails_that_file_only(clip, samples, finder, tmp_path) -> None:
    """No disk can be filled here; a file-size limit makes every write past 200 kB fail the same way."""
    import os
    import subprocess

    src = tmp_path / "in"
    src.mkdir()
    big = make_clip(src / "big.mp4", frames=30, speed=3)
    assert big.stat().st_size > 0
    from PIL import Image

    Image.open(samples / "astronaut.png").convert("RGB").resize((160, 160)).save(src / "small.png")  # well under it
    out = tmp_path / "out"
    code = "from anonymizer.cli.app import main; main()"
    r = subprocess.run(
        [sys.executable, "-c", code, "anonymize", str(src), "-o", str(out), "--lossless", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_file_size_limit(200_000),
        env=dict(os.environ),
    )
    assert r.returncode == 1, r.stderr
    rows = {Path(row["path"]).name: row for row in map(json.loads, r.stdout.splitlines())}
    assert "cannot write output" in rows["big.mp4"]["error"] and "big.mp4" in rows["big.mp4"]["error"]
    assert "small.png" in rows and "error" not in rows["small.png"]
    assert sorted(p.name for p in out.iterdir()) == ["small.png"]  # the partial video was removed


def _no_models(monkeypatch) -> None:
    from anonymizer.pipeline import models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(models, "get_finder", refuse)


def test_end_before_start_is_a_usage_error_before_anything_loads(clip, tmp_path, monkeypatch) -> None:
    _no_models(monkeypatch)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["anonymize", str(clip), "-o", str(out), "--start", "2", "--end", "1"])
    assert r.exit_code == 2 and "--end (1 s) must be after --start (2 s)" in r.stderr
    assert not out.exists()


def test_start_past_the_end_fails_that_video_before_anything_loads(clip, samples, tmp_path, monkeypatch) -> None:
    _no_models(monkeypatch)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["anonymize", str(clip), "-o", str(out), "--start", "10"])  # a 1 s clip
    assert r.exit_code == 1
    assert f"error: {clip}: --start 10 s is at or past the end of the video (1.00 s)" in r.stderr
    assert "anonymized 0 of 1 file(s)" in r.stderr
    assert not out.exists()  # nothing to write: no output folder either


def _run_killed_then_again(args: list[str], folder: Path) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """Start the CLI with ``args``, kill -9 it once a partial file appears in ``folder``, then run it
    again to the end: (the partial files the killed run left, the second run)."""
    import os
    import signal
    import time

    cmd = [sys.executable, "-c", "from anonymizer.cli.app import main; main()", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not list(folder.glob(".*part*")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = sorted(p.name for p in folder.glob(".*part*"))
    return left, subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))


def test_a_killed_run_leaves_nothing_once_run_again(tmp_path) -> None:
    """kill -9 in the middle of writing a video, and of restoring it (a partial holding original faces,
    mode 0600): the next run of the same command removes what the killed one left."""
    (tmp_path / "in").mkdir()
    src = make_clip(tmp_path / "in" / "long.mp4", frames=180, speed=1)
    pw = tmp_path / "pw"
    pw.write_text("a long enough password")
    out, back = tmp_path / "out", tmp_path / "back"
    out.mkdir()
    left, again = _run_killed_then_again(
        ["anonymize", str(src), "-o", str(out), "--password-file", str(pw), "--lossless"], out
    )
    assert left and again.returncode == 0, (left, again.stderr)
    assert sorted(p.name for p in out.iterdir()) == ["long.mp4", "long.mp4.vault"]
    back.mkdir()
    left, again = _run_killed_then_again(["restore", str(out), "-o", str(back), "--password-file", str(pw)], back)
    assert left and again.returncode == 0, (left, again.stderr)
    assert sorted(p.name for p in back.iterdir()) == ["long.mp4"]
