"""Train IdentityNet by distillation from dlib's face-recognition ResNet.

    python -m anonymizer.train.identity --data ../shared/data/faces-utk --out runs/identity --epochs 24

Targets are dlib's 128-d descriptors of each faces-utk crop (computed once and cached, see
:mod:`anonymizer.train.faces`; needs the ``[audit]`` extra). The student sees the crop aligned by our
detector's five landmarks, with jitter, flips, colour changes and greyscale, and learns to reproduce the
descriptor (MSE) and the pairwise distances within a batch (L1). The held-out tenth is never trained on.

Seeded and resumable: ``--out`` holds ``last.pt`` (model, optimiser, epoch, RNG state) after every epoch;
running the same command again continues from it. ``--export models/identity_net.safetensors`` writes
the final weights.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..nn.identity import IDENTITY_CROP, identity_net
from ..ops.align import TEMPLATE_112, similarity_transform
from .common import checkpoint_state, resume, save_checkpoint, seed_and_device
from .faces import FaceSet, prepare_faces


def aligned_batch(
    images: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator | None, *, size: int = IDENTITY_CROP
) -> np.ndarray:
    """uint8 (B, size, size, 3) aligned crops; with ``rng``, augmented (jitter, flip, colour, greyscale)."""
    template = TEMPLATE_112 * (size / 112.0)
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, (img, lm) in enumerate(zip(images, landmarks, strict=True)):
        m = similarity_transform(lm, template)
        if rng is not None:
            angle = math.radians(rng.uniform(-8, 8))
            scale = rng.uniform(0.93, 1.07)
            c, s = scale * math.cos(angle), scale * math.sin(angle)
            centre = np.array([size / 2, size / 2])
            jitter = np.array([[c, -s], [s, c]])
            shift = centre - jitter @ centre + rng.uniform(-3, 3, 2)
            m = np.hstack([jitter @ m[:, :2], (jitter @ m[:, 2] + shift)[:, None]])
        crop = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if rng is not None:
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            f: np.ndarray = crop.astype(np.float32)
            f = (f - f.mean()) * rng.uniform(0.75, 1.25) + f.mean() + rng.uniform(-25, 25)
            if rng.random() < 0.25:
                f = np.repeat(f @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(f.shape)
            if rng.random() < 0.2:
                k = int(rng.choice([3, 5]))
                f = cv2.GaussianBlur(f, (k, k), 0)
            crop = np.clip(f, 0, 255).astype(np.uint8)
        out[i] = crop
    return out


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255.0)


def distill_loss(pred: torch.Tensor, target: torch.Tensor, *, pair_weight: float = 1.0) -> torch.Tensor:
    """MSE to the teacher's descriptors plus L1 between the two pairwise distance matrices."""
    mse = F.mse_loss(pred, target) * pred.shape[1]  # per-descriptor squared distance
    dp = torch.cdist(pred, pred)
    dt = torch.cdist(target, target)
    return mse + pair_weight * F.l1_loss(dp, dt)


def usable(fs: FaceSet) -> np.ndarray:
    return np.isfinite(fs.descriptors).all(1) & np.isfinite(fs.landmarks).all((1, 2))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/faces-utk"), help="faces-utk folder (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=Path("runs/identity"), help="checkpoint folder (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=24, help="default: %(default)s")
    ap.add_argument("--batch", type=int, default=64, help="default: %(default)s")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate, AdamW, cosine (default: %(default)s)")
    ap.add_argument("--pair-weight", type=float, default=4.0, help="weight of the pairwise-distance loss against the MSE (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N faces (smoke runs)")
    ap.add_argument("--stop-after", type=int, default=None, help="stop after N epochs of this run (time-boxed runs; run again to resume)")
    ap.add_argument("--export", type=Path, default=None, help="write the final weights here (safetensors)")
    args = ap.parse_args(argv)

    from tqdm import tqdm

    if args.threads:
        torch.set_num_threads(args.threads)
    fs = prepare_faces(args.data, limit=args.limit)
    ok = usable(fs)
    train_idx = np.flatnonzero(ok & ~fs.held_out)
    val_idx = np.flatnonzero(ok & fs.held_out)
    print(f"faces: {len(fs)}, usable {int(ok.sum())}; train {len(train_idx)}, held-out {len(val_idx)}")
    images = np.stack([fs.load_rgb(i) for i in tqdm(range(len(fs)), desc="loading", unit="img")])
    targets = torch.from_numpy(fs.descriptors.astype(np.float32))

    dev = seed_and_device(args.seed, "cpu")
    model = identity_net(weights=None).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    steps_per_epoch = max(1, len(train_idx) // args.batch)
    total = args.epochs * steps_per_epoch
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    rng = np.random.default_rng(args.seed)
    start = 0
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "last.pt"
    parts = {"model": model, "opt": opt, "sched": sched}
    if (state := resume(ckpt, parts, rng, dev)) is not None:
        start = state["epoch"]
        print(f"resumed from {ckpt} at epoch {start}")
    val_crops = to_tensor(aligned_batch(images[val_idx], fs.landmarks[val_idx], None))
    val_t = targets[val_idx]
    end = args.epochs if args.stop_after is None else min(args.epochs, start + args.stop_after)
    for epoch in range(start, end):
        model.train()
        order = rng.permutation(train_idx)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch")
        run = 0.0
        for step in bar:
            idx = order[step * args.batch : (step + 1) * args.batch]
            x = to_tensor(aligned_batch(images[idx], fs.landmarks[idx], rng))
            loss = distill_loss(model(x), targets[idx], pair_weight=args.pair_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run = 0.95 * run + 0.05 * float(loss.detach()) if step else float(loss.detach())
            bar.set_postfix(loss=f"{run:.4f}")
        model.eval()
        with torch.inference_mode():
            pred = torch.cat([model(val_crops[i : i + 256]) for i in range(0, len(val_crops), 256)])
        err = float((pred - val_t).norm(dim=1).mean())
        iu = torch.triu_indices(len(pred), len(pred), 1)
        dp, dt = torch.cdist(pred, pred)[iu[0], iu[1]], torch.cdist(val_t, val_t)[iu[0], iu[1]]
        corr = float(torch.corrcoef(torch.stack([dp, dt]))[0, 1])
        print(f"epoch {epoch + 1}: held-out |student - dlib| {err:.4f}, distance correlation {corr:.4f}")
        save_checkpoint(checkpoint_state(parts, rng, epoch=epoch + 1), ckpt)
    if end < args.epochs:
        print(f"stopped after epoch {end} of {args.epochs}; run the same command again to resume")
        return
    if args.export is not None:
        from safetensors.torch import save_file

        args.export.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(args.export), metadata={"source": "IdentityNet distilled from dlib (faces-utk); see models/identity_net.md"})
        print(f"wrote {args.export}")


if __name__ == "__main__":
    main()
