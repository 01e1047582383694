"""The stable Python facade: detect faces in an image and anonymize it.

Images may be given as a path, a PIL image or an RGB (or RGBA / grey) uint8 array. Coordinates are
pixels of the upright image (EXIF orientation applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .defaults import DEFAULT_METHOD
from .media.image import LoadedImage, load_image
from .nn.runtime import configure_runtime
from .pipeline.image import (
    ANONYMIZE_METHODS,
    TARGETS,
    AnonymizedImage,
    anonymize_loaded,
    check_method,
    parse_targets,
)
from .pipeline.models import get_deepfake_scorer, get_finder, get_painter, get_segmenter
from .pipeline.persons import DEFAULT_PERSON_THRESHOLD, Person
from .pipeline.photo import DEFAULT_FEATHER, DEFAULT_MASK_SCALE, DEFAULT_THRESHOLD, DEFAULT_UPSCALE
from .types import Detections, Face
from .vault.images import RestoredImage, restore_bytes, restore_file
from .vault.keys import Identity, Key, surrogate_seed_for
from .vault.surrogate import SurrogateSeed
from .weights import is_ready, list_weights, weights_path

if TYPE_CHECKING:
    from .audit.report import AuditResult

__all__ = [
    "ANONYMIZE_METHODS",
    "TARGETS",
    "AnonymizedImage",
    "ImageInput",
    "anonymize_image",
    "audit_image",
    "check_method",
    "configure_runtime",
    "deepfake_score",
    "detect_faces",
    "enhance",
    "get_deepfake_scorer",
    "get_finder",
    "get_painter",
    "get_segmenter",
    "is_ready",
    "list_weights",
    "parse_targets",
    "restore_image",
    "segment_persons",
    "surrogate_seed_for",
    "weights_path",
]

ImageInput = str | Path | Image.Image | np.ndarray | LoadedImage


def _load(image: ImageInput) -> LoadedImage:
    return image if isinstance(image, LoadedImage) else load_image(image)


def detect_faces(
    image: ImageInput,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    upscale: float = DEFAULT_UPSCALE,
    model: str = "centerface",
) -> Detections:
    """Every face above ``threshold``: boxes, scores and five landmarks, best first."""
    img = _load(image)
    faces = get_finder(model, threshold, upscale).find(img.rgb)
    return Detections(width=img.width, height=img.height, faces=faces, path=str(img.path) if img.path else None)


def anonymize_image(
    image: ImageInput,
    *,
    method: str = DEFAULT_METHOD,
    shape: str = "ellipse",
    mask_scale: float = DEFAULT_MASK_SCALE,
    feather: float = DEFAULT_FEATHER,
    threshold: float = DEFAULT_THRESHOLD,
    upscale: float = DEFAULT_UPSCALE,
    color: tuple[int, int, int] = (0, 0, 0),
    model: str = "centerface",
    key: Key | None = None,
    targets: str | tuple[str, ...] = ("face",),
    surrogate_seed: SurrogateSeed | None = None,
) -> AnonymizedImage:
    """Find every face and cover it with ``method``: "solid" (the default), "pixelate", "blur" or
    "surrogate" (faces only; refused with persons).

    "surrogate" replaces each face inside its outline by the face of someone who does not exist, from the
    donor bank (models/donors.md), turned to the face's pose and lit like it
    (:mod:`anonymizer.pipeline.donor_painter`; a face whose mesh cannot be trusted is covered solid;
    ``shape``, ``mask_scale``, ``feather`` and ``color`` do not apply). The donor comes from
    ``surrogate_seed``, else from ``key``'s password (:meth:`Key.surrogate_seed`: the same password and
    photo always give the same surrogates), else from a random seed (new faces on every call). The
    seed is mixed with a digest of the photo's pixels, so the first face of two photos differ.

    ``targets``: ("face",) (default), ("person",) or ("face", "person") (also as "face,person"): with
    "person", every person's segmentation mask (:func:`segment_persons`) is covered with the same method
    first, then the faces as before; ``result.extra["persons"]`` lists the persons found.

    Returns the anonymized upright RGB image with the faces, the covered regions and the changed-pixel
    mask. The input is not modified. With ``key`` (:meth:`Key.from_password`, :meth:`Key.from_recipients`)
    the original pixels of every region are kept for sealing: ``result.save(path)`` / ``result.encode()``
    write them encrypted into a vault, which :func:`restore_image` opens.
    """
    return anonymize_loaded(
        _load(image),
        method=method,
        shape=shape,
        mask_scale=mask_scale,
        feather=feather,
        threshold=threshold,
        upscale=upscale,
        color=color,
        model=model,
        key=key,
        targets=targets,
        surrogate_seed=surrogate_seed,
    )


def segment_persons(image: ImageInput, *, threshold: float = DEFAULT_PERSON_THRESHOLD) -> tuple[Person, ...]:
    """Every person above ``threshold`` (best first): ``box`` (x1, y1, x2, y2), ``score`` and ``mask``, a
    bool (H, W) array of the upright image, from the Mask R-CNN trained here (models/person_maskrcnn.md)."""
    return get_segmenter(threshold).segment(_load(image).rgb)


def deepfake_score(
    image: ImageInput, *, faces: Sequence[Face] | None = None, aligned: bool = False
) -> tuple[float, ...]:
    """Probability that each face is synthetic or manipulated (models/deepfake.md).

    ``image``: a photo, whose faces are found by our detector unless ``faces`` (with landmarks) are given,
    one score per face in that order; or, with ``aligned=True``, one face crop already aligned onto the
    classifier's 128x128 template (:func:`anonymizer.pipeline.deepfake.align_for_deepfake`): one score.
    """
    scorer = get_deepfake_scorer()
    rgb = _load(image).rgb
    if aligned:
        return tuple(float(v) for v in scorer.score_crops(rgb[None]))
    found = tuple(faces) if faces is not None else get_finder().find(rgb)
    return tuple(float(v) for v in scorer.score_faces(rgb, found))


def restore_image(image: str | Path | bytes, key: Key | Identity, *, sidecar: bytes | None = None) -> RestoredImage:
    """Put the original pixels back into an image anonymized with a key.

    ``image`` is a path (its vault embedded, or in ``PATH.vault`` beside it) or the file's bytes (with
    ``sidecar`` when the vault is separate). ``key``: ``Key.from_password(...)`` or ``Identity.load(...)``.
    Raises WrongKeyError, VaultIntegrityError or VaultError; never returns partial results.
    """
    if isinstance(image, bytes | bytearray):
        return restore_bytes(bytes(image), key, sidecar=sidecar)
    return restore_file(image, key)


def audit_image(
    output: str | Path,
    *,
    original: str | Path | None = None,
    key: Key | Identity | None = None,
    recognizer: str = "auto",
) -> AuditResult:
    """Audit one anonymized photo file: faces still detected, identity distance of each original face
    (``original`` given, or restored through ``key``), identifying metadata, vault present and opening.

    ``result.verdict`` is "pass" or "fail"; ``result.reasons`` says why; ``result.to_dict()`` for JSON.
    ``recognizer``: "dlib" (the ``[audit]`` extra), "identity_net", or "auto" (dlib when installed).
    """
    from .audit.recognizers import get_recognizer
    from .audit.report import audit_image as _audit

    rec = get_recognizer(recognizer) if (original is not None or key is not None) else None
    return _audit(output, finder=get_finder(), recognizer=rec, original=original, key=key)


def enhance(image: ImageInput, *, scale: int = 4, model: str = "srresnet") -> np.ndarray:
    """Super-resolve an image ``scale`` (4) times with "srresnet" (sharpest by PSNR) or "srgan" (more
    natural texture); returns RGB uint8 (4H, 4W, 3). Large images are processed in overlapping tiles."""
    from .pipeline.enhance import enhance_array

    return enhance_array(_load(image).rgb, model=model, scale=scale)
