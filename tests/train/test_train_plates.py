"""The plate trainer: targets decode back to their boxes, crops keep their plates, pasted plates lie where
their boxes say, the split is fixed, and a tiny run on made-up photos trains, checkpoints and resumes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from anonymizer.ops.boxes import iou_matrix
from anonymizer.ops.centers import decode_center_maps
from anonymizer.train.plates import (
    PASTE_GROWTH,
    STRIDE,
    is_held_out,
    main,
    paste_plates,
    plate_patches,
    read_boxes,
    sample,
    targets,
)


def test_targets_decode_back_to_the_plates() -> None:
    boxes = np.array([[40, 60, 104, 80], [200, 150, 224, 158]], np.float32)
    t = targets(boxes, 256)
    heat = torch.from_numpy(t["heatmap"])[None]
    ((found, scores, _),) = decode_center_maps(
        heat,
        torch.from_numpy(t["scale"])[None],
        torch.from_numpy(t["offset"])[None],
        torch.zeros(1, 10, 256 // STRIDE, 256 // STRIDE),
        threshold=0.99,
    )
    assert len(found) == 2 and int(t["mask"].sum()) == 2
    got = found[torch.argsort(found[:, 0])].numpy()
    np.testing.assert_allclose(got, boxes, atol=1e-3)  # exactly where and how large the plates are


def test_dense_targets_read_the_same_box_from_every_trained_cell() -> None:
    boxes = np.array([[40, 60, 104, 80], [200, 150, 224, 158]], np.float32)
    peak, dense = targets(boxes, 256), targets(boxes, 256, dense=0.5)
    np.testing.assert_array_equal(dense["heatmap"], peak["heatmap"])
    cells = dense["mask"] > 0
    assert cells.sum() > 2 * (peak["mask"] > 0).sum()  # the centre regions, not only the peaks
    assert (dense["heatmap"][0][cells] >= 0.5).all() and np.isclose(dense["mask"].sum(), 2.0)
    ((found, _, _),) = decode_center_maps(  # every trained cell decoded as if it scored highest
        torch.from_numpy(cells.astype(np.float32))[None, None],
        torch.from_numpy(dense["scale"])[None],
        torch.from_numpy(dense["offset"])[None],
        torch.zeros(1, 10, 256 // STRIDE, 256 // STRIDE),
        threshold=0.5,
    )
    ious = iou_matrix(found.numpy(), boxes).max(1)
    np.testing.assert_allclose(ious, 1.0, atol=1e-4)


def _photo(path: Path, box: tuple[int, int, int, int]) -> None:
    img = np.full((240, 320, 3), 90, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 250  # a bright plate
    cv2.imwrite(str(path), img)


def test_crops_keep_their_plates(tmp_path: Path) -> None:
    _photo(tmp_path / "a.jpg", (100, 120, 160, 140))
    rgb = cv2.imread(str(tmp_path / "a.jpg"))[..., ::-1]
    rng = np.random.default_rng(0)
    seen = 0
    for _ in range(20):
        crop, b = sample(rgb, np.array([[100, 120, 160, 140]], np.float32), 128, rng)
        assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
        for x1, y1, x2, y2 in b:  # the box still lies on the bright plate
            seen += 1
            cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
            assert crop[cy, cx].mean() > crop.mean() + 20
    assert seen >= 10


def test_pasted_plates_lie_where_their_boxes_say() -> None:
    photo = np.full((240, 320, 3), 40, np.uint8)
    photo[100:120, 100:160] = 250  # a bright 60 x 20 plate; the one under 16 px wide is not cut out
    patches = plate_patches([photo], [np.array([[100, 100, 160, 120], [10, 10, 20, 14]], np.float32)])
    assert len(patches) == 1
    patch, box = patches[0]
    assert patch.shape == (30, 70, 3) and box.tolist() == [5, 5, 65, 25]  # a margin of a quarter of 20 px
    rng = np.random.default_rng(0)
    there = np.array([[0, 0, 40, 20]], np.float32)
    added = 0
    for _ in range(20):
        canvas = np.full((256, 256, 3), 40, np.uint8)
        out, boxes = paste_plates(canvas, there, patches, rng, count=3)
        assert canvas.max() == 40 and boxes[:1].tolist() == there.tolist()  # input untouched, old box kept
        for x1, y1, x2, y2 in boxes[1:]:
            added += 1
            assert x2 - x1 <= 60 * PASTE_GROWTH * 1.3  # grown at most 2.5x (plus the turn)
            assert not (x1 < 40 and y1 < 20)  # never over the plate already there
            assert out[int((y1 + y2) / 2), int((x1 + x2) / 2)].mean() > 200  # the centre is on the plate
    assert added >= 30
    _, boxes = paste_plates(np.zeros((256, 256, 3), np.uint8), there, patches, rng, count=3, widths=(8, 20))
    assert len(boxes) > 1 and (boxes[1:, 2] - boxes[1:, 0]).max() <= 20 * 1.3  # the width range asked for


def _dataset(data: Path, boxes: list[tuple[int, int, int, int]]) -> list[str]:
    """A plates-train-like folder under ``data``: one made-up 320x240 photo per box; returns the names."""
    (data / "images").mkdir(parents=True)
    rows = ["file,width,height,x1,y1,x2,y2"]
    names = [f"p{k}.jpg" for k in range(len(boxes))]
    for name, box in zip(names, boxes, strict=True):
        _photo(data / "images" / name, box)
        rows.append(f"{name},320,240,{box[0]},{box[1]},{box[2]},{box[3]}")
    (data / "boxes.csv").write_text("\n".join(rows) + "\n")
    return names


def test_split_and_a_tiny_run(tmp_path: Path) -> None:
    data = tmp_path / "plates"
    names = _dataset(data, [(20 + 5 * k, 100, 80 + 5 * k, 118) for k in range(40)])
    boxes = read_boxes(data)
    assert set(boxes) == set(names) and boxes["p0.jpg"].tolist() == [[20, 100, 80, 118]]
    held = [n for n in names if is_held_out(n)]
    assert 0 < len(held) < len(names) and held == [n for n in names if is_held_out(n)]
    out = tmp_path / "run"
    main(["--data", str(data), "--out", str(out), "--steps", "2", "--batch", "2", "--crop", "128", "--stop-after", "1"])
    first = torch.load(out / "last.pt", weights_only=False)
    assert first["step"] == 1
    main(
        [
            "--data",
            str(data),
            "--out",
            str(out),
            "--steps",
            "2",
            "--batch",
            "2",
            "--crop",
            "128",
            "--export",
            str(tmp_path / "w.safetensors"),
            "--paste",  # the resumed step runs with copy-paste on
            "1.0",
            "--paste-widths",
            "8",
            "40",
        ]
    )
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 2 and (tmp_path / "w.safetensors").is_file()


def test_size_weight_scales_only_the_size_term() -> None:
    from anonymizer.train.plates import loss_of

    t = {k: torch.from_numpy(v)[None] for k, v in targets(np.array([[40, 60, 104, 80]], np.float32), 128).items()}
    out = {"heatmap": t["heatmap"].clamp(0.01, 0.99), "scale": t["scale"] + 0.5, "offset": t["offset"].clone()}
    base = loss_of(out, t, size_weight=0.0)
    one = loss_of(out, t, size_weight=1.0) - base
    assert one.item() > 0.9  # two log sizes 0.5 off at one peak
    torch.testing.assert_close(loss_of(out, t, size_weight=0.1) - base, 0.1 * one)


def test_a_run_can_start_from_the_shipped_plate_weights(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from anonymizer.nn import build_model

    data = tmp_path / "plates"
    _dataset(data, [(20, 100, 80, 118)] * 12)
    w = tmp_path / "w.safetensors"
    args = ["--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1", "--batch", "1", "--crop", "64"]
    main([*args, "--init", "plates", "--lr", "0", "--export", str(w)])  # no step taken: the start exported
    shipped = build_model("plate_detector", weights="default")
    got = load_file(str(w))
    assert set(got) == set(shipped.state_dict())
    # the weights as shipped (the neck's batch-norm statistics move with every forward pass in training)
    assert all(torch.equal(got[k], v) for k, v in shipped.named_parameters())
