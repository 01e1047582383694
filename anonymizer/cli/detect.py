"""`anonymizer detect`: report the faces (and persons, with their masks, and licence plates) in photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..api import Job, configure_runtime, detect_files, parse_targets, plan_files
from ..defaults import DEFAULT_THRESHOLD, DEFAULT_UPSCALE, THRESHOLD_RULE
from ..errors import InputError
from ._common import emit_json, finish, handle_errors, show_progress


@handle_errors
def detect(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Photos, videos and folders (walked recursively).", show_default=False),
    ],
    json_lines: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON line per file: path, width, height, faces (box, score, landmarks), persons (box, score), "
            "plates (box, score); for a video its frames and, per target, its tracks (track, first, last, "
            "detections, box).",
        ),
    ] = False,
    targets: Annotated[
        str,
        typer.Option(
            help="What to find, comma-separated: face, person (the person Mask R-CNN, and in photos the close-up "
            "segmenter), plate (licence plates), e.g. face,plate."
        ),
    ] = "face",
    masks_dir: Annotated[
        Path | None,
        typer.Option(
            "--masks-dir",
            help="With person: write an instance-id PNG per photo here (mirroring the input tree; 0 = background, k = "
            "the k-th person of the photo's line), and per video a folder of its name with one PNG per frame and "
            "person track (<frame>_<track>.png, 255 = the person).",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option(help=f"Face score threshold {THRESHOLD_RULE}. The same default as anonymize.", min=0.01, max=0.99),
    ] = DEFAULT_THRESHOLD,
    upscale: Annotated[
        float,
        typer.Option(help="Extra detection pass at this enlargement for small faces (0 = off).", min=0.0, max=4.0),
    ] = DEFAULT_UPSCALE,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads. Default: all cores.", show_default=False, min=1)
    ] = None,
) -> None:
    """Detect faces (with --targets, persons and plates too) and print them (with --json: one JSON line per file).

    Boxes are (x1, y1, x2, y2) and landmarks (x, y) in pixels of the upright image. Landmark order:
    left eye, right eye, nose, left mouth corner, right mouth corner, where "left" is the smaller x
    as seen in the image. Videos are tracked as anonymize tracks them (the int8 detector every 3 frames and on
    scene cuts): per target, each track's first and last frame, its detections and the box it spans, in
    pixels of the stored frame.
    """
    try:
        wanted = parse_targets(targets)
    except InputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--targets") from None
    if masks_dir is not None and "person" not in wanted:
        raise typer.BadParameter("--masks-dir needs --targets person (or face,person)", param_hint="--masks-dir")
    configure_runtime(threads)
    planned = plan_files(inputs, masks_dir, fmt="png")
    jobs = planned.jobs

    def on_result(job: Job, result: object | None, error: str | None) -> None:
        if error is not None:
            if json_lines:
                emit_json({"path": str(job.src), "error": error})
            return
        det: dict[str, object] = result  # type: ignore[assignment]
        if json_lines:
            emit_json(det)
        else:
            found = [(kind, det[kind + "s"]) for kind in ("face", "person", "plate") if kind + "s" in det]
            what = " track" if "frames" in det else ""  # a video's are tracks
            typer.echo(f"{job.src}: " + ", ".join(f"{len(items)} {kind}{what}(s)" for kind, items in found))  # type: ignore[arg-type]
            for kind, items in found:
                for f in items:  # type: ignore[attr-defined]
                    box = ", ".join(f"{v:.0f}" for v in f["box"])
                    if "track" in f:  # a video's track
                        where = f"frames {f['first']}-{f['last']}, {f['detections']} detection(s)"
                        typer.echo(f"  {kind} track {f['track']}: {where}, within [{box}]")
                    else:
                        typer.echo(f"  {kind} [{box}] score {f['score']:.2f}")

    report = detect_files(
        jobs,
        targets=wanted,
        threshold=threshold,
        upscale=upscale,
        progress=show_progress() and json_lines,
        on_result=on_result,
    )
    if report.failed or planned.skipped:
        finish(
            report,
            f"detected {' and '.join(t + 's' for t in wanted)} in {len(report.done)} of {len(jobs)} file(s)",
            planned.skipped,
        )
