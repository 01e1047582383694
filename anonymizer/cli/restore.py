"""`anonymizer restore`: put the original faces back, with the password or private key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..api import Job, plan_files, restore_files
from ._common import emit_json, finish, handle_errors, show_progress
from .secrets import opening_key, read_secret


@handle_errors
def restore(
    inputs: Annotated[
        list[Path], typer.Argument(help="Anonymized files and folders (walked recursively).", show_default=False)
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Output folder for the restored PNGs; the input tree is mirrored inside it.",
            show_default=False,
        ),
    ],
    password_file: Annotated[Path | None, typer.Option(help="The password, in this file.", show_default=False)] = None,
    password_env: Annotated[
        str | None, typer.Option(help="The password, in this environment variable.", show_default=False)
    ] = None,
    ask_password: Annotated[bool, typer.Option("--ask-password", help="Type the password at a prompt.")] = False,
    identity: Annotated[
        Path | None, typer.Option(help="X25519 private key (PEM from `keygen`) of a recipient.", show_default=False)
    ] = None,
    identity_passphrase_file: Annotated[
        Path | None, typer.Option(help="Passphrase of the private key, in this file.", show_default=False)
    ] = None,
    identity_passphrase_env: Annotated[
        str | None,
        typer.Option(help="Passphrase of the private key, in this environment variable.", show_default=False),
    ] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="Print one JSON line per file to stdout.")] = False,
) -> None:
    """Restore the original faces of files anonymized with a key. Photos come out as lossless PNG.

    Where the input file was smaller than its faces' pixels (most JPEGs and videos), the vault holds that
    file: a photo then restores to the whole image as it was read, a video to the original file, byte for
    byte. Otherwise the vault holds the face regions: a PNG (or WebP) output restores bit for bit to the
    image as it was read, a JPEG output has exact face regions and the rest as decoded from it, and a
    video comes out as lossless H.264 (libx264rgb) in its own container, audio copied. A wrong password
    or key, or a modified file or vault, writes nothing.
    """
    passphrase = read_secret(identity_passphrase_file, identity_passphrase_env, False, what="passphrase")
    key = opening_key(read_secret(password_file, password_env, ask_password), identity, passphrase)
    planned = plan_files([i for i in inputs if not i.name.endswith(".vault")], output, fmt="png")
    jobs = planned.jobs

    def on_result(job: Job, result: object | None, error: str | None) -> None:
        if json_lines:
            emit_json(result if error is None else {"path": str(job.src), "error": error})

    report = restore_files(jobs, key, progress=show_progress(), on_result=on_result)
    finish(report, f"restored {len(report.done)} of {len(jobs)} file(s) into {output}", planned.skipped)
