"""The plate refiner's trainer: jittered boxes stay about their plate, a window's target is where the plate
is in it (mirrored with the window), negatives keep off the plates, and a tiny run mines, trains, resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_plates import _dataset

from anonymizer.ops.boxes import iou_matrix
from anonymizer.ops.plate_windows import WINDOW_SIZE
from anonymizer.train.plate_refiner import batch, jitter, loss_of, main, random_false


def test_jittered_boxes_stay_about_their_plate() -> None:
    rng = np.random.default_rng(0)
    label = np.array([100, 50, 160, 70], np.float32)
    boxes = np.stack([jitter(label, rng) for _ in range(500)])
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert 0.34 * 60 <= w.min() and w.max() <= 1.83 * 60 and 0.44 * 20 <= h.min() and h.max() <= 1.83 * 20
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    assert np.abs(cx - 130).max() <= 0.34 * 60 and np.abs(cx - 130).std() > 3  # moved, never off the plate
    assert iou_matrix(boxes, label[None]).min() > 0.1
    inside = (boxes[:, 0] >= 100) & (boxes[:, 2] <= 160) & (w <= 0.81 * 60)  # over a part of the plate
    assert 0.15 < inside.mean() < 0.4


def test_window_targets_are_where_the_plate_is_mirrored_with_the_window() -> None:
    rgb = np.zeros((240, 320, 3), np.uint8)
    rgb[100:120, 100:160] = (255, 255, 255)
    rgb[100:120, 100:110] = (0, 0, 255)  # the plate's left end blue
    boxes = [np.array([[100, 100, 160, 120]], np.float32)]
    mined = {"hits": np.zeros((0, 6), np.float32), "false": np.zeros((0, 5), np.float32)}
    rng = np.random.default_rng(1)
    x, target, isplate = batch([rgb], boxes, mined, 64, rng)
    assert x.shape == (64, 3, WINDOW_SIZE[1], WINDOW_SIZE[0]) and target.shape == (64, 4)
    assert 0 < isplate.sum() < 64  # plates and negatives

    def blue(px: np.ndarray) -> bool:  # brightness is jittered: compare the channels
        return bool(px[2] - px[0] > 40)

    def white(px: np.ndarray) -> bool:
        return bool(px.min() > 100 and abs(px[2] - px[0]) < 40)

    ways = []
    for img, t, p in zip(x.numpy(), target.numpy(), isplate.numpy(), strict=True):
        fx1, fy1, fx2, fy2 = t * [WINDOW_SIZE[0], WINDOW_SIZE[1], WINDOW_SIZE[0], WINDOW_SIZE[1]]
        if not p or fx2 - fx1 < 12:  # a plate wide enough in the window to tell its ends apart after blur and JPEG
            continue
        cy = int((fy1 + fy2) / 2)
        left, right = img[:, cy, int(fx1 + 0.05 * (fx2 - fx1))], img[:, cy, int(fx2 - 0.05 * (fx2 - fx1))]
        # the box's ends are the plate's: blue at one, white at the other
        assert (blue(left) and white(right)) or (blue(right) and white(left)), (left, right)
        ways.append(blue(left))
    assert len(ways) > 10 and 0 < sum(ways) < len(ways)  # as it is and mirrored


def test_random_negatives_keep_off_the_plates_and_the_loss_ignores_their_boxes() -> None:
    rng = np.random.default_rng(0)
    rgb = np.zeros((240, 320, 3), np.uint8)
    labels = np.array([[100, 100, 160, 120]], np.float32)
    drawn = [b for _ in range(300) if (b := random_false(rgb, labels, rng)) is not None]
    assert len(drawn) > 100 and iou_matrix(np.stack(drawn), np.array([[85, 95, 175, 125]], np.float32)).max() == 0
    out = torch.zeros(2, 5)
    target = torch.tensor([[0.3, 0.3, 0.6, 0.6], [0.0, 0.0, 0.0, 0.0]])
    wrong_negative_box = loss_of(out + torch.tensor([0, 0, 0, 0, 0.0]), target, torch.tensor([1.0, 0.0]))
    other = loss_of(out, torch.tensor([[0.3, 0.3, 0.6, 0.6], [0.9, 0.9, 0.9, 0.9]]), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(wrong_negative_box, other)


def test_a_tiny_run_mines_trains_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "plates"
    _dataset(data, [(20 + 5 * k, 100, 80 + 5 * k, 118) for k in range(16)])
    out = tmp_path / "run"
    args = ["--data", str(data), "--out", str(out), "--steps", "2", "--batch", "4", "--save-every", "1"]
    main([*args, "--stop-after", "1"])
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 1
    assert list(out.glob("mined-*.npz"))  # the finder's boxes, kept for the next run
    main([*args, "--export", str(tmp_path / "w.safetensors")])
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["step"] == 2 and "dev IoU" in state["history"][-1]["dev"]
    assert (tmp_path / "w.safetensors").is_file()


def test_a_folder_without_plates_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no boxes.csv"):
        main(["--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()  # nothing written
