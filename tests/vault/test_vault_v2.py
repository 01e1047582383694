"""Vault format version 2: records bound into every slot, padded payloads, version 1 still read."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anonymizer import VaultIntegrityError
from anonymizer.api import restore_file
from anonymizer.vault import Identity, Key, Record, open_vault, parse, seal
from anonymizer.vault import format as vf
from anonymizer.vault.containers import extract

FAST = {"t": 2, "m": 19456, "p": 1}
DATA = Path(__file__).parent / "data"
INFO = {"kind": "image", "width": 4, "height": 4, "image_sha256": "0" * 64}


def _two_slot_vault(payload: bytes) -> tuple[bytes, Key, Identity]:
    ident = Identity.generate()
    password = Key.from_password("a long enough password", kdf="argon2id", kdf_params=FAST)
    key = password + Key.from_recipients([ident.public_key])
    return seal([Record(meta={"region": 0}, payload=payload)], key, info=INFO), key, ident


def _reseal_as(blob: bytes, ident: Identity, payload: bytes, *, fix_header: bool) -> bytes:
    """What a recipient can do with the content key it unwraps: seal other pixels into the record (and,
    with ``fix_header``, update the header's record digest and MAC to match)."""
    vault = parse(blob)
    cek = vf._unlock(vault, ident)
    meta, meta_bytes, _ = vault.records[0]
    padded = vf._pad(payload)
    nonce = b"\0" * vf.NONCE_BYTES
    aad = vf._chunk_aad(vf._stream_context(vault.header), 0, 0, 1, meta_bytes)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    chunk = nonce + AESGCM(cek).encrypt(nonce, padded, aad)
    body = (
        struct.pack(">I", len(meta_bytes)) + meta_bytes + struct.pack(">I", 1) + struct.pack(">I", len(chunk)) + chunk
    )
    header = dict(vault.header)
    if fix_header:
        header["records_sha256"] = hashlib.sha256(body).hexdigest()
    hb = vf.canonical_json(header) if fix_header else vault.header_bytes
    mac = vf._header_mac(cek, header, hb)
    return vf.MAGIC + struct.pack(">HI", header["version"], len(hb)) + hb + mac + body


@pytest.mark.parametrize("fix_header", [False, True])
def test_a_recipient_cannot_change_what_the_password_restores(fix_header: bool) -> None:
    blob, key, ident = _two_slot_vault(b"original pixels")
    forged = _reseal_as(blob, ident, b"forged pixels", fix_header=fix_header)
    with pytest.raises(VaultIntegrityError, match="integrity check failed"):
        open_vault(forged, key)


def test_untouched_two_slot_vault_opens_for_both() -> None:
    blob, key, ident = _two_slot_vault(b"original pixels")
    assert open_vault(blob, key)[1][0].payload == open_vault(blob, ident)[1][0].payload == b"original pixels"


def test_streamed_open_fails_at_the_end_on_changed_records() -> None:
    blob, key, ident = _two_slot_vault(b"original pixels")
    forged = _reseal_as(blob, ident, b"forged pixels", fix_header=False)
    _, records = vf.open_vault_stream(io.BytesIO(forged), key)
    with pytest.raises(VaultIntegrityError, match="records were modified"):
        list(records)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 100, 1000, 4095, 4096, 65537, (1 << 20) + 5])
def test_padding_hides_the_low_bits_of_lengths(n: int) -> None:
    size = vf.padded_size(n + 1)
    assert n + 1 <= size <= (n + 1) * 1.125 + 1
    assert vf._unpad(vf._pad(b"\1" * n), 0) == b"\1" * n


def test_sealed_lengths_fall_into_few_buckets() -> None:
    ident = Identity.generate()
    key = Key.from_recipients([ident.public_key])
    sizes = {
        len(parse(seal([Record(meta={}, payload=b"x" * n)], key, info=INFO)).records[0][2][0])
        for n in range(3000, 3300)
    }
    assert len(sizes) <= 3  # without padding: 300 distinct lengths


