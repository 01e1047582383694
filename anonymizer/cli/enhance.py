"""`anonymizer enhance`: 4x face super-resolution (SRResNet or SRGAN) of photos."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..api import Job, configure_runtime, enhance_files, plan_files
from ._common import emit_json, finish, handle_errors, show_progress


class SRModel(str, Enum):
    srresnet = "srresnet"
    srgan = "srgan"


@handle_errors
def enhance(
    inputs: Annotated[
        list[Path], typer.Argument(help="Image files and folders (walked recursively).", show_default=False)
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Output folder; the input tree is mirrored inside it, each image as <name>.png.",
            show_default=False,
        ),
    ],
    scale: Annotated[int, typer.Option(help="Upscaling factor (the models are trained for 4x).", min=4, max=4)] = 4,
    model: Annotated[
        SRModel,
        typer.Option(help="srresnet: highest fidelity (PSNR); srgan: adversarially trained, more natural texture."),
    ] = SRModel.srresnet,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads. Default: all cores.", show_default=False, min=1)
    ] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="Print one JSON line per file to stdout.")] = False,
) -> None:
    """Upscale photos 4x with the face super-resolution model trained here (small faces, restored crops,
    generated surrogates). Large images are processed in overlapping tiles; outputs are PNG."""
    configure_runtime(threads)
    planned = plan_files(inputs, output, fmt="png")
    jobs = planned.jobs

    def on_result(job: Job, result: object | None, error: str | None) -> None:
        if json_lines:
            emit_json(result if error is None else {"path": str(job.src), "error": error})

    report = enhance_files(jobs, model=model.value, scale=scale, progress=show_progress(), on_result=on_result)
    finish(report, f"enhanced {len(report.done)} of {len(jobs)} file(s) into {output}", planned.skipped)
