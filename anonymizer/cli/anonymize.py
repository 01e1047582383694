"""`anonymizer anonymize`: cover every face in photos, files and folders."""

from __future__ import annotations

import logging
import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..defaults import (
    ANONYMIZE_METHODS,
    DEFAULT_DETECT_EVERY,
    DEFAULT_DETECTOR,
    DEFAULT_FEATHER,
    DEFAULT_MASK_SCALE,
    DEFAULT_METHOD,
    DEFAULT_THRESHOLD,
    DEFAULT_UPSCALE,
    DEFAULT_VIDEO_DETECTOR,
    DEFAULT_VIDEO_THRESHOLD,
    FACE_DETECTORS,
    PLATE_DETECT_EVERY,
    SHAPES,
    THRESHOLD_RULE,
    VIDEO_WATCH,
)
from ..errors import InputError
from ._common import emit_json, finish, handle_errors, show_progress
from .secrets import read_secret, sealing_key

if TYPE_CHECKING:
    from ..api import BatchReport, Job

log = logging.getLogger(__name__)


#: the choices of --method and --mask-shape, from the library's own lists
Method = Enum("Method", [(m, m) for m in ANONYMIZE_METHODS], type=str)  # type: ignore[misc]
Shape = Enum("Shape", [(s, s) for s in SHAPES], type=str)  # type: ignore[misc]
Detector = Enum("Detector", [(d, d) for d in FACE_DETECTORS], type=str)  # type: ignore[misc]
DEFAULT_METHOD_CHOICE, DEFAULT_SHAPE_CHOICE = Method(DEFAULT_METHOD), Shape("ellipse")


class VaultMode(str, Enum):
    embed = "embed"
    sidecar = "sidecar"


class Backend(str, Enum):
    local = "local"
    ray = "ray"


class Format(str, Enum):
    jpeg = "jpeg"
    png = "png"
    webp = "webp"
    tiff = "tiff"
    bmp = "bmp"


