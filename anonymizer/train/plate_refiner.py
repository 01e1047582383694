"""Train the plate box refiner (issue 37): a small network that looks again at a window around each box
the plate detector found and returns the plate's box in it, and whether a plate is there at all.

    python -m anonymizer.train.plate_refiner --out runs/refiner --steps 10000 --seed 0 \\
        --export models/plate_refiner.safetensors

Data: plates-train (``--data``), the same fixed tenth held out as for the detector
(:func:`anonymizer.train.plates.is_held_out`). First the shipped plate finder is run once over every photo
at a low threshold (``--mine-threshold``; cached in ``--out``/mined-*.npz): its boxes that overlap a labelled
plate are real detection errors to learn from, those far from every plate are hard negatives. Each step
draws ``--batch`` windows (:mod:`anonymizer.ops.plate_windows`): 45% around a labelled plate's box jittered
(width and height 0.45-1.8x, the centre moved up to a third of the plate; a quarter of them over only a
part of the plate), 30% around the finder's own boxes of a plate, the rest around its false boxes and
random plate-sized boxes away from every plate; mirrored at random, colour-jittered, blurred now and then
and JPEG-compressed. Loss: L1 between the
predicted and the labelled box (window fractions) and 1 - their IoU on the windows that hold a plate, plus
binary cross-entropy on the plate score. The dev numbers it prints: on the held-out photos' finder boxes of a
plate, the median IoU with the label before and after refining, and the share of the finder's boxes kept
at a refiner score of 0.5 (plates and false boxes).

Seeded and resumable (``--out`` keeps ``last.pt``; the same command resumes), with a progress bar;
``--export`` writes the weights.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..nn.plate_refiner import PlateRefiner
from ..ops.boxes import grow_box, iou_matrix
from ..ops.plate_windows import cut_windows, plate_windows, to_windows
from .common import (
    add_run_options,
    checkpoint_state,
    finish_run,
    resume,
    run_steps,
    save_checkpoint,
    seed_and_device,
    warm_cosine,
)
from .plates import load_split

#: shares of a batch: jittered labelled plates, the finder's boxes of a plate; the rest are negatives
SHARES = (0.45, 0.3)
#: share of the jittered boxes that cover only a part of their plate
PARTIAL = 0.25


def mine(images: list[np.ndarray], boxes: list[np.ndarray], threshold: float) -> dict[str, np.ndarray]:
    """The plate finder's boxes at ``threshold`` over ``images``: ``hits`` [N, 6] (photo, box, the label it
    overlaps most) for boxes at IoU >= 0.1 with a labelled plate, ``false`` [M, 5] (photo, box) for boxes
    overlapping no labelled plate grown 1.5x."""
    from tqdm import tqdm

    from ..pipeline.plates import PlateFinder

    finder = PlateFinder(threshold=threshold, refine=False)  # the boxes the refiner will be given
    hits, false = [], []
    for k, (rgb, labels) in enumerate(tqdm(list(zip(images, boxes, strict=True)), desc="mining", unit="photo")):
        found = np.array([p.box for p in finder.find(rgb)], np.float32).reshape(-1, 4)
        if not len(found):
            continue
        iou = iou_matrix(found, labels) if len(labels) else np.zeros((len(found), 0), np.float32)
        near = iou_matrix(found, _around(labels)).max(1, initial=0.0) > 0
        for b, row, close in zip(found, iou, near, strict=True):
            if len(row) and row.max() >= 0.1:
                hits.append([k, *b, int(row.argmax())])
            elif not close:
                false.append([k, *b])
    return {"hits": np.array(hits, np.float32).reshape(-1, 6), "false": np.array(false, np.float32).reshape(-1, 5)}


def jitter(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A detection-like box around the labelled ``box``: width and height 0.45-1.8x, the centre moved up to a
    third of the plate's width and 0.4 of its height; or, for a share ``PARTIAL`` of the draws, a box over a
    part of the plate (0.35-0.8 of its width, anywhere along it), as the detector draws when it sees half a
    plate."""
    w, h = box[2] - box[0], box[3] - box[1]
    if rng.random() < PARTIAL:
        part = rng.uniform(0.35, 0.8)
        x1 = box[0] + rng.uniform(0, 1 - part) * w
        y1, y2 = box[1] + rng.uniform(-0.15, 0.15) * h, box[3] + rng.uniform(-0.15, 0.15) * h
        return np.array([x1, y1, x1 + part * w, y2], np.float32)
    sw, sh = np.exp(np.clip(rng.normal(0, 0.3, 2), -0.8, 0.6))
    cx = (box[0] + box[2]) / 2 + np.clip(rng.normal(0, 0.14), -0.33, 0.33) * w
    cy = (box[1] + box[3]) / 2 + np.clip(rng.normal(0, 0.15), -0.4, 0.4) * h
    return np.array([cx - sw * w / 2, cy - sh * h / 2, cx + sw * w / 2, cy + sh * h / 2], np.float32)


