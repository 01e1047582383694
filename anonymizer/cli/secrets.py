"""Reading passwords and keys for the CLI: from a file, an environment variable or a prompt, never argv."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ..api import Identity, Key
from ..errors import InputError


def read_secret(
    file: Path | None, env: str | None, ask: bool, *, what: str = "password", confirm: bool = False
) -> bytes | None:
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
        value = _typed(what, confirm) if sys.stdin.isatty() else _piped(what, confirm)
        if not value:
            raise InputError(f"empty {what}")
        return value.encode("utf-8")
    return None


def _typed(what: str, confirm: bool) -> str:
    return str(typer.prompt(what.capitalize(), hide_input=True, confirmation_prompt=confirm))


def _piped(what: str, confirm: bool) -> str:
    """The secret from standard input when it is not a terminal (nothing to hide the typing from, and
    getpass would warn): one line, or two equal lines with ``confirm``."""
    first = sys.stdin.readline().rstrip("\r\n")
    if confirm and sys.stdin.readline().rstrip("\r\n") != first:
        raise InputError(f"the two {what}s on standard input differ")
    return first


#: passwords shorter than this get a warning (still accepted): the KDF slows guessing, it cannot make a
#: short password long
SHORT_PASSWORD = 12


def sealing_key(password: bytes | None, recipients: list[Path] | None) -> Key | None:
    """The key to seal with, or None (no vault: the original pixels are gone). A password shorter than
    :data:`SHORT_PASSWORD` characters is accepted with a warning on stderr."""
    if password is not None and len(password.decode("utf-8", "replace")) < SHORT_PASSWORD:
        typer.echo(
            f"warning: the password has fewer than {SHORT_PASSWORD} characters; anyone holding the output "
            "can try guesses against its vault offline, so use a long passphrase",
            err=True,
        )
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
