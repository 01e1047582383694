"""Passphrase-protected private key files (docs/key-file-format.md): the vault's KDF and bounds, strict
parsing before any derivation, old PKCS#8 files still readable with a warning, and `keygen --rewrap`."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from PIL import Image
from typer.testing import CliRunner

from anonymizer.cli.app import app
from anonymizer.errors import InputError, VaultError, WrongKeyError
from anonymizer.media import load_image
from anonymizer.vault import Identity, Key, Record, keys, seal
from anonymizer.vault.containers import embed
from anonymizer.vault.kdf import (
    ARGON2_DEFAULT,
    ARGON2_MAX,
    ARGON2_MIN,
    HAVE_ARGON2,
    SCRYPT_DEFAULT,
    SCRYPT_MAX,
    SCRYPT_MIN,
    check_kdf_params,
)

PASS = "correct horse battery staple"
KDF = "argon2id" if HAVE_ARGON2 else "scrypt"
FAST = ARGON2_MIN if HAVE_ARGON2 else SCRYPT_MIN  # the cheapest parameters a key file may use
BEGIN, END = b"-----BEGIN ANONYMIZER ENCRYPTED PRIVATE KEY-----", b"-----END ANONYMIZER ENCRYPTED PRIVATE KEY-----"


def _doc(data: bytes) -> dict:
    """The JSON object inside a key file."""
    lines = data.strip().splitlines()
    assert lines[0] == BEGIN and lines[-1] == END
    return json.loads(base64.b64decode(b"".join(lines[1:-1])))


def _armor_raw(blob: bytes) -> bytes:
    body = base64.b64encode(blob)
    return b"\n".join([BEGIN, *(body[i : i + 64] for i in range(0, len(body), 64)), END]) + b"\n"


def _armor(doc: dict) -> bytes:
    return _armor_raw(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.fixture(scope="module")
def ident() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def fast_file(ident: Identity) -> bytes:
    return ident.private_pem(PASS, kdf_params=FAST)


@pytest.fixture
def no_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any password derivation fail the test: the checks must come first."""

    def refuse(*args: object) -> bytes:
        raise AssertionError("the KDF ran")

    monkeypatch.setattr(keys, "derive_password_key", refuse)


def test_round_trip_with_the_vault_defaults(ident: Identity, tmp_path: Path) -> None:
    data = ident.private_pem(PASS)
    (tmp_path / "k.key.pem").write_bytes(data)
    loaded = Identity.load(tmp_path / "k.key.pem", PASS)
    assert loaded.public_pem() == ident.public_pem() and not loaded.legacy_wrapping
    assert b"BEGIN ENCRYPTED PRIVATE KEY" not in data and data.startswith(BEGIN + b"\n")
    assert all(len(line) <= 64 for line in data.splitlines())
    doc = _doc(data)
    assert doc["format"] == "anonymizer-key" and doc["version"] == 1 and doc["kdf"] == KDF
    assert doc["params"] == (ARGON2_DEFAULT if HAVE_ARGON2 else SCRYPT_DEFAULT)
    raw = ident._key.private_bytes_raw()
    assert raw not in base64.b64decode(doc["sealed"]) and PASS.encode() not in data
    assert base64.b64decode(doc["public"]) == ident.public_key.public_bytes_raw()
    assert len(base64.b64decode(doc["salt"])) == 16 and len(base64.b64decode(doc["nonce"])) == 12


def test_fresh_salt_and_nonce_each_time(ident: Identity, fast_file: bytes) -> None:
    again = _doc(ident.private_pem(PASS, kdf_params=FAST))
    first = _doc(fast_file)
    assert again["salt"] != first["salt"] and again["nonce"] != first["nonce"] and again["sealed"] != first["sealed"]


def test_unencrypted_keys_stay_plain_pkcs8(ident: Identity, tmp_path: Path, caplog) -> None:
    data = ident.private_pem()
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----")
    (tmp_path / "k.pem").write_bytes(data)
    with caplog.at_level(logging.WARNING):
        assert Identity.load(tmp_path / "k.pem").public_pem() == ident.public_pem()
    assert not caplog.records


