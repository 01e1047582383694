"""Train the 4x face super-resolution models: SRResNet (L1 pixel loss) and SRGAN (adversarial fine-tuning).

The shipped weights (models/srresnet.md, models/srgan.md) came from:

    python -m anonymizer.train.sr --model srresnet --steps 9000 --batch 32 --patch 32 --seed 0 \
        --out runs/srresnet --export models/srresnet.safetensors
    python -m anonymizer.train.sr --model srgan --init models/srresnet.safetensors --steps 2500 --batch 16 \
        --seed 0 --out runs/srgan --export models/srgan.safetensors

Data (``--data``, default ../shared/data/faces-utk): the 200x200 crops without the fixed held-out tenth
(``anonymizer.train.faces.is_held_out``); the low-resolution input is PIL's bicubic 4x reduction of the
whole crop (50x50). SRResNet trains on random input patches (``--patch``, targets 4x) with flips. SRGAN
starts from SRResNet and trains on whole crops: L1 + 5e-3 x adversarial (hinge) + 0.1 x feature matching
on the discriminator's features + 0.5 x an identity loss (IdentityNet embedding distance between the
aligned output and the aligned original; the face landmarks come from the prepared faces cache, or from
``--faces-cache``).

Runs on a GPU when there is one (``--device``). Seeded and resumable: ``--out`` holds ``last.pt``
(models, optimisers, step, RNG state), written every ``--save-every`` steps; the same command resumes.
``--stop-after N`` and ``--time-limit S`` stop a run early with a checkpoint.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..nn.sr import Discriminator, SRResNet
from .common import (
    add_run_options,
    checkpoint_state,
    face_landmarks,
    finish_run,
    resume,
    save_checkpoint,
    seed_and_device,
)
from .faces import is_held_out

SCALE = 4


def lowres(hr: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """PIL bicubic reduction by ``scale`` (uint8 RGB in, uint8 RGB out): the degradation we train for."""
    h, w = hr.shape[:2]
    return np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.Resampling.BICUBIC))


def to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float().div_(255.0)


def load_split(root: Path, *, held_out: bool, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    from ..media.image import load_image

    names = sorted(p.name for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    names = [n for n in names if is_held_out(n) == held_out][:limit]
    imgs = np.stack([load_image(root / n).rgb for n in names])
    return names, imgs


def patch_batch(
    hr: np.ndarray, lr: np.ndarray, idx: np.ndarray, rng: np.random.Generator, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    lh, lw = lr.shape[1:3]
    for i in idx:
        y, x = int(rng.integers(0, lh - size + 1)), int(rng.integers(0, lw - size + 1))
        a = lr[i, y : y + size, x : x + size]
        b = hr[i, y * SCALE : (y + size) * SCALE, x * SCALE : (x + size) * SCALE]
        if rng.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        xs.append(a)
        ys.append(b)
    return to_tensor(np.stack(xs)), to_tensor(np.stack(ys))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("srresnet", "srgan"), default="srresnet", help="default: %(default)s")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/faces-utk"), help="default: %(default)s")
    ap.add_argument("--out", type=Path, default=None, help="checkpoint folder (default: runs/<model>)")
    ap.add_argument("--steps", type=int, default=6000, help="default: %(default)s")
    ap.add_argument(
        "--batch",
        type=int,
        default=16,
        help="patches (srresnet) or whole crops (srgan) per step (default: %(default)s)",
    )
    ap.add_argument(
        "--patch", type=int, default=24, help="low-resolution patch side for srresnet (default: %(default)s)"
    )
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 1e-3 srresnet, 1e-4 srgan)")
    ap.add_argument("--init", type=Path, default=None, help="srgan: start the generator from these weights")
    ap.add_argument("--limit", type=int, default=None, help="use only N training faces (smoke runs)")
    ap.add_argument(
        "--faces-cache",
        type=Path,
        default=None,
        help="srgan: a prepared faces cache (.npz) with the landmarks, instead of preparing --data",
    )
    add_run_options(ap, save_every=250, export="write the final generator weights here")
    args = ap.parse_args(argv)
    out = args.out or Path("runs") / args.model
    gan = args.model == "srgan"
    peak = args.lr or (1e-4 if gan else 1e-3)
    dev = seed_and_device(args.seed, args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    import time

    from tqdm import tqdm

    names, hr = load_split(args.data, held_out=False, limit=args.limit)
    lr_imgs = np.stack([lowres(x) for x in hr])
    _, val_hr = load_split(args.data, held_out=True, limit=64)
    val_lr = to_tensor(np.stack([lowres(x) for x in val_hr])).to(dev)
    val_hr_t = to_tensor(val_hr).to(dev)
    print(f"training faces: {len(names)}; validation: {len(val_hr)} held-out faces; device {dev}")

    gen = SRResNet()
    if args.init is not None:
        from safetensors.torch import load_file

        gen.load_state_dict(load_file(str(args.init)))
    gen.to(dev).train()
    opt_g = torch.optim.Adam(gen.parameters(), lr=peak, betas=(0.9, 0.99))
    warm = max(1, args.steps // 50)

    def lr_at(step: int) -> float:
        return min(1.0, (step + 1) / warm) * (
            0.5 * (1 + math.cos(math.pi * min(step, args.steps) / args.steps)) * 0.95 + 0.05
        )

    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, lr_at)
    disc = opt_d = None
    ident = lms = None
    if gan:
        disc = Discriminator().to(dev).train()
        opt_d = torch.optim.Adam(disc.parameters(), lr=peak, betas=(0.5, 0.99))
        ident, lms = _identity_parts(args.data, names, args.faces_cache)
        ident.to(dev)
    rng = np.random.default_rng(args.seed)
    step = 0
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "last.pt"
    parts: dict[str, Any] = {"gen": gen, "opt_g": opt_g, "sched_g": sched_g}
    if disc is not None and opt_d is not None:
        parts.update(disc=disc, opt_d=opt_d)
    if (state := resume(ckpt, parts, rng, dev)) is not None:
        step = state["step"]
        print(f"resumed from {ckpt} at step {step}")
    end = args.steps if args.stop_after is None else min(args.steps, step + args.stop_after)
    bar = tqdm(total=end - step, desc=args.model, unit="step")
    avg: dict[str, float] = {}
    t0 = time.monotonic()
    while step < end:
        if gan:
            assert disc is not None and opt_d is not None
            idx = rng.integers(0, len(hr), args.batch)
            x, y = to_tensor(lr_imgs[idx]).to(dev), to_tensor(hr[idx]).to(dev)
            fake = gen(x)
            # discriminator: hinge loss
            real_logit, _ = disc(y)
            fake_logit, _ = disc(fake.detach())
            d_loss = F.relu(1 - real_logit).mean() + F.relu(1 + fake_logit).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            fake_logit, fake_feats = disc(fake)
            with torch.no_grad():
                _, real_feats = disc(y)
            fm = sum(F.l1_loss(a, b) for a, b in zip(fake_feats, real_feats, strict=True)) / len(fake_feats)
            idl = _identity_loss(ident, lms[idx], fake, y)  # type: ignore[index]
            losses = {"l1": F.l1_loss(fake, y), "adv": -fake_logit.mean(), "fm": fm, "id": idl, "d": d_loss}
            g_loss = losses["l1"] + 5e-3 * losses["adv"] + 0.1 * fm + 0.5 * idl
        else:
            idx = rng.integers(0, len(hr), args.batch)
            x, y = patch_batch(hr, lr_imgs, idx, rng, args.patch)
            x, y = x.to(dev), y.to(dev)
            losses = {"l1": F.l1_loss(gen(x), y)}
            g_loss = losses["l1"]
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        sched_g.step()
        step += 1
        if step % 10 == 0 or dev.type == "cpu":  # reading a loss waits for the GPU: not every step there
            for k, v in losses.items():
                avg[k] = 0.98 * avg.get(k, float(v.detach())) + 0.02 * float(v.detach())
            bar.set_postfix({k: f"{v:.4f}" for k, v in avg.items()})
        bar.update(1)
        out_of_time = args.time_limit is not None and time.monotonic() - t0 > args.time_limit
        if out_of_time:
            end = step
        if step % args.save_every == 0 or step == end:
            psnr = _val_psnr(gen, val_lr, val_hr_t)
            gen.train()
            bar.write(f"step {step}: held-out PSNR {psnr:.2f} dB (64 faces)")
            save_checkpoint(checkpoint_state(parts, rng, step=step), ckpt)
    bar.close()
    finish_run(
        done=bar.n,
        started=t0,
        step=step,
        steps=args.steps,
        export=args.export,
        weights=gen.state_dict(),
        source=f"{args.model} trained on faces-utk (see models/{args.model}.md)",
    )


def _val_psnr(gen: SRResNet, lr: torch.Tensor, hr: torch.Tensor) -> float:
    gen.eval()
    with torch.inference_mode():
        sr = gen(lr).clamp(0, 1)
        sr = torch.round(sr * 255) / 255
        mse = ((sr - hr) ** 2).mean(dim=(1, 2, 3))
    return float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())


def _identity_parts(root: Path, names: list[str], cache: Path | None = None) -> tuple[torch.nn.Module, np.ndarray]:
    from ..nn.identity import identity_net

    all_names, all_lms = face_landmarks(root, cache)
    where = {str(n): i for i, n in enumerate(all_names)}
    nan = np.full((5, 2), np.nan, np.float32)
    lms = np.stack([all_lms[where[n]] if n in where else nan for n in names])
    net = identity_net()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, lms


def _identity_loss(
    net: torch.nn.Module | None, lms: np.ndarray, fake: torch.Tensor, real: torch.Tensor
) -> torch.Tensor:
    """Mean IdentityNet embedding distance between the aligned output and the aligned original."""
    from ..nn.identity import IDENTITY_CROP
    from ..ops.align import TEMPLATE_112, affine_to_theta, similarity_transform

    assert net is not None
    ok = np.isfinite(lms).all(axis=(1, 2))
    if not ok.any():
        return fake.sum() * 0
    size = fake.shape[-1], fake.shape[-2]
    thetas = [
        affine_to_theta(
            similarity_transform(lm, TEMPLATE_112 * IDENTITY_CROP / 112), size, (IDENTITY_CROP, IDENTITY_CROP)
        )
        for lm in lms[ok]
    ]
    theta = torch.tensor(np.stack(thetas), dtype=fake.dtype, device=fake.device)
    grid = F.affine_grid(theta, [int(ok.sum()), 3, IDENTITY_CROP, IDENTITY_CROP], align_corners=False)
    sel = torch.from_numpy(np.flatnonzero(ok)).to(fake.device)
    a = net(F.grid_sample(fake[sel], grid, align_corners=False, padding_mode="border"))
    with torch.no_grad():
        b = net(F.grid_sample(real[sel], grid, align_corners=False, padding_mode="border"))
    return (a - b).norm(dim=1).mean()


if __name__ == "__main__":
    main()
