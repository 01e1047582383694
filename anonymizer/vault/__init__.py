"""Reversible de-identification: keys (passwords, X25519 recipients), the vault format, containers."""

from __future__ import annotations

from .format import Record, open_vault, parse, seal
from .images import RestoredImage, restore_bytes, restore_file, seal_regions, sidecar_path
from .keys import Identity, Key
from .surrogate import SurrogateSeed

__all__ = [
    "Identity",
    "Key",
    "Record",
    "RestoredImage",
    "open_vault",
    "parse",
    "restore_bytes",
    "restore_file",
    "seal",
    "seal_regions",
    "SurrogateSeed",
    "sidecar_path",
]
