"""`anonymizer audit`: check anonymized photos and videos: recognisable faces, leaking metadata, vaults."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..defaults import DEFAULT_VIDEO_THRESHOLD
from ..errors import InputError
from ..pipeline.batch import Job, run_jobs, walk_inputs
from ._common import fail, handle_errors, list_skipped, show_progress
from .secrets import opening_key, read_secret


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
    beside it. A verdict per file with reasons; exit 1 when any file fails.

    With --originals (or the key, through the vault beside it) a video's original faces are followed as
    tracks too, each with its identity distance to the same place in the output on every searched frame.

    A face fails when its distance is at most the recognizer's same-person threshold (0.6 for dlib;
    IdentityNet's own calibrated one; for a video track, on any searched frame), or, with no original to
    compare, when it is still detected with score >= 0.5.
    """
    from ..api import configure_runtime, get_finder
    from ..audit.recognizers import get_recognizer
    from ..audit.report import AuditResult, audit_image, find_original
    from ..media.files import write_atomic, write_private

    passphrase = read_secret(identity_passphrase_file, None, False, what="passphrase")
    password = read_secret(password_file, password_env, False)
    key = opening_key(password, identity, passphrase) if (password is not None or identity is not None) else None
    if originals is not None and not originals.is_dir():
        raise InputError("--originals must be a folder", path=originals)
    configure_runtime(threads)
    found = walk_inputs(outputs)
    files = [(f, rel) for f, rel in found.files if not f.name.endswith(".vault")]
    if not files:
        raise InputError("no photos or videos to audit", path=", ".join(map(str, outputs)))
    rels = {f: rel for f, rel in files}
    finder = get_finder()
    video_finder = get_finder(threshold=DEFAULT_VIDEO_THRESHOLD, upscale=0.0)
    rec = get_recognizer(recognizer.value) if (originals is not None or key is not None) else None
    scorer = _deepfake_scorer()
    results: list[AuditResult] = []

    def work(job: Job) -> AuditResult:
        orig = find_original(rels[job.src], originals) if originals is not None else None
        if originals is not None and orig is None and key is None:
            raise InputError(f"no original found for it in {originals}", path=job.src)
        if job.is_video:
            from ..audit.video import audit_video

            res = audit_video(
                job.src,
                finder=video_finder,
                deepfake=scorer,
                every=every,
                keep_images=html_file is not None,
                original=orig,
                recognizer=rec,
                key=key,
            )
            results.append(res)
            return res
        res = audit_image(
            job.src,
            finder=finder,
            recognizer=rec,
            original=orig,
            key=key,
            keep_images=html_file is not None,
            deepfake=scorer,
        )
        results.append(res)
        return res

    def on_result(job: Job, result: object | None, error: str | None) -> None:
        if error is not None:
            typer.echo(f"ERROR {error}")
            return
        assert isinstance(result, AuditResult)
        typer.echo(f"{result.verdict.upper()} {job.src}")
        for reason in result.reasons:
            typer.echo(f"  - {reason}")

    report = run_jobs(
        [Job(f, None, f in found.videos) for f, _ in files],
        work,
        progress=show_progress(),
        desc="audit",
        on_result=on_result,
    )
    if json_file is not None:
        doc = {
            "files": [r.to_dict() for r in results],
            "errors": [{"path": str(p), "error": e} for p, e in report.failed],
        }
        write_atomic(json_file, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    if html_file is not None:
        from ..audit.html import render_html

        write_private(html_file, render_html(results).encode("utf-8"))
    failed = sum(r.verdict == "fail" for r in results)
    typer.echo(
        f"audited {len(results)} of {len(files)} file(s): {len(results) - failed} passed, {failed} failed"
        + (f", {len(report.failed)} could not be read" if report.failed else "")
        + (f"; {len(found.skipped)} other file(s) skipped" if found.skipped else ""),
        err=True,
    )
    list_skipped(found.skipped)
    if failed or report.failed:
        raise fail(f"{failed + len(report.failed)} file(s) failed the audit", 1)


def _deepfake_scorer():  # noqa: ANN202 (a DeepfakeScorer or None)
    """The deepfake classifier when its weights are declared, else None (the audit then has no
    "synthetic" scores)."""
    from ..errors import WeightsError
    from ..pipeline.deepfake import DeepfakeScorer

    try:
        return DeepfakeScorer()
    except WeightsError:
        return None
