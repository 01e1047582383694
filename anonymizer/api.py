"""The stable Python facade: photos, videos and folders anonymized, restored and audited.

Images may be given as a path, a PIL image or an RGB (or RGBA / grey) uint8 array. Coordinates are
pixels of the upright image (EXIF orientation applied). Batches: :func:`plan_files` pairs inputs with
outputs; :func:`anonymize_files` (locally or on Ray), :func:`detect_files`, :func:`enhance_files`,
:func:`restore_files` and :func:`audit_files` work through them, one bad file never stopping the rest.

Importing this module is cheap (no torch): the models load on first use, so the CLI, which calls only
this module, starts fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .audit.html import render_html as render_audit_html
from .audit.report import AuditResult
from .defaults import (
    ANONYMIZE_METHODS,
    DEFAULT_FEATHER,
    DEFAULT_MASK_SCALE,
    DEFAULT_METHOD,
    DEFAULT_PERSON_THRESHOLD,
    DEFAULT_PLATE_THRESHOLD,
    DEFAULT_THRESHOLD,
    DEFAULT_UPSCALE,
    PLATE_UPSCALE,
    TARGETS,
)
from .media.contact_sheet import contact_sheet
from .media.files import write_atomic, write_private
from .media.image import PRIVATE_METADATA, LoadedImage, load_image
from .media.video import probe
from .pipeline.batch import BatchReport, Job, plan, walk_inputs
from .pipeline.options import AnonymizeOptions, check_method, parse_targets, parse_watch
from .pipeline.runner import RayOptions, anonymize_files, detect_files, enhance_files, restore_files
from .types import Detections, Face, Plate
from .vault.images import RestoredImage, restore_bytes, restore_file
from .vault.keys import Identity, Key, fingerprint, surrogate_seed_for
from .vault.surrogate import SurrogateSeed
from .weights import is_ready, list_weights, weights_path

if TYPE_CHECKING:
    from .audit.batch import AuditRun
    from .pipeline.deepfake import DeepfakeScorer
    from .pipeline.donor_painter import DonorPainter
    from .pipeline.image import AnonymizedImage
    from .pipeline.persons import Person, PersonSegmenter
    from .pipeline.photo import FaceFinder
    from .pipeline.plates import PlateFinder
    from .pipeline.video import VideoReport

__all__ = [
    "ANONYMIZE_METHODS",
    "PRIVATE_METADATA",
    "TARGETS",
    "AnonymizeOptions",
    "AnonymizedImage",
    "AuditResult",
    "AuditRun",
    "BatchReport",
    "Identity",
    "ImageInput",
    "Job",
    "Key",
    "RayOptions",
    "SurrogateSeed",
    "anonymize_files",
    "anonymize_image",
    "anonymize_video",
    "audit_files",
    "audit_image",
    "check_method",
    "configure_runtime",
    "contact_sheet",
    "deepfake_score",
    "detect_faces",
    "detect_files",
    "detect_plates",
    "enhance",
    "enhance_files",
    "fingerprint",
    "get_deepfake_scorer",
    "get_finder",
    "get_painter",
    "get_plate_finder",
    "get_segmenter",
    "is_ready",
    "list_weights",
    "parse_targets",
    "parse_watch",
    "plan_files",
    "render_audit_html",
    "probe",
    "restore_files",
    "restore_image",
    "restore_video",
    "segment_persons",
    "surrogate_seed_for",
    "walk_inputs",
    "weights_path",
    "write_atomic",
    "write_private",
]

#: :func:`anonymizer.pipeline.batch.plan`: every input file paired with its output in the mirrored tree
plan_files = plan


def __getattr__(name: str) -> Any:
    # the result type of anonymize_image, defined beside the code that makes it (which needs torch)
    if name == "AnonymizedImage":
        from .pipeline.image import AnonymizedImage

        return AnonymizedImage
    if name == "AuditRun":
        from .audit.batch import AuditRun

        return AuditRun
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def configure_runtime(threads: int | None = None) -> int:
    """Use ``threads`` CPU threads for the models (None: all cores) and flush denormal floats (see
    :func:`anonymizer.nn.runtime.configure_runtime`); returns the number of threads."""
    from .nn.runtime import configure_runtime as configure

    return configure(threads)


def get_finder(
    model: str = "centerface", threshold: float = DEFAULT_THRESHOLD, upscale: float = DEFAULT_UPSCALE
) -> FaceFinder:
    """The shared face finder per setting (the model loads once per process)."""
    from .pipeline import models

    return models.get_finder(model, threshold, upscale)


def get_segmenter(threshold: float = DEFAULT_PERSON_THRESHOLD) -> PersonSegmenter:
    """The shared person segmenter per threshold (the Mask R-CNN loads once per process)."""
    from .pipeline import models

    return models.get_segmenter(threshold)


def get_plate_finder(threshold: float = DEFAULT_PLATE_THRESHOLD, upscale: float = PLATE_UPSCALE) -> PlateFinder:
    """The shared plate finder per setting (the plate detector loads once per process)."""
    from .pipeline import models

    return models.get_plate_finder(threshold, upscale)


def get_painter() -> DonorPainter:
    """The shared surrogate painter (donor bank and face mesh, loaded once per process)."""
    from .pipeline import models

    return models.get_painter()


def get_deepfake_scorer() -> DeepfakeScorer:
    """The shared deepfake scorer (the classifier loads once per process)."""
    from .pipeline import models

    return models.get_deepfake_scorer()


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

    ``targets``: any of "face" (the default), "person" and "plate", as a tuple or comma-separated
    ("face,plate"): with "person", every person's segmentation mask (:func:`segment_persons`) is covered
    with the same method first, then the faces as before; with "plate", every licence plate
    (:func:`detect_plates`) is covered by a box filled with the method (solid when it is "surrogate").
    ``result.extra["persons"]`` and ``result.extra["plates"]`` list what was found.

    Returns the anonymized upright RGB image with the faces, the covered regions and the changed-pixel
    mask. The input is not modified. With ``key`` (:meth:`Key.from_password`, :meth:`Key.from_recipients`)
    the original pixels of every region are kept for sealing: ``result.save(path)`` / ``result.encode()``
    write them encrypted into a vault, which :func:`restore_image` opens.
    """
    from .pipeline.image import anonymize_loaded

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