def test_wrong_or_missing_passphrase(fast_file: bytes, tmp_path: Path) -> None:
    path = tmp_path / "k.key.pem"
    path.write_bytes(fast_file)
    with pytest.raises(WrongKeyError, match="wrong passphrase for this private key") as exc:
        Identity.load(path, PASS + "!")
    assert exc.value.path == str(path)
    with pytest.raises(WrongKeyError, match="give its passphrase"):
        Identity.load(path)


@pytest.mark.parametrize("field", ["sealed", "nonce", "salt"])
def test_a_modified_field_does_not_open(fast_file: bytes, tmp_path: Path, field: str) -> None:
    doc = _doc(fast_file)
    doc[field] = _flip(doc[field])
    (tmp_path / "k.key.pem").write_bytes(_armor(doc))
    with pytest.raises(WrongKeyError):
        Identity.load(tmp_path / "k.key.pem", PASS)


def test_public_key_is_authenticated_and_checked(ident: Identity, fast_file: bytes, tmp_path: Path) -> None:
    other = Identity.generate().public_key.public_bytes_raw()
    doc = _doc(fast_file)
    (tmp_path / "a.pem").write_bytes(_armor(dict(doc, public=base64.b64encode(other).decode())))
    with pytest.raises(WrongKeyError):  # "public" is in the associated data
        Identity.load(tmp_path / "a.pem", PASS)
    # sealed consistently by someone who knows the passphrase, but naming another public key
    desc = {k: v for k, v in doc.items() if k not in ("nonce", "sealed")} | {"public": base64.b64encode(other).decode()}
    wrap = keys._key_wrap_key(PASS.encode(), KDF, base64.b64decode(doc["salt"]), FAST)
    aad = json.dumps(desc, sort_keys=True, separators=(",", ":")).encode()
    sealed = AESGCM(wrap).encrypt(base64.b64decode(doc["nonce"]), ident._key.private_bytes_raw(), aad)
    (tmp_path / "b.pem").write_bytes(
        _armor(desc | {"nonce": doc["nonce"], "sealed": base64.b64encode(sealed).decode()})
    )
    with pytest.raises(InputError, match="does not match"):
        Identity.load(tmp_path / "b.pem", PASS)


