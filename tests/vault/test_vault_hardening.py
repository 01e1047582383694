"""Crafted vaults and containers (an attacker may hold a recipient's public key): only VaultError, fast."""

from __future__ import annotations

import hashlib
import io
import json
import struct

import numpy as np
import pytest
from PIL import Image

from anonymizer import VaultError, VaultIntegrityError, WrongKeyError
from anonymizer.api import restore_image
from anonymizer.vault import Identity, Key, Record, open_vault, parse, seal
from anonymizer.vault.containers import JPEG_ID, embed, extract
from anonymizer.vault.format import MAGIC, VERSION

FAST = {"t": 2, "m": 19456, "p": 1}


def _image(fmt: str = "PNG", size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buf.getvalue()


def _forge(image: bytes, records: list[Record], key: Key, size: tuple[int, int] = (40, 30)) -> bytes:
    info = {"kind": "image", "width": size[0], "height": size[1], "image_sha256": hashlib.sha256(image).hexdigest()}
    return embed(image, seal(records, key, info=info))


def _crop_bytes(fmt: str, size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, format=fmt)
    return buf.getvalue()


def test_valid_forged_vault_restores(tmp_path) -> None:
    ident = Identity.generate()
    rec = Record(meta={"box": [0, 0, 4, 4], "codec": "png"}, payload=_crop_bytes("PNG", (4, 4)))
    data = _forge(_image(), [rec], Key.from_recipients([ident.public_key]))
    out = restore_image(data, ident).image
    assert out[0, 0].tolist() == [1, 2, 3] and out[10, 10].tolist() == [90, 120, 150]


@pytest.mark.parametrize(
    ("meta", "payload", "match"),
    [
        ({"box": [0, 0, 4, 4], "codec": "bmp"}, _crop_bytes("BMP", (4, 4)), "codec"),
        ({"box": [0, 0, 4, 4], "codec": "png"}, _crop_bytes("BMP", (4, 4)), "cannot be decoded"),
        ({"box": [0, 0, 4, 4], "codec": "png"}, _crop_bytes("PNG", (5, 4)), "its box"),
        ({"box": [0, 0, 99, 4], "codec": "png"}, _crop_bytes("PNG", (99, 4)), "outside"),
        ({"box": "x", "codec": "png"}, b"", "geometry"),
    ],
)
def test_forged_records_are_refused(meta, payload, match) -> None:
    ident = Identity.generate()
    data = _forge(_image(), [Record(meta=meta, payload=payload)], Key.from_recipients([ident.public_key]))
    with pytest.raises(VaultIntegrityError, match=match):
        restore_image(data, ident)


def test_decompression_bomb_inside_a_sealed_crop() -> None:
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")  # small file, 400 MP when decoded
    ident = Identity.generate()
    data = _forge(
        _image(),
        [Record(meta={"box": [0, 0, 4, 4], "codec": "png"}, payload=buf.getvalue())],
        Key.from_recipients([ident.public_key]),
    )
    with pytest.raises(VaultIntegrityError):
        restore_image(data, ident)


def _raw_vault(header: dict, records: bytes = b"", mac: bytes = b"\0" * 32) -> bytes:
    h = json.dumps(header).encode()
    return MAGIC + struct.pack(">HI", VERSION, len(h)) + h + mac + records


BASE = {
    "format": "anonymizer-vault",
    "version": VERSION,
    "cipher": "AES-256-GCM",
    "epk": None,
    "info": {},
    "records": 0,
    "records_sha256": hashlib.sha256(b"").hexdigest(),
}


def test_resource_limits_before_any_derivation() -> None:
    slot = {
        "type": "password",
        "kdf": "argon2id",
        "salt": "AAAAAAAAAAAAAAAAAAAAAA==",
        "params": FAST,
        "verifier": "AAAAAAAAAAAAAAAAAAAAAA==",
        "nonce": "AAAAAAAAAAAAAAAA",
        "wrapped": "AA==",
    }
    with pytest.raises(VaultIntegrityError, match="more than one password slot"):
        parse(_raw_vault(dict(BASE, slots=[slot, slot])))
    with pytest.raises(VaultIntegrityError, match="key slots"):
        parse(_raw_vault(dict(BASE, slots=[dict(slot, type="x25519")] * 65)))
    for kdf, params in [
        ("argon2id", {"t": 2, "m": 4 * 1024 * 1024, "p": 1}),
        ("argon2id", {"t": 64, "m": 19456, "p": 1}),
        ("scrypt", {"n": 2**21, "r": 8, "p": 1}),
        ("scrypt", {"n": 2**20, "r": 16, "p": 1}),
        # version 1's ceilings, accepted before: 14.6 s and 1 GiB for a reader each
        ("argon2id", {"t": 10, "m": 1024 * 1024, "p": 16}),
        ("scrypt", {"n": 2**20, "r": 8, "p": 4}),
    ]:
        blob = _raw_vault(dict(BASE, slots=[dict(slot, kdf=kdf, params=params)]))
        with pytest.raises(VaultError, match="refusing"):
            open_vault(blob, Key.from_password("pw"))


def test_deeply_nested_or_odd_headers() -> None:
    deep = b'{"a":' * 900 + b"1" + b"}" * 900
    blob = MAGIC + struct.pack(">HI", VERSION, len(deep)) + deep + b"\0" * 32
    with pytest.raises(VaultError):
        open_vault(blob, Key.from_password("pw"))
    with pytest.raises(VaultIntegrityError):
        parse(_raw_vault(dict(BASE, slots=[{"type": "x25519", "recipient": {"x": [1]}}])))
    with pytest.raises(VaultIntegrityError):
        parse(_raw_vault(dict(BASE, info={"nested": {"a": 1}}, slots=[{"type": "x25519"}])))


def test_crafted_containers_raise_vault_errors_only() -> None:
    jpeg = _image("JPEG")
    short = b"\xff\xef" + struct.pack(">H", 2 + len(JPEG_ID)) + JPEG_ID  # our id, no index/count
    with pytest.raises(VaultIntegrityError):
        extract(jpeg[:2] + short + jpeg[2:])
    webp = _image("WEBP")
    odd = b"ANVT" + struct.pack("<I", 3) + b"\x00ab"  # odd size, pad byte missing at the end
    body = webp[12:] + odd
    with pytest.raises(VaultIntegrityError):
        extract(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body)
    filled = jpeg[:2] + b"\xff\xff\xff" + jpeg[2:]  # fill bytes before a marker are legal
    assert extract(filled) == (None, filled)


def test_a_webp_claiming_a_huge_canvas_is_a_vault_error() -> None:
    """A crafted WebP whose VP8X header claims 16383x16383 pixels, with a valid vault sealed for it
    (anyone with a recipient's public key can make one): refused, not a DecompressionBombError."""
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x010E] = "x"  # metadata: the extended (VP8X) header, which holds the canvas size
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buf, format="WEBP", lossless=True, exif=exif.tobytes())
    webp = bytearray(buf.getvalue())
    assert webp[12:16] == b"VP8X"
    webp[24:30] = (16382).to_bytes(3, "little") * 2  # canvas width - 1, height - 1
    ident = Identity.generate()
    data = _forge(bytes(webp), [], Key.from_recipients([ident.public_key]), size=(16383, 16383))
    with pytest.raises(VaultError):
        restore_image(data, ident)


