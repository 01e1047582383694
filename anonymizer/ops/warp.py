"""Piecewise-affine warps over a triangle mesh (the geometry of mesh-based face replacement).

One remap per warp: the triangles are rasterised into a map of triangle indices at the destination, each
destination pixel takes the inverse affine map of its triangle, and ``cv2.remap`` samples the source once,
so neighbouring triangles meet without seams. Where triangles overlap (a head turned so that one cheek
folds behind the nose), the nearer one wins when depths are given.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError


def _check(
    src_pts: np.ndarray, dst_pts: np.ndarray, triangles: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(src_pts, np.float64)
    d = np.asarray(dst_pts, np.float64)
    t = np.asarray(triangles)
    if s.ndim != 2 or s.shape[1] < 2 or d.shape[0] != s.shape[0] or d.ndim != 2 or d.shape[1] < 2:
        raise InputError(f"expected matching point arrays [P, 2+], got {s.shape} and {d.shape}")
    if t.ndim != 2 or t.shape[1] != 3 or not np.issubdtype(t.dtype, np.integer):
        raise InputError(f"expected integer triangles [T, 3], got {t.dtype} {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= len(s)):
        raise InputError(f"triangle indices must lie in [0, {len(s)}), got {t.min()}..{t.max()}")
    if not (np.isfinite(s).all() and np.isfinite(d).all()):
        raise InputError("mesh points must be finite")
    return s, d, t


def triangle_index_map(
    dst_pts: np.ndarray, triangles: np.ndarray, shape: tuple[int, int], *, depth: np.ndarray | None = None
) -> np.ndarray:
    """int32 [H, W] map of which triangle covers each pixel (-1: none) of an image of ``shape`` (H, W).

    dst_pts: [P, 2] pixel coordinates (x, y); triangles: [T, 3] indices into them; depth: optional [P]
    (smaller is nearer): triangles are drawn far to near so that the nearest covers an overlap. Degenerate
    triangles (area under 1e-6 px^2) are skipped.
    """
    d = np.asarray(dst_pts, np.float64)[:, :2]
    tri = np.asarray(triangles)
    out = np.full(shape, -1, np.int32)
    order = np.arange(len(tri))
    if depth is not None:
        order = np.argsort(-np.asarray(depth, np.float64)[tri].mean(axis=1), kind="stable")
    p = d[tri]  # [T, 3, 2]
    area = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1])
    # fixed point with 4 fractional bits: sub-pixel corners, so adjacent triangles share their edges exactly
    corners = np.round(p * 16).astype(np.int32)
    drawn = order[np.abs(area[order]) >= 1e-6]
    fill = cv2.fillConvexPoly  # ~900 calls a face: the loop's own overhead was a third of the time
    for corner, k in zip(corners[drawn], drawn.tolist(), strict=True):
        fill(out, corner, k, cv2.LINE_8, 4)  # shift 4: the fixed point's fractional bits
    return out


def warp_mesh(
    src: np.ndarray,
    src_pts: np.ndarray,
    dst_pts: np.ndarray,
    triangles: np.ndarray,
    shape: tuple[int, int],
    *,
    depth: np.ndarray | None = None,
    border: int = cv2.BORDER_REFLECT,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``src`` (H, W, C uint8 or float) so that each triangle at ``src_pts`` lands at ``dst_pts``.

    src_pts, dst_pts: [P, 2+] pixels (x, y, ...); triangles: [T, 3]; shape: the output's (H, W); depth:
    optional [P] destination depth for overlaps (see :func:`triangle_index_map`). Returns (the warped image
    with src's dtype and channels, zero outside the mesh; a bool [H, W] mask of the pixels the mesh covers).
    """
    if src.ndim not in (2, 3) or src.shape[0] == 0 or src.shape[1] == 0:
        raise InputError(f"expected an (H, W[, C]) image, got {src.shape}")
    s, d, tri = _check(src_pts, dst_pts, triangles)
    index = triangle_index_map(d, tri, shape, depth=depth)
    inside = index >= 0
    h, w = shape
    warped = np.zeros((h, w, *src.shape[2:]), src.dtype)
    if not inside.any():
        return warped, inside
    inverse = np.zeros((len(tri), 2, 3), np.float64)  # destination pixel -> source pixel, per triangle
    used = np.unique(index[inside])  # drawn triangles only: none of them is degenerate
    corners = np.concatenate([d[tri[used], :2], np.ones((len(used), 3, 1))], axis=2)  # [K, 3, 3]
    inverse[used] = np.linalg.solve(corners, s[tri[used], :2]).transpose(0, 2, 1)
    ys, xs = np.nonzero(inside)
    m = inverse[index[ys, xs]]
    map_x = np.full((h, w), -1.0, np.float32)
    map_y = np.full((h, w), -1.0, np.float32)
    map_x[ys, xs] = m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]
    map_y[ys, xs] = m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]
    sampled = cv2.remap(src, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=border)
    warped[inside] = sampled[inside]
    return warped, inside
