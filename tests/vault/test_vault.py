"""Reversible de-identification: real photos through the real detector, real encryption round trips."""

from __future__ import annotations

import io
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from anonymizer import InputError, VaultError, VaultIntegrityError, WrongKeyError
from anonymizer.api import anonymize_image, restore_image
from anonymizer.media import load_image
from anonymizer.vault import Identity, Key, Record, open_vault, parse, seal
from anonymizer.vault.containers import embed, extract
from anonymizer.vault.format import NONCE_BYTES
from anonymizer.vault.images import _png
from anonymizer.vault.kdf import ARGON2_MIN, SCRYPT_MIN

FORMATS = ["png", "jpeg", "webp", "tiff"]


@pytest.fixture(scope="module")
def alice() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def photo(samples):
    return load_image(samples / "group_solvay_1927_closeup.jpg")


@pytest.fixture(scope="module")
def sealed(photo, alice):
    """The photo anonymized with a password and a recipient, encoded in every format."""
    key = Key.from_password("correct horse battery staple") + Key.from_recipients([alice.public_key])
    result = anonymize_image(photo, method="surrogate", key=key)  # surrogates seal their regions too
    # 14 of the 15 faces get a donor's face; the one turned 42 degrees away is covered solid
    assert sorted(r.shape for r in result.regions) == ["ellipse"] + ["surrogate"] * 14
    return result, {fmt: result.encode(fmt) for fmt in FORMATS}


def _face_mask(result) -> np.ndarray:
    m = np.zeros(result.image.shape[:2], bool)
    for r in result.regions:
        x1, y1, x2, y2 = r.box
        m[y1:y2, x1:x2] = True
    return m


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("opener", ["password", "identity"])
def test_round_trip(sealed, photo, alice, fmt: str, opener: str) -> None:
    result, encoded = sealed
    data, side = encoded[fmt]
    assert (side is None) == (fmt != "tiff")  # TIFF cannot carry a vault: sidecar
    key = Key.from_password("correct horse battery staple") if opener == "password" else alice
    restored = restore_image(data, key, sidecar=side)
    faces = _face_mask(result)
    assert restored.regions == 15  # one surrogate per face
    np.testing.assert_array_equal(restored.image[faces], photo.rgb[faces])  # face regions: exact
    if fmt != "jpeg":
        np.testing.assert_array_equal(restored.image, photo.rgb)  # lossless: bit for bit
    else:
        assert not np.array_equal(result.image[faces], photo.rgb[faces])


def test_vault_embedded_file_still_decodes_as_the_anonymized_image(sealed) -> None:
    result, encoded = sealed
    for fmt in ("png", "webp"):
        with Image.open(io.BytesIO(encoded[fmt][0])) as im:
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), result.image)
    with Image.open(io.BytesIO(encoded["jpeg"][0])) as im:
        assert im.size == (result.image.shape[1], result.image.shape[0])


def test_sidecar_on_request_and_file_api(sealed, photo, tmp_path) -> None:
    result, _ = sealed
    out = result.save(tmp_path / "anon.png", vault="sidecar")
    assert (tmp_path / "anon.png.vault").is_file()
    restored = restore_image(out, Key.from_password("correct horse battery staple"))
    np.testing.assert_array_equal(restored.image, photo.rgb)
    result.save(tmp_path / "anon.png")  # embedded now: the stale sidecar goes
    assert not (tmp_path / "anon.png.vault").exists()
    np.testing.assert_array_equal(
        restore_image(out, Key.from_password("correct horse battery staple")).image, photo.rgb
    )


def test_scrypt_key_round_trip(photo) -> None:
    key = Key.from_password("pw", kdf="scrypt")
    data, _ = anonymize_image(photo, key=key).encode("png")
    assert b'"kdf":"scrypt"' in data
    np.testing.assert_array_equal(restore_image(data, Key.from_password("pw", kdf="scrypt")).image, photo.rgb)
    # the reader follows the header, not the caller's preference
    np.testing.assert_array_equal(restore_image(data, Key.from_password("pw")).image, photo.rgb)


