"""Reading passwords and keys for the CLI: from a file, an environment variable or a prompt, never argv."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..errors import InputError
from ..vault.keys import Identity, Key


def read_secret(file: Path | None, env: str | None, ask: bool, *, what: str = "password", confirm: bool = False) -> bytes | None:
    """The secret from exactly one source, or None when none is given. A file's final newline is dropped."""
    given = [x for x in (file is not None, env is not None, ask) if x]
    if len(given) > 1:
        raise InputError(f"give the {what} one way only: a file, an environment variable or the prompt")
    if file is not None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read the {what} file: {exc.strerror or exc}", path=file) from exc
        secret = data[:-1] if data.endswith(b"\n") else data
        secret = secret[:-1] if secret.endswith(b"\r") else secret
        if not secret:
            raise InputError(f"the {what} file is empty", path=file)
        return secret
    if env is not None:
        raw = os.environb.get(env.encode("utf-8", "surrogateescape"))  # bytes: any encoding works
        if not raw:
            raise InputError(f"environment variable {env} is not set or empty (it should hold the {what})")
        return raw
    if ask:
        value = typer.prompt(what.capitalize(), hide_input=True, confirmation_prompt=confirm)
        if not value:
            raise InputError(f"empty {what}")
        return str(value).encode("utf-8")
    return None


def sealing_key(password: bytes | None, recipients: list[Path] | None) -> Key | None:
    """The key to seal with, or None (no vault: the original pixels are gone)."""
    key = Key.from_password(password) if password is not None else None
    if recipients:
        rk = Key.from_recipients(recipients)
        key = rk if key is None else key + rk
    return key


def opening_key(password: bytes | None, identity: Path | None, identity_passphrase: bytes | None) -> Key | Identity:
    if password is not None and identity is not None:
        raise InputError("give either a password or --identity, not both")
    if identity is not None:
        return Identity.load(identity, identity_passphrase)
    if password is not None:
        return Key.from_password(password)
    raise InputError("restoring needs --password-file, --password-env, --ask-password or --identity")
