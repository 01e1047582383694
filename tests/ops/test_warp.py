"""Piecewise-affine mesh warps: identity, translation, scaling, overlaps by depth, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from anonymizer.errors import InputError
from anonymizer.ops.warp import triangle_index_map, warp_mesh

# a 3x3 grid of points over a 40x40 square at (10, 10), cut into 8 triangles
GRID = np.array([[10 + 20 * i, 10 + 20 * j] for j in range(3) for i in range(3)], np.float64)
TRIS = np.array([[0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [3, 4, 7], [3, 7, 6], [4, 5, 8], [4, 8, 7]], np.int32)


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_identity_keeps_every_pixel_inside_the_mesh(image: np.ndarray) -> None:
    out, inside = warp_mesh(image, GRID, GRID, TRIS, (64, 64))
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert inside[10:50, 10:50].all() and not inside[:9].any() and not inside[:, 52:].any()
    assert np.array_equal(out[inside], image[inside])
    assert not out[~inside].any()


def test_translation_and_scale(image: np.ndarray) -> None:
    out, inside = warp_mesh(image, GRID, GRID + [5, -3], TRIS, (64, 64))
    assert np.array_equal(out[20:40, 20:40], image[23:43, 15:35])
    big, inside = warp_mesh(image, GRID, (GRID - 30) * 1.2 + 30, TRIS, (64, 64))
    assert inside[6:54, 6:54].all()  # the square grew from 40 to 48 px about its centre
    assert np.abs(big[30, 30].astype(int) - image[30, 30].astype(int)).max() <= 1


def test_the_nearer_triangle_covers_an_overlap(image: np.ndarray) -> None:
    dst = np.array([[0, 0], [40, 0], [0, 40], [0, 0], [40, 0], [0, 40]], np.float64)  # both onto one place
    tris = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
    near_second = triangle_index_map(dst, tris, (50, 50), depth=np.array([5, 5, 5, 1, 1, 1.0]))
    near_first = triangle_index_map(dst, tris, (50, 50), depth=np.array([1, 1, 1, 5, 5, 5.0]))
    assert near_second[5, 5] == 1 and near_first[5, 5] == 0 and near_first[45, 45] == -1


def test_no_triangles_or_outside_gives_nothing(image: np.ndarray) -> None:
    out, inside = warp_mesh(image, GRID, GRID, np.zeros((0, 3), np.int32), (64, 64))
    assert not inside.any() and not out.any()
    out, inside = warp_mesh(image, GRID, GRID + 500, TRIS, (64, 64))
    assert not inside.any()


@pytest.mark.parametrize(
    ("src", "dst", "tris", "words"),
    [
        (GRID, GRID[:5], TRIS, "matching point arrays"),
        (GRID, GRID, TRIS.astype(np.float32), "integer triangles"),
        (GRID, GRID, TRIS + 9, "indices must lie"),
        (GRID, GRID * np.nan, TRIS, "finite"),
    ],
)
def test_bad_meshes(image: np.ndarray, src, dst, tris, words: str) -> None:
    with pytest.raises(InputError, match=words):
        warp_mesh(image, src, dst, tris, (64, 64))