@pytest.mark.parametrize("size", [vf.CHUNK_BYTES * 2 + 1024, vf.CHUNK_BYTES * 2])  # the padding in a chunk of its own
def test_a_large_record_streams_across_chunks_and_round_trips(size: int) -> None:
    ident = Identity.generate()
    payload = bytes(range(256)) * (size // 256)
    writer = vf.VaultWriter(Key.from_recipients([ident.public_key]))
    writer.add_stream({"kind": "file"}, io.BytesIO(payload).read, len(payload))
    blob = writer.finish(INFO)
    assert blob is not None and len(parse(blob).records[0][2]) == 3
    assert open_vault(blob, ident)[1][0].payload == payload


def test_bad_padding_is_refused() -> None:
    with pytest.raises(VaultIntegrityError, match="padded"):
        vf._unpad(b"abc\x80\0\0\0\0\0", 0)  # longer than padded_size(4)
    with pytest.raises(VaultIntegrityError, match="padded"):
        vf._unpad(b"abcd", 0)


def test_version_1_header_cannot_claim_version_2() -> None:
    blob, key, _ = _two_slot_vault(b"x")
    header = json.loads(parse(blob).header_bytes)
    del header["records_sha256"]
    hb = vf.canonical_json(header)
    broken = vf.MAGIC + struct.pack(">HI", 2, len(hb)) + hb + blob[14 + len(parse(blob).header_bytes) :]
    with pytest.raises(VaultIntegrityError, match="record digest"):
        parse(broken)


@pytest.mark.parametrize("opener", ["password", "recipient"])
def test_version_1_vaults_still_restore(opener: str) -> None:
    """tests/vault/data/v1_hopper.jpg was anonymized (solid) by the version-1 code at commit 2c1bfb0,
    sealed for the password below (Argon2id at the minimums) and the recipient key beside it."""
    path = DATA / "v1_hopper.jpg"
    assert parse(extract(path.read_bytes())[0]).header["version"] == 1
    key = (
        Key.from_password("correct horse battery staple")
        if opener == "password"
        else Identity.load(DATA / "v1_recipient.key.pem")
    )
    restored = restore_file(path, key)
    assert restored.regions == 1
    assert (
        hashlib.sha256(restored.image.tobytes()).hexdigest()
        == "c2d0d88e596739e38446157545273a47f9ed448525b0b1802b9da672100133ce"
    )


def _sealed_codecs(data: bytes) -> list[str]:
    return [meta.get("codec") for meta, _, _ in parse(extract(data)[0]).records]


def test_a_jpeg_is_sealed_whole_and_restored_as_read(samples, tmp_path) -> None:
    """A JPEG is smaller than its faces as PNG crops: the vault holds the file itself (a 66 KB JPEG
    used to carry a 1 MB vault), and restoring gives the whole original image as it was read."""
    from anonymizer.api import anonymize_image, restore_image
    from anonymizer.media.image import load_image

    src = samples / "grace_hopper.jpg"
    key = Key.from_password("a long enough password", kdf="argon2id", kdf_params=FAST)
    data, side = anonymize_image(src, key=key).encode("jpeg")
    assert side is None and _sealed_codecs(data) == ["file"]
    assert len(extract(data)[0]) <= src.stat().st_size * 1.13 + 4096
    restored = restore_image(data, key)
    assert restored.regions == 1 and (restored.image == load_image(src).rgb).all()


def test_a_png_seals_its_regions_when_they_are_smaller(samples) -> None:
    from anonymizer.api import anonymize_image

    src = samples / "astronaut.png"  # 790 KB; its one face as PNG is a fraction of that
    data, _ = anonymize_image(
        src, key=Key.from_password("a long enough password", kdf="argon2id", kdf_params=FAST)
    ).encode("png")
    assert _sealed_codecs(data) == ["png"]


@pytest.mark.parametrize("size", [(5, 4), (4000, 4000)])
def test_a_crafted_original_of_another_size_is_refused(size: tuple[int, int]) -> None:
    """Whoever holds a recipient's public key can seal any 'original': its size is checked first."""
    from PIL import Image

    from anonymizer.api import restore_image
    from anonymizer.vault.containers import embed

    ident = Identity.generate()
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    image = buf.getvalue()
    buf = io.BytesIO()
    Image.new("RGB", size).save(buf, format="PNG")
    info = {"kind": "image", "width": 4, "height": 4, "image_sha256": hashlib.sha256(image).hexdigest()}
    blob = seal(
        [Record(meta={"codec": "file", "frame": 0, "regions": 1}, payload=buf.getvalue())],
        Key.from_recipients([ident.public_key]),
        info=info,
    )
    with pytest.raises(VaultIntegrityError, match="sealed original is 5x4|sealed original is 4000x4000"):
        restore_image(embed(image, blob), ident)


def _embedded(fmt: str) -> bytes:
    """A small image of ``fmt`` with a vault holding the whole original file (FAST password)."""
    from PIL import Image

    from anonymizer.vault.containers import embed

    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (90, 120, 150)).save(buf, format=fmt)
    image = buf.getvalue()
    info = {"kind": "image", "width": 24, "height": 16, "image_sha256": hashlib.sha256(image).hexdigest()}
    key = Key.from_password("pw", kdf="argon2id", kdf_params=FAST)
    return embed(image, seal([Record(meta={"codec": "file", "frame": 0, "regions": 1}, payload=image)], key, info=info))


