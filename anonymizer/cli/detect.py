"""`anonymizer detect`: report the faces in photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..pipeline.batch import Job, plan_jobs, run_jobs
from ..defaults import DEFAULT_THRESHOLD, DEFAULT_UPSCALE
from ._common import emit_json, finish, handle_errors, show_progress


@handle_errors
def detect(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and folders (walked recursively).", show_default=False)],
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON line per image: path, width, height, faces (box, score, landmarks).")] = False,
    threshold: Annotated[float, typer.Option(help="Face score threshold (the same default as anonymize).", min=0.01, max=0.99)] = DEFAULT_THRESHOLD,
    upscale: Annotated[float, typer.Option(help="Extra detection pass at this enlargement for small faces (0 = off).", min=0.0, max=4.0)] = DEFAULT_UPSCALE,
    threads: Annotated[int | None, typer.Option(help="CPU threads. Default: all cores.", show_default=False, min=1)] = None,
) -> None:
    """Detect faces and print them (with --json: one JSON line per image).

    Boxes are (x1, y1, x2, y2) and landmarks (x, y) in pixels of the upright image. Landmark order:
    left eye, right eye, nose, left mouth corner, right mouth corner, where "left" is the smaller x
    as seen in the image.
    """
    from ..api import detect_faces
    from ..pipeline.photo import configure_runtime

    configure_runtime(threads)
    jobs = plan_jobs(inputs, None)

    def work(job: Job) -> object:
        return detect_faces(job.src, threshold=threshold, upscale=upscale)

    def on_result(job: Job, result: object | None, error: str | None) -> None:
        if error is not None:
            if json_lines:
                emit_json({"path": str(job.src), "error": error})
            return
        det = result.to_dict()  # type: ignore[union-attr]
        det["path"] = str(job.src)
        if json_lines:
            emit_json(det)
        else:
            faces = det["faces"]
            typer.echo(f"{job.src}: {len(faces)} face(s)")  # type: ignore[arg-type]
            for f in faces:  # type: ignore[union-attr]
                box = ", ".join(f"{v:.0f}" for v in f["box"])
                typer.echo(f"  [{box}] score {f['score']:.2f}")

    report = run_jobs(jobs, work, progress=show_progress() and json_lines, desc="detect", on_result=on_result)
    if report.failed:
        finish(report, f"detected faces in {len(report.done)} of {len(jobs)} file(s)")
