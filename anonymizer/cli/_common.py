"""Helpers shared by the CLI commands: error reporting, progress, JSON Lines."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import typer
from typer.core import TyperCommand

from ..api import BatchReport
from ..errors import AnonymizerError, InputError

if TYPE_CHECKING:
    from typer import _click  # the click that typer vendors: its Command's signature

P = ParamSpec("P")
R = TypeVar("R")


class Command(TyperCommand):
    """A command whose usage line names its arguments plainly (``INPUTS...``, not ``{inputs}...``)."""

    def collect_usage_pieces(self, ctx: _click.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                continue
            name = (param.metavar or param.name or "args").upper()
            name += "..." if param.nargs != 1 else ""
            pieces.append(name if param.required else f"[{name}]")
        return pieces


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors into one line on stderr: exit 2 for bad usage (InputError), else 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            raise fail(str(exc), 2) from None
        except AnonymizerError as exc:
            raise fail(str(exc), 1) from None

    return wrapper


def show_progress() -> bool:
    return sys.stderr.isatty()


def emit_json(obj: object) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False))


#: skipped files listed one by one, at most
SKIPPED_LISTED = 10


def list_skipped(skipped: Sequence[tuple[Path, str]]) -> None:
    """One line on stderr per file a folder walk left out, with why (at most :data:`SKIPPED_LISTED`)."""
    for path, why in skipped[:SKIPPED_LISTED]:
        typer.echo(f"skipped {path}: {why}", err=True)
    if len(skipped) > SKIPPED_LISTED:
        typer.echo(f"skipped {len(skipped) - SKIPPED_LISTED} more file(s)", err=True)


def finish(report: BatchReport, summary: str, skipped: Sequence[tuple[Path, str]] = ()) -> None:
    """Print the summary, the files left out (:func:`list_skipped`) and every per-file error; exit 1 when
    any file failed."""
    typer.echo(summary + (f"; {len(skipped)} other file(s) skipped" if skipped else ""), err=True)
    list_skipped(skipped)
    for _, error in report.failed:
        typer.echo(f"error: {error}", err=True)
    if report.failed:
        raise typer.Exit(1)
