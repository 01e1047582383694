"""Train the surrogate-face generator (password-conditioned U-Net) against a conditional PatchGAN.

    python -m anonymizer.train.surrogate --data ../shared/data/faces-utk --out runs/surrogate \
        --steps 7000 --seed 0 --export models/surrogate.safetensors

(The shipped weights were trained in five stages, with stronger identity terms, a dlib student and a
code palette in the later ones: see models/surrogate.md for every command.)

Data: faces-utk's 200x200 crops without the fixed held-out tenth, each aligned by its five landmarks (our
detector, from the prepared faces cache or ``--faces-cache``) onto the 64-px surrogate crop
(:func:`anonymizer.nn.surrogate.crop_template`), with horizontal flips. The face region (an ellipse from
the landmarks) is masked out of the generator's input.

Losses of the generator, per step, for two random codes z1, z2 on the same faces:
- adversarial (hinge) against the multi-scale PatchGAN, which sees images with the landmark heatmaps;
- identity change: relu(margin - d(out1, original)) with d the IdentityNet embedding distance (the
  output must not be the same person);
- diversity: relu(margin - d(out1, out2)) (two codes, two people), with the recogniser's crop jittered
  at random (scale and shift) so that only differences that survive resampling count;
- pixel diversity: relu(margin - mean |out1 - out2| inside the mask) (the two faces differ visibly);
- colour: L1 between heavily blurred output and original inside the mask (skin tone and lighting match
  the photo; a low-pass carries no identity);
- feature matching on the critic's features (stability).
Outside the mask the output equals the input by construction.

The identity terms measure distances with IdentityNet, distilled from dlib on real faces. With
``--dlib-labels K`` a copy of it (:class:`DlibStudent`) keeps being distilled from dlib on the generator's
own faces (K of them described by dlib per step, in a replay buffer) and on the batch's real faces, and
the identity-change term compares with dlib's own descriptor of the original: the generator can then no
longer satisfy the terms with differences only IdentityNet sees. ``--init RUN/last.pt`` starts a new run
(step 0, fresh optimisers and schedule) from another run's generator and critic (and its student).

``--palette FILE.npy`` (PALETTE_SIZE codes, from :mod:`anonymizer.train.surrogate_palette`) stores those
codes in the generator (they ship with its weights) and draws every step's two codes as two different
rows of it, so the terms above pull exactly the codes the painter hands out apart; a generator that
already has a palette (resumed, or from ``--init``) keeps training on its own, all its rows alike (a
palette of any size; ``--palette`` with ``--init`` replaces it and drops its row weights).
``--hard-pairs F`` draws that share of each batch's pairs from the palette's closest pairs: the 4 x
PALETTE_SIZE pairs of rows that dlib (with ``--dlib-labels``; else the recogniser) puts closest together
on 4 fixed training faces, measured again every 200 steps. Whether two rows are different people hardly
depends on the face, so the pairs that fail are few and known, and the diversity term and the dlib
labels go where they fail.
``--row-targets T.npy`` (PALETTE_SIZE x 128, from ``surrogate_palette --targets``) gives each palette row a
target: the mean shift of dlib's descriptor that a real other adult's face region makes when painted into
training faces. The term w_target x |e(out) - e(original) - target[row]| (the recogniser's embeddings;
dlib's descriptor of the original with ``--dlib-labels``) pulls each row's face toward its own person:
the rows' shifts then spread over as many directions as real strangers' do, not the few the diversity
term finds on its own.
``--init W.safetensors`` starts from generator weights alone (e.g. the shipped ones, palette included):
the critic (and the ``--dlib-labels`` student) start fresh, and ``--critic-warmup N`` first trains them
for N steps against the fixed generator.
``--palette-lr LR`` also learns the rows themselves (the generator's weights are shared by all rows, so
pulling one close pair apart through them moves the other rows too; a row's own code moves only that
row). The learnt rows are copied into the generator's palette after every step, so checkpoints and the
export carry them.

Runs on a GPU when there is one. Seeded and resumable (``--out`` keeps ``last.pt``; the same command
resumes; ``--stop-after`` / ``--time-limit`` stop early with a checkpoint).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..nn.surrogate import (
    CODE_DIM,
    PALETTE_SIZE,
    SURROGATE_SIZE,
    PatchDiscriminator,
    SurrogateGenerator,
    crop_template,
    face_mask,
    landmark_heatmaps,
)
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


def aligned_faces(
    root: Path, *, held_out: bool, limit: int | None = None, cache: Path | None = None, size: int = SURROGATE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """(crops uint8 (N, size, size, 3), landmarks float32 (N, 5, 2) in crop pixels) of one split, aligned
    onto :func:`~anonymizer.nn.surrogate.crop_template` of ``size``."""
    crops, lms, _ = aligned_split(root, held_out=held_out, limit=limit, cache=cache, size=size)
    return crops, lms


def aligned_split(
    root: Path, *, held_out: bool, limit: int | None = None, cache: Path | None = None, size: int = SURROGATE_SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`aligned_faces` and the file names (N,) of the crops."""
    import cv2

    from ..media.image import load_image
    from ..ops.align import similarity_transform

    names, lms = face_landmarks(root, cache)
    tpl = crop_template(size)
    crops, out_lms, kept = [], [], []
    for name, lm in zip(names, lms, strict=True):
        if is_held_out(str(name)) != held_out or not np.isfinite(lm).all() or not (root / str(name)).is_file():
            continue
        m = similarity_transform(lm, tpl)
        rgb = load_image(root / str(name)).rgb
        crops.append(cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        out_lms.append((lm @ m[:, :2].T + m[:, 2]).astype(np.float32))
        kept.append(str(name))
        if limit is not None and len(crops) >= limit:
            break
    if not crops:
        raise SystemExit(f"no usable faces in {root}")
    return np.stack(crops), np.stack(out_lms), np.array(kept)


def dlib_descriptors(root: Path, names: np.ndarray, cache: Path | None = None) -> np.ndarray:
    """dlib's descriptors (N, 128) of the named faces (NaN rows where dlib found none): from ``cache``
    when it holds ``descriptors``, else from :func:`~anonymizer.train.faces.prepare_faces` (which runs
    dlib once when its cache has none)."""
    from .faces import prepare_faces

    if cache is not None and "descriptors" in (z := np.load(cache, allow_pickle=False)):
        all_names, desc = z["names"], z["descriptors"]
    else:
        fs = prepare_faces(root, with_dlib=True, progress=True)
        all_names, desc = fs.names, fs.descriptors
    row = {str(n): i for i, n in enumerate(all_names)}
    return np.stack([desc[row[str(n)]] for n in names]).astype(np.float32)


class DlibStudent:
    """A copy of IdentityNet kept close to dlib on the generator's own faces, for the identity terms.

    The frozen IdentityNet was distilled from dlib on real faces only; a generator trained against it
    learns differences that it sees and dlib does not (models/surrogate.md). Here, each step, a few of the
    generator's outputs are described by dlib itself (:meth:`DlibRecognizer.embed_aligned`, about 60 ms a
    face on a CPU) into a replay buffer, and the student takes one distillation step
    (:func:`~anonymizer.train.identity.distill_loss`) on a sample of that buffer plus the real faces of
    the batch with their dlib descriptors. The buffer is part of the checkpoint, so resuming is exact.
    """

    def __init__(self, net: torch.nn.Module, *, lr: float, capacity: int = 2048, pair_weight: float = 4.0) -> None:
        from ..audit.recognizers import DlibRecognizer

        self.net = net.train()
        self.opt = torch.optim.Adam(net.parameters(), lr=lr)
        self.rec = DlibRecognizer()
        self.capacity = capacity
        self.pair_weight = pair_weight
        self.crops = np.zeros((0, SURROGATE_SIZE, SURROGATE_SIZE, 3), np.uint8)
        self.lms = np.zeros((0, 5, 2), np.float32)
        self.desc = np.zeros((0, 128), np.float32)

    @staticmethod
    def _arrays(images: torch.Tensor, lms: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        crops = (images.detach().permute(0, 2, 3, 1).cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)
        return crops, lms.detach().cpu().numpy().astype(np.float32)

    def describe(self, images: torch.Tensor, lms: torch.Tensor) -> np.ndarray:
        """dlib's descriptors (B, 128) of generated crops (B, 3, S, S in 0..1) with landmarks (B, 5, 2)."""
        return self.rec.embed_aligned(*self._arrays(images, lms))

    def label(self, images: torch.Tensor, lms: torch.Tensor) -> np.ndarray:
        """:meth:`describe` the crops and keep them in the buffer; returns the descriptors."""
        crops, lm = self._arrays(images, lms)
        desc = self.rec.embed_aligned(crops, lm)
        self.crops = np.concatenate([self.crops, crops])[-self.capacity :]
        self.lms = np.concatenate([self.lms, lm])[-self.capacity :]
        self.desc = np.concatenate([self.desc, desc])[-self.capacity :]
        return desc

    def update(
        self,
        rng: np.random.Generator,
        real: torch.Tensor,
        real_lms: torch.Tensor,
        real_desc: torch.Tensor,
        *,
        sample: int,
        jitter_amount: float,
    ) -> float:
        """One distillation step on ``sample`` buffered generated faces and the real ones given."""
        from .identity import distill_loss

        dev = real.device
        pick = rng.integers(0, len(self.crops), min(sample, len(self.crops)))
        gen_x = torch.from_numpy(self.crops[pick]).permute(0, 3, 1, 2).float().div(255.0).to(dev)
        x = torch.cat([real, gen_x])
        lm = torch.cat([real_lms, torch.from_numpy(self.lms[pick]).to(dev)])
        target = torch.cat([real_desc, torch.from_numpy(self.desc[pick]).to(dev)])
        for p in self.net.parameters():
            p.requires_grad_(True)
        loss = distill_loss(
            embed(self.net, x, jitter(identity_thetas(lm), jitter_amount)), target, pair_weight=self.pair_weight
        )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        for p in self.net.parameters():
            p.requires_grad_(False)
        return float(loss.detach())

    def state_dict(self) -> dict[str, object]:
        return {
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "crops": self.crops,
            "lms": self.lms,
            "desc": self.desc,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.net.load_state_dict(state["net"])  # type: ignore[arg-type]
        self.opt.load_state_dict(state["opt"])  # type: ignore[arg-type]
        self.crops, self.lms, self.desc = state["crops"], state["lms"], state["desc"]  # type: ignore[assignment]


HARD_EVERY = 200


@torch.no_grad()
def closest_pairs(
    gen: torch.nn.Module,
    describe: Callable[[torch.Tensor, torch.Tensor], np.ndarray],
    x: torch.Tensor,
    lms: torch.Tensor,
    count: int,
) -> np.ndarray:
    """The ``count`` pairs (count, 2) of palette rows whose faces, painted into the crops ``x`` (B, 3, S,
    S) with landmarks ``lms`` (B, 5, 2), ``describe(images, lms) -> (B, D) embeddings`` puts closest
    together on average."""
    mask, hm = face_mask(lms), landmark_heatmaps(lms)
    was_training = gen.training
    gen.eval()
    emb = np.stack([describe(gen(x, mask, hm, code.expand(len(x), -1)), lms) for code in gen.palette])  # type: ignore[union-attr]
    gen.train(was_training)
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=-1).mean(-1)  # (K, K), mean over the faces
    iu = np.triu_indices(len(dist), 1)
    order = np.argsort(dist[iu], kind="stable")[:count]
    return np.stack([iu[0][order], iu[1][order]], axis=1)


def load_palette(path: Path) -> np.ndarray:
    """A (PALETTE_SIZE, CODE_DIM) float32 palette from a .npy file (not all zeros, all finite)."""
    try:
        pal = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: cannot read a palette ({e})") from None
    if pal.shape != (PALETTE_SIZE, CODE_DIM) or not np.isfinite(pal).all() or not np.abs(pal).sum() > 0:
        raise SystemExit(
            f"{path}: expected a finite, non-zero ({PALETTE_SIZE}, {CODE_DIM}) palette, got shape {pal.shape}"
        )
    return pal.astype(np.float32)


def load_targets(path: Path) -> np.ndarray:
    """A (PALETTE_SIZE, 128) float32 array of row targets from a .npy file (all finite)."""
    try:
        t = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: cannot read row targets ({e})") from None
    if t.shape != (PALETTE_SIZE, 128) or not np.isfinite(t).all():
        raise SystemExit(f"{path}: expected finite ({PALETTE_SIZE}, 128) row targets, got shape {t.shape}")
    return t.astype(np.float32)


def critic_step(
    disc: torch.nn.Module, opt_d: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor, heatmaps: torch.Tensor
) -> torch.Tensor:
    """One step of the critic (hinge loss over its scales) on ``real`` and ``fake`` (no gradient to the
    generator); returns the loss."""
    real_l, _ = disc(real, heatmaps)
    fake_l, _ = disc(fake, heatmaps)
    d_loss = sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real_l, fake_l, strict=True))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()  # type: ignore[union-attr]
    opt_d.step()
    return d_loss  # type: ignore[return-value]


