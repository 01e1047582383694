"""The vault: a versioned, authenticated container for original pixels (docs/vault-format.md).

    MAGIC (8) | version u16 | header length u32 | header (canonical JSON) | header MAC (32)
    then per record: meta length u32 | meta (canonical JSON) | chunk count u32 |
                     per chunk: length u32 | nonce (12) || AES-256-GCM ciphertext and tag

All integers are big-endian. The content key (CEK) is random per vault and wrapped in each slot of the
header (see :mod:`anonymizer.vault.keys`). Associated data binds everything together:

- slot wrap: ``context`` = SHA-256(MAGIC | version | header with each slot reduced to its descriptor);
- chunk: ``stream`` | record index u64 | chunk index u32 | chunk count u32 | SHA-256(meta), where
  ``stream`` = SHA-256(MAGIC | version | the reduced header without ``info`` and ``records``), which is
  known before the first record, so that video can be sealed while it streams;

- header MAC: HMAC-SHA256 over MAGIC | version | the whole header, keyed by HKDF(CEK), so that the
  slots one did not open (other recipients) cannot be altered unnoticed either.

So the header (format version, KDF name and parameters, salt, image info) and each record's geometry
are authenticated, chunks cannot be reordered, dropped or moved between records or vaults.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import shutil
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import VaultError, VaultIntegrityError, WrongKeyError
from .keys import (
    SALT_BYTES,
    VERIFIER_BYTES,
    Identity,
    Key,
    check_kdf_params,
    public_bytes,
    recipient_secrets,
)

MAGIC = b"\x89ANONVT\n"
VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
MAC_BYTES = 32
CHUNK_BYTES = 1 << 20  # payloads are sealed in chunks of at most 1 MiB
MAX_HEADER = 1 << 20
MAX_SLOTS = 64
MAX_META = 1 << 16
MAX_CHUNKS = 1 << 24


@dataclass(frozen=True)
class Record:
    """One sealed item: ``meta`` (geometry; stored in clear, authenticated) and ``payload`` (secret)."""

    meta: dict[str, Any]
    payload: bytes


@dataclass
class Vault:
    """A parsed (not yet opened) vault."""

    header: dict[str, Any]
    header_bytes: bytes
    header_mac: bytes
    records: list[tuple[dict[str, Any], bytes, list[bytes]]] = field(default_factory=list)

    @property
    def info(self) -> dict[str, Any]:
        info = self.header.get("info", {})
        return info if isinstance(info, dict) else {}


def _canon(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: object, what: str, size: int | None = None) -> bytes:
    if not isinstance(s, str):
        raise VaultIntegrityError(f"malformed vault: {what} is not a string")
    try:
        out = base64.b64decode(s.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise VaultIntegrityError(f"malformed vault: {what} is not base64") from None
    if size is not None and len(out) != size:
        raise VaultIntegrityError(f"malformed vault: {what} has {len(out)} bytes, expected {size}")
    return out


_SLOT_SECRET_FIELDS = ("verifier", "nonce", "wrapped")


def _context(header: dict[str, Any]) -> bytes:
    slots = [{k: v for k, v in s.items() if k not in _SLOT_SECRET_FIELDS} for s in header["slots"]]
    reduced = dict(header, slots=slots)
    return hashlib.sha256(MAGIC + struct.pack(">H", VERSION) + _canon(reduced)).digest()


def _header_mac(cek: bytes, header_bytes: bytes) -> bytes:
    mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"anonymizer vault v1 header mac").derive(cek)
    return hmac.new(mac_key, MAGIC + struct.pack(">H", VERSION) + header_bytes, hashlib.sha256).digest()


_STREAM_EXCLUDED = ("info", "records")


def _stream_context(header: dict[str, Any]) -> bytes:
    slots = [{k: v for k, v in s.items() if k not in _SLOT_SECRET_FIELDS} for s in header["slots"]]
    reduced = {k: v for k, v in header.items() if k not in _STREAM_EXCLUDED}
    reduced["slots"] = slots
    return hashlib.sha256(MAGIC + struct.pack(">H", VERSION) + b"stream" + _canon(reduced)).digest()


def _chunk_aad(context: bytes, record: int, chunk: int, chunks: int, meta_bytes: bytes) -> bytes:
    return context + struct.pack(">QII", record, chunk, chunks) + hashlib.sha256(meta_bytes).digest()


class VaultWriter:
    """Seal records one at a time (video streams); :meth:`finish` writes the header once ``info`` is known.

    Sealed chunks are spooled to a temporary file (in memory up to 64 MiB), so memory stays flat.
    """

    def __init__(self, key: Key) -> None:
        import tempfile

        self._cek = AESGCM.generate_key(bit_length=256)
        self._aead = AESGCM(self._cek)
        self._slots: list[dict[str, Any]] = []
        self._secrets: list[tuple[bytes, bytes]] = []
        epk_bytes: bytes | None = None
        if key.has_password:
            p = key.password_slot_params()
            self._slots.append({"type": "password", "kdf": p.kdf, "salt": _b64(p.salt), "params": dict(p.params)})
            self._secrets.append(key.password_secrets(p.kdf, p.salt, p.params))
        if key.recipients:
            eph = X25519PrivateKey.generate()  # one ephemeral key per vault
            epk_bytes = public_bytes(eph.public_key())
            for r in key.recipients:
                rb = public_bytes(r)
                # the slot does not name its recipient: published files stay unlinkable to key holders
                self._slots.append({"type": "x25519"})
                self._secrets.append(recipient_secrets(eph.exchange(r), epk_bytes, rb))
        self._header: dict[str, Any] = {
            "format": "anonymizer-vault",
            "version": VERSION,
            "cipher": "AES-256-GCM",
            "epk": _b64(epk_bytes) if epk_bytes else None,
            "slots": self._slots,
        }
        self._stream = _stream_context(self._header)
        self._body = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        self.records = 0

    def add(self, meta: dict[str, Any], payload: bytes) -> None:
        meta_bytes = _canon(meta)
        if len(meta_bytes) > MAX_META:
            raise VaultError(f"record meta of {len(meta_bytes)} bytes is too large")
        chunks = [payload[o : o + CHUNK_BYTES] for o in range(0, len(payload), CHUNK_BYTES)] or [b""]
        self._body.write(struct.pack(">I", len(meta_bytes)) + meta_bytes + struct.pack(">I", len(chunks)))
        for j, chunk in enumerate(chunks):
            nonce = os.urandom(NONCE_BYTES)  # fresh per seal: never reused under this key
            ct = self._aead.encrypt(nonce, chunk, _chunk_aad(self._stream, self.records, j, len(chunks), meta_bytes))
            self._body.write(struct.pack(">I", NONCE_BYTES + len(ct)) + nonce + ct)
        self.records += 1

    def finish(self, info: dict[str, Any], out: BinaryIO | None = None) -> bytes | None:
        """Write the vault to ``out`` (returns None) or return its bytes."""
        header = dict(self._header, info=info, records=self.records)
        context = _context(header)
        for slot, (wrap_key, verifier) in zip(self._slots, self._secrets, strict=True):
            nonce = os.urandom(NONCE_BYTES)
            slot["verifier"] = _b64(verifier)
            slot["nonce"] = _b64(nonce)
            slot["wrapped"] = _b64(AESGCM(wrap_key).encrypt(nonce, self._cek, context))
        header_bytes = _canon(header)
        head = MAGIC + struct.pack(">HI", VERSION, len(header_bytes)) + header_bytes + _header_mac(self._cek, header_bytes)
        self._body.seek(0)
        if out is None:
            data = head + self._body.read()
            self._body.close()
            return data
        out.write(head)
        shutil.copyfileobj(self._body, out)
        self._body.close()
        return None


def seal(records: Sequence[Record], key: Key, *, info: dict[str, Any]) -> bytes:
    """Encrypt ``records`` for every password and recipient of ``key``; returns the vault bytes."""
    writer = VaultWriter(key)
    for rec in records:
        writer.add(rec.meta, rec.payload)
    data = writer.finish(info)
    assert data is not None
    return data


class _Reader:
    """Reads exact byte counts from a stream; a short read is a truncated vault."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        out = self.f.read(n) if n >= 0 else b""
        if n < 0 or len(out) != n:
            raise VaultIntegrityError(f"truncated vault: {what} needs {n} bytes, {max(len(out), 0)} left")
        self.pos += n
        return out

    def u32(self, what: str) -> int:
        return int(struct.unpack(">I", self.take(4, what))[0])

    def at_end(self) -> bool:
        return self.f.read(1) == b""


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise VaultIntegrityError(f"malformed vault: {what} is not JSON") from None
    if not isinstance(obj, dict):
        raise VaultIntegrityError(f"malformed vault: {what} is not an object")
    return obj


