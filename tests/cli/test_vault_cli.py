"""`anonymize` with a key, `restore` and `keygen` end to end through the Typer app."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anonymizer.cli.app import app
from anonymizer.media import load_image
from anonymizer.vault.containers import extract

PASSWORD = "tr0ub4dor&3 correct horse"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def photos(tmp_path: Path, samples: Path) -> Path:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(samples / "astronaut.png", src / "astronaut.png")
    shutil.copy(samples / "grace_hopper.jpg", src / "sub" / "grace_hopper.jpg")
    return src


@pytest.fixture
def pwfile(tmp_path: Path) -> Path:
    p = tmp_path / "pw.txt"
    p.write_text(PASSWORD + "\n")
    return p


def _anonymize(runner: CliRunner, src: Path, out: Path, *extra: str):
    return runner.invoke(app, ["anonymize", str(src), "-o", str(out), "--upscale", "0", *extra])


def test_password_round_trip_restores_png_bit_for_bit(runner, photos, pwfile, tmp_path) -> None:
    anon, rest = tmp_path / "anon", tmp_path / "rest"
    r = _anonymize(runner, photos, anon, "--password-file", str(pwfile), "--json")
    assert r.exit_code == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    for f in anon.rglob("*"):
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes()
            assert extract(f.read_bytes())[0] is not None  # embedded
    r = runner.invoke(app, ["restore", str(anon), "-o", str(rest), "--password-file", str(pwfile)])
    assert r.exit_code == 0, r.stderr
    assert sorted(p.relative_to(rest).as_posix() for p in rest.rglob("*.png")) == [
        "astronaut.png",
        "sub/grace_hopper.png",
    ]
    np.testing.assert_array_equal(load_image(rest / "astronaut.png").rgb, load_image(photos / "astronaut.png").rgb)
    # JPEG output: the face region is exact, the rest is as decoded from the anonymized JPEG
    orig = load_image(photos / "sub" / "grace_hopper.jpg").rgb
    restored = load_image(rest / "sub" / "grace_hopper.png").rgb
    anon_px = load_image(anon / "sub" / "grace_hopper.jpg").rgb
    changed = np.any(anon_px != orig, axis=2) & np.any(restored == orig, axis=2)
    assert changed.sum() > 1000


def test_recipient_round_trip_and_field_device_cannot_restore(runner, photos, tmp_path) -> None:
    r = runner.invoke(app, ["keygen", "-o", str(tmp_path / "desk")])
    assert r.exit_code == 0, r.stderr
    priv, pub = tmp_path / "desk.key.pem", tmp_path / "desk.pub.pem"
    assert oct(priv.stat().st_mode & 0o777) == "0o600" and b"PRIVATE KEY" in priv.read_bytes()
    assert b"PUBLIC KEY" in pub.read_bytes()
    anon = tmp_path / "anon"
    assert _anonymize(runner, photos, anon, "--recipient", str(pub)).exit_code == 0
    other = tmp_path / "pw"
    other.write_text("guess")
    r = runner.invoke(app, ["restore", str(anon), "-o", str(tmp_path / "x"), "--password-file", str(other)])
    assert r.exit_code == 1 and "wrong password or key" in r.stderr
    assert not (tmp_path / "x").exists()
    r = runner.invoke(app, ["restore", str(anon), "-o", str(tmp_path / "rest"), "--identity", str(priv)])
    assert r.exit_code == 0, r.stderr
    np.testing.assert_array_equal(
        load_image(tmp_path / "rest" / "astronaut.png").rgb, load_image(photos / "astronaut.png").rgb
    )


def test_keygen_passphrase_and_no_overwrite(runner, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KEY_PASS", "a long passphrase")
    r = runner.invoke(app, ["keygen", "-o", str(tmp_path / "k"), "--passphrase-env", "KEY_PASS"])
    assert r.exit_code == 0, r.stderr
    assert b"ENCRYPTED" in (tmp_path / "k.key.pem").read_bytes()
    before = (tmp_path / "k.key.pem").read_bytes()
    r = runner.invoke(app, ["keygen", "-o", str(tmp_path / "k")])
    assert r.exit_code == 2 and "--force" in r.stderr
    assert (tmp_path / "k.key.pem").read_bytes() == before


def test_passphrase_protected_identity(runner, photos, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KEY_PASS", "a long passphrase")
    runner.invoke(app, ["keygen", "-o", str(tmp_path / "k"), "--passphrase-env", "KEY_PASS"])
    anon = tmp_path / "anon"
    _anonymize(runner, photos / "astronaut.png", anon, "--recipient", str(tmp_path / "k.pub.pem"))
    args = ["restore", str(anon), "-o", str(tmp_path / "rest"), "--identity", str(tmp_path / "k.key.pem")]
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and "wrong password or key" in r.stderr
    r = runner.invoke(app, [*args, "--identity-passphrase-env", "KEY_PASS"])
    assert r.exit_code == 0, r.stderr


def test_wrong_password_modified_file_and_no_vault(runner, photos, pwfile, tmp_path) -> None:
    anon = tmp_path / "anon"
    _anonymize(runner, photos / "astronaut.png", anon, "--password-file", str(pwfile))
    bad_pw = tmp_path / "bad"
    bad_pw.write_text(PASSWORD + "!")
    r = runner.invoke(app, ["restore", str(anon), "-o", str(tmp_path / "r1"), "--password-file", str(bad_pw)])
    assert r.exit_code == 1 and "wrong password or key" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r1").exists()

    data = bytearray((anon / "astronaut.png").read_bytes())
    data[5000] ^= 0x10  # a pixel byte
    (anon / "astronaut.png").write_bytes(bytes(data))
    r = runner.invoke(app, ["restore", str(anon), "-o", str(tmp_path / "r2"), "--password-file", str(pwfile)])
    assert r.exit_code == 1 and "integrity check failed" in r.stderr and "astronaut.png" in r.stderr
    assert not (tmp_path / "r2").exists()

    plain = tmp_path / "plain"
    _anonymize(runner, photos / "astronaut.png", plain)
    r = runner.invoke(app, ["restore", str(plain), "-o", str(tmp_path / "r3"), "--password-file", str(pwfile)])
    assert r.exit_code == 1 and "no vault found" in r.stderr


@pytest.mark.parametrize(("fmt", "extra"), [("tiff", []), ("png", ["--vault", "sidecar"])])
def test_sidecar_vaults(runner, photos, pwfile, tmp_path, fmt, extra) -> None:
    anon = tmp_path / "anon"
    r = _anonymize(runner, photos / "astronaut.png", anon, "--password-file", str(pwfile), "--format", fmt, *extra)
    assert r.exit_code == 0, r.stderr
    (out,) = [p for p in anon.iterdir() if not p.name.endswith(".vault")]
    assert (anon / (out.name + ".vault")).is_file()
    r = runner.invoke(app, ["restore", str(anon), "-o", str(tmp_path / "rest"), "--password-file", str(pwfile)])
    assert r.exit_code == 0, r.stderr
    assert [p.name for p in (tmp_path / "rest").iterdir()] == ["astronaut.png"]
    np.testing.assert_array_equal(
        load_image(tmp_path / "rest" / "astronaut.png").rgb, load_image(photos / "astronaut.png").rgb
    )


def test_password_sources(runner, photos, pwfile, tmp_path, monkeypatch) -> None:
    r = _anonymize(runner, photos, tmp_path / "a", "--password", PASSWORD)
    assert r.exit_code == 2  # no such option: a password on the command line leaks into history
    r = _anonymize(runner, photos, tmp_path / "a", "--password-env", "NOT_SET_ANYWHERE")
    assert r.exit_code == 2 and "NOT_SET_ANYWHERE" in r.stderr
    monkeypatch.setenv("ANON_PW", PASSWORD)
    r = _anonymize(runner, photos, tmp_path / "a", "--password-env", "ANON_PW", "--password-file", str(pwfile))
    assert r.exit_code == 2 and "one way only" in r.stderr
    r = _anonymize(runner, photos / "astronaut.png", tmp_path / "b", "--ask-password")
    assert r.exit_code != 0  # no input to the prompt
    r = runner.invoke(
        app,
        ["anonymize", str(photos / "astronaut.png"), "-o", str(tmp_path / "c"), "--upscale", "0", "--ask-password"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert r.exit_code == 0, r.stderr
    assert PASSWORD not in r.stdout
    r = runner.invoke(app, ["restore", str(tmp_path / "c"), "-o", str(tmp_path / "d"), "--password-env", "ANON_PW"])
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(app, ["restore", str(tmp_path / "c"), "-o", str(tmp_path / "e")])
    assert r.exit_code == 2 and "--identity" in r.stderr


def test_installed_script_round_trip(photos, pwfile, tmp_path) -> None:
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "anonymizer"
    env = dict(os.environ)
    out = subprocess.run(
        [
            str(exe),
            "anonymize",
            str(photos / "astronaut.png"),
            "-o",
            str(tmp_path / "a"),
            "--upscale",
            "0",
            "--password-file",
            str(pwfile),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    out = subprocess.run(
        [str(exe), "restore", str(tmp_path / "a"), "-o", str(tmp_path / "r"), "--password-file", str(pwfile)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    np.testing.assert_array_equal(
        load_image(tmp_path / "r" / "astronaut.png").rgb, load_image(photos / "astronaut.png").rgb
    )