def random_false(rgb: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A plate-sized box (8-200 px wide, 2-5 times as wide as high) overlapping no labelled plate grown
    1.5x, or None when the draw hit one."""
    h, w = rgb.shape[:2]
    bw = float(np.exp(rng.uniform(math.log(8), math.log(200))))
    bh = bw / rng.uniform(2, 5)
    x, y = rng.uniform(0, max(w - bw, 1)), rng.uniform(0, max(h - bh, 1))
    box = np.array([x, y, x + bw, y + bh], np.float32)
    return None if iou_matrix(box[None], _around(labels)).max(initial=0.0) > 0 else box


def _around(labels: np.ndarray) -> np.ndarray:
    """The labelled plates grown 1.5x (float32 [K, 4]): a box overlapping none of them is a negative."""
    return np.array([grow_box(b, 1.5) for b in labels], np.float32).reshape(-1, 4)


def draw(
    images: list[np.ndarray], boxes: list[np.ndarray], mined: dict[str, np.ndarray], rng: np.random.Generator
) -> tuple[int, np.ndarray, np.ndarray | None]:
    """One training window's (photo, detection-like box, the plate's box or None for a negative)."""
    u = rng.random()
    if u < SHARES[0] or (u < sum(SHARES) and not len(mined["hits"])):
        k = int(rng.choice([i for i in range(len(boxes)) if len(boxes[i])]))
        label = boxes[k][int(rng.integers(0, len(boxes[k])))]
        return k, jitter(label, rng), label
    if u < sum(SHARES):
        row = mined["hits"][int(rng.integers(0, len(mined["hits"])))]
        k = int(row[0])
        return k, row[1:5], boxes[k][int(row[5])]
    if len(mined["false"]) and rng.random() < 0.7:
        row = mined["false"][int(rng.integers(0, len(mined["false"])))]
        return int(row[0]), row[1:5], None
    while True:
        k = int(rng.integers(0, len(images)))
        if (box := random_false(images[k], boxes[k], rng)) is not None:
            return k, box, None


def augment(window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness and contrast jitter, a blur one time in four, JPEG quality 30-95."""
    import cv2

    out = np.clip(window.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
    if rng.random() < 0.25:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.5, 1.5)))
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 96))])
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else None
    return decoded if decoded is not None else out