@handle_errors
def anonymize(
    inputs: Annotated[
        list[Path], typer.Argument(help="Photos, videos and folders (walked recursively).", show_default=False)
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Output folder; the input tree is mirrored inside it. Must not be inside an input folder.",
            show_default=False,
        ),
    ],
    method: Annotated[
        Method,
        typer.Option(
            help="What replaces a face: solid fill, pixelate (mosaic), blur (the weakest) or surrogate (the face of "
            "someone who does not exist, faces only; the same password gives the same faces, without one they are "
            "new on every run)."
        ),
    ] = DEFAULT_METHOD_CHOICE,
    targets: Annotated[
        str,
        typer.Option(
            help="What to cover, comma-separated: face, person (whole-body masks from the person Mask R-CNN; in "
            "videos segmented on the faces' detection frames and carried between), plate (licence plates: a box "
            "filled with the method, solid with surrogate), e.g. face,plate or face,person,plate."
        ),
    ] = "face",
    threshold: Annotated[
        float | None,
        typer.Option(
            help=f"Face score threshold {THRESHOLD_RULE}; lower finds more faces. Default: {DEFAULT_THRESHOLD} for "
            f"photos (multi-scale), {DEFAULT_VIDEO_THRESHOLD} for videos (one pass per frame).",
            min=0.01,
            max=0.99,
            show_default=False,
        ),
    ] = None,
    detector: Annotated[
        Detector | None,
        typer.Option(
            help="Face detector: centerface (float), or centerface_int8, the same network in int8: about 3x faster "
            "on a CPU, the same share of faces covered on our crowd photos, a little more of the rest covered "
            f"(models/centerface_int8.md). Default: {DEFAULT_DETECTOR} for photos, {DEFAULT_VIDEO_DETECTOR} for "
            "videos.",
            show_default=False,
        ),
    ] = None,
    mask_scale: Annotated[
        float, typer.Option(help="Mask size as a multiple of the face box (each side).", min=0.5, max=4.0)
    ] = DEFAULT_MASK_SCALE,
    mask_shape: Annotated[Shape, typer.Option(help="Mask shape around each face.")] = DEFAULT_SHAPE_CHOICE,
    feather: Annotated[
        float,
        typer.Option(help="Soft edge outside the mask, as a fraction of its size (0 = hard edge).", min=0.0, max=1.0),
    ] = DEFAULT_FEATHER,
    upscale: Annotated[
        float | None,
        typer.Option(
            help="Extra detection pass at this enlargement for small faces (0 = off, faster). Default: "
            f"{DEFAULT_UPSCALE} for photos, 0 for videos.",
            min=0.0,
            max=4.0,
            show_default=False,
        ),
    ] = None,
    format: Annotated[
        Format | None,
        typer.Option("--format", help="Output format. Default: the same as each input.", show_default=False),
    ] = None,
    quality: Annotated[int, typer.Option(help="JPEG quality.", min=1, max=100)] = 95,
    keep_metadata: Annotated[
        bool,
        typer.Option(
            "--keep-metadata/--strip-metadata",
            help="Copy EXIF (never its thumbnail), XMP and comments, but not GPS positions, serial numbers or owner "
            "names (--keep-gps, --keep-serials, --keep-owner); or keep only the colour profile.",
        ),
    ] = False,
    keep_gps: Annotated[
        bool,
        typer.Option(
            "--keep-gps",
            help="With --keep-metadata: keep GPS positions too (EXIF, and XMP, which is otherwise dropped whole when "
            "it holds one).",
        ),
    ] = False,
    keep_serials: Annotated[
        bool, typer.Option("--keep-serials", help="With --keep-metadata: keep camera and lens serial numbers too.")
    ] = False,
    keep_owner: Annotated[
        bool, typer.Option("--keep-owner", help="With --keep-metadata: keep owner and author names too.")
    ] = False,
    json_lines: Annotated[bool, typer.Option("--json", help="Print one JSON line per file to stdout.")] = False,
    contact_sheet: Annotated[
        Path | None,
        typer.Option(
            "--contact-sheet",
            help="Also write a PNG showing each input beside its output, for review; it shows the original faces, so "
            "it must be outside the output folder.",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads (--backend ray: per worker, default 1). Default: all cores.", show_default=False, min=1
        ),
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option(
            help="Seal the original faces with the password in this file (reversible; see `restore`).",
            show_default=False,
        ),
    ] = None,
    password_env: Annotated[
        str | None, typer.Option(help="Seal with the password in this environment variable.", show_default=False)
    ] = None,
    ask_password: Annotated[
        bool, typer.Option("--ask-password", help="Seal with a password typed at a prompt.")
    ] = False,
    recipient: Annotated[
        list[Path] | None,
        typer.Option(
            "--recipient",
            help="Seal for this X25519 public key (PEM from `keygen`); repeatable. Only its private key restores.",
            show_default=False,
        ),
    ] = None,
    vault: Annotated[
        VaultMode,
        typer.Option(
            help="Where the sealed originals go: inside the file (PNG, JPEG, WebP), or a sidecar OUTPUT.vault (always "
            "for TIFF, BMP and videos)."
        ),
    ] = VaultMode.embed,
    detect_every: Annotated[
        int,
        typer.Option(
            help="Videos: detect faces on every K-th frame (and on scene cuts), track in between.", min=1, max=30
        ),
    ] = DEFAULT_DETECT_EVERY,
    plate_every: Annotated[
        int,
        typer.Option(
            help="Videos: detect plates on every K-th frame, track in between (watched, see --watch). Every frame "
            "leaves no plate the detector sees uncovered on its frame; every 3rd left 1.6% uncovered on our test "
            "pans, for at best half the plate detector's time (README, Licence plates).",
            min=1,
            max=30,
        ),
    ] = PLATE_DETECT_EVERY,
    watch: Annotated[
        str,
        typer.Option(
            help="Videos: the targets (face, plate, comma-separated, or none) whose faint candidates on a detection "
            "frame are looked for again on the frames in between, so an object the detector sees only there is "
            "covered too. Faces cost about a third of the speed in crowds (README, Videos)."
        ),
    ] = ",".join(VIDEO_WATCH),
    codec: Annotated[str, typer.Option(help="Videos: output video codec (FFmpeg encoder name).")] = "libx264",
    crf: Annotated[
        int, typer.Option(help="Videos: constant rate factor (quality; lower is better).", min=0, max=63)
    ] = 18,
    lossless: Annotated[
        bool,
        typer.Option(
            "--lossless/--lossy",
            help="Videos: lossless RGB H.264 (libx264rgb, qp 0; restored frames then equal the decoded originals "
            "exactly), or --codec at --crf.",
        ),
    ] = False,
    start: Annotated[
        float | None, typer.Option(help="Videos: anonymize from this time (seconds).", min=0.0, show_default=False)
    ] = None,
    end: Annotated[
        float | None, typer.Option(help="Videos: anonymize up to this time (seconds).", min=0.0, show_default=False)
    ] = None,
    cut: Annotated[
        bool, typer.Option("--cut/--no-cut", help="Videos: drop what lies outside --start/--end, or copy it unchanged.")
    ] = False,
    backend: Annotated[
        Backend,
        typer.Option(
            help="Where the work runs: this process, or a Ray cluster (needs `pip install 'anonymizer[ray]'`; see "
            "README, Scale-out)."
        ),
    ] = Backend.local,
    address: Annotated[
        str | None,
        typer.Option(
            help="--backend ray: the cluster to join (e.g. ray://head:10001 or auto). Default: start Ray on this "
            "machine.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="--backend ray: worker actors, each loading the models once. Default: the cluster's CPUs divided by "
            "--threads (at least 1).",
            min=1,
            show_default=False,
        ),
    ] = None,
    segment_seconds: Annotated[
        float,
        typer.Option(
            help="--backend ray: cut videos into segments of about this length (at keyframes), processed in parallel "
            "and joined back. 0 = one worker per video.",
            min=0.0,
        ),
    ] = 30.0,
) -> None:
    """Find every face in photos and videos and cover it. Inputs are never modified; outputs are written atomically.

    Without a key the original face pixels are gone. With --password-file, --password-env,
    --ask-password or --recipient they are encrypted (AES-256-GCM) into a vault that `restore` opens.

    By default each face is covered with an opaque fill (--method solid). --method surrogate replaces it
    with the face of someone who does not exist (a donor bank of generated faces, non-commercial terms:
    models/donors.md), turned and lit like the face: the same password and input always give the same
    faces (the password also seals the vault), without one they are new on every run; in videos each
    track keeps its face. Faces turned away or hidden are covered solid instead.

    --backend ray spreads the files (and segments of long videos) over a Ray cluster; a manifest in the
    output folder records finished files, so running the same command again resumes.
    """
    from ..api import AnonymizeOptions, RayOptions, anonymize_files, configure_runtime, plan_files

    wanted = _usage(targets, method, backend, address, workers, start, end)
    private = _private_kinds(keep_metadata, gps=keep_gps, serials=keep_serials, owner=keep_owner)
    t0 = time.perf_counter()
    planned = plan_files(inputs, output, fmt=format.value if format else None)
    jobs = planned.jobs
    log.info(
        "found %d file(s) to anonymize (%d skipped) in %.2f s",
        len(jobs),
        len(planned.skipped),
        time.perf_counter() - t0,
    )
    if contact_sheet is not None:
        _check_contact_sheet(contact_sheet, jobs, output)
    opts = AnonymizeOptions(
        method=method.value,
        targets=wanted,
        threshold=threshold,
        mask_scale=mask_scale,
        shape=mask_shape.value,
        feather=feather,
        upscale=upscale,
        quality=quality,
        keep_metadata=keep_metadata,
        keep_private=private,
        vault=vault.value,
        detect_every=detect_every,
        watch=_watch(watch),
        plate_every=plate_every,
        codec=codec,
        crf=crf,
        lossless=lossless,
        start=start,
        end=end,
        cut=cut,
        detector=detector.value if detector is not None else None,
    )
    configure_runtime(threads)
    key = sealing_key(read_secret(password_file, password_env, ask_password, confirm=True), recipient)
    tally = _Tally()

    def on_result(job: Job, result: object | None, error: str | None) -> None:
        if isinstance(result, dict):
            tally.add(job.src, result)
        if json_lines:
            emit_json(result if error is None else {"path": str(job.src), "error": error})

    report = anonymize_files(
        jobs,
        output,
        opts,
        key=key,
        ray=RayOptions(address, workers, segment_seconds) if backend is Backend.ray else None,
        threads=threads,
        progress=show_progress(),
        on_result=on_result,
        on_loading=lambda: typer.echo("loading models ...", err=True) if show_progress() else None,
    )
    if contact_sheet is not None:
        _write_sheet(contact_sheet, jobs, report, tally.counts)
    for line in tally.metadata_lines():
        typer.echo(line, err=True)
    finish(report, tally.summary(report, len(jobs), wanted, output), planned.skipped)


