"""`anonymizer keygen`: an X25519 key pair for recipients who may restore; `--rewrap` renews a key file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..api import Identity, fingerprint, write_atomic, write_private
from ..errors import InputError
from ._common import handle_errors
from .secrets import read_secret


@handle_errors
def keygen(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Name of the key pair: writes NAME.key.pem (private, mode 0600) and NAME.pub.pem. Required unless "
            "--rewrap is given.",
            show_default=False,
        ),
    ] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="Protect the private key with the passphrase in this file.", show_default=False)
    ] = None,
    passphrase_env: Annotated[
        str | None,
        typer.Option(
            help="Protect the private key with the passphrase in this environment variable.", show_default=False
        ),
    ] = None,
    ask_passphrase: Annotated[
        bool, typer.Option("--ask-passphrase", help="Protect the private key with a passphrase typed at a prompt.")
    ] = False,
    rewrap: Annotated[
        Path | None,
        typer.Option(
            "--rewrap",
            help="Instead of a new key pair: read this passphrase-protected private key (e.g. one an older keygen "
            "wrapped in PKCS#8, cheap to guess) with the passphrase given and write it back in place in the "
            "current format, same passphrase, mode 0600.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing key pair of that name.")] = False,
) -> None:
    """Create an X25519 key pair. Give NAME.pub.pem to whoever anonymizes (`--recipient`); keep
    NAME.key.pem to restore (`restore --identity`). Without a passphrase the private key is unencrypted
    PKCS#8; with one it is sealed (AES-256-GCM) under Argon2id t=3, m=64 MiB, p=4, the vault's password
    defaults (Scrypt n=2^17, r=8, p=1 where the installed cryptography lacks Argon2id)."""
    if (output is None) == (rewrap is None):
        raise typer.BadParameter(
            "give --output NAME for a new key pair or --rewrap KEY for an existing private key (one of them)"
        )
    if rewrap is not None:
        _rewrap(rewrap, read_secret(passphrase_file, passphrase_env, ask_passphrase, what="passphrase"))
        return
    assert output is not None
    private = output.with_name(output.name + ".key.pem")
    public = output.with_name(output.name + ".pub.pem")
    for p in (private, public):
        if p.exists() and not force:
            raise InputError("exists; use --force to overwrite it", path=p)
    passphrase = read_secret(passphrase_file, passphrase_env, ask_passphrase, what="passphrase", confirm=True)
    ident = Identity.generate()
    write_private(private, ident.private_pem(passphrase))
    write_atomic(public, ident.public_pem())
    typer.echo(f"private key: {private}{' (passphrase-protected)' if passphrase else ''}", err=True)
    typer.echo(f"public key:  {public}  fingerprint {fingerprint(ident.public_key)}", err=True)


def _rewrap(path: Path, passphrase: bytes | None) -> None:
    """Read the private key ``path`` with ``passphrase`` and write it back (atomically, mode 0600) as a
    key file of the current format under the same passphrase; a wrong passphrase changes nothing."""
    if passphrase is None:
        raise InputError("--rewrap needs the key's passphrase: --passphrase-file, --passphrase-env or --ask-passphrase")
    ident = Identity.load(path, passphrase)
    write_private(path, ident.private_pem(passphrase))
    typer.echo(
        f"private key: {path} re-wrapped (passphrase-protected)  fingerprint {fingerprint(ident.public_key)}", err=True
    )
