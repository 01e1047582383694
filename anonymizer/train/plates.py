"""Train a licence-plate detector: CenterFace's network (MobileNetV2 + FPN + centre head) fine-tuned to find
plates instead of faces (issue 37).

    python -m anonymizer.train.plates --data ../shared/data/plates-train --out runs/plates --steps 3000 --seed 0

Data: ``boxes.csv`` (file, width, height, x1, y1, x2, y2 per plate) and ``images/`` under ``--data``; a fixed
tenth of the photos (:func:`is_held_out`, by a digest of the file name) is never trained on and is where
the dev recall is measured. Each step: ``--batch`` random crops of ``--crop`` px from photos scaled 0.5-3x
(log-uniform: distant plates as they are, near ones as large as in a close-up), flipped at random,
colour-jittered and JPEG-compressed; with ``--paste P`` a share P of the crops first gets 1-3 plates cut
from other training photos (copy-paste; tried, not used for the shipped weights: models/plates.md).
Targets at stride 4 as CenterFace decodes them (:func:`anonymizer.ops.centers.decode_center_maps`): a
Gaussian peak at each plate's centre, log height and width over the stride, the sub-cell offset;
CenterNet's focal loss on the heat map and L1 on size and offset at the peaks. The landmark maps are not
trained.

Seeded and resumable (``--out`` keeps ``last.pt``; the same command resumes; ``--stop-after`` /
``--time-limit`` stop early with a checkpoint), with a progress bar; ``--export`` writes the weights.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

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

STRIDE = 4
SCALES = (0.5, 3.0)  # photo scale range of the training crops (log-uniform)
PASTE_WIDTHS = (8.0, 200.0)  # width range in px of pasted plates (log-uniform)
PASTE_GROWTH = 2.5  # a pasted plate is at most this many times its own width
PASTE_MARGIN = 0.25  # context cut around a plate for pasting, as a share of its height, feathered out

Patch = tuple[np.ndarray, np.ndarray]  # a plate cut out with its margin, and the plate's box in it


@dataclass(frozen=True)
class Paste:
    """Copy-paste settings of :func:`sample`: the share of crops given 1-3 plates from ``patches``, and the
    width range of the pasted plates (px, log-uniform)."""

    patches: list[Patch] = field(default_factory=list)
    share: float = 0.0
    widths: tuple[float, float] = PASTE_WIDTHS


def is_held_out(name: str) -> bool:
    """The fixed tenth of the photos never trained on."""
    return hashlib.sha256(name.encode()).digest()[0] < 26


def read_boxes(root: Path) -> dict[str, np.ndarray]:
    """file name -> float32 [K, 4] plate boxes (x1, y1, x2, y2) from ``root``/boxes.csv."""
    out: dict[str, list[list[float]]] = {}
    with open(root / "boxes.csv", newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["file"], []).append([float(row[k]) for k in ("x1", "y1", "x2", "y2")])
    return {k: np.array(v, np.float32).reshape(-1, 4) for k, v in out.items()}


def targets(boxes: np.ndarray, size: int, dense: float = 0.0) -> dict[str, np.ndarray]:
    """Training targets for a ``size`` x ``size`` crop with plate ``boxes`` [K, 4] (crop pixels): heat map
    [1, s, s] (Gaussian peaks, sigma a sixth of the box on each axis), scale [2, s, s] (log h, w over the
    stride), offset [2, s, s] (y, x: from the cell to the plate's centre) and the mask [s, s] of the cells
    whose size and offset are trained, s = size / STRIDE. ``dense`` 0: the peak cell of each plate only
    (CenterNet); ``dense`` in (0, 1): every cell where the plate's Gaussian is at least ``dense`` (its
    centre region, where the decoder may read the box when a neighbour of the peak scores highest), each
    plate's cells weighted by its Gaussian and summing to 1, a cell shared by two plates given to the nearer."""
    s = size // STRIDE
    heat = np.zeros((1, s, s), np.float32)
    scale = np.zeros((2, s, s), np.float32)
    offset = np.zeros((2, s, s), np.float32)
    mask = np.zeros((s, s), np.float32)
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
    nearest = np.zeros((s, s), np.float32)  # the Gaussian of the plate each trained cell belongs to
    for x1, y1, x2, y2 in boxes:
        w, h = x2 - x1, y2 - y1
        if w < 2 or h < 1:
            continue
        cx, cy = (x1 + x2) / 2 / STRIDE - 0.5, (y1 + y2) / 2 / STRIDE - 0.5
        ix, iy = int(round(cx)), int(round(cy))
        if not (0 <= ix < s and 0 <= iy < s):
            continue
        sx, sy = max(w / STRIDE / 6, 0.5), max(h / STRIDE / 6, 0.5)
        g = np.exp(-((xs - cx) ** 2) / (2 * sx**2) - ((ys - cy) ** 2) / (2 * sy**2))
        heat[0] = np.maximum(heat[0], g)
        heat[0, iy, ix] = 1.0
        cells = np.zeros((s, s), bool)
        cells[iy, ix] = True
        if dense > 0:
            cells |= (g >= dense) & (g >= nearest)
        nearest = np.where(cells, g, nearest)
        yy, xx = np.nonzero(cells)
        scale[:, yy, xx] = np.array([[math.log(h / STRIDE)], [math.log(w / STRIDE)]], np.float32)
        offset[:, yy, xx] = np.stack([cy - yy, cx - xx]).astype(np.float32)
        weight = np.where(cells, np.maximum(g, 1e-3), 0.0)
        mask = np.where(cells, weight / weight.sum(), mask).astype(np.float32)
    return {"heatmap": heat, "scale": scale, "offset": offset, "mask": mask}


