"""Atomic and private writes, and file digests (anonymizer.media.files)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from anonymizer.errors import MediaError
from anonymizer.media.files import PRIVATE_MODE, atomic_file, part_path, sha256_file, write_private
from anonymizer.pipeline.batch import stale_parts


def test_a_failing_block_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write(b"new, half written")
        raise RuntimeError("the encoder failed")
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]


def test_a_finished_block_replaces_the_file_streamed(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.bin"
    with atomic_file(target) as f:
        for _ in range(3):
            f.write(b"x" * 1000)
        assert not target.exists()  # nothing in place until the block ends
    assert target.read_bytes() == b"x" * 3000 and sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_private_files_are_the_owners_only(tmp_path: Path) -> None:
    write_private(tmp_path / "key.pem", b"secret")
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == PRIVATE_MODE


def test_an_unwritable_place_is_a_media_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(MediaError, match="cannot create the output folder") as info, atomic_file(blocker / "x.png"):
        pass
    assert str(blocker / "x.png") in str(info.value)


def test_temporaries_are_hidden_siblings_that_stale_parts_finds(tmp_path: Path) -> None:
    dest = tmp_path / "clip.mp4"
    tmp = part_path(dest)
    assert tmp.parent == tmp_path and tmp.name.startswith(".clip.mp4.") and tmp.suffix == ".mp4"
    tmp.write_bytes(b"")
    assert stale_parts(dest) == [tmp] and part_path(dest) != part_path(dest)


def test_sha256_file_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    data = os.urandom((1 << 20) + 17)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
