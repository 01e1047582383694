"""Shared fixtures. Converted weights go to a per-session cache so every run exercises the conversion."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DATA = Path(os.environ.get("ANONYMIZER_DATA", ROOT.parent / "shared" / "data"))

_HOME = tempfile.mkdtemp(prefix="anonymizer-test-home-")
os.environ["ANONYMIZER_HOME"] = _HOME


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (research-only); tests that need it skip when it is absent (a user's fresh clone)."""
    if not DATA.is_dir():
        pytest.skip(f"research data not found at {DATA} (only present in the project's dev machines)")
    return DATA


@pytest.fixture(scope="module")
def small_faces(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 training and 4 held-out faces-utk crops (the first by name) in a folder of their own."""
    import shutil

    from anonymizer.train.faces import is_held_out

    src = data_dir / "faces-utk"
    names = sorted(p.name for p in src.iterdir() if p.suffix.lower() == ".jpg")
    picked = [n for n in names if not is_held_out(n)][:12] + [n for n in names if is_held_out(n)][:4]
    dst = tmp_path_factory.mktemp("faces")
    for n in picked:
        shutil.copy2(src / n, dst / n)
    return dst


@pytest.fixture(scope="session")
def finder():
    """The default face finder, loaded once for the whole session."""
    from anonymizer.api import get_finder

    return get_finder()
