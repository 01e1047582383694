"""Train the person Mask R-CNN on Penn-Fudan.

    python -m anonymizer.train.masks --init centerface --epochs 40 --seed 0 --out runs/masks_centerface \
        --export models/person_maskrcnn.safetensors

(the shipped weights; models/person_maskrcnn.md compares them with ``--init random``)

Data (``--data``, default ../shared/data/pennfudan): PNGImages/*.png with PedMasks/<name>_mask.png
(0 background, k = person k); boxes are taken from the masks. The dev split is fixed by file name (sha256
of the name, 1 in 5). Augmentations: horizontal flip, brightness / contrast / saturation jitter, and scale
jitter (the shorter side drawn from ``anonymizer.nn.masks.TRAIN_SIZES`` for each batch).

``--init centerface`` starts the backbone from CenterFace's weights (trained on crowd photos) and
fine-tunes it at a tenth of the learning rate; ``random`` trains it from scratch at the full rate. SGD
(momentum 0.9, weight decay 1e-4), linear warm-up then cosine. Seeded and resumable:
``--out`` keeps ``last.pt`` after every epoch and the same command resumes; ``--stop-after N`` (epochs)
and ``--time-limit S`` stop early with a checkpoint. Mask and box AP on the dev split are printed every
``--eval-every`` epochs and at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..nn.masks import TEST_SIZE, person_maskrcnn
from .common import checkpoint_state, resume, save_checkpoint, save_weights, seed_and_device


def is_dev(name: str) -> bool:
    """The fixed dev fifth of Penn-Fudan (by file name)."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 5 == 0


@dataclass
class Sample:
    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    masks: np.ndarray  # (K, H, W) bool, one per person

    @property
    def boxes(self) -> np.ndarray:
        return boxes_of(self.masks)