def _below(kdf: str) -> dict:
    return {**ARGON2_MIN, "m": ARGON2_MIN["m"] - 1} if kdf == "argon2id" else {**SCRYPT_MIN, "n": SCRYPT_MIN["n"] // 2}


@pytest.mark.parametrize(
    ("kdf", "params", "match"),
    [
        ("argon2id", {**ARGON2_MIN, "t": 1}, "below the minimum"),
        ("argon2id", {**ARGON2_MIN, "m": 1024}, "below the minimum"),
        ("argon2id", {**ARGON2_MAX, "t": ARGON2_MAX["t"] + 1}, "above the maximum"),
        ("argon2id", {**ARGON2_MIN, "m": 4 * 1024 * 1024}, "above the maximum"),
        ("argon2id", {**ARGON2_MIN, "p": ARGON2_MAX["p"] + 1}, "above the maximum"),
        ("scrypt", {**SCRYPT_MIN, "n": 2**14}, "below the minimum"),
        ("scrypt", {**SCRYPT_MIN, "n": SCRYPT_MAX["n"] * 2}, "above the maximum"),
        ("scrypt", {**SCRYPT_MIN, "r": SCRYPT_MAX["r"] * 2}, "above the maximum"),
        ("argon2id", {**ARGON2_MIN, "x": 1}, "exactly"),
        ("argon2id", {"t": 2, "m": 19456}, "missing"),
        ("pbkdf2", {"i": 2048}, "unknown key derivation"),
    ],
)
def test_kdf_parameters_out_of_bounds_are_refused_before_deriving(
    fast_file, tmp_path, no_kdf, kdf, params, match
) -> None:
    (tmp_path / "k.key.pem").write_bytes(_armor(dict(_doc(fast_file), kdf=kdf, params=params)))
    with pytest.raises(InputError, match=f"not a valid anonymizer key file: .*{match}") as exc:
        Identity.load(tmp_path / "k.key.pem", PASS)
    assert exc.value.path == str(tmp_path / "k.key.pem")


def _mangled(fast_file: bytes) -> list[bytes]:
    doc = _doc(fast_file)
    body = b"".join(fast_file.strip().splitlines()[1:-1])
    return [
        BEGIN + b"\n" + END + b"\n",  # nothing inside
        fast_file.replace(END, b"-----END PRIVATE KEY-----"),
        BEGIN + b"\n" + body[:-4] + b"!!!!\n" + END,  # not base64
        BEGIN + b"\n" + body + b"\n" + END,  # one line longer than 64
        _armor(dict(doc, version=2)),
        _armor(dict(doc, version=True)),
        _armor(dict(doc, format="anonymizer-vault")),
        _armor(dict(doc, extra=1)),
        _armor({k: v for k, v in doc.items() if k != "public"}),
        _armor(dict(doc, salt=base64.b64encode(b"short").decode())),
        _armor(dict(doc, nonce=doc["nonce"].rstrip("=") + "A=")),
        _armor(dict(doc, sealed=12)),
        _armor_raw(json.dumps(doc, indent=1).encode()),  # not canonical
        _armor_raw(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()[:-1] + b',"kdf":"argon2id"}'),
        _armor_raw(b"[" * 2000),
        _armor_raw(b"\xff"),
        BEGIN + b"\n" + b"QUFB\n" * 2000 + END,  # too large
    ]


def test_malformed_files_are_input_errors_naming_the_file(fast_file: bytes, tmp_path: Path, no_kdf) -> None:
    path = tmp_path / "k.key.pem"
    for i, data in enumerate(_mangled(fast_file)):
        path.write_bytes(data)
        with pytest.raises(InputError, match="not a valid anonymizer key file") as exc:
            Identity.load(path, PASS)
        assert exc.value.path == str(path), i


def test_new_ceilings_keep_the_defaults_and_bind_the_key_file(ident: Identity) -> None:
    for kdf, params in [
        ("argon2id", ARGON2_DEFAULT),
        ("argon2id", ARGON2_MAX),
        ("scrypt", SCRYPT_DEFAULT),
        ("scrypt", SCRYPT_MAX),
    ]:
        assert check_kdf_params(kdf, dict(params)) == params
    assert ARGON2_MAX["m"] * 1024 <= 256 << 20 and 128 * SCRYPT_MAX["n"] * SCRYPT_MAX["r"] <= 256 << 20
    for bad in ({**ARGON2_MAX, "m": ARGON2_MAX["m"] + 1}, {**ARGON2_MAX, "p": ARGON2_MAX["p"] + 1}):
        with pytest.raises(VaultError, match="above the maximum"):
            check_kdf_params("argon2id", bad)
    with pytest.raises(InputError, match="above the maximum"):
        ident.private_pem(PASS, kdf="scrypt", kdf_params={**SCRYPT_MAX, "p": SCRYPT_MAX["p"] + 1})
    with pytest.raises(InputError, match="below the minimum"):
        ident.private_pem(PASS, kdf=KDF, kdf_params=_below(KDF))
    with pytest.raises(InputError, match="passphrase is empty"):
        ident.private_pem(b"")


def _legacy(ident: Identity, passphrase: str) -> bytes:
    enc = serialization.BestAvailableEncryption(passphrase.encode())
    return ident._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def test_legacy_pkcs8_file_loads_with_a_warning(ident: Identity, tmp_path: Path, caplog) -> None:
    path = tmp_path / "old.key.pem"
    path.write_bytes(_legacy(ident, PASS))
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with caplog.at_level(logging.WARNING, logger="anonymizer.vault.keys"):
        loaded = Identity.load(path, PASS)
    assert loaded.public_pem() == ident.public_pem() and loaded.legacy_wrapping
    [rec] = caplog.records
    assert rec.levelno == logging.WARNING and str(path) in rec.getMessage() and "--rewrap" in rec.getMessage()
    assert PASS not in caplog.text
    with pytest.raises(WrongKeyError, match="wrong passphrase"):
        Identity.load(path, "not it")
    with pytest.raises(WrongKeyError):
        Identity.load(path)


# --- the CLI -------------------------------------------------------------------------------------------


@pytest.fixture
def passfile(tmp_path: Path) -> Path:
    p = tmp_path / "pass.txt"
    p.write_text(PASS + "\n")
    return p


def _forged_photo(public_key) -> bytes:
    """A PNG with a vault for ``public_key`` whose one record puts a (1, 2, 3) square at the top left."""
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (90, 120, 150)).save(buf, format="PNG")
    crop = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(crop, format="PNG")
    info = {"kind": "image", "width": 40, "height": 30, "image_sha256": hashlib.sha256(buf.getvalue()).hexdigest()}
    records = [Record(meta={"box": [0, 0, 4, 4], "codec": "png"}, payload=crop.getvalue())]
    return embed(buf.getvalue(), seal(records, Key.from_recipients([public_key]), info=info))