def _watch(watch: str) -> tuple[str, ...]:
    from ..api import parse_watch

    try:
        return parse_watch(watch)
    except InputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--watch") from None


def _usage(
    targets: str,
    method: Method,
    backend: Backend,
    address: str | None,
    workers: int | None,
    start: float | None,
    end: float | None,
) -> tuple[str, ...]:
    """The targets asked for; raises typer.BadParameter (exit 2) for options that do not go together."""
    from ..api import check_method, parse_targets

    try:
        wanted = parse_targets(targets)
    except InputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--targets") from None
    if backend is Backend.local and (address is not None or workers is not None):
        raise typer.BadParameter("--address and --workers are for --backend ray", param_hint="--backend")
    try:
        check_method(method.value, wanted)
    except InputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--method") from None
    if start is not None and end is not None and end <= start:
        raise typer.BadParameter(f"--end ({end:g} s) must be after --start ({start:g} s)", param_hint="--end")
    return wanted


def _write_sheet(path: Path, jobs: list[Job], report: BatchReport, counts: dict[Path, int]) -> None:
    """The --contact-sheet: each finished input beside its output, captioned with its face count."""
    from ..api import contact_sheet as write_sheet

    done = set(report.done)
    write_sheet(
        [(j.src, j.dest, f"{j.src}: {counts.get(j.src, 0)} face(s)") for j in jobs if j.src in done and j.dest], path
    )


