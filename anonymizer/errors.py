"""The exception tree. Every error a user can cause is an :class:`AnonymizerError`.

Messages name the file (when there is one) and say what was expected and what was found.
"""

from __future__ import annotations

from pathlib import Path


class AnonymizerError(Exception):
    """Base class of every error raised on purpose by this package."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
        self.reason = message


class InputError(AnonymizerError, ValueError):
    """A bad input: unreadable or truncated file, wrong shape, dtype or format, bad option value."""


class WeightsError(AnonymizerError):
    """Model weights are missing, fail their checksum, or do not fit the model."""


class MediaError(AnonymizerError):
    """Reading or writing media failed for a reason other than bad input (e.g. unwritable output)."""


class VaultError(AnonymizerError):
    """Sealing or opening a vault failed."""


class VaultIntegrityError(VaultError):
    """A vault (or the image it belongs to) was modified or corrupted: authentication failed.

    The message always starts with "integrity check failed".
    """

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        if not message.startswith("integrity check failed"):
            message = f"integrity check failed: {message}"
        super().__init__(message, path=path)


class WrongKeyError(VaultError):
    """The password or private key does not open this vault. The message starts with "wrong password or key"."""

    def __init__(self, message: str = "wrong password or key", *, path: str | Path | None = None) -> None:
        if not message.startswith("wrong password or key"):
            message = f"wrong password or key: {message}"
        super().__init__(message, path=path)


__all__ = [
    "AnonymizerError",
    "InputError",
    "MediaError",
    "VaultError",
    "VaultIntegrityError",
    "WeightsError",
    "WrongKeyError",
]
