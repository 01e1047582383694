"""`anonymizer keygen`: an X25519 key pair for recipients who may restore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError
from ..media.image import write_atomic
from ..vault.keys import Identity, fingerprint
from ._common import handle_errors
from .secrets import read_secret


@handle_errors
def keygen(
    output: Annotated[Path, typer.Option("--output", "-o", help="Name of the key pair: writes NAME.key.pem (private, mode 0600) and NAME.pub.pem.", show_default=False)],
    passphrase_file: Annotated[Path | None, typer.Option(help="Protect the private key with the passphrase in this file.", show_default=False)] = None,
    passphrase_env: Annotated[str | None, typer.Option(help="Protect the private key with the passphrase in this environment variable.", show_default=False)] = None,
    ask_passphrase: Annotated[bool, typer.Option("--ask-passphrase", help="Protect the private key with a passphrase typed at a prompt.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing key pair of that name.")] = False,
) -> None:
    """Create an X25519 key pair. Give NAME.pub.pem to whoever anonymizes (`--recipient`); keep
    NAME.key.pem to restore (`restore --identity`). Without a passphrase the private key is unencrypted."""
    private = output.with_name(output.name + ".key.pem")
    public = output.with_name(output.name + ".pub.pem")
    for p in (private, public):
        if p.exists() and not force:
            raise InputError("exists; use --force to overwrite it", path=p)
    passphrase = read_secret(passphrase_file, passphrase_env, ask_passphrase, what="passphrase", confirm=True)
    ident = Identity.generate()
    write_atomic(private, ident.private_pem(passphrase), mode=0o600)
    write_atomic(public, ident.public_pem())
    typer.echo(f"private key: {private}{' (passphrase-protected)' if passphrase else ''}", err=True)
    typer.echo(f"public key:  {public}  fingerprint {fingerprint(ident.public_key)}", err=True)
