"""The `anonymizer` console script: a Typer app with one module per command."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from .. import __version__
from ._common import Command
from .anonymize import anonymize
from .audit import audit
from .detect import detect
from .enhance import enhance
from .keygen import keygen
from .models import models
from .restore import restore

app = typer.Typer(
    name="anonymizer",
    help="Privacy-first face anonymization: find every face in photos and cover it; with a key, restore it.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help: rich's would show a "<bool>" type on every flag and eat "[ray]" in install hints as markup
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"anonymizer {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")] = False,
) -> None:
    """Privacy-first face anonymization: find every face in photos and cover it."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


app.command(cls=Command)(anonymize)
app.command(cls=Command)(restore)
app.command(cls=Command)(detect)
app.command(cls=Command)(audit)
app.command(cls=Command)(enhance)
app.command(cls=Command)(keygen)
app.command(cls=Command)(models)


def main() -> None:
    app()
