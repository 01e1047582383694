"""Every command's --help as a new user reads it, and the generated CLI reference (cli/README.md)."""

from __future__ import annotations

import html
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anonymizer.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("anonymize", "restore", "detect", "audit", "enhance", "keygen", "models")


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_plain_and_readable(command: str) -> None:
    text = _help(command)
    # flags are switches: no value type shown for them (rich's help printed "<bool>" on every flag, so
    # "--keep-metadata yes" looked right and then read "yes" as an input)
    assert "<bool>" not in text
    usage = text.strip().splitlines()[0]
    assert usage.startswith(f"Usage: anonymizer {command} [OPTIONS]")
    assert "{" not in usage and "}" not in usage, usage


def test_usage_names_the_arguments() -> None:
    assert _help("anonymize").splitlines()[0].strip() == "Usage: anonymizer anonymize [OPTIONS] INPUTS..."
    assert _help("keygen").splitlines()[0].strip() == "Usage: anonymizer keygen [OPTIONS]"


def test_install_hints_are_verbatim() -> None:
    # rich's markup took "[ray]" for a style tag and printed "pip install 'anonymizer'"
    assert "pip install 'anonymizer[ray]'" in " ".join(_help("anonymize").split())


def test_switches_name_both_sides_and_their_default() -> None:
    text = " ".join(_help("anonymize").split())
    assert "--keep-metadata / --strip-metadata" in text and "[default: strip-metadata]" in text
    assert "--lossless / --lossy" in text and "[default: lossy]" in text
    assert "--cut / --no-cut" in text and "[default: no-cut]" in text


def test_a_switch_takes_no_value(tmp_path: Path) -> None:
    # "yes" is not swallowed as the switch's value: it is an input, and a missing one
    result = CliRunner().invoke(app, ["anonymize", "--keep-metadata", "yes", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "yes" in result.stderr and "no such file or folder" in result.stderr
    assert not (tmp_path / "o").exists()


def test_cli_reference_is_current() -> None:
    """cli/README.md is what `make cli-docs` generates from the code today."""
    made = subprocess.run(
        [sys.executable, "-m", "typer", "anonymizer.cli.app", "utils", "docs", "--name", "anonymizer"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    committed = (ROOT / "cli" / "README.md").read_text()
    assert html.unescape(made.stdout) == committed, "cli/README.md is stale: run `make cli-docs`"
    assert "&#" not in committed and "pip install 'anonymizer[ray]'" in committed