def warm_up(
    steps: int,
    gen: torch.nn.Module,
    disc: torch.nn.Module,
    opt_d: torch.optim.Optimizer,
    student: DlibStudent | None,
    crops: np.ndarray,
    lms: np.ndarray,
    descs: np.ndarray | None,
    palette: torch.Tensor | None,
    rng: np.random.Generator,
    dev: torch.device,
    *,
    batch: int,
    labels: int,
    jitter_amount: float,
) -> None:
    """``steps`` steps of the critic (:func:`critic_step`, as in training) and of the student (dlib labels of the
    generator's faces, then a distillation step) against the fixed generator: a fresh critic should not
    meet a trained generator unprepared."""
    from tqdm import tqdm

    for _ in tqdm(range(steps), desc="critic warm-up", unit="step"):
        idx = rng.integers(0, len(crops), batch)
        x = torch.from_numpy(crops[idx]).permute(0, 3, 1, 2).float().div_(255.0).to(dev)
        lm_t = torch.from_numpy(lms[idx]).to(dev)
        hm, mask = landmark_heatmaps(lm_t), face_mask(lm_t)
        z = (
            torch.randn(batch, CODE_DIM, device=dev)
            if palette is None
            else palette[torch.from_numpy(rng.integers(0, len(palette), batch)).to(dev)].detach()
        )
        with torch.no_grad():
            out = gen(x, mask, hm, z)
        critic_step(disc, opt_d, x, out, hm)
        if student is not None and descs is not None and labels > 0:
            student.label(out[:labels], lm_t[:labels])
            if len(student.crops) >= 4 * batch:
                student.update(
                    rng, x, lm_t, torch.from_numpy(descs[idx]).to(dev), sample=batch, jitter_amount=jitter_amount
                )