def detect_plates(
    image: ImageInput, *, threshold: float = DEFAULT_PLATE_THRESHOLD, upscale: float = PLATE_UPSCALE
) -> tuple[Plate, ...]:
    """Every licence plate above ``threshold`` (best first): ``box`` (x1, y1, x2, y2) and ``score``, in pixels
    of the upright image, from the plate detector trained here (models/plates.md); ``upscale``: the extra
    enlarged pass for small, distant plates (0 = off)."""
    return get_plate_finder(threshold, upscale).find(_load(image).rgb)


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


def audit_files(
    outputs: Sequence[str | Path],
    *,
    originals: str | Path | None = None,
    key: Key | Identity | None = None,
    recognizer: str = "auto",
    every: int = 5,
    keep_images: bool = False,
    progress: bool = False,
    on_result: Any = None,
) -> AuditRun:
    """Audit every photo and video under ``outputs`` (:func:`anonymizer.audit.batch.audit_files`): each
    face's identity against the original in ``originals`` or restored through ``key``, metadata, vaults;
    a video searched every ``every`` frames."""
    from .audit.batch import audit_files as run

    return run(
        [Path(p) for p in outputs],
        originals=Path(originals) if originals is not None else None,
        key=key,
        recognizer=recognizer,
        every=every,
        keep_images=keep_images,
        progress=progress,
        on_result=on_result,
    )


def enhance(image: ImageInput, *, scale: int = 4, model: str = "srresnet") -> np.ndarray:
    """Super-resolve an image ``scale`` (4) times with "srresnet" (sharpest by PSNR) or "srgan" (more
    natural texture); returns RGB uint8 (4H, 4W, 3). Large images are processed in overlapping tiles."""
    from .pipeline.enhance import enhance_array

    return enhance_array(_load(image).rgb, model=model, scale=scale)


def anonymize_video(
    src: str | Path,
    dest: str | Path,
    options: AnonymizeOptions | None = None,
    *,
    key: Key | None = None,
    surrogate_seed: SurrogateSeed | None = None,
    progress: Callable[[int], None] | None = None,
) -> VideoReport:
    """Anonymize the video ``src`` into ``dest`` (the same container) with ``options`` (their video defaults:
    threshold 0.2, one detection pass per frame every ``detect_every`` frames, faces tracked in between;
    plates, when targeted, every ``plate_every`` frames: every frame by default).
    With ``key`` the originals are sealed into ``dest.vault`` (:func:`restore_video` opens it);
    ``progress`` is called with the number of frames written."""
    from .pipeline.jobs import run_video

    opts = options or AnonymizeOptions()
    check_method(opts.method, opts.targets)
    return run_video(Path(src), Path(dest), opts, key=key, progress=progress, surrogate_seed=surrogate_seed)


def restore_video(
    src: str | Path, dest: str | Path, key: Key | Identity, *, progress: Callable[[int], None] | None = None
) -> int:
    """Write ``dest``: the video ``src`` with the originals its vault (``src.vault``) holds put back (see
    :func:`anonymizer.pipeline.video.restore_video`); returns the number of regions restored. A wrong key
    or a modified file or vault writes nothing."""
    from .pipeline.video import restore_video as restore

    return restore(src, dest, key, progress=progress)
