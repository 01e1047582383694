"""Windows around plate boxes: geometry, cutting and the way back to image pixels."""

from __future__ import annotations

import numpy as np
import pytest

from anonymizer.errors import InputError
from anonymizer.ops.plate_windows import (
    PAD_GREY,
    WINDOW_SCALE,
    WINDOW_SIZE,
    cut_windows,
    from_windows,
    plate_windows,
    to_windows,
)


def test_a_window_is_several_boxes_wide_and_half_as_high_about_the_box() -> None:
    boxes = np.array([[100, 50, 160, 65], [10, 10, 30, 30]], np.float32)  # a wide plate, a square box
    win = plate_windows(boxes)
    assert win.shape == (2, 4) and win.dtype == np.float32
    np.testing.assert_allclose(win[0], [130, 57.5, WINDOW_SCALE * 60, WINDOW_SCALE * 30])
    # a tall or square box: the width follows twice its height, so half a plate still fits
    np.testing.assert_allclose(win[1], [20, 20, WINDOW_SCALE * 40, WINDOW_SCALE * 20])
    assert plate_windows(np.zeros((0, 4), np.float32)).shape == (0, 4)
    with pytest.raises(InputError, match=r"\[N, 4\]"):
        plate_windows(np.zeros((3,), np.float32))


def test_boxes_go_to_window_fractions_and_back() -> None:
    rng = np.random.default_rng(0)
    x, y, w = rng.uniform(0, 300, 5), rng.uniform(0, 300, 5), rng.uniform(20, 80, 5)
    boxes = np.stack([x, y, x + w, y + w * rng.uniform(0.2, 0.45, 5)], 1)  # plates wider than twice their height
    win = plate_windows(boxes)
    frac = to_windows(boxes, win)
    np.testing.assert_allclose(from_windows(frac, win), boxes, rtol=1e-5, atol=1e-3)
    # the detected box itself sits in the middle of its window, a WINDOW_SCALE-th of its width
    middle = [(1 - 1 / WINDOW_SCALE) / 2, (1 + 1 / WINDOW_SCALE) / 2]
    np.testing.assert_allclose(frac[:, [0, 2]], [middle] * 5, atol=1e-5)


def test_cut_windows_shows_the_box_at_its_fractions_mirrored_on_demand() -> None:
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[90:110, 120:180] = 255  # a white plate
    rgb[90:110, 120:130, 0] = 0  # its left end cyan: which way round it is
    box = np.array([[120, 90, 180, 110]], np.float32)
    win = plate_windows(box)
    (cut,) = cut_windows(rgb, win)
    assert cut.shape == (WINDOW_SIZE[1], WINDOW_SIZE[0], 3) and cut.dtype == np.uint8
    size = np.array([WINDOW_SIZE[0], WINDOW_SIZE[1], WINDOW_SIZE[0], WINDOW_SIZE[1]])
    x1, y1, x2, y2 = (to_windows(box, win)[0] * size).round().astype(int)
    assert cut[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2, 1].min() >= 250  # the plate (white or cyan) where it should be
    assert cut[: y1 - 2].max() == 0 and cut[:, : x1 - 2].max() == 0  # black around
    assert cut[(y1 + y2) // 2, x1 + 3, 0] == 0 and cut[(y1 + y2) // 2, x2 - 3, 0] == 255  # cyan on the left
    (flipped,) = cut_windows(rgb, win, flip=np.array([True]))
    np.testing.assert_array_equal(flipped, cut[:, ::-1])


def test_windows_off_the_image_are_grey_and_bad_windows_raise() -> None:
    rgb = np.full((60, 60, 3), 7, np.uint8)
    (cut,) = cut_windows(rgb, plate_windows(np.array([[0, 0, 20, 10]], np.float32)))
    assert (cut[0, 0] == PAD_GREY).all() and (cut[-1, -1] == 7).all()
    assert cut_windows(rgb, np.zeros((0, 4), np.float32)).shape == (0, WINDOW_SIZE[1], WINDOW_SIZE[0], 3)
    with pytest.raises(InputError, match="windows"):
        cut_windows(rgb, np.zeros((2, 3), np.float32))
