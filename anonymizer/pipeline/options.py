"""The rules options must keep, checked once for the API, the CLI (which turns a broken rule into a usage
error before anything loads) and the per-file work alike."""

from __future__ import annotations

from ..defaults import ANONYMIZE_METHODS, TARGETS
from ..errors import InputError

__all__ = ["check_method", "parse_targets"]


def parse_targets(targets: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """ "face,person" or ("face", "person") -> a checked, de-duplicated tuple in :data:`TARGETS` order."""
    items = [t.strip() for t in (targets.split(",") if isinstance(targets, str) else targets)]
    bad = [t for t in items if t not in TARGETS]
    if bad or not items:
        raise InputError(f"targets must be a comma-separated list of {', '.join(TARGETS)}; got {','.join(items)!r}")
    return tuple(t for t in TARGETS if t in items)


def check_method(method: str, targets: tuple[str, ...]) -> None:
    """Refuse an unknown ``method``, or one that cannot cover ``targets`` (parsed by :func:`parse_targets`)."""
    if method not in ANONYMIZE_METHODS:
        raise InputError(f"unknown method {method!r}; expected one of {', '.join(ANONYMIZE_METHODS)}")
    if method == "surrogate" and "person" in targets:
        raise InputError("surrogate faces replace faces only; cover persons with solid, pixelate or blur")