def test_cli_keygen_writes_the_new_format_and_restore_reads_it(tmp_path: Path, passfile: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["keygen", "-o", str(tmp_path / "k"), "--passphrase-file", str(passfile)])
    assert r.exit_code == 0, r.stderr
    priv = tmp_path / "k.key.pem"
    assert oct(priv.stat().st_mode & 0o777) == "0o600" and priv.read_bytes().startswith(BEGIN)
    assert _doc(priv.read_bytes())["kdf"] == KDF and PASS not in r.stderr
    ident = Identity.load(priv, PASS)
    (tmp_path / "anon").mkdir()
    (tmp_path / "anon" / "x.png").write_bytes(_forged_photo(ident.public_key))
    args = ["restore", str(tmp_path / "anon"), "-o", str(tmp_path / "rest"), "--identity", str(priv)]
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and "give its passphrase" in r.stderr
    r = runner.invoke(app, [*args, "--identity-passphrase-file", str(passfile)])
    assert r.exit_code == 0, r.stderr
    out = load_image(tmp_path / "rest" / "x.png").rgb
    np.testing.assert_array_equal(out[0, 0], [1, 2, 3])


def test_cli_rewrap_turns_a_legacy_file_into_the_new_format(ident: Identity, tmp_path: Path, passfile: Path) -> None:
    path = tmp_path / "old.key.pem"
    path.write_bytes(_legacy(ident, PASS))
    path.chmod(0o600)
    runner = CliRunner()
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not it")
    before = path.read_bytes()
    r = runner.invoke(app, ["keygen", "--rewrap", str(path), "--passphrase-file", str(wrong)])
    assert r.exit_code == 1 and "wrong passphrase" in r.stderr and path.read_bytes() == before
    r = runner.invoke(app, ["keygen", "--rewrap", str(path)])
    assert r.exit_code == 2 and "needs the key's passphrase" in r.stderr and path.read_bytes() == before
    r = runner.invoke(app, ["keygen", "--rewrap", str(path), "--passphrase-file", str(passfile)])
    assert r.exit_code == 0, r.stderr
    assert path.read_bytes().startswith(BEGIN) and oct(path.stat().st_mode & 0o777) == "0o600"
    loaded = Identity.load(path, PASS)
    assert loaded.public_pem() == ident.public_pem() and not loaded.legacy_wrapping
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.key.pem", "pass.txt", "wrong.txt"]  # no temporaries left


def test_cli_keygen_needs_exactly_one_of_output_and_rewrap(tmp_path: Path, passfile: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["keygen"])
    assert r.exit_code == 2 and "--rewrap" in r.stderr
    r = runner.invoke(app, ["keygen", "-o", str(tmp_path / "k"), "--rewrap", str(tmp_path / "x.pem")])
    assert r.exit_code == 2 and "--output" in r.stderr
    assert list(tmp_path.iterdir()) == [passfile]
