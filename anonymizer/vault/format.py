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
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import VaultError, VaultIntegrityError, WrongKeyError
from .kdf import SALT_BYTES, VERIFIER_BYTES, check_kdf_params
from .keys import Identity, Key, b64, canonical_json, public_bytes, recipient_secrets

MAGIC = b"\x89ANONVT\n"
VERSION = 2  # written; version 1 vaults (no record digest, no padding) are still read
READ_VERSIONS = (1, 2)
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


def _prefix(header: dict[str, Any]) -> bytes:
    """MAGIC and the header's format version, as they open the file."""
    return MAGIC + struct.pack(">H", header["version"])


def _context(header: dict[str, Any]) -> bytes:
    slots = [{k: v for k, v in s.items() if k not in _SLOT_SECRET_FIELDS} for s in header["slots"]]
    reduced = dict(header, slots=slots)
    return hashlib.sha256(_prefix(header) + canonical_json(reduced)).digest()


def _header_mac(cek: bytes, header: dict[str, Any], header_bytes: bytes) -> bytes:
    mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"anonymizer vault v1 header mac").derive(cek)
    return hmac.new(mac_key, _prefix(header) + header_bytes, hashlib.sha256).digest()


_STREAM_EXCLUDED = ("info", "records", "records_sha256")


def _stream_context(header: dict[str, Any]) -> bytes:
    slots = [{k: v for k, v in s.items() if k not in _SLOT_SECRET_FIELDS} for s in header["slots"]]
    reduced = {k: v for k, v in header.items() if k not in _STREAM_EXCLUDED}
    reduced["slots"] = slots
    return hashlib.sha256(_prefix(header) + b"stream" + canonical_json(reduced)).digest()


def padded_size(n: int) -> int:
    """Padme (Nikitin et al., PETS 2019): ``n`` rounded up so that only its top few bits remain, which
    leaves O(log log n) bits of the length visible for at most 12% more bytes."""
    if n < 2:
        return n
    e = n.bit_length() - 1
    mask = (1 << (e - e.bit_length())) - 1
    return (n + mask) & ~mask


def _pad(payload: bytes) -> bytes:
    """Version 2 plaintext: the payload, 0x80, then zeros up to :func:`padded_size` (ISO/IEC 7816-4)."""
    size = padded_size(len(payload) + 1)
    return payload + b"\x80" + bytes(size - len(payload) - 1)


def _unpad(data: bytes, i: int) -> bytes:
    return b"".join(_unpad_stream(iter([data]), i))


def _unpad_stream(parts: Iterable[bytes], i: int) -> Iterator[bytes]:
    """The payload of version 2 plaintext given in parts: everything before the last 0x80, which only
    zeros may follow, the whole being :func:`padded_size` long. Holds back at most the trailing zeros."""
    held, total = b"", 0
    for part in parts:
        total += len(part)
        buf = held + part
        end = len(buf.rstrip(b"\0"))
        if end > 1:
            yield buf[: end - 1]
        held = buf[end - 1 :] if end else buf
    if not held or held[0] != 0x80 or total != padded_size(total - len(held) + 1):
        raise VaultIntegrityError(f"malformed vault: record {i} is not padded as version 2 requires")


def _chunk_aad(context: bytes, record: int, chunk: int, chunks: int, meta_bytes: bytes) -> bytes:
    return context + struct.pack(">QII", record, chunk, chunks) + hashlib.sha256(meta_bytes).digest()


