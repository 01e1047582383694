"""Train IdentityNet by distillation from dlib's face-recognition ResNet.

    python -m anonymizer.train.identity --data ../shared/data/faces-utk --out runs/identity --epochs 24

Targets are dlib's 128-d descriptors of each faces-utk crop (computed once and cached, see
:mod:`anonymizer.train.faces`; needs the ``[audit]`` extra). The student sees the crop aligned by our
detector's five landmarks, with jitter, flips, colour changes and greyscale, and learns to reproduce the
descriptor (MSE) and the pairwise distances within a batch (L1). The held-out tenth is never trained on.

Seeded and resumable: ``--out`` holds ``last.pt`` (model, optimiser, epoch, RNG state) after every epoch;
running the same command again continues from it. ``--export models/identity_net.safetensors`` writes
the final weights.

The surrogate painter's identity check has its own weights (``identity_check``), fine-tuned from these on
training faces and their painted surrogates (models/identity_net.md, "The surrogate check"):

    python -m anonymizer.train.identity --paint-bank runs/idsur/bank.npz --seed 0
    python -m anonymizer.train.identity --bank runs/idsur/bank.npz --init models/identity_net.safetensors \
        --epochs 6 --lr 5e-4 --seed 0 --out runs/idsur/ft --export models/identity_check.safetensors

``--paint-bank`` paints one surrogate into each training face (:func:`paint_bank`); ``--bank`` trains on
batches of faces and their surrogates (:func:`bank_loss`) and reports the face-to-surrogate distances on
a kept-out twentieth (:func:`bank_split`, :func:`bank_report`).
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


def bank_split(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept out, trained on): positions in a bank of ``count`` paintings; a seeded twentieth is kept out of
    the fine-tuning to measure face-to-surrogate distances (benchmarks/identity_check.py --bank-kept-out)."""
    order = np.random.default_rng(seed).permutation(count)
    return order[: count // 20], order[count // 20 :]


def bank_loss(
    model: torch.nn.Module,
    bank: dict[str, np.ndarray],
    rows: np.ndarray,
    images: np.ndarray,
    landmarks: np.ndarray,
    targets: torch.Tensor,
    rng: np.random.Generator,
    *,
    pair_weight: float,
) -> torch.Tensor:
    """A batch of training faces and their painted surrogates (bank ``rows``): :func:`distill_loss` on
    all of them plus ``pair_weight`` x the L1 error of each face-to-its-surrogate distance (the distance
    the surrogate painter's identity check thresholds)."""
    faces = bank["index"][rows]
    x = to_tensor(
        np.concatenate(
            [
                aligned_batch(images[faces], landmarks[faces], rng),
                aligned_batch(bank["images"][rows], landmarks[faces], rng),
            ]
        )
    )
    t = torch.cat([targets[faces], torch.from_numpy(bank["descriptors"][rows])])
    pred = model(x)
    n = len(rows)
    own = (pred[:n] - pred[n:]).norm(dim=1) - (t[:n] - t[n:]).norm(dim=1)
    return distill_loss(pred, t, pair_weight=pair_weight) + pair_weight * own.abs().mean()


def bank_report(
    model: torch.nn.Module,
    bank: dict[str, np.ndarray],
    rows: np.ndarray,
    images: np.ndarray,
    landmarks: np.ndarray,
    targets: torch.Tensor,
) -> str:
    """How well the student measures face-to-surrogate distances on bank ``rows`` kept out of training."""
    faces = bank["index"][rows]
    with torch.inference_mode():
        a = model(to_tensor(aligned_batch(images[faces], landmarks[faces], None)))
        b = model(to_tensor(aligned_batch(bank["images"][rows], landmarks[faces], None)))
    painted = torch.from_numpy(bank["descriptors"][rows])
    ds, dt = (a - b).norm(dim=1), (targets[faces] - painted).norm(dim=1)
    corr = float(torch.corrcoef(torch.stack([ds, dt]))[0, 1])
    err = float((b - painted).norm(dim=1).mean())
    return (
        f"{len(rows)} surrogates kept out: face-to-surrogate distance correlation with dlib {corr:.4f}, "
        f"|student - dlib| {err:.4f}"
    )


def usable(fs: FaceSet) -> np.ndarray:
    return np.isfinite(fs.descriptors).all(1) & np.isfinite(fs.landmarks).all((1, 2))


def paint_bank(
    fs: FaceSet, idx: np.ndarray, out: Path, *, seed: int, weights: str = "default", keep_every: int = 500
) -> None:
    """Paint one surrogate into each face ``idx`` with the shipped painter (no identity check) and save the
    paintings with dlib's descriptor of each (``out``, .npz: ``index`` (N,), ``images`` uint8 (N, H, W, 3),
    ``descriptors`` float32 (N, 128)). Face i gets candidate k (0 .. ATTEMPTS-1, drawn from ``seed``) of
    the password "identity bank {seed}" in the context of its photo (as anonymize_image does): the
    paintings the identity check judges. Resumable: a ``.partial.npz`` beside ``out`` is kept every
    ``keep_every`` faces."""
    from tqdm import tqdm

    from ..audit.recognizers import DlibRecognizer
    from ..pipeline.surrogate import ATTEMPTS, SurrogatePainter
    from ..vault.surrogate import SurrogateSeed

    dlib = DlibRecognizer()
    painter = SurrogatePainter(weights=weights, identity_check=False)
    pick = np.random.default_rng(seed).integers(0, ATTEMPTS, len(idx))
    bank = SurrogateSeed.from_password(f"identity bank {seed}")  # one key derivation, then a seed per face
    partial = out.with_suffix(".partial.npz")
    out.parent.mkdir(parents=True, exist_ok=True)  # before the first partial save
    images: list[np.ndarray] = []
    descs: list[np.ndarray] = []
    if partial.exists():
        with np.load(partial) as f:
            images, descs = list(f["images"]), list(f["descriptors"])
    for n in tqdm(
        range(len(images), len(idx)), desc="painting the bank", unit="face", initial=len(images), total=len(idx)
    ):
        i = int(idx[n])
        rgb, face = fs.load_rgb(i), fs.face(i)
        s = bank.for_context(rgb.tobytes())
        painted = painter.paint(rgb, [face], s, choices={0: int(pick[n])})[0]  # candidate pick[n] of track 0
        if images and painted.shape != images[0].shape:
            raise SystemExit(
                f"{fs.names[i]}: {painted.shape[:2]} pixels, the bank's other images {images[0].shape[:2]}"
            )
        images.append(painted)
        descs.append(dlib.embed(painted, face))
        if (n + 1) % keep_every == 0:
            np.savez(partial, images=np.stack(images), descriptors=np.stack(descs))
    np.savez(out, index=idx, images=np.stack(images), descriptors=np.stack(descs).astype(np.float32))
    partial.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, default=Path("../shared/data/faces-utk"), help="faces-utk folder (default: %(default)s)"
    )
    ap.add_argument("--out", type=Path, default=Path("runs/identity"), help="checkpoint folder (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=24, help="default: %(default)s")
    ap.add_argument("--batch", type=int, default=64, help="default: %(default)s")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate, AdamW, cosine (default: %(default)s)")
    ap.add_argument(
        "--pair-weight",
        type=float,
        default=4.0,
        help="weight of the pairwise-distance loss against the MSE (default: %(default)s)",
    )
    ap.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N faces (smoke runs)")
    ap.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop after N epochs of this run (time-boxed runs; run again to resume)",
    )
    ap.add_argument("--export", type=Path, default=None, help="write the final weights here (safetensors)")
    ap.add_argument(
        "--init", type=Path, default=None, help="start from these weights (safetensors) instead of random ones"
    )
    ap.add_argument(
        "--paint-bank",
        type=Path,
        default=None,
        help="paint one surrogate into each training face and save the bank here (.npz; see paint_bank), then stop",
    )
    ap.add_argument(
        "--bank",
        type=Path,
        default=None,
        help="fine-tune on a painted bank: each batch is half training faces, half their surrogates",
    )
    args = ap.parse_args(argv)

    from tqdm import tqdm

    if args.threads:
        torch.set_num_threads(args.threads)
    fs = prepare_faces(args.data, limit=args.limit)
    ok = usable(fs)
    train_idx = np.flatnonzero(ok & ~fs.held_out)
    val_idx = np.flatnonzero(ok & fs.held_out)
    print(f"faces: {len(fs)}, usable {int(ok.sum())}; train {len(train_idx)}, held-out {len(val_idx)}")
    if args.paint_bank is not None:
        paint_bank(fs, train_idx, args.paint_bank, seed=args.seed)
        print(f"wrote {args.paint_bank}")
        return
    images = np.stack([fs.load_rgb(i) for i in tqdm(range(len(fs)), desc="loading", unit="img")])
    targets = torch.from_numpy(fs.descriptors.astype(np.float32))
    bank: dict[str, np.ndarray] | None = None
    if args.bank is not None:
        with np.load(args.bank) as f:
            bank = {k: f[k] for k in ("index", "images", "descriptors")}
        if not np.isin(bank["index"], train_idx).all():
            raise SystemExit(f"{args.bank} holds faces outside this training split (another --data or --limit?)")
        bank_val, bank_train = bank_split(len(bank["index"]), args.seed)
        print(f"bank: {len(bank_train)} surrogates to train on, {len(bank_val)} to measure")

    dev = seed_and_device(args.seed, "cpu")
    model = identity_net(weights=None).train()
    if args.init is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(args.init)))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    steps_per_epoch = max(1, (len(train_idx) if bank is None else 2 * len(bank_train)) // args.batch)
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
    if bank is not None and start == 0:
        print(f"before: {bank_report(model.eval(), bank, bank_val, images, fs.landmarks, targets)}")
    for epoch in range(start, end):
        model.train()
        order = rng.permutation(train_idx)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch")
        run = 0.0
        if bank is not None:  # drawn after the faces' order above, as the shipped identity_check run did
            order = rng.permutation(bank_train)
        for step in bar:
            if bank is None:
                idx = order[step * args.batch : (step + 1) * args.batch]
                x = to_tensor(aligned_batch(images[idx], fs.landmarks[idx], rng))
                loss = distill_loss(model(x), targets[idx], pair_weight=args.pair_weight)
            else:
                loss = bank_loss(
                    model,
                    bank,
                    order[step * (args.batch // 2) : (step + 1) * (args.batch // 2)],
                    images,
                    fs.landmarks,
                    targets,
                    rng,
                    pair_weight=args.pair_weight,
                )
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
        if bank is not None:
            print(f"epoch {epoch + 1}: {bank_report(model, bank, bank_val, images, fs.landmarks, targets)}")
        save_checkpoint(checkpoint_state(parts, rng, epoch=epoch + 1), ckpt)
    if end < args.epochs:
        print(f"stopped after epoch {end} of {args.epochs}; run the same command again to resume")
        return
    if args.export is not None:
        from safetensors.torch import save_file

        args.export.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(
            state,
            str(args.export),
            metadata={"source": "IdentityNet distilled from dlib (faces-utk); see models/identity_net.md"},
        )
        print(f"wrote {args.export}")


if __name__ == "__main__":
    main()