def _png_chunk_moved_before_idat(data: bytes) -> bytes:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append(data[pos : pos + 12 + length])
        pos += 12 + length
    ours = next(c for c in chunks if c[4:8] == b"anVT")
    chunks.remove(ours)
    idat = next(i for i, c in enumerate(chunks) if c[4:8] == b"IDAT")
    return data[:8] + b"".join(chunks[:idat] + [ours] + chunks[idat:])


def _jpeg_resplit(data: bytes) -> bytes:
    """The vault's APP15 segments cut at other places (two segments, the first one shorter)."""
    vault, base = extract(data)
    assert vault is not None and len(vault) > 100
    parts = [vault[:100], vault[100:]]
    segs = b"".join(
        b"\xff\xef" + struct.pack(">H", 2 + len(JPEG_ID) + 4 + len(p)) + JPEG_ID + struct.pack(">HH", i, 2) + p
        for i, p in enumerate(parts)
    )
    at = data.index(b"\xff\xef")
    return base[:at] + segs + base[at:]


@pytest.mark.parametrize(("fmt", "move"), [("PNG", _png_chunk_moved_before_idat), ("JPEG", _jpeg_resplit)])
def test_a_vault_moved_or_resplit_in_its_file_is_refused(fmt, move) -> None:
    key = Key.from_password("pw", kdf_params=FAST)
    data = _forge(_image(fmt), [], key)
    assert restore_image(data, key).regions == 0  # as embedded: accepted
    moved = move(data)
    assert moved != data and Image.open(io.BytesIO(moved)).size == (40, 30)  # still a valid image
    with pytest.raises(VaultIntegrityError, match="not where the anonymizer puts it"):
        restore_image(moved, key)


