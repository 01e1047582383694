"""Audit anonymized outputs: recognisable faces (dlib or IdentityNet), leaking metadata, vaults."""

from __future__ import annotations

from .metadata import Leak, metadata_leaks
from .recognizers import DlibRecognizer, IdentityNetRecognizer, Recognizer, dlib_available, get_recognizer
from .report import AuditResult, audit_image

__all__ = [
    "AuditResult",
    "DlibRecognizer",
    "IdentityNetRecognizer",
    "Leak",
    "Recognizer",
    "audit_image",
    "dlib_available",
    "get_recognizer",
    "metadata_leaks",
]
