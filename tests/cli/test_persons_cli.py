"""Whole people through the CLI and the API with the shipped person Mask R-CNN: detect with instance-id
masks (a video's per frame and track), anonymize --targets face,person (with a key: exact restore; a video
beside the photo), bad targets."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from videoclips import make_clip, walker_clip  # noqa: E402

from anonymizer.cli.app import app  # noqa: E402
from anonymizer.media.image import load_image  # noqa: E402


@pytest.fixture(scope="module")
def astronaut_persons(samples: Path):
    from anonymizer import segment_persons

    return segment_persons(samples / "astronaut.png")


def test_segment_persons_finds_the_astronaut(astronaut_persons, samples: Path) -> None:
    from anonymizer import detect_faces

    assert astronaut_persons, "the astronaut must be found"
    best = astronaut_persons[0]
    assert best.score >= 0.5 and best.mask.shape == (512, 512) and best.mask.dtype == bool
    assert 0.1 < best.mask.mean() < 0.8
    face = detect_faces(samples / "astronaut.png").faces[0]
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    assert any(p.mask[int(cy), int(cx)] for p in astronaut_persons), "the person mask covers her face"
    x1, y1, x2, y2 = best.box
    ys, xs = np.nonzero(best.mask)
    assert abs(xs.min() - x1) < 12 and abs(ys.max() + 1 - y2) < 12  # box and mask agree


def test_detect_persons_json_and_masks_dir(runner_tmp, samples: Path, astronaut_persons) -> None:
    runner, tmp = runner_tmp
    src = tmp / "in"
    src.mkdir()
    shutil.copy(samples / "astronaut.png", src / "a.png")
    shutil.copy(samples / "grace_hopper.jpg", src / "g.jpg")
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    masks = tmp / "masks"
    r = runner.invoke(app, ["detect", str(src), "--targets", "face,person", "--json", "--masks-dir", str(masks)])
    assert r.exit_code == 1 and "bad.png" in r.stderr
    rows = {Path(row["path"]).name: row for row in map(json.loads, r.stdout.splitlines())}
    a = rows["a.png"]
    assert len(a["faces"]) == 1 and len(a["persons"]) == len(astronaut_persons)
    assert set(a["persons"][0]) == {"box", "score"}
    ids = np.asarray(Image.open(masks / "a.png"))
    assert ids.shape == (512, 512) and ids.dtype == np.uint8
    assert set(np.unique(ids)) <= set(range(len(a["persons"]) + 1)) and (ids == 1).mean() > 0.1
    assert a["masks"] == str(masks / "a.png") and (masks / "g.png").is_file() and not (masks / "bad.png").exists()
    assert "error" in rows["bad.png"]


def test_detect_video_person_tracks_and_their_masks(runner_tmp) -> None:
    runner, tmp = runner_tmp
    src = tmp / "in"
    src.mkdir()
    walker_clip(src / "walk.mp4", frames=8)
    masks = tmp / "masks"
    r = runner.invoke(app, ["detect", str(src), "--targets", "person", "--json", "--masks-dir", str(masks)])
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.stdout.splitlines()[0])
    assert row["frames"] == 8 and "faces" not in row and row["masks"] == str(masks / "walk")
    tracks = row["persons"]
    assert tracks and all(set(t) == {"track", "first", "last", "detections", "box"} for t in tracks)
    assert sum(t["detections"] for t in tracks) >= 3 and min(t["first"] for t in tracks) == 0
    files = sorted(p.name for p in (masks / "walk").iterdir())
    expected = {f"{i:06d}_{t['track']:04d}.png" for t in tracks for i in range(t["first"], t["last"] + 1)}
    assert set(files) == expected
    m = np.asarray(Image.open(masks / "walk" / files[0]))
    assert m.shape == (360, 480) and set(np.unique(m)) == {0, 255}
    assert not list(tmp.glob("masks/.*"))  # no staging folder left
    r = runner.invoke(app, ["detect", str(src / "walk.mp4"), "--targets", "face,person"])
    assert r.exit_code == 0 and "person track(s)" in r.stdout and "frames 0-7" in r.stdout


def test_detect_usage_errors(runner_tmp, samples: Path) -> None:
    runner, tmp = runner_tmp
    r = runner.invoke(app, ["detect", str(samples / "astronaut.png"), "--masks-dir", str(tmp / "m")])
    assert r.exit_code == 2 and "--targets person" in r.stderr
    r = runner.invoke(app, ["detect", str(samples / "astronaut.png"), "--targets", "car"])
    assert r.exit_code == 2 and "targets must be" in r.stderr
    assert not (tmp / "m").exists()


def test_anonymize_persons_and_restore_exactly(runner_tmp, samples: Path, astronaut_persons) -> None:
    runner, tmp = runner_tmp
    src = tmp / "in"
    src.mkdir()
    shutil.copy(samples / "astronaut.png", src / "a.png")
    make_clip(src / "clip.mp4", frames=3)
    pw = tmp / "pw"
    pw.write_text("whole people")
    out = tmp / "out"
    r = runner.invoke(
        app,
        [
            "anonymize",
            str(src),
            "-o",
            str(out),
            "--targets",
            "face,person",  # default method with persons: solid
            "--json",
            "--password-file",
            str(pw),
        ],
    )
    assert r.exit_code == 0, r.stderr
    rows = {Path(row["path"]).name: row for row in map(json.loads, r.stdout.splitlines())}
    assert rows["a.png"]["persons"] == len(astronaut_persons) and rows["a.png"]["faces"] == 1
    assert rows["clip.mp4"]["person_tracks"] >= 0 and rows["clip.mp4"]["frames"] > 0  # videos take persons too
    assert "person(s) covered" in r.stderr
    original = load_image(src / "a.png").rgb
    covered = load_image(out / "a.png").rgb
    mask = astronaut_persons[0].mask
    assert (covered[mask] == 0).all()  # solid black over the whole person
    r = runner.invoke(app, ["restore", str(out / "a.png"), "-o", str(tmp / "r"), "--password-file", str(pw)])
    assert r.exit_code == 0, r.stderr
    np.testing.assert_array_equal(load_image(tmp / "r" / "a.png").rgb, original)


def test_anonymize_bad_targets(runner_tmp, samples: Path) -> None:
    runner, tmp = runner_tmp
    r = runner.invoke(
        app, ["anonymize", str(samples / "astronaut.png"), "-o", str(tmp / "o"), "--targets", "face,,dog"]
    )
    assert r.exit_code == 2 and "targets must be" in r.stderr
    assert not (tmp / "o").exists()


@pytest.fixture()
def runner_tmp(tmp_path: Path) -> tuple[CliRunner, Path]:
    return CliRunner(), tmp_path
