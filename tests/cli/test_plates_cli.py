"""Licence plates through the CLI with the shipped plate detector: detect --targets plate --json, anonymize
--targets face,plate on photos and a video (with a key: exact restore), and the summary's counts."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from videoclips import car_photo, make_clip  # noqa: E402

from anonymizer.cli.app import app  # noqa: E402
from anonymizer.media.image import load_image  # noqa: E402


def _inputs(tmp: Path, samples: Path) -> tuple[Path, tuple[int, int, int, int]]:
    src = tmp / "in"
    src.mkdir()
    img, box = car_photo(80)
    cv2.imwrite(str(src / "car.png"), img[:, :, ::-1])
    shutil.copy(samples / "grace_hopper.jpg", src / "g.jpg")
    return src, box


def test_detect_plates_json(tmp_path: Path, samples: Path) -> None:
    src, box = _inputs(tmp_path, samples)
    r = CliRunner().invoke(app, ["detect", str(src), "--targets", "face,plate", "--json"])
    assert r.exit_code == 0, r.stderr
    rows = {Path(row["path"]).name: row for row in map(json.loads, r.stdout.splitlines())}
    (plate,) = rows["car.png"]["plates"]
    assert set(plate) == {"box", "score"} and 0 < plate["score"] <= 1
    cx, cy = (plate["box"][0] + plate["box"][2]) / 2, (plate["box"][1] + plate["box"][3]) / 2
    assert box[0] < cx < box[2] and box[1] < cy < box[3]
    assert rows["g.jpg"]["plates"] == [] and len(rows["g.jpg"]["faces"]) == 1
    r = CliRunner().invoke(app, ["detect", str(src / "car.png"), "--targets", "plate"])
    assert r.exit_code == 0 and "1 plate(s)" in r.stdout and "faces" not in r.stdout


def test_anonymize_faces_and_plates_photos_and_video(tmp_path: Path, samples: Path) -> None:
    src, box = _inputs(tmp_path, samples)
    make_clip(src / "clip.mp4", frames=6, audio=False, car=lambda i: (150 + 3 * i, 170, 50))
    pw = tmp_path / "pw"
    pw.write_text("number plates")
    out = tmp_path / "out"
    args = ["anonymize", str(src), "-o", str(out), "--targets", "face,plate", "--json", "--password-file", str(pw)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.stderr
    rows = {Path(row["path"]).name: row for row in map(json.loads, r.stdout.splitlines())}
    assert rows["car.png"]["plates"] == 1 and rows["g.jpg"] == {**rows["g.jpg"], "faces": 1, "plates": 0}
    assert rows["clip.mp4"]["plate_tracks"] == 1 and rows["clip.mp4"]["tracks"] >= 1
    assert "1 plate(s) covered in 2 photo(s)" in r.stderr and "1 plate track(s)" in r.stderr
    x1, y1, x2, y2 = box
    assert (load_image(out / "car.png").rgb[y1:y2, x1:x2] == 0).all()
    back = tmp_path / "r"
    r = CliRunner().invoke(app, ["restore", str(out / "car.png"), "-o", str(back), "--password-file", str(pw)])
    assert r.exit_code == 0, r.stderr
    np.testing.assert_array_equal(load_image(back / "car.png").rgb, load_image(src / "car.png").rgb)


@pytest.mark.parametrize(
    ("targets", "option", "refused", "taken"),
    [("face,plate", "--watch", "person", "face,plate"), ("plate", "--plate-every", "0", "3")],
)
def test_video_plate_options_refuse_bad_values_and_take_good_ones(
    tmp_path: Path, targets: str, option: str, refused: str, taken: str
) -> None:
    """--watch names the targets looked at again (persons refused); --plate-every sets the plates' cadence
    (0 refused): a bad value is a usage error before anything is written, a good one covers the plate."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "clip.mp4", frames=6, audio=False, car=lambda i: (150 + 3 * i, 170, 50))
    out = tmp_path / "out"
    base = ["anonymize", str(src), "-o", str(out), "--targets", targets, "--json"]
    r = CliRunner().invoke(app, [*base, option, refused])
    assert r.exit_code == 2 and option in r.stderr and not out.exists()
    r = CliRunner().invoke(app, [*base, option, taken])
    assert r.exit_code == 0, r.stderr
    (row,) = map(json.loads, r.stdout.splitlines())
    assert row["plate_tracks"] == 1
