"""Alignment in pixels (cv2) and in torch (affine_grid) agree, so training losses see the same crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anonymizer.ops.align import (
    TEMPLATE_112,
    affine_to_theta,
    align_face,
    similarity_fit,
    similarity_onto,
    similarity_transform,
)


def test_torch_alignment_equals_cv2() -> None:
    rng = np.random.default_rng(0)
    img = (rng.random((120, 150, 3)) * 255).astype(np.uint8)
    img = np.ascontiguousarray(np.repeat(np.repeat(img[::6, ::6], 6, 0), 6, 1)[:120, :150])  # smooth-ish
    lm = TEMPLATE_112 * 0.9 + np.array([20.0, 5.0]) + rng.normal(0, 1.5, (5, 2))
    ref = align_face(img, lm, size=64).astype(np.float32)
    m = similarity_transform(lm, TEMPLATE_112 * 64 / 112)
    theta = torch.tensor(affine_to_theta(m, (150, 120), (64, 64)), dtype=torch.float32)[None]
    grid = F.affine_grid(theta, [1, 3, 64, 64], align_corners=False)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    got = F.grid_sample(x, grid, align_corners=False, padding_mode="border")[0].permute(1, 2, 0).numpy()
    assert np.abs(got - ref).mean() < 1.0 and np.percentile(np.abs(got - ref), 99) < 4.0


def test_similarity_fit_recovers_a_3d_similarity() -> None:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50, 3))
    angle = 0.4
    r = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    s, r2, t = similarity_fit(pts, 2.5 * pts @ r.T + [1, 2, 3])
    assert s == pytest.approx(2.5) and np.allclose(r2, r) and np.allclose(t, [1, 2, 3])


def test_similarity_onto_keeps_the_shape_and_takes_the_place() -> None:
    rng = np.random.default_rng(1)
    src = rng.normal(size=(30, 3))
    a = 0.4
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    dst = 2.5 * src @ rot.T + np.array([3.0, -1.0, 7.0])
    assert np.allclose(similarity_onto(src, dst), dst, atol=1e-9)  # a similarity copy: landed exactly
    other = dst + rng.normal(scale=0.3, size=dst.shape)  # another shape: src's own shape in its place
    moved = similarity_onto(src, other)
    d_src, d_moved = (np.linalg.norm(m[:, None] - m[None], axis=-1) for m in (src, moved))
    assert np.allclose(d_moved / d_moved.max(), d_src / d_src.max(), atol=1e-9)
    assert np.allclose(moved.mean(0), other.mean(0), atol=1e-9)
