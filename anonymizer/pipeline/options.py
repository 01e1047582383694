"""What `anonymize` applies to every file (:class:`AnonymizeOptions`), and the rules options must keep,
checked once for the API, the CLI (which turns a broken rule into a usage error before anything loads)
and the per-file work alike."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from .. import defaults
from ..defaults import ANONYMIZE_METHODS, TARGETS
from ..errors import InputError
from ..vault.keys import Key, fingerprint

__all__ = ["AnonymizeOptions", "check_method", "parse_targets", "parse_watch"]


@dataclass(frozen=True)
class AnonymizeOptions:
    """Everything `anonymize` applies to each file but the key (see the command's --help)."""

    method: str = defaults.DEFAULT_METHOD
    targets: tuple[str, ...] = ("face",)
    threshold: float | None = (
        None  # None: defaults.DEFAULT_THRESHOLD for photos, defaults.DEFAULT_VIDEO_THRESHOLD for videos
    )
    mask_scale: float = defaults.DEFAULT_MASK_SCALE
    shape: str = "ellipse"
    feather: float = defaults.DEFAULT_FEATHER
    upscale: float | None = None  # None: defaults.DEFAULT_UPSCALE for photos, 0 for videos
    quality: int = 95
    keep_metadata: bool = False
    keep_private: tuple[str, ...] = ()  # with keep_metadata: the media.image.PRIVATE_METADATA kinds kept too
    vault: str = "embed"
    detect_every: int = defaults.DEFAULT_DETECT_EVERY
    watch: tuple[str, ...] = defaults.VIDEO_WATCH  # videos: targets whose faint candidates are looked at again
    plate_every: int = defaults.PLATE_DETECT_EVERY  # videos: plates are detected on every plate_every-th frame
    codec: str = "libx264"
    crf: int = 18
    lossless: bool = False
    start: float | None = None
    end: float | None = None
    cut: bool = False
    detector: str | None = None  # one of defaults.FACE_DETECTORS; None: DEFAULT_DETECTOR for photos,
    # DEFAULT_VIDEO_DETECTOR for videos

    def __post_init__(self) -> None:
        object.__setattr__(self, "watch", parse_watch(self.watch))
        if self.detector is not None and self.detector not in defaults.FACE_DETECTORS:
            raise InputError(
                f"unknown face detector {self.detector!r}; expected one of {', '.join(defaults.FACE_DETECTORS)}"
            )

    def fingerprint(self, key: Key | None) -> str:
        """A digest of the options and of how outputs are sealed (whether with a password, which
        recipients; never anything secret): a resumed run only skips files finished the same way."""
        sealing = (
            None
            if key is None
            else {"password": key.has_password, "recipients": sorted(fingerprint(r) for r in key.recipients)}
        )
        blob = json.dumps({"options": asdict(self), "sealing": sealing}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def parse_targets(targets: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """ "face,person" or ("face", "person") -> a checked, de-duplicated tuple in :data:`TARGETS` order."""
    items = [t.strip() for t in (targets.split(",") if isinstance(targets, str) else targets)]
    bad = [t for t in items if t not in TARGETS]
    if bad or not items:
        raise InputError(f"targets must be a comma-separated list of {', '.join(TARGETS)}; got {','.join(items)!r}")
    return tuple(t for t in TARGETS if t in items)


def parse_watch(watch: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """ "face,plate", "plate" or "none" (or a tuple) -> the targets whose faint candidates a video looks at again
    between detection frames (faces and plates only; persons are segmented, not probed)."""
    items = [t.strip() for t in (watch.split(",") if isinstance(watch, str) else watch)]
    if items in (["none"], [""], []):
        return ()
    if not set(items) <= {"face", "plate"}:
        raise InputError(f"watch takes face, plate or both (comma-separated), or none; got {','.join(items)!r}")
    return parse_targets(items)


def check_method(method: str, targets: tuple[str, ...]) -> None:
    """Refuse an unknown ``method``, or one that cannot cover ``targets`` (parsed by :func:`parse_targets`)."""
    if method not in ANONYMIZE_METHODS:
        raise InputError(f"unknown method {method!r}; expected one of {', '.join(ANONYMIZE_METHODS)}")
    if method == "surrogate" and "person" in targets:
        raise InputError("surrogate faces replace faces only; cover persons with solid, pixelate or blur")