def boxes_of(masks: np.ndarray) -> np.ndarray:
    """Tight (x1, y1, x2, y2) boxes of (K, H, W) masks, x2/y2 exclusive."""
    out = np.zeros((len(masks), 4), np.float32)
    for k, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        out[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return out


def load_pennfudan(root: Path, *, dev: bool | None = None) -> list[Sample]:
    """The photos with their instance masks; ``dev`` True / False for one split, None for all."""
    from PIL import Image

    from ..errors import InputError

    images = root / "PNGImages"
    if not images.is_dir():
        raise InputError("Penn-Fudan folder not found (the research data lives in ../shared/data)", path=root)
    out = []
    for p in sorted(images.glob("*.png")):
        if dev is not None and is_dev(p.name) != dev:
            continue
        rgb = np.asarray(Image.open(p).convert("RGB"))
        ids = np.asarray(Image.open(root / "PedMasks" / f"{p.stem}_mask.png"))
        masks = np.stack([ids == k for k in np.unique(ids) if k != 0 and (ids == k).sum() > 0])
        out.append(Sample(p.name, rgb, masks))
    return out


def augment(s: Sample, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    rgb, masks = s.rgb, s.masks
    if rng.random() < 0.5:
        rgb, masks = rgb[:, ::-1], masks[:, :, ::-1]
    x = rgb.astype(np.float32)
    x = x * rng.uniform(0.75, 1.25)  # brightness
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.75, 1.25) + mean  # contrast
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * rng.uniform(0.7, 1.3) + grey  # saturation
    return np.clip(x, 0, 255).astype(np.uint8), np.ascontiguousarray(masks)


def to_input(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.tensor(rgb).permute(2, 0, 1).float().div_(255.0).to(device)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    samples: list[Sample],
    *,
    device: torch.device | None = None,
    size: int = TEST_SIZE,
    mask_threshold: float = 0.5,
) -> dict[str, float]:
    """Mask AP50 / AP75 and box AP50 on ``samples`` (COCO-style, one class)."""
    from ..ops.boxes import iou_matrix
    from ..ops.metrics import average_precision, mask_iou

    device = device or next(model.parameters()).device
    was_training = model.training
    old = model.transform.min_size  # type: ignore[union-attr]
    model.eval()
    model.transform.min_size = (size,)  # type: ignore[union-attr]
    per_mask, per_box = [], []
    try:
        for s in samples:
            out = model([to_input(s.rgb, device)])[0]
            scores = out["scores"].cpu().numpy()
            pred = (out["masks"][:, 0] >= mask_threshold).cpu().numpy()
            per_mask.append((scores, mask_iou(pred, s.masks) if len(pred) else np.zeros((0, len(s.masks)))))
            boxes = out["boxes"].cpu().numpy()
            per_box.append((scores, iou_matrix(boxes, s.boxes) if len(boxes) else np.zeros((0, len(s.masks)))))
    finally:
        model.transform.min_size = old  # type: ignore[union-attr]
        model.train(was_training)
    return {
        "mask_ap50": average_precision(per_mask, 0.5),
        "mask_ap75": average_precision(per_mask, 0.75),
        "box_ap50": average_precision(per_box, 0.5),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/pennfudan"), help="default: %(default)s")
    ap.add_argument("--out", type=Path, default=Path("runs/masks"), help="checkpoint folder (default: %(default)s)")
    ap.add_argument(
        "--init", choices=("centerface", "random"), default="centerface", help="backbone start (default: %(default)s)"
    )
    ap.add_argument("--epochs", type=int, default=40, help="default: %(default)s")
    ap.add_argument("--batch", type=int, default=2, help="default: %(default)s")
    ap.add_argument("--lr", type=float, default=0.01, help="peak SGD learning rate (default: %(default)s)")
    ap.add_argument(
        "--backbone-lr",
        type=float,
        default=None,
        help="backbone learning rate as a fraction of --lr (default: 0.1 for --init centerface, fine-tuning; 1 for "
        "random)",
    )
    ap.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    ap.add_argument("--limit", type=int, default=None, help="use only N training photos (smoke runs)")
    ap.add_argument("--eval-every", type=int, default=4, help="epochs between dev evaluations (default: %(default)s)")
    ap.add_argument("--stop-after", type=int, default=None, help="stop after N epochs of this run (resume later)")
    ap.add_argument("--time-limit", type=float, default=None, help="stop after the epoch that passes S seconds")
    ap.add_argument("--export", type=Path, default=None, help="write the final weights here (safetensors, float16)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    ap.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    args = ap.parse_args(argv)

    from tqdm import tqdm

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = seed_and_device(args.seed, args.device)
    train = load_pennfudan(args.data, dev=False)[: args.limit]
    dev_set = load_pennfudan(args.data, dev=True)
    print(
        f"training photos: {len(train)} ({sum(len(s.masks) for s in train)} people); "
        f"dev: {len(dev_set)} ({sum(len(s.masks) for s in dev_set)} people); device {dev}"
    )
    model = person_maskrcnn(weights=None, backbone_init=args.init).to(dev).train()
    params = [p for p in model.parameters() if p.requires_grad]
    body = {id(p) for p in model.backbone.body.parameters()}  # type: ignore[union-attr]
    mult = args.backbone_lr if args.backbone_lr is not None else (0.1 if args.init == "centerface" else 1.0)
    groups = [
        {"params": [p for p in params if id(p) in body], "lr": args.lr * mult},
        {"params": [p for p in params if id(p) not in body], "lr": args.lr},
    ]
    opt = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    per_epoch = math.ceil(len(train) / args.batch)
    total = per_epoch * args.epochs
    warm = min(200, total // 10 + 1)

    def lr_at(it: int) -> float:
        return min(1.0, (it + 1) / warm) * (0.5 * (1 + math.cos(math.pi * min(it, total) / total)) * 0.98 + 0.02)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rng = np.random.default_rng(args.seed)
    epoch = 0
    history: list[dict[str, float]] = []
    ckpt = args.out / "last.pt"
    args.out.mkdir(parents=True, exist_ok=True)
    parts = {"model": model, "opt": opt, "sched": sched}
    if (state := resume(ckpt, parts, rng, dev)) is not None:
        epoch, history = state["epoch"], state["history"]
        print(f"resumed from {ckpt} at epoch {epoch}")
    end = args.epochs if args.stop_after is None else min(args.epochs, epoch + args.stop_after)
    t0 = time.monotonic()
    while epoch < end:
        order = rng.permutation(len(train))
        bar = tqdm(range(0, len(order), args.batch), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch")
        avg: dict[str, float] = {}
        for i in bar:
            imgs, targets = [], []
            for j in order[i : i + args.batch]:
                rgb, masks = augment(train[j], rng)
                imgs.append(to_input(rgb, dev))
                targets.append(
                    {
                        "boxes": torch.from_numpy(boxes_of(masks)).to(dev),
                        "labels": torch.ones(len(masks), dtype=torch.int64, device=dev),
                        "masks": torch.from_numpy(masks.astype(np.uint8)).to(dev),
                    }
                )
            losses = model(imgs, targets)
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            sched.step()
            for k, v in losses.items():
                k = k.removeprefix("loss_")
                avg[k] = 0.9 * avg.get(k, float(v.detach())) + 0.1 * float(v.detach())
            bar.set_postfix({k: f"{v:.3f}" for k, v in avg.items()})
        bar.close()
        epoch += 1
        out_of_time = args.time_limit is not None and time.monotonic() - t0 > args.time_limit
        if out_of_time:
            end = epoch
        if epoch % args.eval_every == 0 or epoch == end:
            m = evaluate(model, dev_set, device=dev)
            history.append({"epoch": epoch, **m})
            print(
                f"epoch {epoch}: dev mask AP50 {m['mask_ap50']:.3f}, mask AP75 {m['mask_ap75']:.3f}, box AP50 "
                f"{m['box_ap50']:.3f}"
            )
        save_checkpoint(checkpoint_state(parts, rng, epoch=epoch, history=history, init=args.init), ckpt)
    took = time.monotonic() - t0
    print(f"this run: {took / 60:.1f} min")
    if epoch < args.epochs:
        print(f"stopped at epoch {epoch} of {args.epochs}; run the same command again to resume")
        return
    if args.export is not None:
        from ..nn.masks import half_state

        save_weights(half_state(model), args.export, f"person_maskrcnn, --init {args.init}, Penn-Fudan")


if __name__ == "__main__":
    main()
