"""Keys: passwords (Argon2id, else Scrypt) and X25519 recipients; every secret stays in memory only.

A vault's content key (CEK, 256 random bits) is wrapped once per *slot*:

- password slot: KDF(password, salt, params) -> 32 bytes -> HKDF-SHA256 -> (wrap key, verifier);
- recipient slot: X25519(ephemeral private, recipient public) -> HKDF-SHA256 (salt = ephemeral public ||
  recipient public) -> (wrap key, verifier). One ephemeral key per vault; never the raw shared secret.

The verifier (16 bytes, stored) tells a wrong key from a tampered vault; it allows nothing that a guess
against the wrapped key would not allow anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import InputError, VaultError, WrongKeyError
from .kdf import (
    ARGON2_DEFAULT,
    HAVE_ARGON2,
    SALT_BYTES,
    SCRYPT_DEFAULT,
    VERIFIER_BYTES,
    check_kdf_params,
    derive_password_key,
)
from .surrogate import SurrogateSeed

log = logging.getLogger(__name__)


def canonical_json(obj: object) -> bytes:
    """The one byte form of a vault's or key file's JSON: sorted keys, no spaces, ASCII only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def b64(data: bytes) -> str:
    """Standard base64 as text."""
    return base64.b64encode(data).decode("ascii")


def _hkdf(secret: bytes, *, salt: bytes | None, info: bytes) -> tuple[bytes, bytes]:
    """(32-byte wrap key, 16-byte verifier) from ``secret``."""
    okm = HKDF(algorithm=hashes.SHA256(), length=32 + VERIFIER_BYTES, salt=salt, info=info).derive(secret)
    return okm[:32], okm[32:]


@dataclass(frozen=True)
class PasswordSlotParams:
    kdf: str
    salt: bytes
    params: dict[str, int]