def test_wrong_keys(sealed) -> None:
    _, encoded = sealed
    data, _ = encoded["png"]
    with pytest.raises(WrongKeyError, match="wrong password or key"):
        restore_image(data, Key.from_password("correct horse battery stapler"))
    with pytest.raises(WrongKeyError, match="not a recipient"):
        restore_image(data, Identity.generate())


def test_recipient_only_vault_cannot_be_opened_by_password(photo, alice) -> None:
    data, _ = anonymize_image(photo, method="surrogate", key=Key.from_recipients([alice.public_key])).encode("png")
    with pytest.raises(WrongKeyError, match="no password slot"):
        restore_image(data, Key.from_password("anything"))
    assert restore_image(data, alice).regions == 15


def test_no_key_no_vault(photo) -> None:
    data, side = anonymize_image(photo).encode("png")
    assert side is None and extract(data)[0] is None
    with pytest.raises(VaultError, match="no vault found"):
        restore_image(data, Key.from_password("x"))


def _vault_span(data: bytes) -> tuple[int, int]:
    """Where the vault's bytes lie in the file (JPEG: all of its APP15 segments, headers included)."""
    vault, base = extract(data)
    assert vault is not None
    if vault in data:
        start = data.index(vault)
        return start, start + len(vault)
    start = next(i for i, (a, b) in enumerate(zip(data, base, strict=False)) if a != b)
    return start, start + len(data) - len(base)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_flipped_byte_anywhere_is_refused(sealed, fmt: str) -> None:
    _, encoded = sealed
    data, _ = encoded[fmt]
    start, end = _vault_span(data)
    rng = np.random.default_rng(0)
    key = Key.from_password("correct horse battery staple")
    outside = [p for p in range(len(data)) if not start - 12 <= p < end + 4]  # chunk framing too
    in_vault = list(range(start, min(start + 700, end))) + rng.integers(start, end, 60).tolist()
    in_image = rng.choice(outside, 60).tolist()
    for pos in in_vault + in_image:  # anywhere: refused, with some VaultError (header, framing, ...)
        bad = bytearray(data)
        bad[pos] ^= 0x01
        with pytest.raises(VaultError):
            restore_image(bytes(bad), key)
    pixels = [p for p in outside if p > 1000]  # compressed pixel data, away from the file's headers
    for pos in rng.choice(pixels, 20).tolist() + rng.integers(start + 2000, end, 20).tolist():
        bad = bytearray(data)
        bad[pos] ^= 0x80
        with pytest.raises(VaultIntegrityError, match="integrity check failed"):
            restore_image(bytes(bad), key)