def identity_thetas(lms: torch.Tensor) -> torch.Tensor:
    """affine_grid thetas (B, 2, 3) that sample IdentityNet's aligned crop from surrogate crops."""
    from ..nn.identity import IDENTITY_CROP
    from ..ops.align import TEMPLATE_112, affine_to_theta, similarity_transform

    dst = TEMPLATE_112 * IDENTITY_CROP / 112
    size = (SURROGATE_SIZE, SURROGATE_SIZE)
    th = [
        affine_to_theta(similarity_transform(lm, dst), size, (IDENTITY_CROP, IDENTITY_CROP)) for lm in lms.cpu().numpy()
    ]
    return torch.tensor(np.stack(th), dtype=torch.float32, device=lms.device)


def jitter(thetas: torch.Tensor, amount: float) -> torch.Tensor:
    """The same thetas with a random scale (1 +- amount) and shift (+- amount of the half-side) per face:
    the identity terms then only count differences that survive resampling (a pattern that fools the
    recogniser at one exact pixel grid does not), so the faces really differ, to dlib as well."""
    if amount <= 0:
        return thetas
    n = len(thetas)
    scale = 1 + (torch.rand(n, 1, 1, device=thetas.device) * 2 - 1) * amount
    shift = (torch.rand(n, 2, device=thetas.device) * 2 - 1) * amount
    out = thetas.clone()
    out[:, :, :2] = out[:, :, :2] * scale
    out[:, :, 2] = out[:, :, 2] + shift
    return out