class Key:
    """What to seal for: a password, X25519 recipients, or both; also opens vaults by password.

    Build with :meth:`from_password` and/or :meth:`from_recipients`; combine with ``+``. The password
    stays in this object only; the KDF runs once per salt (one fresh salt per Key when sealing, so a
    batch pays for one derivation).
    """

    def __init__(
        self,
        *,
        password: bytes | None = None,
        recipients: tuple[X25519PublicKey, ...] = (),
        kdf: str | None = None,
        kdf_params: dict[str, int] | None = None,
    ) -> None:
        if password is None and not recipients:
            raise InputError("a key needs a password or at least one recipient")
        if password is not None and len(password) == 0:
            raise InputError("the password is empty")
        self._password = password
        self.recipients = recipients
        if kdf is None:
            kdf = "argon2id" if HAVE_ARGON2 else "scrypt"
        if kdf_params is None:
            kdf_params = dict(ARGON2_DEFAULT if kdf == "argon2id" else SCRYPT_DEFAULT)
        if password is not None:
            try:
                check_kdf_params(kdf, kdf_params)
            except VaultError as exc:
                raise InputError(str(exc)) from None
        self.kdf = kdf
        self.kdf_params = dict(kdf_params)
        self._sealing: PasswordSlotParams | None = None
        self._derived: dict[tuple[str, bytes, tuple[tuple[str, int], ...]], bytes] = {}
        self._surrogate: SurrogateSeed | None = None
        self._sealing_only = False

    def __repr__(self) -> str:  # never show the password
        password = "yes" if self._password else ("derived" if self._sealing_only else "no")
        return f"Key(password={password}, recipients={len(self.recipients)}, kdf={self.kdf})"

    def for_workers(self) -> Key:
        """A copy that seals exactly as this key does but holds no password: for worker processes
        (``--backend ray``). The password KDF runs here, once; the copy keeps only its output for this
        key's sealing salt, the surrogate seed and the recipients' public keys. It can open only the
        vaults sealed with this Key (this batch), and a Key with a password refuses to be pickled, so the
        password itself never leaves this process."""
        out = Key.__new__(Key)
        out._password = None
        out.recipients = self.recipients
        out.kdf, out.kdf_params = self.kdf, dict(self.kdf_params)
        out._sealing, out._derived, out._surrogate, out._sealing_only = None, {}, None, False
        if self._password is not None or self._sealing_only:
            p = self.password_slot_params()
            self.password_secrets(p.kdf, p.salt, p.params)  # runs the KDF once, in this process
            cache_key = (p.kdf, p.salt, tuple(sorted(p.params.items())))
            out._sealing, out._derived = p, {cache_key: self._derived[cache_key]}
            out._surrogate = self.surrogate_seed()
            out._sealing_only = True
        return out

    def __getstate__(self) -> dict[str, Any]:
        if self._password is not None:
            raise TypeError("a Key holding a password is never pickled; send key.for_workers() instead")
        state = dict(self.__dict__)
        state["recipients"] = tuple(public_bytes(r) for r in self.recipients)  # the objects do not pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["recipients"] = tuple(X25519PublicKey.from_public_bytes(b) for b in state["recipients"])
        self.__dict__.update(state)

    @classmethod
    def from_password(
        cls, password: str | bytes, *, kdf: str | None = None, kdf_params: dict[str, int] | None = None
    ) -> Key:
        pw = password.encode("utf-8") if isinstance(password, str) else bytes(password)
        return cls(password=pw, kdf=kdf, kdf_params=kdf_params)

    @classmethod
    def from_recipients(cls, recipients: Iterable[X25519PublicKey | str | Path]) -> Key:
        keys = tuple(r if isinstance(r, X25519PublicKey) else load_public_key(r) for r in recipients)
        return cls(recipients=keys)

    def __add__(self, other: Key) -> Key:
        if self._sealing_only or other._sealing_only:
            raise InputError("a worker's copy of a key (for_workers) cannot be combined with another key")
        if self._password is not None and other._password is not None:
            raise InputError("a key can hold one password")
        src = self if self._password is not None else other
        return Key(
            password=src._password,
            recipients=self.recipients + other.recipients,
            kdf=src.kdf,
            kdf_params=src.kdf_params,
        )

    @property
    def has_password(self) -> bool:
        """True when this key seals a password slot (with the password, or its derived copy)."""
        return self._password is not None or self._sealing_only

    def surrogate_seed(self) -> SurrogateSeed | None:
        """The surrogate-face seed of this key's password (:mod:`anonymizer.vault.surrogate`), or None
        for a recipients-only key. Derived once per Key (scrypt), like the sealing key."""
        if self._sealing_only:
            return self._surrogate
        if self._password is None:
            return None
        if self._surrogate is None:
            self._surrogate = SurrogateSeed.from_password(self._password)
        return self._surrogate

    def password_slot_params(self) -> PasswordSlotParams:
        """The salt and parameters this key seals with (a fresh salt, fixed for this Key's lifetime)."""
        if self._sealing is None:
            self._sealing = PasswordSlotParams(self.kdf, os.urandom(SALT_BYTES), dict(self.kdf_params))
        return self._sealing

    def password_secrets(self, kdf: str, salt: bytes, params: dict[str, int]) -> tuple[bytes, bytes]:
        """(wrap key, verifier) for a password slot; the KDF output is cached per (kdf, salt, params)."""
        cache_key = (kdf, salt, tuple(sorted(params.items())))
        if self._password is None and cache_key not in self._derived:
            if self._sealing_only:
                raise WrongKeyError("this key holds the sealing material of one batch only, not the password")
            raise WrongKeyError("this vault is sealed with a password; give the password")
        if cache_key not in self._derived:
            assert self._password is not None
            self._derived[cache_key] = derive_password_key(self._password, kdf, salt, params)
        return _hkdf(self._derived[cache_key], salt=None, info=b"anonymizer vault v1 password slot|")


def surrogate_seed_for(key: Key | None, given: SurrogateSeed | None = None) -> SurrogateSeed:
    """The seed surrogate faces are drawn with: ``given``, else ``key``'s password's (the same faces on
    every run), else a random one (new faces on every run; a key of recipients only has no password)."""
    return given or (key.surrogate_seed() if key is not None else None) or SurrogateSeed.random()


