"""Files written safely, and their digests: every output goes to a temporary sibling that is renamed into
place only once complete, and files that show original faces or hold keys are their owner's only."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import MediaError

#: Files that show original faces or hold keys (restored files, contact sheets, audit reports, private
#: keys) are readable and writable by their owner only.
PRIVATE_MODE = 0o600


def part_path(path: Path) -> Path:
    """A new temporary sibling of ``path``: ``.NAME.<random>.part<SUFFIX>``, hidden, keeping the suffix
    (encoders pick the format from it); :func:`anonymizer.pipeline.batch.stale_parts` knows the pattern."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.part{path.suffix}")


@contextmanager
def atomic_file(path: Path, *, mode: int = 0o666) -> Iterator[BinaryIO]:
    """Write ``path`` through a temporary sibling opened for the block: on leaving the block it is synced
    to disk and renamed to ``path``; on any error it is removed and ``path`` is left as it was. The file
    gets ``mode`` less the umask; an OSError (the block's writes included) becomes a MediaError naming
    ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(f"cannot create the output folder: {exc.strerror or exc}", path=path) from exc
    tmp = part_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise MediaError(f"cannot write output: {exc.strerror or exc}", path=path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise MediaError(f"cannot write output: {exc.strerror or exc}", path=path) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_file`)."""
    with atomic_file(path, mode=mode) as f:
        f.write(data)


def write_private(path: Path, data: bytes) -> None:
    """:func:`write_atomic` for a file that shows original faces or holds a key: mode 0600."""
    write_atomic(path, data, mode=PRIVATE_MODE)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every file system supports it; the rename itself is already atomic
    finally:
        os.close(fd)
