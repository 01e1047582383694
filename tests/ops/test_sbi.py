"""Self-blended images: only the blended region changes, the mask sits on the face, the same generator
state gives the same fake, and bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest

from anonymizer.errors import InputError
from anonymizer.ops.sbi import blend_mask, landmark_ellipse, self_blend

LM = np.array([[70.0, 85.0], [130.0, 85.0], [100.0, 115.0], [76.0, 145.0], [124.0, 145.0]])


@pytest.fixture()
def face() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(40, 220, (200, 200, 3), dtype=np.uint8)


def test_ellipse_covers_the_features_only() -> None:
    m = landmark_ellipse((200, 200), LM)
    assert m.dtype == np.float32 and set(np.unique(m)) <= {0.0, 1.0}
    for x, y in LM.astype(int):
        assert m[y, x] == 1
    assert m[5, 5] == 0 and m[195, 195] == 0 and 0.1 < m.mean() < 0.5
    assert landmark_ellipse((200, 200), LM, grow=1.2).sum() > m.sum()


def test_self_blend_changes_only_the_mask(face: np.ndarray) -> None:
    before = face.copy()
    out, mask = self_blend(face, LM, np.random.default_rng(0))
    np.testing.assert_array_equal(face, before)
    assert out.shape == face.shape and out.dtype == np.uint8 and mask.shape == (200, 200)
    assert 0 < mask.max() <= 1 and mask[115, 100] > 0 and mask[2, 2] == 0
    np.testing.assert_array_equal(out[mask == 0], face[mask == 0])
    assert np.abs(out.astype(int) - face.astype(int))[mask > 0.5].mean() > 1


def test_same_rng_same_fake_and_variety(face: np.ndarray) -> None:
    a, ma = self_blend(face, LM, np.random.default_rng(5))
    b, mb = self_blend(face, LM, np.random.default_rng(5))
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    masks = [blend_mask((200, 200), LM, np.random.default_rng(s)) for s in range(6)]
    assert len({round(float(m.sum()), 1) for m in masks}) == 6


def test_bad_input(face: np.ndarray) -> None:
    with pytest.raises(InputError, match="five finite"):
        self_blend(face, LM[:4], np.random.default_rng(0))
    with pytest.raises(InputError, match="five finite"):
        self_blend(face, np.full((5, 2), np.nan), np.random.default_rng(0))
    with pytest.raises(InputError, match="RGB uint8"):
        self_blend(face[..., 0], LM, np.random.default_rng(0))