def embed(net: torch.nn.Module, images: torch.Tensor, thetas: torch.Tensor) -> torch.Tensor:
    from ..nn.identity import IDENTITY_CROP

    grid = F.affine_grid(thetas, [len(images), 3, IDENTITY_CROP, IDENTITY_CROP], align_corners=False)
    return net(F.grid_sample(images, grid, align_corners=False, padding_mode="border"))


def lowpass(x: torch.Tensor) -> torch.Tensor:
    """Blocks of 1/8 of the crop's side, smoothed back up: lighting and skin tone, no identity detail."""
    return F.interpolate(F.avg_pool2d(x, x.shape[-1] // 8), size=x.shape[-2:], mode="bilinear", align_corners=False)


def save_preview(gen: torch.nn.Module, crops: np.ndarray, lms: np.ndarray, path: Path, *, codes: int = 3) -> None:
    """A grid (columns: faces; rows: the input with its face masked out, then ``codes`` fixed codes)."""
    from ..media.image import save_image

    dev = next(gen.parameters()).device
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0).to(dev)
    lm = torch.from_numpy(lms).to(dev)
    mask, hm = face_mask(lm), landmark_heatmaps(lm)
    g = torch.Generator().manual_seed(1234)
    cols = [x * (1 - mask)]
    was_training = gen.training
    gen.eval()
    with torch.no_grad():
        for _ in range(codes):
            z = torch.randn(1, CODE_DIM, generator=g).expand(len(x), -1).to(dev)
            cols.append(gen(x, mask, hm, z))
    gen.train(was_training)
    grid = torch.cat([torch.cat(list(c), dim=2) for c in cols], dim=1)  # (3, S*len, S*(codes+1))
    save_image((grid.permute(1, 2, 0).cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8), path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/faces-utk"), help="default: %(default)s")
    ap.add_argument("--out", type=Path, default=Path("runs/surrogate"), help="checkpoint folder (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=20000, help="default: %(default)s")
    ap.add_argument("--batch", type=int, default=16, help="default: %(default)s")
    ap.add_argument("--lr", type=float, default=2e-4, help="default: %(default)s")
    ap.add_argument(
        "--margin",
        type=float,
        default=0.8,
        help="identity-change and diversity margin (IdentityNet distance; default: %(default)s)",
    )
    ap.add_argument("--w-id", type=float, default=1.0, help="identity-change weight (default: %(default)s)")
    ap.add_argument("--w-div", type=float, default=2.0, help="diversity weight (default: %(default)s)")
    ap.add_argument(
        "--w-pix",
        type=float,
        default=1.0,
        help="pixel-diversity weight: two codes must differ inside the mask (default: %(default)s)",
    )
    ap.add_argument(
        "--pix-margin",
        type=float,
        default=0.1,
        help="pixel-diversity margin, mean |out1 - out2| in the mask, 0..1 (default: %(default)s)",
    )
    ap.add_argument(
        "--jitter",
        type=float,
        default=0.05,
        help="random scale/shift of the recogniser's crop for the identity terms (default: %(default)s)",
    )
    ap.add_argument("--w-color", type=float, default=5.0, help="low-pass colour weight (default: %(default)s)")
    ap.add_argument("--w-fm", type=float, default=1.0, help="feature-matching weight (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="use only N training faces (smoke runs)")
    ap.add_argument(
        "--faces-cache",
        type=Path,
        default=None,
        help="a faces cache .npz (names, landmarks, and descriptors for --dlib-labels) instead of preparing --data",
    )
    ap.add_argument(
        "--dlib-labels",
        type=int,
        default=0,
        help="describe this many generated faces per step with dlib and keep fine-tuning a copy of IdentityNet on "
        "them, which the identity terms then use (0: the shipped IdentityNet, frozen; needs the audit extra; "
        "default: %(default)s)",
    )
    ap.add_argument(
        "--student-lr",
        type=float,
        default=1e-4,
        help="learning rate of the --dlib-labels student (default: %(default)s)",
    )
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="a new run starts from this checkpoint's generator and critic (and --dlib-labels student, when it "
        "has one), e.g. runs/surrogate/last.pt, or from generator weights alone (.safetensors, e.g. "
        "models/surrogate.safetensors; fresh critic); step, schedule and the GAN's optimisers start afresh",
    )
    ap.add_argument(
        "--critic-warmup",
        type=int,
        default=0,
        help="a new run first trains the critic (and the --dlib-labels student) this many steps against the "
        "fixed generator, e.g. after --init from a .safetensors (default: %(default)s)",
    )
    ap.add_argument(
        "--row-targets",
        type=Path,
        default=None,
        help=f"a .npy ({PALETTE_SIZE}, 128) of dlib shifts, one per palette row (python -m "
        "anonymizer.train.surrogate_palette --targets): pull each row's faces toward its target",
    )
    ap.add_argument(
        "--w-target", type=float, default=1.0, help="weight of the --row-targets term (default: %(default)s)"
    )
    ap.add_argument(
        "--palette",
        type=Path,
        default=None,
        help=f"a .npy of {PALETTE_SIZE} codes (python -m anonymizer.train.surrogate_palette): kept in the generator, "
        "and each step's two codes are two different rows of it (default: the generator's own palette, if it "
        "has one, else standard-normal codes)",
    )
    ap.add_argument(
        "--hard-pairs",
        type=float,
        default=0.0,
        help="with a palette: the share of each batch's pairs drawn from its closest pairs (0..1; default: "
        "%(default)s)",
    )
    ap.add_argument(
        "--palette-lr",
        type=float,
        default=0.0,
        help="with a palette: also learn its rows (Adam at this learning rate, the same schedule), so that each "
        "row can move apart from the others on its own (0: the rows stay fixed; default: %(default)s)",
    )
    add_run_options(ap, save_every=500, export="write the final generator weights here")
    args = ap.parse_args(argv)

    from tqdm import tqdm

    from ..nn.identity import identity_net

    dev = seed_and_device(args.seed, args.device)
    crops, lms, names = aligned_split(args.data, held_out=False, limit=args.limit, cache=args.faces_cache)
    descs = None
    if args.dlib_labels > 0:
        descs = dlib_descriptors(args.data, names, args.faces_cache)
        keep = np.isfinite(descs).all(1)  # the student learns real faces with dlib's descriptor only
        crops, lms, descs = crops[keep], lms[keep], descs[keep]
    print(f"training faces: {len(crops)}; device {dev}")
    try:
        preview = aligned_faces(args.data, held_out=True, limit=6, cache=args.faces_cache)
    except SystemExit:
        preview = None
    gen = SurrogateGenerator().to(dev).train()
    disc = PatchDiscriminator().to(dev).train()
    ident = identity_net().to(dev)
    for p in ident.parameters():
        p.requires_grad_(False)
    opt_g = torch.optim.Adam(gen.parameters(), lr=args.lr, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr, betas=(0.5, 0.99))

    def lr_at(step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(step, args.steps) / args.steps)) * 0.9 + 0.1

    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, lr_at)
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, lr_at)
    rng = np.random.default_rng(args.seed)
    step = 0
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "last.pt"
    parts: dict[str, Any] = {
        "gen": gen,
        "disc": disc,
        "opt_g": opt_g,
        "opt_d": opt_d,
        "sched_g": sched_g,
        "sched_d": sched_d,
    }
    if args.palette_lr < 0:
        raise SystemExit("--palette-lr must be >= 0")
    rows = opt_p = sched_p = None  # the palette's rows as a parameter and their optimiser, with --palette-lr
    if args.palette_lr > 0:
        rows = torch.nn.Parameter(torch.zeros_like(gen.palette))
        opt_p = torch.optim.Adam([rows], lr=args.palette_lr, betas=(0.5, 0.99))
        sched_p = torch.optim.lr_scheduler.LambdaLR(opt_p, lr_at)
        parts.update(opt_p=opt_p, sched_p=sched_p)
    student = None
    if args.dlib_labels > 0:
        student = DlibStudent(identity_net().to(dev), lr=args.student_lr)
        parts["student"] = student
    if (st := resume(ckpt, parts, rng, dev)) is not None:
        step = st["step"]
        print(f"resumed from {ckpt} at step {step}")
    elif args.init is not None and args.init.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            gen.load_state_dict(load_file(str(args.init), device=str(dev)))
        except (OSError, RuntimeError, ValueError, SafetensorError) as e:
            raise SystemExit(f"{args.init}: not surrogate generator weights ({e})") from None
        if len(gen.alt):
            raise SystemExit(
                f"{args.init}: an ensemble of {len(gen.alt) + 1} generators (surrogate_palette --weigh --join); "
                "train from one plain generator's weights"
            )
        print(f"started from the generator weights {args.init} (fresh critic)")
    elif args.init is not None:
        init = torch.load(args.init, weights_only=False, map_location=dev)  # our own checkpoint
        gen.load_state_dict(init["gen"])
        disc.load_state_dict(init["disc"])
        also = ""
        if student is not None and "student" in init:
            student.load_state_dict(init["student"])
            also = " and its dlib student"
        print(f"started from the generator and critic{also} of {args.init} (its step {init.get('step')})")
    if args.palette is not None and step == 0:
        # the new rows, handed out equally often (row weights from --init belong to other rows, maybe more of them)
        gen.set_palette(torch.from_numpy(load_palette(args.palette)))
    palette = gen.palette if gen.has_palette else None
    if palette is not None:
        print(
            f"codes: two different rows of the generator's palette of {len(palette)}"
            + (f", learnt at lr {args.palette_lr:g}" if rows is not None else "")
        )
    if rows is not None:
        if palette is None:
            raise SystemExit("--palette-lr needs a palette (--palette)")
        if rows.shape != palette.shape:
            raise SystemExit(
                f"--palette-lr learns a palette of {len(rows)} rows; this generator's has {len(palette)} (give "
                "--palette)"
            )
        with torch.no_grad():
            rows.copy_(gen.palette)  # the generator's buffer is what checkpoints and exports keep
        palette = rows
    recogniser = ident if student is None else student.net
    if not 0 <= args.hard_pairs <= 1 or (args.hard_pairs > 0 and palette is None):
        raise SystemExit("--hard-pairs must be in 0..1 and needs a palette (--palette)")
    targets = None
    if args.row_targets is not None:
        if palette is None:
            raise SystemExit("--row-targets needs a palette (--palette)")
        targets = torch.from_numpy(load_targets(args.row_targets)).to(dev)
        if len(targets) != len(palette):
            raise SystemExit(f"{args.row_targets}: {len(targets)} row targets for a palette of {len(palette)} rows")
    n_hard = int(round(args.hard_pairs * args.batch))
    hard = np.zeros((0, 2), np.int64) if st is None else st.get("hard_pairs", np.zeros((0, 2), np.int64))
    if n_hard:
        probe = np.random.default_rng(args.seed + 1).choice(len(crops), 4, replace=False)  # apart from the run's rng
        probe_x = torch.from_numpy(crops[probe]).permute(0, 3, 1, 2).float().div(255.0).to(dev)
        probe_lm = torch.from_numpy(lms[probe]).to(dev)

    def describe(images: torch.Tensor, lm: torch.Tensor) -> np.ndarray:
        if student is not None:
            return student.describe(images, lm)
        return embed(recogniser, images, identity_thetas(lm)).cpu().numpy()

    if step == 0 and st is None and args.critic_warmup > 0:
        warm_up(
            args.critic_warmup,
            gen,
            disc,
            opt_d,
            student,
            crops,
            lms,
            descs,
            palette,
            rng,
            dev,
            batch=args.batch,
            labels=args.dlib_labels,
            jitter_amount=args.jitter,
        )
    end = args.steps if args.stop_after is None else min(args.steps, step + args.stop_after)
    bar = tqdm(total=end - step, desc="surrogate", unit="step")
    avg: dict[str, float] = {}
    t0 = time.monotonic()
    width = float(SURROGATE_SIZE)
    while step < end:
        idx = rng.integers(0, len(crops), args.batch)
        flip = rng.random(args.batch) < 0.5
        batch = crops[idx].copy()
        lm = lms[idx].copy()
        batch[flip] = batch[flip][:, :, ::-1]
        lm[flip, :, 0] = width - lm[flip, :, 0]
        lm[flip] = lm[flip][:, [1, 0, 2, 4, 3]]  # left/right swap places when mirrored
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0).to(dev)
        lm_t = torch.from_numpy(lm).to(dev)
        hm = landmark_heatmaps(lm_t)
        mask = face_mask(lm_t)
        thetas = identity_thetas(lm_t)
        if student is not None and descs is not None:
            real_desc = torch.from_numpy(descs[idx]).to(dev)
            if len(student.crops) >= 4 * args.batch:
                avg_s = student.update(rng, x, lm_t, real_desc, sample=args.batch, jitter_amount=args.jitter)
                avg["student"] = 0.95 * avg.get("student", avg_s) + 0.05 * avg_s
        if palette is None:
            z1 = torch.randn(args.batch, CODE_DIM, device=dev)
            z2 = torch.randn(args.batch, CODE_DIM, device=dev)
        else:
            i1 = rng.integers(0, len(palette), args.batch)
            i2 = (i1 + rng.integers(1, len(palette), args.batch)) % len(palette)  # never the same row
            if n_hard:
                if step % HARD_EVERY == 0 or not len(hard):  # the same steps after a resume: exact
                    hard = closest_pairs(gen, describe, probe_x, probe_lm, 4 * len(palette))
                pick = hard[rng.integers(0, len(hard), n_hard)]
                flipped = rng.random(n_hard) < 0.5
                pick[flipped] = pick[flipped][:, ::-1]
                i1[:n_hard], i2[:n_hard] = pick[:, 0], pick[:, 1]  # first: the dlib labels go to hard pairs
            z1, z2 = palette[torch.from_numpy(i1).to(dev)], palette[torch.from_numpy(i2).to(dev)]
        out1 = gen(x, mask, hm, z1)
        out2 = gen(x, mask, hm, z2)
        d_loss = critic_step(disc, opt_d, x, out1.detach(), hm)
        # generator
        fake_l, fake_f = disc(out1, hm)
        fake_l2, _ = disc(out2, hm)
        with torch.no_grad():
            _, real_f = disc(x, hm)
            thetas = jitter(thetas, args.jitter)
            # with the student: dlib's own descriptor of the original (dlib barely changes under a mirror)
            e_orig = embed(recogniser, x, thetas) if student is None else real_desc
        e1, e2 = embed(recogniser, out1, thetas), embed(recogniser, out2, thetas)
        area = 3 * mask.sum((1, 2, 3)).clamp_min(1.0)
        d_orig = (e1 - e_orig).norm(dim=1)
        d_pair = (e1 - e2).norm(dim=1)
        losses = {
            "adv": -sum(f.mean() for f in fake_l) / len(fake_l) - sum(f.mean() for f in fake_l2) / len(fake_l2),
            "id": F.relu(args.margin - d_orig).mean(),
            "div": F.relu(args.margin - d_pair).mean(),
            "pix": F.relu(args.pix_margin - ((out1 - out2).abs() * mask).sum((1, 2, 3)) / area).mean(),
            "color": (
                F.l1_loss(lowpass(out1) * mask, lowpass(x) * mask) + F.l1_loss(lowpass(out2) * mask, lowpass(x) * mask)
            ),
            "fm": sum(F.l1_loss(a, b) for a, b in zip(fake_f, real_f, strict=True)) / len(fake_f),
        }
        g_loss = (
            losses["adv"]
            + args.w_id * losses["id"]
            + args.w_div * losses["div"]
            + args.w_pix * losses["pix"]
            + args.w_color * losses["color"]
            + args.w_fm * losses["fm"]
        )
        if targets is not None:
            rows_drawn = torch.from_numpy(np.concatenate([i1, i2])).to(dev)
            losses["tgt"] = (torch.cat([e1, e2]) - torch.cat([e_orig, e_orig]) - targets[rows_drawn]).norm(dim=1).mean()
            g_loss = g_loss + args.w_target * losses["tgt"]
        opt_g.zero_grad(set_to_none=True)
        if opt_p is not None:
            opt_p.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if rows is not None and opt_p is not None and sched_p is not None:
            opt_p.step()
            sched_p.step()
            with torch.no_grad():
                gen.palette.copy_(rows)
        if student is not None:
            k = max(1, args.dlib_labels // 2)  # pairs: the same faces with both codes
            labels = student.label(torch.cat([out1[:k], out2[:k]]), torch.cat([lm_t[:k], lm_t[:k]]))
            dl = float(np.linalg.norm(labels[:k] - labels[k:], axis=1).mean())
            avg["dlib_pair"] = 0.95 * avg.get("dlib_pair", dl) + 0.05 * dl
        sched_g.step()
        sched_d.step()
        step += 1
        if step % 10 == 0 or dev.type == "cpu":
            stats = {
                **{k: float(v.detach()) for k, v in losses.items()},
                "d": float(d_loss.detach()),
                "dist": float(d_orig.mean().detach()),
            }
            for k, v in stats.items():
                avg[k] = 0.95 * avg.get(k, v) + 0.05 * v
            bar.set_postfix({k: f"{v:.3f}" for k, v in avg.items()})
        bar.update(1)
        if args.time_limit is not None and time.monotonic() - t0 > args.time_limit:
            end = step
        if step % args.save_every == 0 or step == end:
            bar.write(
                f"step {step}: identity distance to the original {avg.get('dist', float('nan')):.3f}, "
                f"between codes {float(d_pair.mean().detach()):.3f}"
                + (f"; dlib between codes {avg['dlib_pair']:.3f}" if "dlib_pair" in avg else "")
            )
            save_checkpoint(checkpoint_state(parts, rng, step=step, hard_pairs=hard), ckpt)
            if preview is not None:
                save_preview(gen, *preview, args.out / "preview.png")
    bar.close()
    finish_run(
        done=bar.n,
        started=t0,
        step=step,
        steps=args.steps,
        export=args.export,
        weights=gen.state_dict(),
        source="surrogate generator trained on faces-utk (see models/surrogate.md)",
    )


if __name__ == "__main__":
    main()