@pytest.mark.parametrize("pos", [4, 6, 7, 20, 21, 24, 25, 28, 29])
def test_webp_headers_are_covered(pos: int) -> None:
    key = Key.from_password("pw", kdf_params=FAST)
    data = bytearray(_forge(_image("WEBP"), [], key))
    data[pos] ^= 0x01
    with pytest.raises(VaultError):
        restore_image(bytes(data), Key.from_password("pw", kdf_params=FAST))


def test_tampered_recipient_slot_is_an_integrity_error() -> None:
    ident = Identity.generate()
    blob = seal([Record(meta={}, payload=b"x")], Key.from_recipients([ident.public_key]), info={})
    hlen = struct.unpack(">I", blob[10:14])[0]
    header = json.loads(blob[14 : 14 + hlen])
    for field in ("wrapped", "nonce"):
        h = json.loads(json.dumps(header))
        target = h if field == "epk" else h["slots"][0]
        raw = bytearray(__import__("base64").b64decode(target[field]))
        raw[0] ^= 0x40
        target[field] = __import__("base64").b64encode(bytes(raw)).decode()
        hb = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()
        forged = blob[:10] + struct.pack(">I", len(hb)) + hb + blob[14 + hlen :]
        with pytest.raises(VaultIntegrityError):
            open_vault(forged, ident)
    with pytest.raises(WrongKeyError):
        open_vault(blob, Identity.generate())
    # the slots do not name their recipients: a changed ephemeral key or verifier reads as another key
    assert b"recipient" not in blob


def test_empty_passphrase_is_refused() -> None:
    with pytest.raises(Exception, match="passphrase is empty"):
        Identity.generate().private_pem("")


def test_env_password_in_any_encoding(monkeypatch) -> None:
    import os

    from anonymizer.cli.secrets import read_secret

    monkeypatch.setitem(os.environb, b"ANON_RAW_PW", b"caf\xe9")  # latin-1, not UTF-8
    assert read_secret(None, "ANON_RAW_PW", False) == b"caf\xe9"


def test_restored_files_are_private(tmp_path, samples) -> None:
    from typer.testing import CliRunner

    from anonymizer.cli.app import app

    pw = tmp_path / "pw"
    pw.write_text("pw")
    r = CliRunner()
    assert (
        r.invoke(
            app,
            [
                "anonymize",
                str(samples / "astronaut.png"),
                "-o",
                str(tmp_path / "a"),
                "--upscale",
                "0",
                "--password-file",
                str(pw),
            ],
        ).exit_code
        == 0
    )
    assert (
        r.invoke(app, ["restore", str(tmp_path / "a"), "-o", str(tmp_path / "r"), "--password-file", str(pw)]).exit_code
        == 0
    )
    assert (tmp_path / "r" / "astronaut.png").stat().st_mode & 0o077 == 0
    assert np.asarray(Image.open(tmp_path / "r" / "astronaut.png")).shape == (512, 512, 3)
