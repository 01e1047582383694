"""Audits of whole folders of outputs: every photo and video (vaults beside them left out), each against
its original when one is found or restored; what `anonymizer audit` runs once it has parsed its options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..defaults import DEFAULT_VIDEO_THRESHOLD
from ..errors import InputError, WeightsError
from ..pipeline.batch import BatchReport, Job, run_jobs, walk_inputs
from ..pipeline.deepfake import DeepfakeScorer
from ..pipeline.models import get_deepfake_scorer, get_finder
from ..vault.keys import Identity, Key
from .recognizers import get_recognizer
from .report import AuditResult, audit_image, find_original
from .video import audit_video


@dataclass
class AuditRun:
    """``results`` of the files audited, in the order they finished; ``report``: which could not be
    read; ``files``: how many were found; ``skipped``: other files met in the folders, with the reason."""

    results: list[AuditResult] = field(default_factory=list)
    report: BatchReport = field(default_factory=BatchReport)
    files: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(r.verdict == "fail" for r in self.results)


def audit_files(
    outputs: list[Path],
    *,
    originals: Path | None = None,
    key: Key | Identity | None = None,
    recognizer: str = "auto",
    every: int = 5,
    keep_images: bool = False,
    progress: bool = False,
    on_result: Callable[[Job, object | None, str | None], None] | None = None,
) -> AuditRun:
    """Audit every photo and video under ``outputs`` (see :func:`~anonymizer.audit.report.audit_image` and
    :func:`~anonymizer.audit.video.audit_video`): identity against the original in ``originals`` (same
    relative path, or same name) or restored through ``key``; a video searched every ``every`` frames.
    ``keep_images`` keeps the crops an HTML report shows. One unreadable file never stops the rest."""
    found = walk_inputs(outputs)
    files = [(f, rel) for f, rel in found.files if not f.name.endswith(".vault")]
    if not files:
        raise InputError("no photos or videos to audit", path=", ".join(map(str, outputs)))
    run = AuditRun(files=len(files), skipped=list(found.skipped))
    rels = dict(files)
    finder, video_finder = get_finder(), get_finder(threshold=DEFAULT_VIDEO_THRESHOLD, upscale=0.0)
    rec = get_recognizer(recognizer) if (originals is not None or key is not None) else None
    scorer = _deepfake_scorer()

    def work(job: Job) -> AuditResult:
        orig = find_original(rels[job.src], originals) if originals is not None else None
        if originals is not None and orig is None and key is None:
            raise InputError(f"no original found for it in {originals}", path=job.src)
        if job.is_video:
            res = audit_video(
                job.src,
                finder=video_finder,
                deepfake=scorer,
                every=every,
                keep_images=keep_images,
                original=orig,
                recognizer=rec,
                key=key,
            )
        else:
            res = audit_image(
                job.src, finder=finder, recognizer=rec, original=orig, key=key, keep_images=keep_images, deepfake=scorer
            )
        run.results.append(res)
        return res

    jobs = [Job(f, None, f in found.videos) for f, _ in files]
    run.report = run_jobs(jobs, work, progress=progress, desc="audit", on_result=on_result)
    return run


def _deepfake_scorer() -> DeepfakeScorer | None:
    """The shared deepfake classifier when its weights are declared, else None (no "synthetic" scores then)."""
    try:
        return get_deepfake_scorer()
    except WeightsError:
        return None
