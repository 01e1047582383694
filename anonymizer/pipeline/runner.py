"""Batches of photos and videos anonymized into an output folder, on this machine or on a Ray cluster:
what `anonymizer anonymize` runs once it has parsed its options, and what a Python user calls to do the
same (:func:`anonymizer.api.anonymize_files`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..defaults import DEFAULT_THRESHOLD, DEFAULT_UPSCALE
from ..errors import MediaError
from ..media.video import probe
from ..vault.keys import Identity, Key, surrogate_seed_for
from ..vault.surrogate import SurrogateSeed
from .batch import BatchReport, Job, run_jobs
from .jobs import anonymize_file, load_models, span_problems
from .options import AnonymizeOptions
from .tasks import detect_job, enhance_job, restore_job

OnResult = Callable[[Job, object | None, str | None], None]


@dataclass(frozen=True)
class RayOptions:
    """Where and how the Ray backend runs (README, Scale-out): ``address`` of a cluster (None: start Ray on
    this machine), ``workers`` (None: the cluster's CPUs over the threads each uses), long videos cut into
    pieces of about ``segment_seconds`` (0: whole)."""

    address: str | None = None
    workers: int | None = None
    segment_seconds: float = 30.0


def anonymize_files(
    jobs: list[Job],
    output: str | Path,
    opts: AnonymizeOptions,
    *,
    key: Key | None = None,
    seed: SurrogateSeed | None = None,
    ray: RayOptions | None = None,
    threads: int | None = None,
    progress: bool = False,
    on_result: OnResult | None = None,
    on_loading: Callable[[], None] | None = None,
) -> BatchReport:
    """Anonymize ``jobs`` (planned by :func:`anonymizer.pipeline.batch.plan`) into ``output`` with ``opts``,
    on this machine or, with ``ray``, on a Ray cluster; one bad file never stops the rest.

    Videos that ``opts.start`` leaves with nothing to do fail before any model loads; the output folder is
    made only when something is left to do. Locally the models load once, before the first file
    (``on_loading`` is called first, to say so). ``on_result(job, row, error)`` hears of every file as it
    finishes, the refused ones last; ``key`` seals the originals, ``seed`` chooses surrogate faces."""
    output = Path(output)
    if opts.method == "surrogate" and seed is None:  # one seed for the batch, as the CLI chooses it
        seed = surrogate_seed_for(key)
    refused = span_problems(jobs, opts)
    todo = [j for j in jobs if j.src not in refused]
    if todo:
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MediaError(f"cannot create the output folder: {exc.strerror or exc}", path=output) from exc
    if ray is not None:
        from .cluster import run_on_ray

        report = run_on_ray(
            todo,
            output,
            opts,
            key,
            seed,
            address=ray.address,
            workers=ray.workers,
            segment_seconds=ray.segment_seconds,
            threads=threads,
            progress=progress,
            on_result=on_result,
        )
    else:
        if todo:
            if on_loading is not None:
                on_loading()
            load_models(todo, opts)
        work = functools.partial(anonymize_job, opts=opts, key=key, seed=seed, progress=progress)
        report = run_jobs(todo, work, progress=progress, desc="anonymize", on_result=on_result)
    for job in jobs:
        if job.src in refused:
            report.failed.append((job.src, refused[job.src]))
            if on_result is not None:
                on_result(job, None, refused[job.src])
    return report


def anonymize_job(
    job: Job, *, opts: AnonymizeOptions, key: Key | None, seed: SurrogateSeed | None, progress: bool = False
) -> dict[str, object]:
    """One file on this machine; with ``progress`` a video gets its own bar of frames."""
    if not job.is_video:
        return anonymize_file(job, opts, key, seed)
    from tqdm import tqdm

    info = probe(job.src)
    with tqdm(
        total=info.expected_frames(opts.start, opts.end, opts.cut),
        desc=job.src.name,
        unit="frame",
        disable=not progress,
        leave=False,
    ) as bar:
        return anonymize_file(job, opts, key, seed, progress=bar.update)


def detect_files(
    jobs: list[Job],
    *,
    targets: tuple[str, ...] = ("face",),
    threshold: float = DEFAULT_THRESHOLD,
    upscale: float = DEFAULT_UPSCALE,
    progress: bool = False,
    on_result: OnResult | None = None,
) -> BatchReport:
    """Faces (and persons) of every planned photo (:func:`~anonymizer.pipeline.tasks.detect_job`)."""
    work = functools.partial(detect_job, targets=targets, threshold=threshold, upscale=upscale)
    return run_jobs(jobs, work, progress=progress, desc="detect", on_result=on_result)


def enhance_files(
    jobs: list[Job],
    *,
    model: str = "srresnet",
    scale: int = 4,
    progress: bool = False,
    on_result: OnResult | None = None,
) -> BatchReport:
    """Every planned photo super-resolved into its PNG output (:func:`~anonymizer.pipeline.tasks.enhance_job`)."""
    work = functools.partial(enhance_job, model=model, scale=scale)
    return run_jobs(jobs, work, progress=progress, desc="enhance", on_result=on_result)


def restore_files(
    jobs: list[Job], key: Key | Identity, *, progress: bool = False, on_result: OnResult | None = None
) -> BatchReport:
    """The originals of every planned file anonymized with a key (:func:`~anonymizer.pipeline.tasks.restore_job`);
    a wrong key or a modified file writes nothing for that file."""
    work = functools.partial(restore_job, key=key, progress=progress)
    return run_jobs(jobs, work, progress=progress, desc="restore", on_result=on_result)
