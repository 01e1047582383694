"""`anonymizer anonymize --backend ray`: a local Ray started by the command, JSON rows, the summary, and
a second run that resumes from the manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("ray")

from anonymizer.cli.app import app  # noqa: E402


def test_backend_ray_from_the_command_line(samples, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("camera.png", "grace_hopper.jpg"):
        shutil.copy(samples / name, src / name)
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "out"
    args = ["anonymize", str(src), "-o", str(out), "--backend", "ray", "--workers", "2", "--threads", "1", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1  # one bad file fails, the rest are done
    rows = {Path(r["path"]).name: r for r in map(json.loads, res.stdout.splitlines())}
    assert rows["camera.png"]["faces"] >= 1 and rows["grace_hopper.jpg"]["faces"] == 1
    assert "broken.jpg" in rows["broken.jpg"]["error"]
    assert "anonymized 2 of 3 file(s)" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == [".anonymizer-manifest.jsonl", "camera.png", "grace_hopper.jpg"]
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # inputs untouched
    again = CliRunner().invoke(app, args)
    assert "2 finished earlier, skipped" in again.stderr and "anonymized 0 of 3" in again.stderr


def test_backend_ray_help_names_its_options() -> None:
    res = CliRunner().invoke(app, ["anonymize", "--help"], terminal_width=200)
    for option in ("--backend", "--address", "--workers", "--segment-seconds"):
        assert option in res.stdout


def test_cluster_options_without_backend_ray_are_refused(samples, tmp_path) -> None:
    res = CliRunner().invoke(
        app, ["anonymize", str(samples / "camera.png"), "-o", str(tmp_path / "o"), "--workers", "2"]
    )
    assert res.exit_code == 2 and "--backend ray" in res.stderr
    assert not (tmp_path / "o").exists()
