"""Batches: walk files and folders into a mirrored output tree; one bad file never stops the rest."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AnonymizerError, InputError
from ..media.image import FORMATS, IMAGE_SUFFIXES, normalize_format
from ..media.video import VIDEO_SUFFIXES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One input file and where its output goes."""

    src: Path
    dest: Path | None


@dataclass
class BatchReport:
    done: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    #: finished by an earlier run (the Ray backend's manifest), not redone
    skipped: list[Path] = field(default_factory=list)
    #: work given to another worker after its worker died (the Ray backend)
    retries: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def collect_inputs(inputs: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(file, path relative to its output root) for every file named or found under a named folder.

    Folders are walked recursively for image and video files (sorted, hidden entries skipped); named files are
    taken whatever their extension (a non-image then fails with a clear error). A missing input raises
    InputError.
    """
    out: list[tuple[Path, Path]] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                    out.append((f, rel))
        elif p.exists():
            out.append((p, Path(p.name)))
        else:
            raise InputError("no such file or folder", path=p)
    return out


def output_suffix(src: Path, fmt: str | None) -> str:
    """The output extension: the input's own unless ``fmt`` names another (image) format."""
    if src.suffix.lower() in VIDEO_SUFFIXES:
        return src.suffix
    if fmt is None:
        return src.suffix if src.suffix.lower() in IMAGE_SUFFIXES else ".png"
    name = normalize_format(fmt)
    if src.suffix.lower() in IMAGE_SUFFIXES and normalize_format(src.suffix) == name:
        return src.suffix
    return FORMATS[name]


def plan_jobs(inputs: Iterable[str | Path], out_dir: str | Path | None, *, fmt: str | None = None) -> list[Job]:
    """Pair every input file with its output path in the mirrored tree under ``out_dir``.

    Raises InputError when the output folder lies inside an input folder or is an input file, so that
    outputs are never read back as inputs and no input is ever overwritten.
    """
    paths = [Path(i) for i in inputs]
    if not paths:
        raise InputError("no inputs given")
    out_root = None if out_dir is None else Path(out_dir).resolve()
    if out_root is not None:
        for i in paths:
            ir = i.resolve()
            if i.is_dir() and _is_within(out_root, ir):
                raise InputError(f"output folder {out_dir} is inside the input folder; choose one outside it", path=i)
            if i.is_file() and ir == out_root:
                raise InputError("output folder is an input file", path=i)
    files = collect_inputs(paths)
    sources = {f.resolve() for f, _ in files}
    jobs: list[Job] = []
    for f, rel in files:
        if out_root is None:
            jobs.append(Job(f, None))
            continue
        dest = out_root / rel.with_suffix(output_suffix(f, fmt))
        jobs.append(Job(f, dest))
        if dest.resolve() in sources:
            raise InputError(f"output {dest} would overwrite an input", path=f)
    return jobs


def describe_error(src: Path, exc: Exception) -> str:
    """One line naming the file and the problem, for an error that fails one file of a batch."""
    if isinstance(exc, AnonymizerError):
        return str(exc) if exc.path else f"{src}: {exc}"
    if isinstance(exc, OSError):
        return f"{src}: {exc.strerror or exc}"
    # a bug or a library's unexpected error
    log.debug("unexpected error on %s", src, exc_info=exc)
    return f"{src}: unexpected error ({type(exc).__name__}: {exc})"


def stale_parts(dest: Path) -> list[Path]:
    """Temporary files an interrupted write of ``dest`` may have left beside it (``.NAME.*.part*`` from
    :func:`~anonymizer.media.image.write_atomic` and the video writer, and their own temporaries)."""
    folder = dest.parent
    if not folder.is_dir():
        return []
    return sorted({*folder.glob(f".{dest.name}.*part*"), *folder.glob(f"..{dest.name}.*part*")})


def run_jobs(
    jobs: list[Job],
    work: Callable[[Job], object],
    *,
    progress: bool = False,
    desc: str = "files",
    on_result: Callable[[Job, object | None, str | None], None] | None = None,
) -> BatchReport:
    """Run ``work`` on every job; an AnonymizerError (or OSError) fails that file only.

    ``on_result(job, result, error)`` is called after each file. Duplicate output paths fail the later job.
    """
    from tqdm import tqdm

    report = BatchReport()
    seen: set[Path] = set()
    bar: Iterator[Job] | tqdm = tqdm(jobs, desc=desc, unit="file", disable=not progress, leave=False)
    for job in bar:
        error: str | None = None
        result: object | None = None
        try:
            if job.dest is not None:
                if job.dest in seen:
                    raise InputError(f"output {job.dest} is already written by another input", path=job.src)
                seen.add(job.dest)
            result = work(job)
        except Exception as exc:  # this file fails, the batch goes on
            error = describe_error(job.src, exc)
        if error is None:
            report.done.append(job.src)
        else:
            report.failed.append((job.src, error))
            log.debug("failed: %s", error)
        if on_result is not None:
            on_result(job, result, error)
    return report
