"""`anonymizer models`: the declared weights and whether they are ready."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import emit_json, handle_errors


@handle_errors
def models(
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON line per weights file.")] = False,
) -> None:
    """List the declared model weights: source, licence, sha256, file and whether they are ready."""
    from ..api import is_ready, list_weights, weights_path  # every model's weights declared (loads torch)

    for spec in list_weights():
        row = {
            "name": spec.name,
            "model": spec.model,
            "source": spec.source,
            "licence": spec.licence,
            "sha256": spec.sha256,
            "file": str(weights_path(spec)),
            "ready": is_ready(spec),
            "input": spec.input_spec,
        }
        if json_lines:
            emit_json(row)
            continue
        typer.echo(f"{spec.name}  ({'ready' if row['ready'] else 'NOT READY'})")
        for key in ("model", "source", "licence", "sha256", "file", "input"):
            typer.echo(f"  {key:8s} {row[key]}")