def _private_kinds(keep_metadata: bool, **asked: bool) -> tuple[str, ...]:
    """The private kinds of metadata (media.image.PRIVATE_METADATA) asked for by --keep-KIND; they need
    --keep-metadata (else typer.BadParameter, exit 2)."""
    kinds = tuple(kind for kind, on in asked.items() if on)
    if kinds and not keep_metadata:
        raise typer.BadParameter(
            f"--keep-{kinds[0]} keeps part of the metadata: add --keep-metadata", param_hint=f"--keep-{kinds[0]}"
        )
    return kinds


#: what the summary adds up: files, then the counts of the files' rows
COUNTED = ("photos", "videos", "faces", "persons", "plates", "tracks", "plate_tracks", "person_tracks", "frames")


class _Tally:
    """What the files' results add up to, for the summary: per photo its faces (and persons, plates), per
    video its face (and plate, person) tracks and frames, and the private metadata --keep-metadata kept or left out."""

    def __init__(self) -> None:
        self.counts: dict[Path, int] = {}  # faces (photos) or tracks (videos) per file, for the contact sheet
        self.totals = dict.fromkeys(COUNTED, 0)
        self.private: dict[tuple[str, str], int] = {}  # (kept or left_out, kind) -> photos

    def add(self, src: Path, result: dict) -> None:
        self.counts[src] = int(result.get("faces", result.get("tracks")) or 0)
        self.totals["photos" if "frames" not in result else "videos"] += 1
        for name in COUNTED[2:]:
            self.totals[name] += int(result.get(name) or 0)
        for how, kinds in (result.get("metadata") or {}).items():
            for kind in kinds:
                self.private[how, kind] = self.private.get((how, kind), 0) + 1

    def summary(self, report: BatchReport, files: int, targets: tuple[str, ...], output: Path) -> str:
        """What was done, saying what each count counts: faces (persons, plates) per photo; in videos, tracks
        (one face, plate or person followed from frame to frame, counted again if it leaves and comes back) and
        frames."""
        t, parts = self.totals, []
        if t["photos"]:
            found = [f"{t[k + 's']} {k}(s)" for k in targets]
            parts.append(" and ".join(found) + f" covered in {t['photos']} photo(s)")
        if t["videos"]:
            named = (("tracks", "face"), ("plate_tracks", "plate"), ("person_tracks", "person"))
            kept = [f"{t[k]} {what} track(s)" for k, what in named if what in targets]
            parts.append(" and ".join(kept) + f" covered over {t['frames']} frame(s) in {t['videos']} video(s)")
        return (
            f"anonymized {len(report.done)} of {files} file(s) into {output}"
            + (": " + "; ".join(parts) if parts else "")
            + (f" ({len(report.skipped)} finished earlier, skipped)" if report.skipped else "")
        )

    def metadata_lines(self) -> list[str]:
        """--keep-metadata's report: the private kinds of metadata kept (asked for) and left out, in how many photos."""
        from ..api import PRIVATE_METADATA

        lines = []
        for (how, kind), n in sorted(self.private.items()):
            what = f"{PRIVATE_METADATA[kind]} in {n} photo(s)"
            lines.append(
                f"metadata: kept {what} (--keep-{kind})"
                if how == "kept"
                else f"metadata: left out {what}; --keep-{kind} keeps it"
            )
        return lines


def _check_contact_sheet(contact_sheet: Path, jobs: list[Job], output: Path) -> None:
    sheet = contact_sheet.resolve()
    if any(sheet == j.src.resolve() for j in jobs):
        raise InputError("the contact sheet would overwrite an input", path=contact_sheet)
    if sheet.is_relative_to(output.resolve()):
        # it shows the original faces: never put it among the anonymized files people will share
        raise InputError(
            "the contact sheet shows original faces; write it outside the output folder", path=contact_sheet
        )