def recipient_secrets(shared: bytes, epk: bytes, recipient: bytes) -> tuple[bytes, bytes]:
    """(wrap key, verifier) for a recipient slot, from the X25519 shared secret."""
    return _hkdf(shared, salt=epk + recipient, info=b"anonymizer vault v1 recipient slot|")


def public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: X25519PublicKey) -> str:
    """Short hex id of a public key (SHA-256 of its raw bytes, first 16 hex digits)."""
    return hashlib.sha256(public_bytes(key)).hexdigest()[:16]


def load_public_key(path: str | Path) -> X25519PublicKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read public key: {exc.strerror or exc}", path=path) from exc
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError("not a PEM public key", path=path) from exc
    if not isinstance(key, X25519PublicKey):
        raise InputError(f"expected an X25519 public key, got {type(key).__name__}", path=path)
    return key


#: Passphrase-protected private key files (docs/key-file-format.md): armored canonical JSON whose
#: raw X25519 key is sealed with AES-256-GCM under the vault's password KDF, parameters and bounds.
KEY_FILE_BEGIN = b"-----BEGIN ANONYMIZER ENCRYPTED PRIVATE KEY-----"
KEY_FILE_END = b"-----END ANONYMIZER ENCRYPTED PRIVATE KEY-----"
KEY_FILE_FORMAT = "anonymizer-key"
KEY_FILE_VERSION = 1
KEY_FILE_MAX_BYTES = 4096  # a key file is about 400 bytes; larger files are not parsed
_KEY_FILE_FIELDS = frozenset({"format", "version", "kdf", "params", "salt", "public", "nonce", "sealed"})
_KEY_FILE_SIZES = {"salt": SALT_BYTES, "public": 32, "nonce": 12, "sealed": 32 + 16}
_KEY_WRAP_INFO = b"anonymizer key v1 wrap"
#: what cryptography's BestAvailableEncryption writes (PBES2: PBKDF2-HMAC-SHA256, 2,048 iterations)
_LEGACY_BEGIN = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def _bad_key_file(why: str, path: Path) -> InputError:
    return InputError(f"not a valid anonymizer key file: {why}", path=path)


def _key_wrap_key(passphrase: bytes, kdf: str, salt: bytes, params: dict[str, int]) -> bytes:
    """The key file's AES-256-GCM key: HKDF-SHA256 over the password KDF's 32-byte output."""
    secret = derive_password_key(passphrase, kdf, salt, params)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_WRAP_INFO).derive(secret)


def key_file_kdf(kdf: str | None, params: dict[str, int] | None) -> tuple[str, dict[str, int]]:
    """(kdf, checked params) for a new key file: by default exactly what a vault's password slot uses."""
    kdf = kdf if kdf is not None else ("argon2id" if HAVE_ARGON2 else "scrypt")
    if params is None:
        params = dict(ARGON2_DEFAULT if kdf == "argon2id" else SCRYPT_DEFAULT)
    try:
        return kdf, check_kdf_params(kdf, params)
    except VaultError as exc:
        raise InputError(exc.reason) from None


def seal_key_file(private: X25519PrivateKey, passphrase: bytes, *, kdf: str, params: dict[str, int]) -> bytes:
    """The armored key file holding ``private`` sealed under ``passphrase`` (``params`` already checked)."""
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(12)
    descriptor = {
        "format": KEY_FILE_FORMAT,
        "version": KEY_FILE_VERSION,
        "kdf": kdf,
        "params": params,
        "salt": b64(salt),
        "public": b64(public_bytes(private.public_key())),
    }
    aead = AESGCM(_key_wrap_key(passphrase, kdf, salt, params))
    sealed = aead.encrypt(nonce, private.private_bytes_raw(), canonical_json(descriptor))
    body = base64.b64encode(canonical_json({**descriptor, "nonce": b64(nonce), "sealed": b64(sealed)}))
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"\n".join([KEY_FILE_BEGIN, *lines, KEY_FILE_END]) + b"\n"


