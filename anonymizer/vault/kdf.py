"""Password key derivation: Argon2id where the installed ``cryptography`` has it, else Scrypt, with the
parameters a reader accepts (minimums against downgrades, maximums against crafted headers)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import VaultError

try:  # Argon2id arrived in cryptography 44
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    HAVE_ARGON2 = True
except ImportError:  # pragma: no cover - depends on the installed cryptography
    HAVE_ARGON2 = False

#: Defaults: RFC 9106's second recommended Argon2id setting; Scrypt at 128 MiB.
ARGON2_DEFAULT = {"t": 3, "m": 65536, "p": 4}
SCRYPT_DEFAULT = {"n": 2**17, "r": 8, "p": 1}
#: Minimums a reader accepts (OWASP's Argon2id floor; Scrypt n >= 2**15): a crafted header asking for
#: less is refused, so nobody can downgrade a vault to a cheap-to-guess key derivation.
ARGON2_MIN = {"t": 2, "m": 19456, "p": 1}
SCRYPT_MIN = {"n": 2**15, "r": 8, "p": 1}
#: Maximums a reader accepts (vault headers and key files), a small multiple of the defaults, so a
#: crafted header cannot make a reader spend more than a few seconds or 256 MiB of memory before
#: anything is authenticated (docs/key-file-format.md has the measured worst case).
ARGON2_MAX = {"t": 6, "m": 256 * 1024, "p": 8}
SCRYPT_MAX = {"n": 2**18, "r": 8, "p": 2}
SCRYPT_MAX_BYTES = 256 << 20  # 128 * n * r
SALT_BYTES = 16
VERIFIER_BYTES = 16


def check_kdf_params(kdf: str, params: dict[str, Any]) -> dict[str, int]:
    """Validate KDF parameters read from a vault: known KDF, integer values within [minimum, maximum]."""
    if kdf == "argon2id":
        lo, hi = ARGON2_MIN, ARGON2_MAX
    elif kdf == "scrypt":
        lo, hi = SCRYPT_MIN, SCRYPT_MAX
    else:
        raise VaultError(f"unknown key derivation {kdf!r}")
    out: dict[str, int] = {}
    for name in lo:
        value = params.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise VaultError(f"{kdf} parameter {name!r} missing or not an integer")
        if value < lo[name]:
            raise VaultError(
                f"refusing weak {kdf} parameters: {name}={value} is below the minimum {lo[name]} (downgrade attempt?)"
            )
        if value > hi[name]:
            raise VaultError(f"refusing {kdf} parameters: {name}={value} is above the maximum {hi[name]}")
        out[name] = value
    if kdf == "scrypt" and out["n"] & (out["n"] - 1):
        raise VaultError(f"scrypt n={out['n']} is not a power of two")
    if kdf == "scrypt" and 128 * out["n"] * out["r"] > SCRYPT_MAX_BYTES:
        raise VaultError(
            f"refusing scrypt parameters: n={out['n']}, r={out['r']} need more than {SCRYPT_MAX_BYTES >> 20} MiB"
        )
    return out


def derive_password_key(password: bytes, kdf: str, salt: bytes, params: dict[str, int]) -> bytes:
    """Run the password KDF (a new KDF object per derivation, as the library requires)."""
    try:
        if kdf == "argon2id":
            if not HAVE_ARGON2:
                raise VaultError("this vault uses Argon2id, which the installed 'cryptography' does not provide")
            kdf_obj = Argon2id(salt=salt, length=32, iterations=params["t"], lanes=params["p"], memory_cost=params["m"])
            return kdf_obj.derive(password)
        if kdf == "scrypt":
            return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(password)
    except MemoryError:
        raise VaultError(f"not enough memory for the {kdf} key derivation this vault asks for") from None
    raise VaultError(f"unknown key derivation {kdf!r}")
