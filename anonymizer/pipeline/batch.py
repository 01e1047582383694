"""Batches: walk files and folders into a mirrored output tree; one bad file never stops the rest."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AnonymizerError, InputError
from ..media.image import FORMATS, IMAGE_SUFFIXES, is_image_file, normalize_format
from ..media.video import VIDEO_SUFFIXES, is_video_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One input file and where its output goes; ``video``: a video by its content though not by its
    extension (see :attr:`is_video`)."""

    src: Path
    dest: Path | None
    video: bool = False

    @property
    def is_video(self) -> bool:
        return self.video or self.src.suffix.lower() in VIDEO_SUFFIXES


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


@dataclass
class Walk:
    """What a walk over the inputs found: the files to work on (file, path relative to its output root),
    those of them that are videos by content but not by extension, and the files left out with why."""

    files: list[tuple[Path, Path]] = field(default_factory=list)
    videos: set[Path] = field(default_factory=set)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


#: our own sidecar files (sealed originals): never inputs, and not worth a line among the skipped files
SIDECAR_SUFFIXES = frozenset({".vault"})


def _kind(path: Path) -> str | None:
    """ "image" or "video" by extension, else by content (Pillow, then FFmpeg); None for neither."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if is_image_file(path):
        return "image"
    return "video" if is_video_file(path) else None


def _walk_folder(root: Path, found: Walk) -> None:
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        for d in sorted(dirs):
            if d.startswith("."):
                found.skipped.append((here / d, "hidden folder"))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            f = here / name
            if name.startswith("."):
                found.skipped.append((f, "hidden file"))
            elif f.suffix.lower() in SIDECAR_SUFFIXES or not f.is_file():
                continue
            elif (kind := _kind(f)) is None:
                found.skipped.append((f, "not a photo or video"))
            else:
                found.files.append((f, f.relative_to(root)))
                if kind == "video" and f.suffix.lower() not in VIDEO_SUFFIXES:
                    found.videos.add(f)
    found.files.sort(key=lambda item: item[1].parts)


def walk_inputs(inputs: Iterable[str | Path]) -> Walk:
    """Every file named, and every photo or video found under a named folder (recursively, sorted).

    In folders, photos and videos are recognised by extension or else by content (a GIF, a photo without
    an extension); hidden entries and other files are listed in ``skipped`` with the reason. Named files
    are taken whatever they hold (a non-image then fails with a clear error). A missing input raises
    InputError.
    """
    found = Walk()
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            _walk_folder(p, found)
        elif p.exists():
            found.files.append((p, Path(p.name)))
            if p.suffix.lower() not in VIDEO_SUFFIXES and _kind(p) == "video":
                found.videos.add(p)
        else:
            raise InputError("no such file or folder", path=p)
    return found


def collect_inputs(inputs: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(file, path relative to its output root) for every input file: :func:`walk_inputs`'s files."""
    return walk_inputs(inputs).files


def output_suffix(src: Path, fmt: str | None, *, video: bool = False) -> str:
    """The output extension: the input's own unless ``fmt`` names another (image) format. A video
    recognised by its content alone (``video``) is written as Matroska, which holds any codec."""
    if src.suffix.lower() in VIDEO_SUFFIXES:
        return src.suffix
    if video:
        return ".mkv"
    if fmt is None:
        return src.suffix if src.suffix.lower() in IMAGE_SUFFIXES else ".png"
    name = normalize_format(fmt)
    if src.suffix.lower() in IMAGE_SUFFIXES and normalize_format(src.suffix) == name:
        return src.suffix
    return FORMATS[name]


@dataclass
class Plan:
    """The jobs of a batch, and the files found but left out (path, reason)."""

    jobs: list[Job]
    skipped: list[tuple[Path, str]]


def plan(inputs: Iterable[str | Path], out_dir: str | Path | None, *, fmt: str | None = None) -> Plan:
    """Pair every input file with its output path in the mirrored tree under ``out_dir``.

    Raises InputError when the output folder lies inside an input folder or is an input file, so that
    outputs are never read back as inputs and no input is ever overwritten, and when there is nothing to
    do (no inputs, or folders without a photo or video), naming the inputs.
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
    found = walk_inputs(paths)
    if not found.files:
        what = "no photos or videos in it" if len(paths) == 1 else "no photos or videos in these folders"
        raise InputError(
            what + (f" ({len(found.skipped)} other file(s) skipped)" if found.skipped else ""),
            path=paths[0] if len(paths) == 1 else ", ".join(map(str, paths)),
        )
    sources = {f.resolve() for f, _ in found.files}
    jobs: list[Job] = []
    for f, rel in found.files:
        video = f in found.videos
        if out_root is None:
            jobs.append(Job(f, None, video))
            continue
        dest = out_root / rel.with_suffix(output_suffix(f, fmt, video=video))
        jobs.append(Job(f, dest, video))
        if dest.resolve() in sources:
            raise InputError(f"output {dest} would overwrite an input", path=f)
    return Plan(jobs, found.skipped)


def plan_jobs(inputs: Iterable[str | Path], out_dir: str | Path | None, *, fmt: str | None = None) -> list[Job]:
    """:func:`plan`'s jobs."""
    return plan(inputs, out_dir, fmt=fmt).jobs


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
    :func:`~anonymizer.media.files.part_path`: atomic writes and the video writer, and their own temporaries)."""
    folder = dest.parent
    if not folder.is_dir():
        return []
    return sorted({*folder.glob(f".{dest.name}.*part*"), *folder.glob(f"..{dest.name}.*part*")})


def remove_stale_parts(dest: Path) -> None:
    """Remove what an earlier run killed while writing ``dest`` left (:func:`stale_parts`): a restore's
    partial output shows original faces. Every backend calls this before it writes ``dest``."""
    for stale in stale_parts(dest):
        try:
            stale.unlink()
            log.info("removed %s, left by an interrupted run", stale)
        except FileNotFoundError:
            pass


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
                remove_stale_parts(job.dest)
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