@dataclass(frozen=True)
class _KeyFile:
    descriptor: dict[str, Any]  # every field but nonce and sealed: the associated data
    kdf: str
    params: dict[str, int]
    fields: dict[str, bytes]  # salt, public, nonce, sealed


def _dearmor(data: bytes, path: Path) -> bytes:
    """The JSON inside the armor: exact BEGIN/END lines around base64 lines of at most 64 characters."""
    lines = data.strip().splitlines()
    if len(data) > KEY_FILE_MAX_BYTES or len(lines) < 3 or lines[0] != KEY_FILE_BEGIN or lines[-1] != KEY_FILE_END:
        raise _bad_key_file(
            f"expected {KEY_FILE_BEGIN.decode()} ... END lines around at most {KEY_FILE_MAX_BYTES} bytes", path
        )
    if any(len(line) > 64 for line in lines[1:-1]):
        raise _bad_key_file("base64 lines longer than 64 characters", path)
    try:
        return base64.b64decode(b"".join(lines[1:-1]), validate=True)
    except binascii.Error:
        raise _bad_key_file("bad base64 between the armor lines", path) from None


def _key_file_bytes(doc: dict[str, Any], name: str, path: Path) -> bytes:
    """Field ``name``: canonical base64 of exactly the expected number of bytes."""
    value, size = doc[name], _KEY_FILE_SIZES[name]
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except binascii.Error:
        raw = b""
    if len(raw) != size or b64(raw) != value:
        raise _bad_key_file(f"{name!r} should be {size} bytes in base64", path)
    return raw


def _key_file_params(kdf: Any, params: Any, path: Path) -> dict[str, int]:
    """The KDF's parameters within the reader's bounds (no downgrade, no resource exhaustion)."""
    if not isinstance(kdf, str) or not isinstance(params, dict):
        raise _bad_key_file("'kdf' should be a name and 'params' an object", path)
    try:
        checked = check_kdf_params(kdf, params)
    except VaultError as exc:
        raise _bad_key_file(exc.reason, path) from None
    if set(params) != set(checked):
        raise _bad_key_file(f"{kdf} parameters should be exactly {sorted(checked)}, got {sorted(params)}", path)
    return checked


def _parse_key_file(data: bytes, path: Path) -> _KeyFile:
    """Every field of a key file, checked (KDF bounds included) before anything is derived."""
    blob = _dearmor(data, path)
    try:
        doc = json.loads(blob)
    except (ValueError, RecursionError):
        raise _bad_key_file("bad JSON", path) from None
    if not isinstance(doc, dict) or set(doc) != _KEY_FILE_FIELDS or canonical_json(doc) != blob:
        raise _bad_key_file(f"expected a canonical JSON object with the fields {sorted(_KEY_FILE_FIELDS)}", path)
    version = doc["version"]
    if doc["format"] != KEY_FILE_FORMAT or type(version) is not int or version != KEY_FILE_VERSION:
        raise _bad_key_file(
            f"expected {KEY_FILE_FORMAT!r} version {KEY_FILE_VERSION}, got {doc['format']!r} version {version!r}", path
        )
    params = _key_file_params(doc["kdf"], doc["params"], path)
    fields = {name: _key_file_bytes(doc, name, path) for name in _KEY_FILE_SIZES}
    descriptor = {k: v for k, v in doc.items() if k not in ("nonce", "sealed")}
    return _KeyFile(descriptor, doc["kdf"], params, fields)


def open_key_file(data: bytes, passphrase: bytes | None, *, path: Path) -> X25519PrivateKey:
    """The private key in an armored key file; the file is fully checked before the KDF runs."""
    kf = _parse_key_file(data, path)
    if passphrase is None:
        raise WrongKeyError("private key passphrase: this private key is encrypted; give its passphrase", path=path)
    if kf.kdf == "argon2id" and not HAVE_ARGON2:
        raise VaultError("this key file uses Argon2id, which the installed 'cryptography' does not provide", path=path)
    aead = AESGCM(_key_wrap_key(passphrase, kf.kdf, kf.fields["salt"], kf.params))
    try:
        raw = aead.decrypt(kf.fields["nonce"], kf.fields["sealed"], canonical_json(kf.descriptor))
    except InvalidTag:  # a wrong passphrase, or a modified file: the tag cannot tell them apart
        raise WrongKeyError("wrong passphrase for this private key", path=path) from None
    private = X25519PrivateKey.from_private_bytes(raw)
    if public_bytes(private.public_key()) != kf.fields["public"]:
        raise _bad_key_file("its public key does not match the private key it seals", path)
    return private