_CRASHES = (RecursionError, struct.error, OverflowError, IndexError, TypeError, AttributeError)


def parse(blob: bytes) -> Vault:
    """Parse vault bytes without any key. Raises VaultError (VaultIntegrityError when damaged)."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise VaultError("a vault must be bytes")
    try:
        r = _Reader(io.BytesIO(bytes(blob)))
        vault = _parse_head(r)
        for _ in range(vault.header["records"]):
            vault.records.append(_parse_record(r))
        if not r.at_end():
            raise VaultIntegrityError("malformed vault: unexpected bytes after the last record")
        return vault
    except _CRASHES as exc:
        raise VaultIntegrityError(f"malformed vault ({type(exc).__name__})") from None


def _parse_head(r: _Reader) -> Vault:
    if r.take(len(MAGIC), "magic") != MAGIC:
        raise VaultIntegrityError("not an anonymizer vault (bad magic)")
    version, hlen = struct.unpack(">HI", r.take(6, "version and header length"))
    if version != VERSION:
        raise VaultError(f"unsupported vault format version {version}; this anonymizer reads version {VERSION}")
    if hlen > MAX_HEADER:
        raise VaultIntegrityError(f"malformed vault: header of {hlen} bytes")
    header_bytes = r.take(hlen, "header")
    header_mac = r.take(MAC_BYTES, "header MAC")
    header = _json(header_bytes, "header")
    if header.get("format") != "anonymizer-vault" or header.get("version") != VERSION:
        raise VaultIntegrityError("malformed vault: header names another format or version")
    if header.get("cipher") != "AES-256-GCM":
        raise VaultError(f"unsupported cipher {header.get('cipher')!r}")
    slots = header.get("slots")
    if not isinstance(slots, list) or not slots or not all(isinstance(s, dict) for s in slots):
        raise VaultIntegrityError("malformed vault: no key slots")
    if len(slots) > MAX_SLOTS:
        raise VaultIntegrityError(f"malformed vault: {len(slots)} key slots (at most {MAX_SLOTS})")
    if sum(s.get("type") == "password" for s in slots) > 1:
        raise VaultIntegrityError("malformed vault: more than one password slot")
    for s in slots:
        for name, value in s.items():
            ok = isinstance(value, str) or (name == "params" and isinstance(value, dict))
            if not ok or (name == "params" and not all(isinstance(v, int) for v in value.values())):
                raise VaultIntegrityError(f"malformed vault: slot field {name!r}")
    n = header.get("records")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise VaultIntegrityError("malformed vault: bad record count")
    info = header.get("info", {})
    if not isinstance(info, dict) or not all(isinstance(v, str | int | float | type(None)) for v in info.values()):
        raise VaultIntegrityError("malformed vault: info is not a flat object")
    if not isinstance(header.get("epk"), str | type(None)):
        raise VaultIntegrityError("malformed vault: bad ephemeral key")
    return Vault(header=header, header_bytes=header_bytes, header_mac=header_mac)


def _parse_record(r: _Reader) -> tuple[dict[str, Any], bytes, list[bytes]]:
    mlen = r.u32("record meta length")
    if mlen > MAX_META:
        raise VaultIntegrityError(f"malformed vault: record meta of {mlen} bytes")
    meta_bytes = r.take(mlen, "record meta")
    meta = _json(meta_bytes, "record meta")
    if not all(isinstance(v, str | int | float | type(None)) or (isinstance(v, list) and len(v) <= 16) for v in meta.values()):
        raise VaultIntegrityError("malformed vault: record meta is not flat")
    count = r.u32("chunk count")
    if count == 0 or count > MAX_CHUNKS:
        raise VaultIntegrityError(f"malformed vault: {count} chunks in a record")
    chunks = []
    for _ in range(count):
        clen = r.u32("chunk length")
        if clen < NONCE_BYTES + TAG_BYTES or clen > NONCE_BYTES + CHUNK_BYTES + TAG_BYTES:
            raise VaultIntegrityError(f"malformed vault: chunk of {clen} bytes")
        chunks.append(r.take(clen, "chunk"))
    return meta, meta_bytes, chunks


def _unlock(vault: Vault, key: Key | Identity) -> bytes:
    """The content key, from the first slot that ``key`` opens."""
    header = vault.header
    try:
        context = _context(header)
    except (TypeError, ValueError, AttributeError):
        raise VaultIntegrityError("malformed vault header") from None
    tried = False
    mine = None  # (epk, shared secret, our public key) computed once for all recipient slots
    for slot in header["slots"]:
        kind = slot.get("type")
        if isinstance(key, Key) and kind == "password" and key.has_password:
            kdf = slot.get("kdf")
            params = check_kdf_params(str(kdf), slot.get("params") if isinstance(slot.get("params"), dict) else {})
            salt = _unb64(slot.get("salt"), "salt", SALT_BYTES)
            wrap_key, verifier = key.password_secrets(str(kdf), salt, params)
        elif isinstance(key, Identity) and kind == "x25519":
            if mine is None:
                epk = _unb64(header.get("epk"), "ephemeral key", 32)
                mine = (epk, key.exchange(epk), public_bytes(key.public_key))
            epk, shared, ours = mine
            wrap_key, verifier = recipient_secrets(shared, epk, ours)
        else:
            continue
        tried = True
        stored = _unb64(slot.get("verifier"), "verifier", VERIFIER_BYTES)
        if kind == "x25519" and not hmac.compare_digest(stored, verifier):
            continue  # another recipient's slot
        nonce = _unb64(slot.get("nonce"), "nonce", NONCE_BYTES)
        wrapped = _unb64(slot.get("wrapped"), "wrapped key")
        try:
            cek = AESGCM(wrap_key).decrypt(nonce, wrapped, context)
        except InvalidTag:
            if hmac.compare_digest(stored, verifier):  # the right key: the vault was changed
                raise VaultIntegrityError("integrity check failed: the vault header was modified") from None
            continue  # a wrong password
        if not hmac.compare_digest(stored, verifier) or len(cek) != 32:
            raise VaultIntegrityError("integrity check failed: the vault header was modified")
        return cek
    kinds = sorted({str(s.get("type")) for s in header["slots"]})
    if isinstance(key, Identity):
        raise WrongKeyError(f"wrong password or key: this key is not a recipient of this vault (slots: {', '.join(kinds)})")
    if not tried:
        raise WrongKeyError(f"wrong password or key: this vault has no password slot (slots: {', '.join(kinds)})")
    raise WrongKeyError("wrong password or key")


def open_vault(blob: bytes | Vault, key: Key | Identity) -> tuple[dict[str, Any], list[Record]]:
    """Authenticate and decrypt: (info, records). WrongKeyError or VaultIntegrityError on failure."""
    try:
        vault = blob if isinstance(blob, Vault) else parse(blob)
        aead = _open_head(vault, key)
        stream = _stream_context(vault.header)
        return vault.info, [_decrypt(aead, stream, i, rec) for i, rec in enumerate(vault.records)]
    except _CRASHES as exc:
        # the checks above should make these unreachable; a crafted vault must never escape as a crash
        raise VaultIntegrityError(f"malformed vault ({type(exc).__name__})") from None


def open_vault_stream(f: BinaryIO, key: Key | Identity) -> tuple[dict[str, Any], Iterator[Record]]:
    """Open a vault read from ``f`` without holding it in memory (video sidecars).

    The key and the header are checked before this returns (WrongKeyError, VaultIntegrityError); the
    records are then decrypted one at a time as the iterator is consumed, each authenticated before it
    is yielded, and a truncated or extended vault raises VaultIntegrityError at its end. So a consumer
    must treat what it built from earlier records as unconfirmed until the iterator is exhausted.
    """
    try:
        r = _Reader(f)
        vault = _parse_head(r)
        aead = _open_head(vault, key)
    except _CRASHES as exc:
        raise VaultIntegrityError(f"malformed vault ({type(exc).__name__})") from None
    stream = _stream_context(vault.header)
    count = vault.header["records"]

    def records() -> Iterator[Record]:
        try:
            for i in range(count):
                yield _decrypt(aead, stream, i, _parse_record(r))
            if not r.at_end():
                raise VaultIntegrityError("malformed vault: unexpected bytes after the last record")
        except _CRASHES as exc:
            raise VaultIntegrityError(f"malformed vault ({type(exc).__name__})") from None

    return vault.info, records()


def _open_head(vault: Vault, key: Key | Identity) -> AESGCM:
    cek = _unlock(vault, key)
    if not hmac.compare_digest(_header_mac(cek, vault.header_bytes), vault.header_mac):
        raise VaultIntegrityError("integrity check failed: the vault header was modified")
    return AESGCM(cek)


def _decrypt(aead: AESGCM, stream: bytes, i: int, rec: tuple[dict[str, Any], bytes, list[bytes]]) -> Record:
    meta, meta_bytes, chunks = rec
    parts = []
    for j, chunk in enumerate(chunks):
        try:
            parts.append(aead.decrypt(chunk[:NONCE_BYTES], chunk[NONCE_BYTES:], _chunk_aad(stream, i, j, len(chunks), meta_bytes)))
        except InvalidTag:
            raise VaultIntegrityError(f"integrity check failed: record {i} chunk {j} was modified") from None
    return Record(meta=meta, payload=b"".join(parts))
