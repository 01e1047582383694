"""What the CLI says while it works: -v stage timings, password warnings, no Python warnings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from anonymizer.cli.app import app

LONG = "a passphrase long enough"


def test_verbose_logs_each_stage_with_its_time(samples: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "anonymizer"
    proc = subprocess.run(
        [str(exe), "-v", "anonymize", str(samples / "astronaut.png"), "-o", str(tmp_path / "out"), "--upscale", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "found 1 file(s) to anonymize (0 skipped) in" in err
    assert "loaded the face detector (photos) in" in err
    assert f"{samples / 'astronaut.png'}: read " in err and "1 face(s) found and covered" in err and "written" in err
    assert "Warning" not in err  # no Python warnings leak to the terminal
    quiet = subprocess.run(
        [str(exe), "anonymize", str(samples / "astronaut.png"), "-o", str(tmp_path / "out2"), "--upscale", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert quiet.returncode == 0 and "loaded the face detector" not in quiet.stderr


def test_a_short_password_is_accepted_with_a_warning(samples: Path, tmp_path: Path) -> None:
    args = ["anonymize", str(samples / "astronaut.png"), "--upscale", "0", "--password-env", "PW"]
    short = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "a")], env={"PW": "hunter2"})
    assert short.exit_code == 0, short.output
    assert "warning: the password has fewer than 12 characters" in short.stderr and "hunter2" not in short.output
    long = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "b")], env={"PW": LONG})
    assert long.exit_code == 0 and "warning" not in long.stderr
    # restoring says nothing about it: the password is the one the file was sealed with
    restored = CliRunner().invoke(
        app, ["restore", str(tmp_path / "a"), "-o", str(tmp_path / "r"), "--password-env", "PW"], env={"PW": "hunter2"}
    )
    assert restored.exit_code == 0 and "warning" not in restored.stderr


def test_ask_password_from_a_pipe_without_getpass_warnings(samples: Path, tmp_path: Path) -> None:
    args = ["anonymize", str(samples / "astronaut.png"), "--upscale", "0", "--ask-password"]
    ok = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "a")], input=f"{LONG}\n{LONG}\n")
    assert ok.exit_code == 0, ok.output
    assert "Warning" not in ok.output and LONG not in ok.output
    differ = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "b")], input=f"{LONG}\n{LONG}x\n")
    assert differ.exit_code == 2 and "the two passwords on standard input differ" in differ.stderr
    assert not (tmp_path / "b").exists()
