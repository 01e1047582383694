"""What the CLI takes from folders, what it leaves out (and says so), and nothing to do as a usage error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from anonymizer.cli.app import app


@pytest.fixture
def mixed(tmp_path: Path, samples: Path) -> Path:
    """A folder as a user has it: a PNG, a GIF, a photo without an extension, notes and a hidden file."""
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(samples / "grace_hopper.jpg", root / "hopper.jpg")
    with Image.open(samples / "astronaut.png") as im:
        im.convert("RGB").save(root / "astronaut.gif")
        im.convert("RGB").save(root / "astronaut_scan", format="PNG")
    (root / "notes.txt").write_text("not a photo\n")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root


def test_folder_takes_every_photo_by_content_and_lists_the_rest(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["anonymize", str(mixed), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "anonymized 3 of 3 file(s)" in result.stderr and "2 other file(s) skipped" in result.stderr
    assert f"skipped {mixed / 'notes.txt'}: not a photo or video" in result.stderr
    assert f"skipped {mixed / '.DS_Store'}: hidden file" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.png", "astronaut_scan.png", "hopper.jpg"]


def test_detect_lists_skipped_files_too(mixed: Path) -> None:
    result = CliRunner().invoke(app, ["detect", str(mixed), "--upscale", "0"])
    assert result.exit_code == 0, result.output
    assert f"{mixed / 'astronaut_scan'}: 1 face(s)" in result.stdout
    assert f"skipped {mixed / 'notes.txt'}: not a photo or video" in result.stderr


@pytest.mark.parametrize(
    "command", [["anonymize", "-o", "OUT"], ["detect"], ["enhance", "-o", "OUT"], ["restore", "-o", "OUT"], ["audit"]]
)
def test_nothing_to_do_is_a_usage_error_naming_the_folder(tmp_path: Path, command: list[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("text\n")
    args = [a.replace("OUT", str(tmp_path / "out")) for a in command]
    if command[0] == "restore":
        args += ["--password-env", "PW"]
    result = CliRunner().invoke(app, [args[0], str(empty), *args[1:]], env={"PW": "a long enough password"})
    assert result.exit_code == 2, result.output
    assert str(empty) in result.stderr and "no photos or videos" in result.stderr
    assert not (tmp_path / "out").exists()