def sample(
    rgb: np.ndarray,
    boxes: np.ndarray,
    size: int,
    rng: np.random.Generator,
    scales: tuple[float, float] = SCALES,
    paste: Paste = Paste(),
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size`` crop of ``rgb`` scaled by ``scales`` (log-uniform; grey padding where it runs
    out), flipped at random, colour-jittered and JPEG-compressed, with the plate boxes that keep at least
    half their width and height in it. ``paste``: the share of crops given 1-3 plates from its patches
    first (:func:`paste_plates`)."""
    import cv2

    f = float(np.exp(rng.uniform(math.log(scales[0]), math.log(scales[1]))))
    img = cv2.resize(rgb, (max(1, round(rgb.shape[1] * f)), max(1, round(rgb.shape[0] * f))))
    b = boxes * f
    h, w = img.shape[:2]
    if len(b) and rng.random() < 0.7:  # most crops hold a plate
        x1, y1, x2, y2 = b[int(rng.integers(0, len(b)))]
        ox = _between(rng, max(x2 - size, -size / 4), min(x1, w - size * 3 / 4))
        oy = _between(rng, max(y2 - size, -size / 4), min(y1, h - size * 3 / 4))
    else:
        ox, oy = _between(rng, -size / 4, w - size * 3 / 4), _between(rng, -size / 4, h - size * 3 / 4)
    canvas = np.full((size, size, 3), 114, np.uint8)
    sx0, sy0, sx1, sy1 = max(ox, 0), max(oy, 0), min(ox + size, w), min(oy + size, h)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - oy : sy1 - oy, sx0 - ox : sx1 - ox] = img[sy0:sy1, sx0:sx1]
    b = b - np.array([ox, oy, ox, oy], np.float32)
    clipped = np.clip(b, 0, size)
    keep = ((clipped[:, 2] - clipped[:, 0]) >= 0.5 * (b[:, 2] - b[:, 0])) & (
        (clipped[:, 3] - clipped[:, 1]) >= 0.5 * (b[:, 3] - b[:, 1])
    )
    b = clipped[keep]
    if paste.patches and rng.random() < paste.share:
        canvas, b = paste_plates(canvas, b, paste.patches, rng, int(rng.integers(1, 4)), paste.widths)
    if rng.random() < 0.5:
        canvas = canvas[:, ::-1]
        b = np.stack([size - b[:, 2], b[:, 1], size - b[:, 0], b[:, 3]], 1) if len(b) else b
    canvas = np.clip(canvas.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(canvas), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else None
    out: np.ndarray = decoded if decoded is not None else canvas
    return np.ascontiguousarray(out), b.astype(np.float32)


def plate_patches(images: list[np.ndarray], boxes: list[np.ndarray], min_width: float = 16) -> list[Patch]:
    """Every plate at least ``min_width`` px wide, cut out with a margin of ``PASTE_MARGIN`` of its height
    on each side: (RGB patch, the plate's box in the patch)."""
    out: list[Patch] = []
    for rgb, bs in zip(images, boxes, strict=True):
        h, w = rgb.shape[:2]
        for x1, y1, x2, y2 in bs:
            if x2 - x1 < min_width:
                continue
            m = PASTE_MARGIN * (y2 - y1)
            px1, py1 = max(0, int(x1 - m)), max(0, int(y1 - m))
            px2, py2 = min(w, int(math.ceil(x2 + m))), min(h, int(math.ceil(y2 + m)))
            box = np.array([x1 - px1, y1 - py1, x2 - px1, y2 - py1], np.float32)
            out.append((np.ascontiguousarray(rgb[py1:py2, px1:px2]), box))
    return out


def paste_plates(
    canvas: np.ndarray,
    boxes: np.ndarray,
    patches: list[Patch],
    rng: np.random.Generator,
    count: int,
    widths: tuple[float, float] = PASTE_WIDTHS,
) -> tuple[np.ndarray, np.ndarray]:
    """Copy-paste augmentation: ``count`` plates from ``patches`` pasted onto ``canvas`` (a copy) at random
    places and ``widths`` (px, log-uniform, at most ``PASTE_GROWTH`` times the plate's own),
    slightly turned and sheared, feathered into the picture, none over a plate already there; returns the
    canvas and all boxes (the pasted ones added)."""
    import cv2

    from ..ops.boxes import iou_matrix

    out, size = canvas.copy(), canvas.shape[0]
    found = [boxes.reshape(-1, 4)]
    for _ in range(count):
        patch, box = patches[int(rng.integers(0, len(patches)))]
        own = float(box[2] - box[0])
        low, high = widths[0], min(widths[1], PASTE_GROWTH * own)  # no mush from tiny plates
        f = float(np.exp(rng.uniform(math.log(low), math.log(max(low, high))))) / own
        ph, pw = patch.shape[:2]
        turn = cv2.getRotationMatrix2D((pw / 2, ph / 2), float(rng.uniform(-12, 12)), f)
        turn[0, 1] += float(rng.uniform(-0.25, 0.25)) * f  # shear: a plate seen from the side
        corners = np.array([[0, 0, 1], [pw, 0, 1], [0, ph, 1], [pw, ph, 1]], np.float64) @ turn.T
        lo, hi = corners.min(0), corners.max(0)
        ow, oh = int(math.ceil(hi[0] - lo[0])), int(math.ceil(hi[1] - lo[1]))
        if not (2 <= ow < size and 2 <= oh < size):
            continue
        turn[:, 2] -= lo
        x0, y0 = int(rng.integers(0, size - ow)), int(rng.integers(0, size - oh))
        inner = np.array([[box[0], box[1], 1], [box[2], box[1], 1], [box[0], box[3], 1], [box[2], box[3], 1]])
        q = inner @ turn.T + (x0, y0)
        new = np.array([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()], np.float32)
        if iou_matrix(new[None], np.concatenate(found)).any():  # never over a plate already there
            continue
        feather = np.zeros((ph, pw), np.float32)
        m = max(1, int(PASTE_MARGIN * (box[3] - box[1]) / 2))
        feather[m : ph - m, m : pw - m] = 1
        soft = cv2.blur(feather, (2 * m + 1, 2 * m + 1))
        warped = cv2.warpAffine(patch, turn, (ow, oh), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(soft, turn, (ow, oh), flags=cv2.INTER_LINEAR)[..., None]
        region = out[y0 : y0 + oh, x0 : x0 + ow].astype(np.float32)
        out[y0 : y0 + oh, x0 : x0 + ow] = (region * (1 - alpha) + warped * alpha).round().astype(np.uint8)
        found.append(new[None])
    return out, np.concatenate(found).astype(np.float32)


def _between(rng: np.random.Generator, low: float, high: float) -> int:
    """A whole number drawn uniformly from [low, high] (low when the span is empty)."""
    return int(rng.uniform(low, high)) if high > low else int(low)


def loss_of(out: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor], size_weight: float = 0.1) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on the heat map plus L1 on scale (log height and width, times
    ``size_weight``) and offset at the peaks."""
    p = out["heatmap"].clamp(1e-4, 1 - 1e-4)
    gt = tgt["heatmap"]
    pos = gt.eq(1).float()
    neg = (1 - pos) * (1 - gt) ** 4
    focal = -(torch.log(p) * (1 - p) ** 2 * pos + torch.log(1 - p) * p**2 * neg).sum()
    n = pos.sum().clamp(min=1)
    m = tgt["mask"][:, None]
    reg = F.l1_loss(out["scale"] * m, tgt["scale"] * m, reduction="sum") * size_weight + F.l1_loss(
        out["offset"] * m, tgt["offset"] * m, reduction="sum"
    )
    return (focal + reg) / n


def recall(model: torch.nn.Module, images: list[np.ndarray], boxes: list[np.ndarray], threshold: float = 0.3) -> float:
    """Share of plates matched (IoU >= 0.5) by a detection scoring above ``threshold``, whole photos."""
    from ..nn.detectors import FaceDetector, prepare_batch
    from ..ops.boxes import iou_matrix

    assert isinstance(model, FaceDetector)
    was = model.training
    model.eval()
    hit = total = 0
    with torch.inference_mode():
        for rgb, b in zip(images, boxes, strict=True):
            ((found, _, _),) = model.detect(prepare_batch([torch.from_numpy(rgb)]), threshold=threshold)
            total += len(b)
            if len(b) and len(found):
                hit += int((iou_matrix(b, found.numpy()).max(1) >= 0.5).sum())
    model.train(was)
    return hit / max(total, 1)


def load_split(root: Path, held_out: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(RGB photos, their plate boxes) of the held-out tenth or of the rest."""
    from ..media.image import load_image

    boxes = read_boxes(root)
    names = sorted(n for n in boxes if is_held_out(n) == held_out and (root / "images" / n).is_file())
    return [load_image(root / "images" / n).rgb for n in names], [boxes[n] for n in names]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/plates-train"), help="default: %(default)s")
    ap.add_argument("--out", type=Path, default=Path("runs/plates"), help="checkpoint folder (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=3000, help="default: %(default)s")
    ap.add_argument("--batch", type=int, default=8, help="default: %(default)s")
    ap.add_argument("--crop", type=int, default=384, help="training crop side in px (default: %(default)s)")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="use only N training photos (smoke runs)")
    ap.add_argument(
        "--init",
        choices=("centerface", "plates"),
        default="centerface",
        help="start from CenterFace's face weights or from the shipped plate weights (default: %(default)s)",
    )
    ap.add_argument(
        "--size-weight", type=float, default=0.1, help="weight of the box-size L1 term (default: %(default)s)"
    )
    ap.add_argument(
        "--dense",
        type=float,
        default=0.0,
        help="train box size and offset at every cell where a plate's Gaussian is at least this, not only at "
        "its peak (0: the peak only; default: %(default)s)",
    )
    ap.add_argument(
        "--paste",
        type=float,
        default=0.0,
        help="share of crops given 1-3 plates cut from other training photos (copy-paste; default: %(default)s)",
    )
    ap.add_argument(
        "--paste-widths",
        type=float,
        nargs=2,
        default=PASTE_WIDTHS,
        metavar=("LOW", "HIGH"),
        help="width range of pasted plates in px (default: %(default)s)",
    )
    add_run_options(ap, save_every=250)
    args = ap.parse_args(argv)
    if not 0 <= args.dense < 1:
        ap.error(f"--dense must be in [0, 1), got {args.dense}")
    from ..nn import build_model

    dev = seed_and_device(args.seed, args.device)
    images, boxes = load_split(args.data, held_out=False)
    images, boxes = images[: args.limit], boxes[: args.limit]
    dev_images, dev_boxes = load_split(args.data, held_out=True)
    if not images:
        raise SystemExit(f"no training photos in {args.data}")
    paste = Paste(plate_patches(images, boxes) if args.paste > 0 else [], args.paste, tuple(args.paste_widths))
    print(f"training photos: {len(images)} ({sum(len(b) for b in boxes)} plates); dev: {len(dev_images)} photos")
    start = "centerface" if args.init == "centerface" else "plate_detector"
    model = build_model(start, weights="default").to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = warm_cosine(opt, args.steps)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "last.pt"
    parts = {"model": model, "opt": opt, "sched": sched}
    step, history = 0, []
    if (st := resume(ckpt, parts, rng, dev)) is not None:
        step, history = st["step"], st["history"]
        print(f"resumed from {ckpt} at step {step}")
    end = args.steps if args.stop_after is None else min(args.steps, step + args.stop_after)

    def batch_loss() -> torch.Tensor:
        crops, tgts = [], []
        for _ in range(args.batch):
            k = int(rng.integers(0, len(images)))
            crop, b = sample(images[k], boxes[k], args.crop, rng, paste=paste)
            crops.append(crop)
            tgts.append(targets(b, args.crop, args.dense))
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().to(dev)
        tgt = {key: torch.from_numpy(np.stack([t[key] for t in tgts])).to(dev) for key in tgts[0]}
        return loss_of(model(x), tgt, args.size_weight)

    def checkpoint(at: int, bar: Any) -> None:
        r = recall(model, dev_images, dev_boxes)
        history.append({"step": at, "recall": r})
        bar.write(f"step {at}: dev recall (IoU >= 0.5, score >= 0.3) {r:.3f}")
        save_checkpoint(checkpoint_state(parts, rng, step=at, history=history), ckpt)

    step, done, t0 = run_steps(
        step,
        end,
        desc="plates",
        opt=opt,
        sched=sched,
        batch_loss=batch_loss,
        checkpoint=checkpoint,
        save_every=args.save_every,
        time_limit=args.time_limit,
        digits=3,
    )
    finish_run(
        done=done,
        started=t0,
        step=step,
        steps=args.steps,
        export=args.export,
        weights=model.state_dict(),
        source="CenterFace fine-tuned on plates-train (CC BY 4.0) to find licence plates"
        + (" (continued from the shipped plate weights)" if args.init == "plates" else ""),
    )


if __name__ == "__main__":
    main()