def batch(
    images: list[np.ndarray], boxes: list[np.ndarray], mined: dict[str, np.ndarray], n: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` windows (float [n, 3, 64, 128]), their plate boxes in window fractions [n, 4] and 1/0 targets [n]."""
    crops, targets, isplate = [], [], []
    for _ in range(n):
        k, det, label = draw(images, boxes, mined, rng)
        win = plate_windows(det[None])
        flip = rng.random() < 0.5
        crops.append(augment(cut_windows(images[k], win, flip=np.array([flip]))[0], rng))
        t = to_windows(label[None], win)[0] if label is not None else np.zeros(4, np.float32)
        if flip:
            t = np.array([1 - t[2], t[1], 1 - t[0], t[3]], np.float32)
        targets.append(t)
        isplate.append(float(label is not None))
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    return x, torch.from_numpy(np.stack(targets)), torch.tensor(isplate)


def loss_of(out: torch.Tensor, target: torch.Tensor, isplate: torch.Tensor) -> torch.Tensor:
    """On the windows holding a plate, L1 on the box (window fractions, x2.5) and 1 - IoU with the plate's
    box; on all, binary cross-entropy on the plate logit."""
    p, t = out[:, :4], target
    w = (torch.minimum(p[:, 2], t[:, 2]) - torch.maximum(p[:, 0], t[:, 0])).clamp(min=0)
    h = (torch.minimum(p[:, 3], t[:, 3]) - torch.maximum(p[:, 1], t[:, 1])).clamp(min=0)
    area = (p[:, 2] - p[:, 0]).clamp(min=0) * (p[:, 3] - p[:, 1]).clamp(min=0)
    iou = w * h / (area + (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) - w * h).clamp(min=1e-6)
    box = F.l1_loss(p, t, reduction="none").sum(1) * 2.5 + (1 - iou)
    n = isplate.sum().clamp(min=1)
    return (box * isplate).sum() / n + F.binary_cross_entropy_with_logits(out[:, 4], isplate)


def evaluate(
    model: PlateRefiner, images: list[np.ndarray], boxes: list[np.ndarray], mined: dict[str, np.ndarray]
) -> str:
    """Dev line: median IoU of the finder's boxes of a plate with their labels before / after refining, and
    the share of plate boxes and of false boxes scoring at least 0.5."""
    from ..pipeline.plates import refine_boxes

    was = model.training
    model.eval()
    before, after, kept = [], [], []
    for k in range(len(images)):
        rows = mined["hits"][mined["hits"][:, 0] == k]
        bad = mined["false"][mined["false"][:, 0] == k]
        dets = np.concatenate([rows[:, 1:5], bad[:, 1:5]])
        new, p = refine_boxes(model, images[k], dets)
        for j, row in enumerate(rows):
            label = boxes[k][int(row[5])][None]
            before.append(iou_matrix(row[None, 1:5], label)[0, 0])
            after.append(iou_matrix(new[j : j + 1], label)[0, 0])
        kept += [(True, q >= 0.5) for q in p[: len(rows)]] + [(False, q >= 0.5) for q in p[len(rows) :]]
    model.train(was)
    if not before:
        return "dev IoU: no finder box of a plate in the dev photos"
    plates = [k for t, k in kept if t]
    false = [k for t, k in kept if not t]
    return (
        f"dev IoU median {np.median(before):.3f} -> {np.median(after):.3f} (10th pct {np.percentile(before, 10):.3f} "
        f"-> {np.percentile(after, 10):.3f}); kept at 0.5: plates {np.mean(plates):.1%}, "
        f"false {np.mean(false) if false else 0.0:.1%}"
    )


def load_mined(
    path: Path, images: list[np.ndarray], boxes: list[np.ndarray], threshold: float
) -> dict[str, np.ndarray]:
    """:func:`mine`'s boxes, from ``path`` when an earlier run saved them there, else mined and saved."""
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return {"hits": z["hits"], "false": z["false"]}
    mined = mine(images, boxes, threshold)
    np.savez(path, hits=mined["hits"], false=mined["false"])
    return mined


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/plates-train"), help="default: %(default)s")
    ap.add_argument("--out", type=Path, default=Path("runs/refiner"), help="checkpoint folder (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=10000, help="default: %(default)s")
    ap.add_argument("--batch", type=int, default=96, help="windows a step (default: %(default)s)")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="use only N training photos (smoke runs)")
    ap.add_argument(
        "--mine-threshold", type=float, default=0.15, help="the finder's threshold when mining (default: %(default)s)"
    )
    add_run_options(ap, save_every=500)
    args = ap.parse_args(argv)
    from ..nn import build_model

    if not (args.data / "boxes.csv").is_file():
        raise SystemExit(f"{args.data}: no boxes.csv here (expected plates-train: boxes.csv and images/)")
    dev = seed_and_device(args.seed, args.device)
    images, boxes = load_split(args.data, held_out=False)
    images, boxes = images[: args.limit], boxes[: args.limit]
    dev_images, dev_boxes = load_split(args.data, held_out=True)
    dev_images, dev_boxes = dev_images[: args.limit], dev_boxes[: args.limit]
    if not images:
        raise SystemExit(f"no training photos in {args.data}")
    args.out.mkdir(parents=True, exist_ok=True)
    tag = f"{args.mine_threshold:g}" + (f"-{args.limit}" if args.limit else "")
    mined = load_mined(args.out / f"mined-{tag}.npz", images, boxes, args.mine_threshold)
    dev_mined = load_mined(args.out / f"mined-dev-{tag}.npz", dev_images, dev_boxes, args.mine_threshold)
    print(f"training photos: {len(images)}; finder boxes: {len(mined['hits'])} of plates, {len(mined['false'])} false")
    model = build_model("plate_refiner", weights=None).to(dev).train()
    assert isinstance(model, PlateRefiner)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = warm_cosine(opt, args.steps)
    rng = np.random.default_rng(args.seed)
    ckpt = args.out / "last.pt"
    parts = {"model": model, "opt": opt, "sched": sched}
    step, history = 0, []
    if (st := resume(ckpt, parts, rng, dev)) is not None:
        step, history = st["step"], st["history"]
        print(f"resumed from {ckpt} at step {step}")
    end = args.steps if args.stop_after is None else min(args.steps, step + args.stop_after)

    def batch_loss() -> torch.Tensor:
        x, target, isplate = batch(images, boxes, mined, args.batch, rng)
        return loss_of(model(x.to(dev)), target.to(dev), isplate.to(dev))

    def checkpoint(at: int, bar: Any) -> None:
        line = evaluate(model.cpu(), dev_images, dev_boxes, dev_mined)
        model.to(dev)
        history.append({"step": at, "dev": line})
        bar.write(f"step {at}: {line}")
        save_checkpoint(checkpoint_state(parts, rng, step=at, history=history), ckpt)

    step, done, t0 = run_steps(
        step,
        end,
        desc="plate refiner",
        opt=opt,
        sched=sched,
        batch_loss=batch_loss,
        checkpoint=checkpoint,
        save_every=args.save_every,
        time_limit=args.time_limit,
        digits=4,
    )
    finish_run(
        done=done,
        started=t0,
        step=step,
        steps=args.steps,
        export=args.export,
        weights=model.state_dict(),
        source="plate box refiner trained on plates-train (CC BY 4.0) windows around the plate finder's boxes",
    )


if __name__ == "__main__":
    main()