def test_flipped_sidecar_and_truncated_files(sealed) -> None:
    _, encoded = sealed
    data, side = encoded["tiff"]
    key = Key.from_password("correct horse battery staple")
    bad = bytearray(side)
    bad[len(bad) // 2] ^= 1
    with pytest.raises(VaultIntegrityError, match="integrity check failed"):
        restore_image(data, key, sidecar=bytes(bad))
    with pytest.raises(VaultIntegrityError):
        restore_image(data, key, sidecar=side[:-5])
    for fmt in ("png", "jpeg", "webp"):
        whole, _ = encoded[fmt]
        for cut in (len(whole) // 2, len(whole) - 3):
            with pytest.raises(VaultError):
                restore_image(whole[:cut], key)


def test_original_face_bytes_never_appear_in_the_output(sealed, photo) -> None:
    result, encoded = sealed
    for region in result.regions:
        f = region.face
        cx, cy = int((f.box[0] + f.box[2]) / 2), int((f.box[1] + f.box[3]) / 2)
        half = int(f.width / 4)
        row = photo.rgb[cy, cx - half : cx + half].tobytes()  # raw pixels from the middle of the face
        crop = photo.rgb[region.box[1] : region.box[3], region.box[0] : region.box[2]]
        needles = [row, _png(np.ascontiguousarray(crop))]  # raw, and losslessly encoded as we seal it
        for data, side in encoded.values():
            for needle in needles:
                assert needle not in data
                assert side is None or needle not in side


def test_nonces_never_repeat() -> None:
    key = Key.from_password("pw")
    records = [Record(meta={"region": i}, payload=os.urandom(10)) for i in range(400)]
    blobs = [seal(records, key, info={"kind": "test"}) for _ in range(3)]
    nonces = []
    for blob in blobs:
        vault = parse(blob)
        nonces += [chunk[:NONCE_BYTES] for _, _, chunks in vault.records for chunk in chunks]
        nonces += [s["nonce"] for s in vault.header["slots"]]
    assert len(nonces) == len(set(nonces)) == 3 * 401


def test_large_payload_is_chunked_and_chunks_are_bound() -> None:
    key = Key.from_password("pw")
    payload = os.urandom(2_500_000)
    blob = seal([Record(meta={"r": 0}, payload=payload)], key, info={})
    vault = parse(blob)
    assert len(vault.records[0][2]) == 3
    assert open_vault(blob, Key.from_password("pw"))[1][0].payload == payload
    meta, meta_bytes, chunks = vault.records[0]
    vault.records[0] = (meta, meta_bytes, [chunks[1], chunks[0], chunks[2]])  # reordered
    with pytest.raises(VaultIntegrityError):
        open_vault(vault, Key.from_password("pw"))


def test_streamed_opening_equals_whole_opening_and_checks_the_end() -> None:
    from anonymizer.vault.format import open_vault_stream

    key = Key.from_password("pw")
    records = [Record(meta={"frame": i}, payload=os.urandom(100 + i)) for i in range(5)] + [
        Record(meta={"frame": 5}, payload=os.urandom(1_100_000))  # two chunks
    ]
    blob = seal(records, key, info={"kind": "test"})
    info, stream = open_vault_stream(io.BytesIO(blob), Key.from_password("pw"))
    streamed = [Record(meta=r.meta, payload=r.payload) for r in stream]
    assert info == {"kind": "test"} and streamed == records == open_vault(blob, Key.from_password("pw"))[1]
    with pytest.raises(WrongKeyError):  # the key is checked before any record is read
        open_vault_stream(io.BytesIO(blob), Key.from_password("nope"))
    for bad, message in [(blob[:-3], "truncated"), (blob + b"x", "after the last record"), (blob[:60], "truncated")]:
        with pytest.raises(VaultIntegrityError, match=message):
            _, stream = open_vault_stream(io.BytesIO(bad), Key.from_password("pw"))
            list(stream)
    flipped = bytearray(blob)
    flipped[-20] ^= 1  # in the last record: the earlier ones come out first, then the damage is found
    _, stream = open_vault_stream(io.BytesIO(bytes(flipped)), Key.from_password("pw"))
    assert next(stream).payload == records[0].payload
    with pytest.raises(VaultIntegrityError, match="record 5"):  # records not read are still authenticated
        list(stream)


def _weak_vault(kdf: str, params: dict[str, int]) -> bytes:
    key = Key.from_password("pw", kdf=kdf)
    key.kdf_params = dict(params)  # bypass the constructor's check, as an attacker crafting a file would
    return seal([Record(meta={}, payload=b"secret")], key, info={})


@pytest.mark.parametrize(
    ("kdf", "params"),
    [
        ("argon2id", {**ARGON2_MIN, "m": 1024}),
        ("argon2id", {**ARGON2_MIN, "t": 1}),
        ("scrypt", {**SCRYPT_MIN, "n": 2**10}),
    ],
)
def test_downgrade_is_refused(kdf: str, params: dict[str, int]) -> None:
    blob = _weak_vault(kdf, params)
    with pytest.raises(VaultError, match="below the minimum"):
        open_vault(blob, Key.from_password("pw", kdf=kdf))
    with pytest.raises(InputError, match="below the minimum"):
        Key.from_password("pw", kdf=kdf, kdf_params=params)


def test_crafted_header_with_weak_params_is_refused() -> None:
    blob = seal([Record(meta={}, payload=b"x")], Key.from_password("pw"), info={})
    hlen = struct.unpack(">I", blob[10:14])[0]
    header = blob[14 : 14 + hlen].replace(b'"m":65536', b'"m":8')
    hlen2 = struct.pack(">I", len(header))
    with pytest.raises(VaultError, match="below the minimum"):
        open_vault(blob[:10] + hlen2 + header + blob[14 + hlen :], Key.from_password("pw"))


def test_embed_extract_are_exact_inverses(sealed) -> None:
    result, _ = sealed
    for fmt in ("png", "jpeg", "webp"):
        plain, _ = anonymize_image(result.image, threshold=0.99).encode(fmt)
        for size in (0, 1, 70_000, 200_001):  # JPEG splits vaults over several APP15 segments
            vault = os.urandom(size)
            assert extract(embed(plain, vault)) == (vault, plain)


def test_keys_are_objects_and_never_show_secrets(tmp_path, alice) -> None:
    key = Key.from_password("hunter2")
    assert "hunter2" not in repr(key) and "hunter2" not in str(vars(key).get("kdf"))
    (tmp_path / "a.key.pem").write_bytes(alice.private_pem("pass phrase"))
    (tmp_path / "a.pub.pem").write_bytes(alice.public_pem())
    assert b"ENCRYPTED" in (tmp_path / "a.key.pem").read_bytes()
    loaded = Identity.load(tmp_path / "a.key.pem", "pass phrase")
    assert loaded.public_pem() == alice.public_pem()
    with pytest.raises(WrongKeyError, match="passphrase"):
        Identity.load(tmp_path / "a.key.pem", "wrong")
    with pytest.raises(WrongKeyError):
        Identity.load(tmp_path / "a.key.pem")
    with pytest.raises(InputError, match="not a PEM"):
        Key.from_recipients([tmp_path / "a.key.pem"])
    assert (
        Key.from_recipients([tmp_path / "a.pub.pem"]).recipients[0].public_bytes_raw()
        == alice.public_key.public_bytes_raw()
    )
    with pytest.raises(InputError, match="empty"):
        Key.from_password("")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_parser_random_bytes(data: bytes) -> None:
    try:
        parse(b"\x89ANONVT\n" + data)
    except VaultError:
        pass
    try:
        parse(data)
    except VaultError:
        pass


_SMALL = seal(
    [Record(meta={"box": [0, 0, 1, 1]}, payload=b"abc"), Record(meta={}, payload=b"")],
    Key.from_password("pw", kdf_params={"t": 2, "m": 19456, "p": 1}),
    info={"kind": "image"},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, len(_SMALL) - 1), st.integers(1, 255)), min_size=1, max_size=4),
    st.integers(0, len(_SMALL)),
)
def test_fuzz_mutated_vaults_only_raise_vault_errors(flips: list[tuple[int, int]], cut: int) -> None:
    bad = bytearray(_SMALL)
    for pos, mask in flips:
        bad[pos] ^= mask
    for blob in (bytes(bad), bytes(bad[:cut])):
        try:
            open_vault(blob, Key.from_password("pw"))
        except VaultError:
            pass