class VaultWriter:
    """Seal records one at a time (video streams); :meth:`finish` writes the header once ``info`` is known.

    Sealed chunks are spooled to a temporary file (in memory up to 64 MiB), so memory stays flat. Each
    payload is padded (:func:`padded_size`) and the header carries a SHA-256 of every record as written,
    so that every slot's wrap authenticates the records: a holder of one slot cannot change the pixels
    another holder restores.
    """

    def __init__(self, key: Key) -> None:
        self._cek = AESGCM.generate_key(bit_length=256)
        self._aead = AESGCM(self._cek)
        self._slots: list[dict[str, Any]] = []
        self._secrets: list[tuple[bytes, bytes]] = []
        epk_bytes: bytes | None = None
        if key.has_password:
            p = key.password_slot_params()
            self._slots.append({"type": "password", "kdf": p.kdf, "salt": b64(p.salt), "params": dict(p.params)})
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
            "epk": b64(epk_bytes) if epk_bytes else None,
            "slots": self._slots,
        }
        self._stream = _stream_context(self._header)
        self._body = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        self._digest = hashlib.sha256()
        self.records = 0
        self.size = 0  # bytes of sealed records so far

    def add(self, meta: dict[str, Any], payload: bytes) -> None:
        """Seal one record."""
        padded = _pad(payload)
        self.add_stream(meta, io.BytesIO(padded).read, len(padded), padded=True)

    def add_stream(
        self, meta: dict[str, Any], read: Callable[[int], bytes], size: int, *, padded: bool = False
    ) -> None:
        """Seal one record of ``size`` bytes read with ``read`` (a file's ``read``), chunk by chunk, so
        that a whole file can be sealed without holding it in memory."""
        meta_bytes = canonical_json(meta)
        if len(meta_bytes) > MAX_META:
            raise VaultError(f"record meta of {len(meta_bytes)} bytes is too large")
        total = size if padded else padded_size(size + 1)
        count = max(1, -(-total // CHUNK_BYTES))
        self._write(struct.pack(">I", len(meta_bytes)) + meta_bytes + struct.pack(">I", count))
        done = 0
        for j in range(count):
            want = min(CHUNK_BYTES, total - j * CHUNK_BYTES)
            chunk = read(min(want, size - done)) if done < size else b""
            done += len(chunk)
            if len(chunk) < want:  # the end of the payload: the padding follows, 0x80 then zeros
                if done != size or padded:
                    raise VaultError(f"a record to seal ended after {done} of {size} bytes")
                first = j * CHUNK_BYTES + len(chunk) == size  # the padding starts in this chunk
                chunk += (b"\x80" if first else b"") + bytes(want - len(chunk) - first)
            nonce = os.urandom(NONCE_BYTES)  # fresh per seal: never reused under this key
            ct = self._aead.encrypt(nonce, chunk, _chunk_aad(self._stream, self.records, j, count, meta_bytes))
            self._write(struct.pack(">I", NONCE_BYTES + len(ct)) + nonce + ct)
        self.records += 1

    def discard(self) -> None:
        """Forget the records sealed so far (to seal something smaller in their place)."""
        self._body.close()
        self._body = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        self._digest = hashlib.sha256()
        self.records = self.size = 0

    def _write(self, data: bytes) -> None:
        self._body.write(data)
        self._digest.update(data)
        self.size += len(data)

    def finish(self, info: dict[str, Any], out: BinaryIO | None = None) -> bytes | None:
        """Write the vault to ``out`` (returns None) or return its bytes."""
        header = dict(self._header, info=info, records=self.records, records_sha256=self._digest.hexdigest())
        context = _context(header)
        for slot, (wrap_key, verifier) in zip(self._slots, self._secrets, strict=True):
            nonce = os.urandom(NONCE_BYTES)
            slot["verifier"] = b64(verifier)
            slot["nonce"] = b64(nonce)
            slot["wrapped"] = b64(AESGCM(wrap_key).encrypt(nonce, self._cek, context))
        header_bytes = canonical_json(header)
        head = (
            MAGIC
            + struct.pack(">HI", VERSION, len(header_bytes))
            + header_bytes
            + _header_mac(self._cek, header, header_bytes)
        )
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
        self.digest: Any = None  # hashes what is read once set (the records)

    def take(self, n: int, what: str) -> bytes:
        out = self.f.read(n) if n >= 0 else b""
        if n < 0 or len(out) != n:
            raise VaultIntegrityError(f"truncated vault: {what} needs {n} bytes, {max(len(out), 0)} left")
        self.pos += n
        if self.digest is not None:
            self.digest.update(out)
        return out

    def check_end(self, header: dict[str, Any]) -> None:
        """After the last record: nothing may follow, and (version 2) the records are those the header
        names, which binds them into every slot's wrap."""
        if not self.at_end():
            raise VaultIntegrityError("malformed vault: unexpected bytes after the last record")
        if header["version"] >= 2 and not hmac.compare_digest(self.digest.hexdigest(), header["records_sha256"]):
            raise VaultIntegrityError("integrity check failed: the sealed records were modified")

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
        r.check_end(vault.header)
        return vault
    except _CRASHES as exc:
        raise VaultIntegrityError(f"malformed vault ({type(exc).__name__})") from None


def _parse_head(r: _Reader) -> Vault:
    if r.take(len(MAGIC), "magic") != MAGIC:
        raise VaultIntegrityError("not an anonymizer vault (bad magic)")
    version, hlen = struct.unpack(">HI", r.take(6, "version and header length"))
    if version not in READ_VERSIONS:
        raise VaultError(f"unsupported vault format version {version}; this anonymizer reads versions {READ_VERSIONS}")
    if hlen > MAX_HEADER:
        raise VaultIntegrityError(f"malformed vault: header of {hlen} bytes")
    header_bytes = r.take(hlen, "header")
    header_mac = r.take(MAC_BYTES, "header MAC")
    header = _json(header_bytes, "header")
    if header.get("format") != "anonymizer-vault" or header.get("version") != version:
        raise VaultIntegrityError("malformed vault: header names another format or version")
    _check_header(header, version)
    r.digest = hashlib.sha256()
    return Vault(header=header, header_bytes=header_bytes, header_mac=header_mac)


def _check_header(header: dict[str, Any], version: int) -> None:
    """Refuse a header whose fields do not have the types and bounds that :class:`VaultWriter` writes."""
    digest = header.get("records_sha256")
    if version >= 2 and not (
        isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
    ):
        raise VaultIntegrityError("malformed vault: no record digest")
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


def _parse_record(r: _Reader) -> tuple[dict[str, Any], bytes, list[bytes]]:
    meta, meta_bytes, count = _record_head(r)
    return meta, meta_bytes, [_read_chunk(r) for _ in range(count)]


def _record_head(r: _Reader) -> tuple[dict[str, Any], bytes, int]:
    """A record's meta and chunk count."""
    mlen = r.u32("record meta length")
    if mlen > MAX_META:
        raise VaultIntegrityError(f"malformed vault: record meta of {mlen} bytes")
    meta_bytes = r.take(mlen, "record meta")
    meta = _json(meta_bytes, "record meta")
    if not all(
        isinstance(v, str | int | float | type(None)) or (isinstance(v, list) and len(v) <= 16) for v in meta.values()
    ):
        raise VaultIntegrityError("malformed vault: record meta is not flat")
    count = r.u32("chunk count")
    if count == 0 or count > MAX_CHUNKS:
        raise VaultIntegrityError(f"malformed vault: {count} chunks in a record")
    return meta, meta_bytes, count


def _read_chunk(r: _Reader) -> bytes:
    clen = r.u32("chunk length")
    if clen < NONCE_BYTES + TAG_BYTES or clen > NONCE_BYTES + CHUNK_BYTES + TAG_BYTES:
        raise VaultIntegrityError(f"malformed vault: chunk of {clen} bytes")
    return r.take(clen, "chunk")


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
        raise WrongKeyError(
            f"wrong password or key: this key is not a recipient of this vault (slots: {', '.join(kinds)})"
        )
    if not tried:
        raise WrongKeyError(f"wrong password or key: this vault has no password slot (slots: {', '.join(kinds)})")
    raise WrongKeyError("wrong password or key")


def open_vault(blob: bytes | Vault, key: Key | Identity) -> tuple[dict[str, Any], list[Record]]:
    """Authenticate and decrypt: (info, records). WrongKeyError or VaultIntegrityError on failure."""
    try:
        vault = blob if isinstance(blob, Vault) else parse(blob)
        aead = _open_head(vault, key)
        stream = _stream_context(vault.header)
        return vault.info, [
            _decrypt(aead, stream, i, rec, vault.header["version"]) for i, rec in enumerate(vault.records)
        ]
    except _CRASHES as exc:
        # the checks above should make these unreachable; a crafted vault must never escape as a crash
        raise VaultIntegrityError(f"malformed vault ({type(exc).__name__})") from None


def open_vault_stream(f: BinaryIO, key: Key | Identity) -> tuple[dict[str, Any], Iterator[StreamedRecord]]:
    """Open a vault read from ``f`` without holding it in memory (video sidecars).

    The key and the header are checked before this returns (WrongKeyError, VaultIntegrityError); the
    records are then read one at a time as the iterator is consumed, each chunk authenticated as it is
    decrypted (a record's ``payload``, or its ``parts()`` for a payload larger than memory), and a
    truncated or extended vault, or records other than those the header names, raise
    VaultIntegrityError at its end. So a consumer must treat what it built from earlier records as
    unconfirmed until the iterator is exhausted.
    """
    try:
        r = _Reader(f)
        vault = _parse_head(r)
        aead = _open_head(vault, key)
    except _CRASHES as exc:
        raise VaultIntegrityError(f"malformed vault ({type(exc).__name__})") from None
    stream = _stream_context(vault.header)
    count = vault.header["records"]

    def records() -> Iterator[StreamedRecord]:
        try:
            for i in range(count):
                meta, meta_bytes, chunks = _record_head(r)
                rec = StreamedRecord(meta, _Chunks(aead, stream, i, meta_bytes, chunks, r), vault.header["version"])
                yield rec
                rec.skip()
            r.check_end(vault.header)
        except _CRASHES as exc:
            raise VaultIntegrityError(f"malformed vault ({type(exc).__name__})") from None

    return vault.info, records()


def _open_head(vault: Vault, key: Key | Identity) -> AESGCM:
    cek = _unlock(vault, key)
    if not hmac.compare_digest(_header_mac(cek, vault.header, vault.header_bytes), vault.header_mac):
        raise VaultIntegrityError("integrity check failed: the vault header was modified")
    return AESGCM(cek)


def _decrypt(
    aead: AESGCM, stream: bytes, i: int, rec: tuple[dict[str, Any], bytes, list[bytes]], version: int
) -> Record:
    meta, meta_bytes, chunks = rec
    plain = _Chunks(aead, stream, i, meta_bytes, len(chunks), iter(chunks).__next__)
    return Record(meta=meta, payload=b"".join(_unpad_stream(plain, i) if version >= 2 else plain))


class _Chunks:
    """The decrypted chunks of record ``i``, read one at a time from ``source`` (a _Reader, or a
    function giving the next sealed chunk), each authenticated before it is given out."""

    def __init__(
        self, aead: AESGCM, stream: bytes, i: int, meta_bytes: bytes, count: int, source: _Reader | Callable[[], bytes]
    ) -> None:
        self.aead, self.stream, self.i, self.meta_bytes, self.count = aead, stream, i, meta_bytes, count
        self.next_chunk = (lambda: _read_chunk(source)) if isinstance(source, _Reader) else source
        self.done = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.done < self.count:
            j, chunk = self.done, self.next_chunk()
            self.done += 1
            aad = _chunk_aad(self.stream, self.i, j, self.count, self.meta_bytes)
            try:
                yield self.aead.decrypt(chunk[:NONCE_BYTES], chunk[NONCE_BYTES:], aad)
            except InvalidTag:
                raise VaultIntegrityError(f"integrity check failed: record {self.i} chunk {j} was modified") from None


class StreamedRecord:
    """A record of :func:`open_vault_stream`: ``meta`` at once; the payload decrypted when asked for,
    whole (``payload``) or chunk by chunk (``parts()``, for a sealed file larger than memory), once."""

    def __init__(self, meta: dict[str, Any], chunks: _Chunks, version: int) -> None:
        self.meta = meta
        self._chunks, self._version = chunks, version
        self._payload: bytes | None = None
        self._used = False

    def parts(self) -> Iterator[bytes]:
        if self._used:
            raise VaultError("a streamed record's payload is read once")
        self._used = True
        return _unpad_stream(iter(self._chunks), self._chunks.i) if self._version >= 2 else iter(self._chunks)

    @property
    def payload(self) -> bytes:
        if self._payload is None:
            self._payload = b"".join(self.parts())
        return self._payload

    def skip(self) -> None:
        """Read past what the consumer left of this record (its chunks are still authenticated)."""
        for _ in self._chunks:
            pass
