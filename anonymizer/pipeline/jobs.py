"""One file of `anonymizer anonymize`: the work every backend runs (local, or a Ray worker), so that both
give the same output for the same options."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import defaults
from ..errors import InputError
from ..media.video import probe
from ..vault.images import sidecar_path
from ..vault.keys import Key
from ..vault.surrogate import SurrogateSeed
from .batch import Job, describe_error
from .options import AnonymizeOptions

log = logging.getLogger(__name__)


def span_problems(jobs: list[Job], opts: AnonymizeOptions) -> dict[Path, str]:
    """The videos among ``jobs`` that ``opts.start`` would leave with nothing to anonymize (it lies at or
    past their end), each with its error line; checked before any model loads. Videos that cannot be
    read are left to fail with their own error."""
    problems: dict[Path, str] = {}
    if opts.start is None:
        return problems
    for job in jobs:
        if not job.is_video:
            continue
        try:
            duration = probe(job.src).duration
        except InputError:
            continue
        if duration > 0 and opts.start >= duration:
            problems[job.src] = describe_error(
                job.src,
                InputError(
                    f"--start {opts.start:g} s is at or past the end of the video ({duration:.2f} s)", path=job.src
                ),
            )
    return problems


def load_models(jobs: list[Job], opts: AnonymizeOptions) -> None:
    """Load the models ``jobs`` will need with ``opts`` now (each once per process), so that work on the
    first file does not sit silently behind them; -v logs how long each took."""
    from . import models  # (torch is imported on first use: `anonymizer --help` stays fast)

    def timed(what: str, load: Callable[[], object]) -> None:
        t0 = time.perf_counter()
        load()
        log.info("loaded %s in %.2f s", what, time.perf_counter() - t0)

    photos, videos = any(not j.is_video for j in jobs), any(j.is_video for j in jobs)
    if photos and "face" in opts.targets:
        timed(
            "the face detector (photos)",
            lambda: models.get_finder(
                opts.detector or defaults.DEFAULT_DETECTOR,
                threshold=defaults.DEFAULT_THRESHOLD if opts.threshold is None else opts.threshold,
                upscale=defaults.DEFAULT_UPSCALE if opts.upscale is None else opts.upscale,
            ),
        )
    if photos and "person" in opts.targets:
        timed("the person segmenter", models.get_segmenter)
    if photos and "plate" in opts.targets:
        timed("the plate detector (photos)", models.get_plate_finder)
    if videos and "plate" in opts.targets:
        timed("the plate detector (videos)", lambda: video_finders(("plate",), opts.threshold, opts.upscale))
    if videos and "face" in opts.targets:
        timed(
            "the face detector (videos)", lambda: video_finders(("face",), opts.threshold, opts.upscale, opts.detector)
        )
    if opts.method == "surrogate":
        timed("the surrogate painter (donor bank, face mesh)", models.get_painter)


def anonymize_photo_file(
    job: Job, opts: AnonymizeOptions, key: Key | None, seed: SurrogateSeed | None
) -> dict[str, Any]:
    """Anonymize one photo into ``job.dest``; returns its JSON row (path, output, faces[, persons, plates,
    vault])."""
    from ..media.image import load_image, private_metadata
    from .image import anonymize_loaded

    assert job.dest is not None
    t0 = time.perf_counter()
    image = load_image(job.src)
    t1 = time.perf_counter()
    result = anonymize_loaded(
        image,
        method=opts.method,
        shape=opts.shape,
        mask_scale=opts.mask_scale,
        feather=opts.feather,
        threshold=defaults.DEFAULT_THRESHOLD if opts.threshold is None else opts.threshold,
        upscale=defaults.DEFAULT_UPSCALE if opts.upscale is None else opts.upscale,
        model=opts.detector or defaults.DEFAULT_DETECTOR,
        key=key,
        targets=opts.targets,
        surrogate_seed=seed,
    )
    t2 = time.perf_counter()
    result.save(
        job.dest,
        format=job.dest.suffix,
        keep_metadata=opts.keep_metadata,
        keep_private=opts.keep_private,
        quality=opts.quality,
        vault=opts.vault,
    )
    log.info(
        "%s: read %.2f s, %d face(s) found and covered %.2f s, written %.2f s",
        job.src,
        t1 - t0,
        len(result.faces),
        t2 - t1,
        time.perf_counter() - t2,
    )
    row: dict[str, Any] = {"path": str(job.src), "output": str(job.dest), "faces": len(result.faces)}
    if opts.keep_metadata:  # which private kinds the photo had, kept (asked for by name) or left out
        private = private_metadata(image)
        row["metadata"] = {
            "kept": sorted(k for k in private if k in opts.keep_private),
            "left_out": sorted(k for k in private if k not in opts.keep_private),
        }
    for target in ("person", "plate"):
        if target in opts.targets:
            row[f"{target}s"] = len(result.extra.get(f"{target}s", ()))  # type: ignore[arg-type]
    if key is not None:
        side = sidecar_path(job.dest)
        row["vault"] = str(side) if side.is_file() else "embedded"
    return row


def run_video(src: Path, dest: Path, opts: AnonymizeOptions, **kw: Any):  # noqa: ANN201 (a VideoReport)
    """:func:`~anonymizer.pipeline.video.anonymize_video` with ``opts`` and the finders they ask for (faces:
    the video threshold and upscale defaults; plates: the plate threshold, at the frame's own size; persons:
    the person segmenter); ``kw``: its other arguments (key, progress, surrogate seed, piece)."""
    from .video import anonymize_video

    f = video_finders(opts.targets, opts.threshold, opts.upscale, opts.detector)
    return anonymize_video(
        src, dest, opts, finder=f.get("face"), plate_finder=f.get("plate"), person_finder=f.get("person"), **kw
    )


def video_finders(
    targets: tuple[str, ...],
    threshold: float | None,
    upscale: float | None,
    detector: str | None = None,
) -> dict[str, Any]:
    """Target -> the shared finder a video uses for it: faces by ``detector`` (default: the video detector,
    :data:`~anonymizer.defaults.DEFAULT_VIDEO_DETECTOR`) at ``threshold`` and ``upscale`` (default: the video
    threshold, one pass at the frame's size), plates at the frame's own size and reduced by
    :data:`~anonymizer.defaults.PLATE_VIDEO_REDUCED`, persons from the video
    segmenter down to :data:`~anonymizer.defaults.PERSON_CARRY_THRESHOLD`."""
    from . import models

    finders: dict[str, Any] = {}
    if "face" in targets:
        finders["face"] = models.get_finder(
            detector or defaults.DEFAULT_VIDEO_DETECTOR,
            threshold=defaults.DEFAULT_VIDEO_THRESHOLD if threshold is None else threshold,
            upscale=0.0 if upscale is None else upscale,
        )
    if "plate" in targets:
        finders["plate"] = models.get_plate_finder(
            upscale=defaults.PLATE_VIDEO_UPSCALE, reduced=defaults.PLATE_VIDEO_REDUCED
        )
    if "person" in targets:
        finders["person"] = models.get_segmenter(defaults.PERSON_CARRY_THRESHOLD, video=True)
    return finders


def anonymize_video_file(
    job: Job,
    opts: AnonymizeOptions,
    key: Key | None,
    seed: SurrogateSeed | None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Anonymize one whole video into ``job.dest``; returns its JSON row (path, output, frames, tracks,
    regions[, vault])."""
    assert job.dest is not None
    t0 = time.perf_counter()
    rep = run_video(job.src, job.dest, opts, key=key, progress=progress, surrogate_seed=seed)
    log.info("%s: %d frame(s), %d face track(s) in %.2f s", job.src, rep.frames, rep.tracks, time.perf_counter() - t0)
    row: dict[str, Any] = {
        "path": str(job.src),
        "output": str(job.dest),
        "frames": rep.frames,
        "tracks": rep.tracks,
        **({"plate_tracks": rep.plate_tracks} if "plate" in opts.targets else {}),
        **({"person_tracks": rep.person_tracks} if "person" in opts.targets else {}),
        "regions": rep.regions,
        "seconds": {stage: round(s, 3) for stage, s in rep.timings.items()},  # where the time went
    }
    if key is not None:
        row["vault"] = str(sidecar_path(job.dest))
    return row


def anonymize_file(
    job: Job,
    opts: AnonymizeOptions,
    key: Key | None,
    seed: SurrogateSeed | None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """One photo or video (by its extension) into ``job.dest``; ``progress`` counts a video's frames."""
    if job.is_video:
        return anonymize_video_file(job, opts, key, seed, progress=progress)
    return anonymize_photo_file(job, opts, key, seed)
