"""Surrogate codes: the same password and track give the same code on every run; other passwords,
other tracks and password-less runs give other codes; codes look standard-normal; secrets stay hidden."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from anonymizer.errors import InputError
from anonymizer.vault.surrogate import SurrogateSeed


def test_same_password_same_code_and_known_value() -> None:
    a = SurrogateSeed.from_password("correct horse").code(0)
    b = SurrogateSeed.from_password(b"correct horse").code(0)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (64,)
    # pinned: a change in the derivation would silently change every user's surrogates
    np.testing.assert_allclose(SurrogateSeed(bytes(range(32))).code(3, dim=4), PINNED, rtol=0, atol=1e-6)


PINNED = np.array([0.20890481770038605, -2.2515645027160645, -0.3185896873474121, -1.1285640001296997])


def test_other_passwords_tracks_and_random_differ() -> None:
    seed = SurrogateSeed.from_password("correct horse")
    codes = [seed.code(t) for t in range(3)] + [SurrogateSeed.from_password("correct horsf").code(0)]
    codes += [SurrogateSeed.random().code(0), SurrogateSeed.random().code(0)]
    for i in range(len(codes)):
        for j in range(i + 1, len(codes)):
            assert np.abs(codes[i] - codes[j]).max() > 0.5


def test_codes_are_standard_normal() -> None:
    seed = SurrogateSeed(bytes(32))
    z = np.concatenate([seed.code(t) for t in range(200)])
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    assert abs((np.abs(z) > 1.96).mean() - 0.05) < 0.01


def test_secrets_are_hidden_and_bad_input_refused() -> None:
    seed = SurrogateSeed.from_password("correct horse")
    assert "correct" not in repr(seed) and "hidden" in repr(seed)
    with pytest.raises(InputError, match="empty"):
        SurrogateSeed.from_password("")
    with pytest.raises(InputError):
        seed.code(-1)
    with pytest.raises(InputError):
        seed.code(0, dim=3)
    with pytest.raises(InputError):
        SurrogateSeed(b"short")


def test_contexts_and_keys() -> None:
    from anonymizer.vault.keys import Key

    seed = SurrogateSeed.from_password("correct horse")
    a, b = seed.for_context(b"photo one"), seed.for_context(b"photo two")
    np.testing.assert_array_equal(a.code(0), seed.for_context(b"photo one").code(0))
    assert np.abs(a.code(0) - b.code(0)).max() > 0.5 and np.abs(a.code(0) - seed.code(0)).max() > 0.5
    # a key's password gives the same seed as the password itself; recipients alone give none
    np.testing.assert_array_equal(Key.from_password("correct horse").surrogate_seed().code(5), seed.code(5))  # type: ignore[union-attr]
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    assert Key.from_recipients([X25519PrivateKey.generate().public_key()]).surrogate_seed() is None


def test_palette_rows_are_a_seeded_shuffle() -> None:
    """Tracks 0..size-1 of one seed take every palette row once, in an order that the seed decides and that
    stays the same from run to run; later tracks get none (a standard-normal code instead)."""
    seed = SurrogateSeed(bytes(range(32)))
    rows = [seed.palette_index(t, 64) for t in range(64)]
    assert sorted(rows) == list(range(64))  # type: ignore[type-var]
    assert rows[:5] == PINNED_ROWS  # a change here would silently change every user's surrogates
    assert seed.palette_index(64, 64) is None and seed.palette_index(1000, 64) is None
    other = [SurrogateSeed(bytes(32)).palette_index(t, 64) for t in range(64)]
    photo = [seed.for_context(b"photo one").palette_index(t, 64) for t in range(64)]
    assert rows != other and rows != photo and sorted(other) == sorted(photo) == list(range(64))  # type: ignore[type-var]
    # over seeds, a track's row is uniform: two passwords share a row for a face 1 time in the palette's size
    seeds = (SurrogateSeed(hashlib.sha256(b"seed %d" % k).digest()) for k in range(800))  # fixed: never flaky
    counts = np.bincount([s.palette_index(0, 8) for s in seeds], minlength=8)  # type: ignore[misc]
    assert counts.min() > 60 and counts.max() < 140
    for bad in ((-1, 64), (0, 0)):
        with pytest.raises(InputError, match="palette size"):
            seed.palette_index(*bad)


def test_weighted_palette_rows_follow_the_weights() -> None:
    """With row weights, track 0 takes a row in proportion to its weight (over many fixed seeds), the
    tracks still take every row once with the rows of weight 0 last, equal weights keep the unweighted
    order, and malformed weights are refused."""
    seed = SurrogateSeed(bytes(range(32)))
    assert [seed.palette_index(t, 64, np.full(64, 3.0)) for t in range(64)] == [
        seed.palette_index(t, 64) for t in range(64)
    ]
    w = np.array([4.0, 2.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    seeds = [SurrogateSeed(hashlib.sha256(b"seed %d" % k).digest()) for k in range(1600)]  # fixed: never flaky
    counts = np.bincount([s.palette_index(0, 8, w) for s in seeds], minlength=8)  # type: ignore[misc]
    np.testing.assert_allclose(counts / len(seeds), w / w.sum(), atol=0.04)
    rows = [seed.palette_index(t, 8, w) for t in range(8)]
    assert sorted(rows[:4]) == [0, 1, 2, 3] and sorted(rows[4:]) == [4, 5, 6, 7]  # type: ignore[type-var]
    assert seed.palette_index(8, 8, w) is None
    for bad in (np.zeros(8), -w, w[:7], np.array([np.nan, *w[1:]])):
        with pytest.raises(InputError, match="palette weights"):
            seed.palette_index(0, 8, bad)


PINNED_ROWS = [17, 32, 36, 27, 57]