def _load_pkcs8(data: bytes, passphrase: bytes | None, path: Path) -> X25519PrivateKey:
    """An X25519 private key from PKCS#8 PEM (unencrypted, or encrypted by an older keygen)."""
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:  # encrypted without a passphrase given, or a passphrase for a plain key
        raise WrongKeyError(f"private key passphrase: {exc}", path=path) from exc
    except ValueError as exc:
        if b"ENCRYPTED" in data and passphrase is not None:
            raise WrongKeyError("wrong passphrase for this private key", path=path) from exc
        raise InputError("not a PEM private key", path=path) from exc
    except UnsupportedAlgorithm as exc:
        raise InputError("unsupported private key", path=path) from exc
    if not isinstance(key, X25519PrivateKey):
        raise InputError(f"expected an X25519 private key, got {type(key).__name__}", path=path)
    return key


class Identity:
    """An X25519 private key: opens vaults sealed for its public key.

    ``legacy_wrapping`` is True when it was read from a PKCS#8 file encrypted by an older ``keygen``
    (PBKDF2 with 2,048 iterations: cheap to guess); ``anonymizer keygen --rewrap`` replaces such a file.
    """

    def __init__(self, private_key: X25519PrivateKey, *, legacy_wrapping: bool = False) -> None:
        self._key = private_key
        self.legacy_wrapping = legacy_wrapping

    def __repr__(self) -> str:
        return f"Identity({fingerprint(self.public_key)})"

    @classmethod
    def generate(cls) -> Identity:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def load(cls, path: str | Path, passphrase: str | bytes | None = None) -> Identity:
        """Read a private key: an anonymizer key file (passphrase-protected) or PKCS#8 PEM. A PKCS#8 file
        encrypted by an older keygen still loads, with a warning logged (see ``legacy_wrapping``)."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read private key: {exc.strerror or exc}", path=path) from exc
        pw = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
        if data.lstrip().startswith(KEY_FILE_BEGIN):
            return cls(open_key_file(data, pw, path=path))
        legacy = _LEGACY_BEGIN in data
        ident = cls(_load_pkcs8(data, pw, path), legacy_wrapping=legacy)
        if legacy:
            log.warning(
                "%s: this private key is wrapped with PKCS#8's PBKDF2 (2,048 iterations: cheap to guess); "
                "re-wrap it with `anonymizer keygen --rewrap %s` and the same passphrase",
                path,
                path,
            )
        return ident

    @property
    def public_key(self) -> X25519PublicKey:
        return self._key.public_key()

    def private_pem(
        self, passphrase: str | bytes | None = None, *, kdf: str | None = None, kdf_params: dict[str, int] | None = None
    ) -> bytes:
        """Without ``passphrase``: unencrypted PKCS#8 PEM. With one: an anonymizer key file
        (docs/key-file-format.md), the raw key sealed with AES-256-GCM under Argon2id (Scrypt where the
        installed cryptography lacks it) with a vault password slot's defaults, or ``kdf``/``kdf_params``
        within the bounds a reader accepts."""
        if passphrase is None:
            enc = serialization.NoEncryption()
            return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
        if len(passphrase) == 0:
            raise InputError("the passphrase is empty; omit it to write an unencrypted key")
        kdf, params = key_file_kdf(kdf, kdf_params)
        pw = passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)
        return seal_key_file(self._key, pw, kdf=kdf, params=params)

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def exchange(self, peer: bytes) -> bytes:
        try:
            return self._key.exchange(X25519PublicKey.from_public_bytes(peer))
        except ValueError as exc:  # malformed or low-order point in a crafted vault
            raise VaultError(f"invalid ephemeral key in vault: {exc}") from None