def test_a_workers_copy_of_a_key_seals_without_the_password(alice) -> None:
    import pickle

    key = Key.from_password("worker batch password", kdf="scrypt", kdf_params=dict(SCRYPT_MIN)) + Key.from_recipients(
        [alice.public_key]
    )
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(key)  # the password never leaves the driver
    blob = pickle.dumps(key.for_workers())
    assert b"worker batch password" not in blob
    worker = pickle.loads(blob)
    assert worker.has_password and len(worker.recipients) == 1 and "derived" in repr(worker)
    assert worker.surrogate_seed() is not None
    assert worker.surrogate_seed().code(0).tolist() == key.surrogate_seed().code(0).tolist()  # type: ignore[union-attr]
    vault = seal([Record({"n": 1}, b"original pixels")], worker, info={"kind": "test"})
    for opener in (Key.from_password("worker batch password"), alice):  # the password and the recipient open it
        assert open_vault(vault, opener)[1][0].payload == b"original pixels"
    with pytest.raises(WrongKeyError):
        open_vault(vault, Key.from_password("another password"))
    # the copy holds one batch's sealing material: it cannot open a vault sealed under another salt
    other = seal(
        [Record({}, b"x")],
        Key.from_password("worker batch password", kdf="scrypt", kdf_params=dict(SCRYPT_MIN)),
        info={},
    )
    with pytest.raises(WrongKeyError, match="one batch"):
        open_vault(other, worker)
    with pytest.raises(InputError):
        worker + Key.from_recipients([alice.public_key])
