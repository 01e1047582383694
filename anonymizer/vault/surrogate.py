"""Surrogate codes: the vector that decides a surrogate face's identity, derived from a password.

The password goes through the vault's password KDF (scrypt at the vault's default cost, so a code cannot
be brute-forced faster than a vault) with a fixed, public salt: the same password must give the same
surrogate on every machine and in every run. Codes for individual tracks (people in a video, faces in a
photo) come from HKDF-SHA256 of that key with the track number, so different people never share one
surrogate. Without a password a random key is drawn per run. The raw password is never used as a code.

A generator that ships a palette of codes trained to be mutually different people gets rows of it
instead (:meth:`SurrogateSeed.palette_index`): the seed shuffles the rows and the painter hands them out
in that order, a few consecutive candidates per track (:data:`anonymizer.pipeline.surrogate.ATTEMPTS`),
so the tracks of one photo or video never share a row until the palette runs out; later tracks get
standard-normal codes (:meth:`SurrogateSeed.code`). When the generator also ships row weights, the
shuffle draws rows in proportion to them (rows that look like many others are handed out less often).

The fixed salt is the price of reproducibility: whoever sees surrogates and has the generator can test
password guesses offline at scrypt's cost per guess, and could precompute a dictionary once for every
user (a vault's own salt is random, so its guesses cannot be shared). Use a long passphrase; a
per-collection label mixed into the salt is the planned remedy (issue 8).
"""

from __future__ import annotations

import hashlib
import secrets

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import InputError
from .kdf import SCRYPT_DEFAULT, derive_password_key

#: Fixed public salt: surrogates must be reproducible from the password alone (see the module notes).
SURROGATE_SALT = hashlib.sha256(b"anonymizer surrogate code v1").digest()[:16]


def _stretch(password: bytes) -> bytes:
    return derive_password_key(password, "scrypt", SURROGATE_SALT, SCRYPT_DEFAULT)


class SurrogateSeed:
    """32 bytes of key material from which every track's code is derived."""

    def __init__(self, material: bytes) -> None:
        if len(material) != 32:
            raise InputError("surrogate seed material must be 32 bytes")
        self._material = bytes(material)

    def __repr__(self) -> str:  # never show the material
        return "SurrogateSeed(<hidden>)"

    @classmethod
    def from_password(cls, password: str | bytes) -> SurrogateSeed:
        pw = password.encode("utf-8") if isinstance(password, str) else bytes(password)
        if not pw:
            raise InputError("the surrogate password is empty")
        return cls(_stretch(pw))

    @classmethod
    def random(cls) -> SurrogateSeed:
        return cls(secrets.token_bytes(32))

    def for_context(self, context: bytes) -> SurrogateSeed:
        """A seed for one photo or video (``context``: e.g. a digest of its pixels), so that the first
        face of two different photos does not get the same surrogate; the same context gives the same seed."""
        material = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"anonymizer surrogate context" + hashlib.sha256(context).digest(),
        ).derive(self._material)
        return SurrogateSeed(material)

    def palette_index(self, track: int, size: int, weights: np.ndarray | None = None) -> int | None:
        """The palette row (0 .. size-1) for ``track``, or None for tracks >= ``size``: HKDF gives each row
        an 8-byte key, the rows sorted by key are this seed's order, and track t takes the t-th.

        With ``weights`` (``size`` values >= 0, not all 0) the order is a weighted shuffle instead: each
        row's key, as a uniform u in (0, 1), becomes an exponential race time -ln(1 - u) / weight, and
        the rows sorted by time are the order (equal weights give the unweighted order). So track 0
        takes row r with probability weight_r / sum, and later tracks draw from the rows left in the same
        way (rows of weight 0 come last, in key order).
        """
        if track < 0 or size < 1:
            raise InputError(f"track must be >= 0 and the palette size >= 1, got {track}, {size}")
        if weights is not None:
            w = np.asarray(weights, np.float64)
            if w.shape != (size,) or not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
                raise InputError(f"palette weights must be {size} finite values >= 0, not all 0")
        if track >= size:
            return None
        raw = HKDF(
            algorithm=hashes.SHA256(),
            length=8 * size,
            salt=None,
            info=b"anonymizer surrogate palette" + size.to_bytes(8, "big"),
        ).derive(self._material)
        keys = np.frombuffer(raw, dtype=">u8")
        if weights is None:
            return int(np.argsort(keys, kind="stable")[track])
        v = ((~keys).astype(np.float64) + 0.5) / 2.0**64  # 1 - u, in (0, 1]: equal weights keep the key order
        race = np.full(size, np.inf)
        race[w > 0] = -np.log(v[w > 0]) / w[w > 0]
        return int(np.lexsort((keys, race))[track])

    def code(self, track: int = 0, dim: int = 64) -> np.ndarray:
        """A standard-normal float32 vector of ``dim`` values for ``track`` (Box-Muller on HKDF output)."""
        if track < 0 or dim < 2 or dim % 2:
            raise InputError(f"track must be >= 0 and dim an even number >= 2, got {track}, {dim}")
        raw = HKDF(
            algorithm=hashes.SHA256(),
            length=8 * dim,
            salt=None,
            info=b"anonymizer surrogate code" + track.to_bytes(8, "big"),
        ).derive(self._material)
        u = (np.frombuffer(raw, dtype=">u8").astype(np.float64) + 0.5) / 2.0**64  # open interval (0, 1)
        u1, u2 = u[0::2], u[1::2]
        r = np.sqrt(-2.0 * np.log(u1))
        z = np.empty(dim, np.float64)
        z[0::2], z[1::2] = r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)
        return z.astype(np.float32)