_EMBEDDED = {fmt: _embedded(fmt) for fmt in ("PNG", "JPEG", "WEBP")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(_EMBEDDED)),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=3),
)
def test_fuzz_mutated_files_with_a_sealed_original_only_raise_vault_errors(
    fmt: str, flips: list[tuple[int, int]]
) -> None:
    from anonymizer import VaultError
    from anonymizer.api import restore_image

    bad = bytearray(_EMBEDDED[fmt])
    for pos, mask in flips:
        bad[pos % len(bad)] ^= mask
    try:
        restore_image(bytes(bad), Key.from_password("pw"))
    except VaultError:
        pass


_STREAMED = seal(
    [Record(meta={"codec": "file"}, payload=bytes(range(256)) * 40)],
    Key.from_password("pw", kdf="argon2id", kdf_params=FAST),
    info={},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, len(_STREAMED) - 1), st.integers(1, 255)), min_size=1, max_size=3),
    st.integers(0, len(_STREAMED)),
)
def test_fuzz_streamed_parts_only_raise_vault_errors(flips: list[tuple[int, int]], cut: int) -> None:
    from anonymizer import VaultError

    bad = bytearray(_STREAMED)
    for pos, mask in flips:
        bad[pos] ^= mask
    for blob in (bytes(bad), bytes(bad[:cut])):
        try:
            _, records = vf.open_vault_stream(io.BytesIO(blob), Key.from_password("pw"))
            for rec in records:
                b"".join(rec.parts())
        except VaultError:
            pass


_KEY_FILE = Identity.generate().private_pem("pass phrase", kdf="argon2id", kdf_params=FAST)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_KEY_FILE) - 1), st.integers(1, 255)), min_size=1, max_size=3))
def test_fuzz_mutated_key_files_only_raise_our_errors(tmp_path_factory, flips: list[tuple[int, int]]) -> None:
    from anonymizer import AnonymizerError

    bad = bytearray(_KEY_FILE)
    for pos, mask in flips:
        bad[pos] ^= mask
    path = tmp_path_factory.mktemp("keys") / "k.key.pem"
    path.write_bytes(bytes(bad))
    try:
        Identity.load(path, "pass phrase")
    except AnonymizerError:
        pass
