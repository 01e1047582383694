"""`anonymizer audit`: check anonymized photos and videos: recognisable faces, leaking metadata, vaults."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..api import AuditResult, Job, audit_files, configure_runtime, render_audit_html, write_atomic, write_private
from ..errors import InputError
from ._common import fail, handle_errors, list_skipped, show_progress
from .secrets import opening_key, read_secret

if TYPE_CHECKING:
    from ..api import AuditRun


class RecognizerName(str, Enum):
    auto = "auto"
    dlib = "dlib"
    identity_net = "identity_net"


@handle_errors
def audit(
    outputs: Annotated[
        list[Path],
        typer.Argument(help="Anonymized photos, videos and folders (walked recursively).", show_default=False),
    ],
    originals: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the original photos and videos (same relative paths, or the same names with any image or "
            "video extension).",
            show_default=False,
        ),
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option(
            help="Password of the vaults, in this file: restores the originals to compare and checks that vaults open.",
            show_default=False,
        ),
    ] = None,
    password_env: Annotated[
        str | None, typer.Option(help="The password, in this environment variable.", show_default=False)
    ] = None,
    identity: Annotated[
        Path | None,
        typer.Option(
            help="X25519 private key (PEM from `keygen`) of a recipient, instead of a password.", show_default=False
        ),
    ] = None,
    identity_passphrase_file: Annotated[
        Path | None, typer.Option(help="Passphrase of the private key, in this file.", show_default=False)
    ] = None,
    json_file: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write the full report (one object per file) to this JSON file.", show_default=False
        ),
    ] = None,
    html_file: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Write a contact sheet (original and output faces side by side) to this HTML file. It shows original "
            "faces: written 0600.",
            show_default=False,
        ),
    ] = None,
    recognizer: Annotated[
        RecognizerName,
        typer.Option(
            help="Face recognizer for identity distances: dlib (the optional audit extra, see README), identity_net "
            "(built in), or auto (dlib when installed)."
        ),
    ] = RecognizerName.auto,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads. Default: all cores.", show_default=False, min=1)
    ] = None,
    every: Annotated[int, typer.Option(help="Videos: search every K-th frame for faces.", min=1, max=100)] = 5,
) -> None:
    """Audit anonymized photos and videos. For each photo: faces still detected (scores); the identity
    distance of every original face to the same place in the output (originals from --originals, or
    restored through the key); metadata that leaks (GPS, thumbnail, XMP, comments, serial numbers);
    whether a vault is present and opens. For each video: faces still detected on every --every-th frame,
    followed as tracks, each with its synthetic score over frames; container tags that leak; a vault
    beside it. Synthetic scores (photos: per face) are flagged at or above the threshold the JSON gives
    (synthetic_threshold); they never change a verdict. A verdict per file with reasons; exit 1 when any file fails.

    With --originals (or the key, through the vault beside it) a video's original faces are followed as
    tracks too, each with its identity distance to the same place in the output on every searched frame.

    A face fails when its distance is at most the recognizer's same-person threshold (0.6 for dlib;
    IdentityNet's own calibrated one; for a video track, on any searched frame), or, with no original to
    compare, when it is still detected with score >= 0.5.
    """
    passphrase = read_secret(identity_passphrase_file, None, False, what="passphrase")
    password = read_secret(password_file, password_env, False)
    key = opening_key(password, identity, passphrase) if (password is not None or identity is not None) else None
    if originals is not None and not originals.is_dir():
        raise InputError("--originals must be a folder", path=originals)
    configure_runtime(threads)

    def on_result(job: Job, result: object | None, error: str | None) -> None:
        if error is not None:
            typer.echo(f"ERROR {error}")
            return
        assert isinstance(result, AuditResult)
        typer.echo(f"{result.verdict.upper()} {job.src}")
        for reason in result.reasons:
            typer.echo(f"  - {reason}")

    run = audit_files(
        outputs,
        originals=originals,
        key=key,
        recognizer=recognizer.value,
        every=every,
        keep_images=html_file is not None,
        progress=show_progress(),
        on_result=on_result,
    )
    _write_reports(run, json_file, html_file)
    failed, unread = run.failed, len(run.report.failed)
    typer.echo(
        f"audited {len(run.results)} of {run.files} file(s): {len(run.results) - failed} passed, {failed} failed"
        + (f", {unread} could not be read" if unread else "")
        + (f"; {len(run.skipped)} other file(s) skipped" if run.skipped else ""),
        err=True,
    )
    list_skipped(run.skipped)
    if failed or unread:
        raise fail(f"{failed + unread} file(s) failed the audit", 1)


def _write_reports(run: AuditRun, json_file: Path | None, html_file: Path | None) -> None:
    """--json (every result and error) and --html (it shows original faces: its owner's only)."""
    if json_file is not None:
        doc = {
            "files": [r.to_dict() for r in run.results],
            "errors": [{"path": str(p), "error": e} for p, e in run.report.failed],
        }
        write_atomic(json_file, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    if html_file is not None:
        write_private(html_file, render_audit_html(run.results).encode("utf-8"))
