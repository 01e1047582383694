"""The `anonymizer` command: help, anonymize, detect, models, bad inputs, and one run of the installed script."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import anonymizer
from anonymizer.api import AnonymizeOptions
from anonymizer.cli.app import app
from anonymizer.media.image import load_image
from anonymizer.pipeline import models, photo
from anonymizer.pipeline.photo import FaceFinder


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _files(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones included): relative path -> sha256."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _flat(text: str) -> str:
    """Help text without rich's box drawing and line wrapping."""
    return " ".join(text.replace("│", " ").split())


def _read(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
    return im


def _bomb_png() -> bytes:
    """A real 8x8 PNG whose IHDR claims 60000 x 60000 pixels (valid CRC)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">II", data, 16, 60_000, 60_000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# help and version -------------------------------------------------------------------------------------


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"anonymizer {anonymizer.__version__}"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_commands(runner: CliRunner, flag: str) -> None:
    result = runner.invoke(app, [flag])
    assert result.exit_code == 0
    for command in ("anonymize", "detect", "models"):
        assert command in result.stdout


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2 and "anonymize" in result.output  # the help, on stderr as a usage error


def test_anonymize_help_shows_defaults(runner: CliRunner) -> None:
    result = runner.invoke(app, ["anonymize", "--help"])
    assert result.exit_code == 0
    text = _flat(result.stdout)
    for default in ("solid", "1.5", "ellipse", "0.05", "95", "3", "libx264", "18"):
        assert f"[default: {default}]" in text or f"[default: {default};" in text, default
    assert "smaller faces need 0.6 of it, faces of 64 px and more 2x it (at most 0.5)" in text
    # photo and video defaults may differ; the help names both
    assert "Default: 0.2 for photos" in text and "0.2 for videos" in text
    assert "Default: 2.0 for photos, 0 for videos" in text
    assert "Default: centerface for photos, centerface_int8 for videos" in text
    assert "--output" in text and "--format" in text and "--json" in text and "--keep-metadata" in text


# anonymize --------------------------------------------------------------------------------------------


@pytest.fixture
def photo_tree(tmp_path: Path, samples: Path) -> Path:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    shutil.copy(samples / "astronaut.png", root / "astronaut.png")
    shutil.copy(samples / "grace_hopper.jpg", root / "sub" / "grace_hopper.jpg")
    (root / "sub" / "notes.txt").write_text("not a photo, not walked\n")
    return root


def test_anonymize_folder_mirrors_tree(runner: CliRunner, photo_tree: Path, tmp_path: Path, finder: FaceFinder) -> None:
    before = _files(photo_tree)
    out = tmp_path / "out"
    result = runner.invoke(app, ["anonymize", str(photo_tree), "-o", str(out), "--method", "solid"])
    assert result.exit_code == 0, result.output
    assert (
        f"anonymized 2 of 2 file(s) into {out}: 2 face(s) covered in 2 photo(s); 1 other file(s) skipped"
        in result.stderr
    )
    assert _files(photo_tree) == before  # inputs byte-identical, nothing added next to them
    assert sorted(_files(out)) == ["astronaut.png", "sub/grace_hopper.jpg"]
    for rel, fmt in (("astronaut.png", "PNG"), ("sub/grace_hopper.jpg", "JPEG")):
        assert _read(out / rel).format == fmt
        src = load_image(photo_tree / rel).rgb
        dst = load_image(out / rel).rgb
        assert dst.shape == src.shape
        (face,) = finder.find(src)
        x1, y1, x2, y2 = (int(v) for v in face.box)
        inside = np.abs(dst[y1:y2, x1:x2].astype(int) - src[y1:y2, x1:x2].astype(int)).mean()
        assert inside > 30, rel
        assert dst[y1:y2, x1:x2].mean() < 10, rel  # solid black
        # Far from the face the photo is untouched (up to JPEG re-encoding).
        corner = np.abs(dst[-40:, :40].astype(int) - src[-40:, :40].astype(int)).mean()
        assert corner < 3, rel


def test_anonymize_default_is_solid(runner: CliRunner, samples: Path, tmp_path: Path, finder: FaceFinder) -> None:
    """Without --method a face is filled solid: the same output as --method solid, black over the face."""
    outs = {}
    for name, extra in (("default", []), ("solid", ["--method", "solid"]), ("pixelate", ["--method", "pixelate"])):
        r = runner.invoke(
            app, ["anonymize", str(samples / "grace_hopper.jpg"), "-o", str(tmp_path / name), "--format", "png", *extra]
        )
        assert r.exit_code == 0, r.output
        outs[name] = (tmp_path / name / "grace_hopper.png").read_bytes()
    assert outs["default"] == outs["solid"] != outs["pixelate"]
    dst = load_image(tmp_path / "default" / "grace_hopper.png").rgb
    (face,) = finder.find(load_image(samples / "grace_hopper.jpg").rgb)
    x1, y1, x2, y2 = (int(v) for v in face.box)
    assert (dst[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1] == 0).all()


def test_anonymize_with_the_int8_detector(runner: CliRunner, samples: Path, tmp_path: Path, finder: FaceFinder) -> None:
    """--detector centerface_int8 covers the face the float detector finds, and an unknown detector is a usage
    error; the options refuse it in the API too."""
    src = samples / "grace_hopper.jpg"
    r = runner.invoke(app, ["anonymize", str(src), "-o", str(tmp_path / "int8"), "--detector", "centerface_int8"])
    assert r.exit_code == 0, r.output
    dst = load_image(tmp_path / "int8" / "grace_hopper.jpg").rgb
    (face,) = finder.find(load_image(src).rgb)
    x1, y1, x2, y2 = (int(v) for v in face.box)
    inner = dst[y1 + 4 : y2 - 4, x1 + 4 : x2 - 4]
    assert (inner < 16).mean() > 0.99  # black over the face (a JPEG's edges aside)
    r = runner.invoke(app, ["anonymize", str(src), "-o", str(tmp_path / "bad"), "--detector", "yolo"])
    assert r.exit_code == 2 and not (tmp_path / "bad").exists()
    with pytest.raises(anonymizer.InputError, match="unknown face detector 'yolo'"):
        AnonymizeOptions(detector="yolo")


def test_anonymize_format_png(runner: CliRunner, photo_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["anonymize", str(photo_tree), "-o", str(out), "--format", "png", "--upscale", "0"])
    assert result.exit_code == 0, result.output
    assert sorted(_files(out)) == ["astronaut.png", "sub/grace_hopper.png"]
    assert {_read(p).format for p in out.rglob("*.png")} == {"PNG"}


def test_anonymize_json_lines(runner: CliRunner, photo_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (photo_tree / "sub" / "broken.jpg").write_bytes(b"")
    result = runner.invoke(app, ["anonymize", str(photo_tree), "-o", str(out), "--json", "--upscale", "0"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    rows = {Path(r["path"]).name: r for r in map(json.loads, lines)}
    assert set(rows) == {"astronaut.png", "broken.jpg", "grace_hopper.jpg"}
    assert rows["astronaut.png"] == {
        "path": str(photo_tree / "astronaut.png"),
        "output": str((out / "astronaut.png").resolve()),
        "faces": 1,
    }
    assert Path(rows["grace_hopper.jpg"]["output"]).is_file()
    assert set(rows["broken.jpg"]) == {"path", "error"} and "empty file" in rows["broken.jpg"]["error"]


def test_anonymize_bad_files_in_a_batch(runner: CliRunner, tmp_path: Path, samples: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(samples / "camera.png", src / "good.png")
    png = (samples / "astronaut.png").read_bytes()
    bad = {
        "zero.jpg": b"",
        "truncated.png": png[: len(png) // 2],
        "text.png": b"hello, I am not a picture\n" * 10,
        "bomb.png": _bomb_png(),
    }
    for name, data in bad.items():
        (src / name).write_bytes(data)
    out = tmp_path / "out"
    result = runner.invoke(app, ["anonymize", str(src), "-o", str(out), "--upscale", "0"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert _files(out).keys() == {"good.png"}  # no partial or temporary files
    assert list(out.iterdir()) == [out / "good.png"]
    assert _read(out / "good.png").size == (512, 512)
    lines = result.stderr.splitlines()
    assert "anonymized 1 of 5 file(s)" in result.stderr
    for name in bad:
        named = [line for line in lines if str(src / name) in line]
        assert len(named) == 1, (name, lines)
        assert named[0].startswith("error: ")
    assert "Traceback" not in result.output


def test_anonymize_output_inside_input(runner: CliRunner, photo_tree: Path) -> None:
    out = photo_tree / "anonymized"
    result = runner.invoke(app, ["anonymize", str(photo_tree), "-o", str(out)])
    assert result.exit_code == 2
    assert "inside the input folder" in result.stderr and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_anonymize_missing_input(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.jpg"
    result = runner.invoke(app, ["anonymize", str(missing), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"error: {missing}: no such file or folder" in result.stderr
    assert not (tmp_path / "out").exists()


def test_anonymize_output_folder_cannot_be_created(runner: CliRunner, tmp_path: Path, samples: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    out = blocker / "out"
    result = runner.invoke(app, ["anonymize", str(samples / "camera.png"), "-o", str(out), "--upscale", "0"])
    assert result.exit_code == 1
    assert "cannot create the output folder" in result.stderr and str(out) in result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_anonymize_corrupt_tiff_fails_only_that_file(runner: CliRunner, tmp_path: Path, samples: Path) -> None:
    # Regression: Pillow's TypeError for this file used to stop the whole batch with a traceback.
    src = tmp_path / "in"
    src.mkdir()
    buf = io.BytesIO()
    Image.new("RGB", (16, 8)).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    first = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, first)[0]
    struct.pack_into("<I", data, first + 2 + 12 * count, len(data) + 1000)
    (src / "a_broken.tif").write_bytes(bytes(data))
    shutil.copy(samples / "camera.png", src / "b_good.png")
    out = tmp_path / "out"
    result = runner.invoke(app, ["anonymize", str(src), "-o", str(out), "--upscale", "0"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert (out / "b_good.png").is_file()
    assert str(src / "a_broken.tif") in result.stderr


def test_anonymize_jpe_file(runner: CliRunner, tmp_path: Path, samples: Path) -> None:
    # Regression: '.jpe' files were walked but their format was unknown, so encoding failed.
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(samples / "grace_hopper.jpg", src / "photo.jpe")
    out = tmp_path / "out"
    result = runner.invoke(app, ["anonymize", str(src), "-o", str(out), "--upscale", "0"])
    assert result.exit_code == 0, result.stderr
    (written,) = out.iterdir()
    assert _read(written).format == "JPEG"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores to tell 1 thread from the default")
def test_anonymize_threads_option_is_kept(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh finder cache (so a finder is built during the run) with random weights (cheap to build).
    monkeypatch.setattr(models, "_finder", functools.lru_cache(maxsize=4)(models._finder.__wrapped__))
    real_build = photo.build_model
    monkeypatch.setattr(photo, "build_model", lambda name, weights="default": real_build(name, weights=None))
    Image.new("RGB", (32, 32), (128, 128, 128)).save(tmp_path / "grey.png")
    threads = torch.get_num_threads()
    try:
        result = runner.invoke(
            app,
            ["anonymize", str(tmp_path / "grey.png"), "-o", str(tmp_path / "out"), "--threads", "1", "--upscale", "0"],
        )
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


# detect and models -------------------------------------------------------------------------------------


def test_detect_json(runner: CliRunner, samples: Path) -> None:
    result = runner.invoke(app, ["detect", str(samples / "astronaut.png"), str(samples / "camera.png"), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["astronaut.png", "camera.png"]
    for row in rows:
        assert set(row) == {"path", "width", "height", "faces"}
        assert (row["width"], row["height"]) == (512, 512)
        assert len(row["faces"]) == 1
        for face in row["faces"]:
            assert set(face) == {"box", "score", "landmarks"}
            assert len(face["box"]) == 4 and all(isinstance(v, float) for v in face["box"])
            assert isinstance(face["score"], float) and 0 < face["score"] <= 1
            assert len(face["landmarks"]) == 5
            assert all(len(p) == 2 and all(isinstance(v, float) for v in p) for p in face["landmarks"])


def test_detect_text_and_errors(runner: CliRunner, samples: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    result = runner.invoke(app, ["detect", str(samples / "astronaut.png"), str(tmp_path / "empty.png")])
    assert result.exit_code == 1
    assert f"{samples / 'astronaut.png'}: 1 face(s)" in result.stdout
    assert f"error: {tmp_path / 'empty.png'}: empty file" in result.stderr
    result = runner.invoke(app, ["detect", str(tmp_path / "missing.png")])
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_models(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert result.stdout.startswith("centerface")
    assert "MIT" in result.stdout
    result = runner.invoke(app, ["models", "--json"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(r["name"] == "centerface" and r["model"] == "centerface" for r in rows)


# the installed console script -------------------------------------------------------------------------


def test_console_script_end_to_end(tmp_path: Path, samples: Path) -> None:
    script = Path(sys.executable).parent / "anonymizer"
    if not script.is_file():
        found = shutil.which("anonymizer")
        assert found, "the anonymizer console script is not installed"
        script = Path(found)
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(script), "anonymize", str(samples / "grace_hopper.jpg"), "-o", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=120,  # ANONYMIZER_HOME (set by conftest) is inherited: the weights cache is a temp dir
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = (json.loads(line) for line in proc.stdout.splitlines())
    assert row["faces"] == 1 and Path(row["output"]) == (out / "grace_hopper.jpg").resolve()
    assert _read(out / "grace_hopper.jpg").format == "JPEG"
    assert "anonymized 1 of 1 file(s)" in proc.stderr


def test_contact_sheet_is_written_for_review_and_kept_out_of_the_output(
    runner: CliRunner, tmp_path: Path, samples: Path
) -> None:
    out = tmp_path / "out"
    args = ["anonymize", str(samples / "astronaut.png"), "-o", str(out), "--upscale", "0"]
    inside = runner.invoke(app, [*args, "--contact-sheet", str(out / "sheet.png")])
    assert inside.exit_code == 2 and "outside the output folder" in inside.stderr
    assert not out.exists() or not any(out.iterdir())
    sheet = tmp_path / "review" / "sheet.png"
    result = runner.invoke(app, [*args, "--contact-sheet", str(sheet)])
    assert result.exit_code == 0, result.stderr
    im = Image.open(sheet)
    assert im.format == "PNG" and im.height > 320 and im.width > 640
    assert np.asarray(im.convert("RGB"))[2, 2].tolist() == [190, 0, 0]  # the red "review only" banner
    assert sheet.stat().st_mode & 0o777 == 0o600  # it shows the original faces: its owner's only


# enhance ----------------------------------------------------------------------------------------------


def test_enhance_folder_writes_pngs_and_reports_bad_files(runner: CliRunner, tmp_path: Path, samples: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.open(samples / "grace_hopper.jpg").convert("RGB").resize((40, 48)).save(src / "sub" / "small.jpg")
    Image.new("RGBA", (20, 16), (10, 200, 30, 128)).save(src / "alpha.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    before = _files(src)
    out = tmp_path / "out"
    result = runner.invoke(app, ["enhance", str(src), "-o", str(out), "--model", "srgan", "--json"])
    assert result.exit_code == 1
    assert "broken.jpg" in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {Path(r["path"]).name for r in rows} == {"small.jpg", "alpha.png", "broken.jpg"}
    small = load_image(out / "sub" / "small.png")
    assert small.rgb.shape == (192, 160, 3)
    alpha = load_image(out / "alpha.png")
    assert alpha.rgb.shape == (64, 80, 3) and alpha.alpha is not None and int(alpha.alpha.mean()) in range(120, 137)
    assert not (out / "broken.png").exists()
    assert _files(src) == before  # inputs untouched
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["alpha.png", "small.png"]  # no temp files left


def test_enhance_rejects_other_scales(runner: CliRunner, tmp_path: Path, samples: Path) -> None:
    result = runner.invoke(app, ["enhance", str(samples / "camera.png"), "-o", str(tmp_path / "o"), "--scale", "2"])
    assert result.exit_code == 2
    assert not (tmp_path / "o").exists()
