"""Train the deepfake detector on real faces and fakes made here.

    python -m anonymizer.train.deepfake --data ../shared/data/faces-utk --out runs/deepfake --steps 2000 --seed 0 \
        --export runs/deepfake.safetensors

(models/deepfake.md gives the three stages that made the shipped ``models/deepfake_mobilenet.safetensors``.)

Real: faces-utk's crops without the held-out tenth, aligned onto the 128-px crop of
:func:`anonymizer.nn.surrogate.crop_template` (our detector's landmarks, from the prepared faces cache or
``--faces-cache``), flipped at random. Fakes, half of each batch: self-blended images
(:func:`anonymizer.ops.sbi.self_blend`) and face swaps (another training face, aligned onto the same
template, colour-matched and blended in through the same kind of soft deformed mask) and, with
``--surrogates N`` (default 2000), our own surrogates, a third of the fakes. With ``--painted photos``
they are made the way users get them: each of N training photos through the donor painter of
``anonymize --method surrogate`` (:class:`~anonymizer.pipeline.donor_painter.DonorPainter`, a random
password seed per photo), then aligned onto the classifier's crop from the photo as the benchmark and
``anonymizer audit`` align faces (:func:`~anonymizer.pipeline.deepfake.align_for_deepfake`); the dev
surrogates too. ``crops``, the default, paints the earlier GAN generator's surrogates straight into the
aligned crops (:func:`anonymizer.pipeline.surrogate.paint_crops`; no command paints those any more).
``--init W`` fine-tunes from weights ``W`` instead of starting at random.

Real video and generated people (issue 34): ``--video-faces`` (:mod:`anonymizer.train.video_faces`, faces of
real talking-head clips) adds real faces from video, ``--video-share`` of the real half, and their
self-blends and swaps with another person's video face as fakes; ``--generated`` (the same module on the
StyleGAN-family donor photos) adds fully generated faces, ``--generated-share`` of the fakes. Both are split
by person (:func:`anonymizer.train.video_faces.held_out`): the dev sets add the held-out people's video
faces against their self-blends and swaps, and held-out generated faces against all real dev faces.
``--restyle P`` gives about P of the real faces another look (:func:`restyle`: stretch, gamma, grey,
resize, blur, JPEG) before their fakes are made of them, and the same share of surrogate and generated fakes.
``--arch mobilenet`` (the default) trains :class:`~anonymizer.nn.deepfake.DeepfakeMobileNet` (CenterFace's
MobileNetV2 backbone, started from its face weights, at ``--input-size`` px, 192 by default), ``--arch compact``
the earlier compact network.
``--grey P`` turns about P of the training images, real and fake alike, to greyscale.
``--degrade`` passes every training image, real or fake alike, through the losses real footage has (JPEG
at quality 30-95, a downscale to 40-100% and back, a slight blur; each at random).
The dev split is the fixed held-out tenth: each real dev face against its own self-blend, a swap
with another dev face and its surrogate (fixed seeds), AUC per kind.

Seeded and resumable (``--out`` keeps ``last.pt``; the same command resumes; ``--stop-after`` /
``--time-limit`` stop early with a checkpoint). Runs on a GPU when there is one.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..nn.deepfake import DEEPFAKE_MOBILENET_SIZE, DEEPFAKE_SIZE, DeepfakeMobileNet, DeepfakeNet
from ..nn.surrogate import crop_template
from ..ops.sbi import blend_mask, self_blend
from .common import (
    add_run_options,
    checkpoint_state,
    finish_run,
    resume,
    run_steps,
    save_checkpoint,
    seed_and_device,
)


def face_swap(target: np.ndarray, target_lm: np.ndarray, source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blend ``source``'s face (both crops aligned onto the same template) into ``target`` through a soft
    deformed landmark mask, after matching its colour statistics inside the mask to the target's."""
    mask = blend_mask(target.shape[:2], target_lm, rng)
    m = mask > 0.05
    src = source.astype(np.float32)
    tgt = target.astype(np.float32)
    if m.any():
        s_mean, s_std = src[m].mean(0), src[m].std(0) + 1e-3
        t_mean, t_std = tgt[m].mean(0), tgt[m].std(0) + 1e-3
        src = (src - s_mean) / s_std * t_std + t_mean
    a = mask[:, :, None]
    return np.clip(np.rint(tgt * (1 - a) + src * a), 0, 255).astype(np.uint8)


def surrogate_fakes(crops: np.ndarray, lms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Our own surrogates (shipped generator; a random row of its palette each, drawn by its row weights
    as the painter hands them out, or a random standard-normal code when it has no palette) painted into
    aligned crops."""
    from ..nn.surrogate import CODE_DIM, surrogate
    from ..pipeline.surrogate import paint_crops

    gen = surrogate()
    if gen.has_palette:
        k, w = len(gen.palette), gen.row_weights
        rows = rng.integers(0, k, len(crops)) if w is None else rng.choice(k, len(crops), p=w / w.sum())
        codes, nets = gen.palette.numpy()[rows], gen.row_nets[rows]  # nets: an ensemble's networks
    else:
        codes, nets = rng.standard_normal((len(crops), CODE_DIM)).astype(np.float32), None
    return paint_crops(crops, lms, codes, generator=gen, nets=nets)


def photo_surrogates(root: Path, names: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Our own surrogates as users get them: each named photo in ``root`` with the face at its five
    ``landmarks`` (N, 5, 2; photo pixels) replaced by a donor's face through the donor painter
    (:class:`~anonymizer.pipeline.donor_painter.DonorPainter`, what ``anonymize --method surrogate`` runs)
    with a random password seed from ``rng``, then aligned onto the classifier's crop (K, 128, 128, 3).
    Faces the painter covers solid instead (a mesh it does not trust) are left out: a black ellipse is no
    surrogate."""
    from tqdm import tqdm

    from ..media.image import load_image
    from ..pipeline.deepfake import align_for_deepfake
    from ..pipeline.donor_painter import DonorPainter
    from ..types import Face
    from ..vault.surrogate import SurrogateSeed

    painter = DonorPainter()
    out = []
    for name, lm in tqdm(list(zip(names, landmarks, strict=True)), desc="surrogates", unit="photo", leave=False):
        lm = np.asarray(lm, np.float64)
        (x1, y1), (x2, y2) = lm.min(0), lm.max(0)
        pad = 0.6 * max(x2 - x1, y2 - y1)  # a face box around the five points, as the detector draws it
        face = Face(
            box=(float(x1 - pad), float(y1 - pad), float(x2 + pad), float(y2 + pad)),
            score=1.0,
            landmarks=tuple((float(x), float(y)) for x, y in lm),
        )
        painted, regions, _ = painter.paint(load_image(root / str(name)).rgb, [face], SurrogateSeed(rng.bytes(32)))
        if [r.shape for r in regions] == ["surrogate"]:
            out.append(align_for_deepfake(painted, face))
    return np.stack(out) if out else np.zeros((0, DEEPFAKE_SIZE, DEEPFAKE_SIZE, 3), np.uint8)


def make_fake(
    i: int,
    crops: np.ndarray,
    lms: np.ndarray,
    rng: np.random.Generator,
    bank: np.ndarray | None = None,
    face: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, str]:
    """A self-blend or a swap of face ``i`` (half each); with a ``bank`` of surrogate fakes, a third each.
    ``face`` (image, landmarks): face ``i`` as it was restyled (:func:`restyle`), blended after it."""
    img, lm = face if face is not None else (crops[i], lms[i])
    if bank is not None and rng.random() < 1 / 3:
        return bank[int(rng.integers(0, len(bank)))], "surrogate"
    if rng.random() < 0.5:
        return self_blend(img, lm, rng)[0], "sbi"
    j = int(rng.integers(0, len(crops) - 1))
    j += j >= i
    return face_swap(img, lm, crops[j], rng), "swap"


def restyle(image: np.ndarray, lm: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A face (uint8 RGB) and its landmarks (5, 2) as other cameras, scans and web photos show faces, each
    step at random: stretched up to 15% along one axis (photos resized to a square), another gamma and
    contrast, grey (one in ten), then :func:`degrade` (smaller, blurred, JPEG). Made before any fake is made
    of the face, so that a fake keeps its blending traces on top of the same look as its real face: the
    look alone must not tell real from fake (issue 34: real faces unlike the training photos were called
    synthetic)."""
    import cv2

    out, lm = image, np.asarray(lm, np.float32)
    h, w = out.shape[:2]
    if rng.random() < 0.3:
        sx, sy = (float(v) for v in rng.uniform(0.87, 1.15, 2))
        m = np.array([[sx, 0, (1 - sx) * w / 2], [0, sy, (1 - sy) * h / 2]], np.float32)
        out = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        lm = lm * np.array([sx, sy], np.float32) + m[:, 2]
    if rng.random() < 0.5:
        gamma, gain, shift = rng.uniform(0.7, 1.4), rng.uniform(0.8, 1.15), rng.uniform(-15, 15)
        x = 255.0 * (out.astype(np.float32) / 255.0) ** gamma * gain + shift
        out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if rng.random() < 0.1:
        out = greyscale_some(out[None], 1.0, rng)[0]
    return degrade(out, rng), lm


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` (uint8 RGB) through what real footage does to faces, each step at random: a downscale to
    40-100% and back, a slight Gaussian blur, JPEG at quality 30-95."""
    import cv2

    out = image
    if rng.random() < 0.5:
        out = shrunk(out, float(rng.uniform(0.4, 1.0)))
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 1.2)))
    if rng.random() < 0.7:
        out = jpeg(out, int(rng.integers(30, 96)))
    return np.ascontiguousarray(out)


def shrunk(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` (uint8 RGB) downscaled to ``factor`` of its size (area) and back (bilinear)."""
    import cv2

    h, w = image.shape[:2]
    small = cv2.resize(image, (max(8, round(w * factor)), max(8, round(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (uint8 RGB) encoded as JPEG at ``quality`` and decoded (unchanged if encoding fails)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    return image if decoded is None else np.ascontiguousarray(decoded[..., ::-1])


def video_fakes(crops: np.ndarray, lms: np.ndarray, persons: np.ndarray, seed: int = 12345) -> dict[str, np.ndarray]:
    """A self-blend of each video face and a swap with another person's (fixed seed), for the dev sets."""
    rng = np.random.default_rng(seed)
    others = [np.flatnonzero(persons != p) for p in persons]
    sbi = np.stack([self_blend(crops[i], lms[i], rng)[0] for i in range(len(crops))])
    swap = np.stack([face_swap(crops[i], lms[i], crops[int(rng.choice(o))], rng) for i, o in enumerate(others)])
    return {"video_sbi": sbi, "video_swap": swap}


def dev_sets(
    crops: np.ndarray, lms: np.ndarray, seed: int = 12345, *, surrogates: bool = False
) -> dict[str, np.ndarray]:
    """Real dev crops and, per kind of fake, one fake per real face (fixed seeds); ``surrogates`` adds our
    own surrogates painted into them."""
    rng = np.random.default_rng(seed)
    n = len(crops)
    sbi = np.stack([self_blend(crops[i], lms[i], rng)[0] for i in range(n)])
    swap = np.stack(
        [face_swap(crops[i], lms[i], crops[(i + 1 + int(rng.integers(0, n - 1))) % n], rng) for i in range(n)]
    )
    sets = {"real": crops, "sbi": sbi, "swap": swap}
    if surrogates:
        sets["surrogate"] = surrogate_fakes(crops, lms, rng)
    return sets


@torch.no_grad()
def scores(model: torch.nn.Module, images: np.ndarray, device: torch.device, batch: int = 64) -> np.ndarray:
    was = model.training
    model.eval()
    out = []
    for k in range(0, len(images), batch):
        x = torch.from_numpy(images[k : k + batch]).permute(0, 3, 1, 2).float().div(255.0).to(device)
        out.append(torch.sigmoid(model(x)).cpu().numpy())
    model.train(was)
    return np.concatenate(out)


def dev_auc(model: torch.nn.Module, dev: dict[str, np.ndarray], device: torch.device) -> dict[str, float]:
    from ..ops.metrics import roc_auc

    real = {k: scores(model, dev[k], device) for k in ("real", "video_real") if k in dev}
    every = np.concatenate(list(real.values()))

    def against(kind: str) -> np.ndarray:
        if kind.startswith("video_"):
            return real["video_real"]
        return every if kind == "generated" else real["real"]

    fakes = [k for k in dev if k not in real]
    return {kind: roc_auc(scores(model, dev[kind], device), against(kind)) for kind in fakes}


def _extra_sets(
    args: argparse.Namespace, dev_data: dict[str, np.ndarray]
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray] | None, np.ndarray | None]:
    """The training parts of ``--video-faces`` (crops, landmarks, persons) and ``--generated`` (crops); their
    held-out parts go into ``dev_data`` (video_real, video_sbi, video_swap; generated)."""
    from .video_faces import held_out

    video = generated = None
    if args.video_faces is not None:
        with np.load(args.video_faces) as z:
            c, lm, persons = z["crops"], z["landmarks"], z["persons"]
        out = held_out(persons)
        video = (c[~out], lm[~out], persons[~out])
        dev_data["video_real"] = c[out]
        dev_data.update(video_fakes(c[out], lm[out], persons[out]))
        print(f"video faces: {int((~out).sum())} training, {int(out.sum())} held out ({len(set(persons[out]))} people)")
    if args.generated is not None:
        with np.load(args.generated) as z:
            c, persons = z["crops"], z["persons"]
        out = held_out(persons)
        generated = c[~out]
        dev_data["generated"] = c[out]
        print(f"generated faces: {int((~out).sum())} training, {int(out.sum())} held out")
    return video, generated


def _batch(
    half: int,
    crops: np.ndarray,
    lms: np.ndarray,
    bank: np.ndarray | None,
    video: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    generated: np.ndarray | None,
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> np.ndarray:
    """``half`` real faces then ``half`` fakes (uint8 [2 * half, S, S, 3]): real faces from the photos or,
    ``--video-share`` of them, from video; each fake a generated face (``--generated-share``) or made from
    its real face (self-blend, swap with another face of the same source, or a surrogate)."""
    share = args.restyle
    template = crop_template(crops.shape[1]).astype(np.float32)

    def maybe_restyle(img: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return restyle(img, lm, rng) if share > 0 and rng.random() < share else (img, lm)

    real, fakes = [], []
    for _ in range(half):
        if video is not None and rng.random() < args.video_share:
            vc, vl, vp = video
            i = int(rng.integers(0, len(vc)))
            img, lm = maybe_restyle(vc[i], vl[i])
            real.append(img)
            if rng.random() < 0.5:
                fake = self_blend(img, lm, rng)[0]
            else:
                others = np.flatnonzero(vp != vp[i])
                fake = face_swap(img, lm, vc[int(rng.choice(others))], rng)
        else:
            i = int(rng.integers(0, len(crops)))
            img, lm = maybe_restyle(crops[i], lms[i])
            real.append(img)
            fake, kind = make_fake(i, crops, lms, rng, bank, face=(img, lm))
            if kind == "surrogate":  # painted before training: its look is drawn like a real face's
                fake = maybe_restyle(fake, template)[0]
        if generated is not None and rng.random() < args.generated_share:
            fake = maybe_restyle(generated[int(rng.integers(0, len(generated)))], template)[0]
        fakes.append(fake)
    batch = np.stack(real + fakes)
    if args.degrade:
        batch = np.stack([degrade(b, rng) for b in batch])
    if args.grey > 0:
        batch = greyscale_some(batch, args.grey, rng)
    return batch


def greyscale_some(batch: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """``batch`` (uint8 [N, H, W, 3]) with about ``share`` of its images, real and fake alike, turned to grey
    (BT.601 luma in all three channels): greyscale scans and footage are real too, so colour alone must not
    say "real"."""
    out = batch.copy()
    pick = rng.random(len(out)) < share
    if pick.any():
        luma = out[pick].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        out[pick] = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/faces-utk"), help="default: %(default)s")
    ap.add_argument("--out", type=Path, default=Path("runs/deepfake"), help="checkpoint folder (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=3000, help="default: %(default)s")
    ap.add_argument("--batch", type=int, default=32, help="half real, half fake (default: %(default)s)")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="use only N training faces (smoke runs)")
    ap.add_argument("--dev-limit", type=int, default=300, help="held-out faces for the dev AUC (default: %(default)s)")
    ap.add_argument(
        "--surrogates",
        type=int,
        default=2000,
        help="training faces painted once with the shipped surrogate generator, a third of the fakes (0: none; "
        "default: %(default)s)",
    )
    ap.add_argument(
        "--painted",
        choices=("crops", "photos"),
        default="crops",
        help="how the surrogate fakes are made: painted straight into aligned crops, or through the photo "
        "pipeline as users get them (default: %(default)s)",
    )
    ap.add_argument(
        "--faces-cache",
        type=Path,
        default=None,
        help="a faces cache .npz (names, landmarks) instead of preparing --data",
    )
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from these weights (fine-tuning, e.g. models/deepfake_mobilenet.safetensors) instead of at random",
    )
    ap.add_argument("--video-faces", type=Path, default=None, help="real video faces (anonymizer.train.video_faces)")
    ap.add_argument("--video-share", type=float, default=0.5, help="of the real half (default: %(default)s)")
    ap.add_argument("--generated", type=Path, default=None, help="generated faces (anonymizer.train.video_faces)")
    ap.add_argument("--generated-share", type=float, default=0.2, help="of the fakes (default: %(default)s)")
    ap.add_argument("--degrade", action="store_true", help="JPEG, resize and blur every training image at random")
    ap.add_argument(
        "--restyle",
        type=float,
        default=0.0,
        help="share of real faces restyled (stretch, gamma, grey, resize, blur, JPEG) before their fakes are made; "
        "surrogate and generated fakes alike (default: %(default)s)",
    )
    ap.add_argument(
        "--grey",
        type=float,
        default=0.0,
        help="share of training images (real and fake) turned grey (default: %(default)s)",
    )
    ap.add_argument(
        "--arch",
        choices=("compact", "mobilenet"),
        default="mobilenet",
        help="CenterFace's MobileNetV2 backbone started from its face weights (DeepfakeMobileNet, the shipped "
        "network) or the earlier compact network from random weights (default: %(default)s)",
    )
    ap.add_argument(
        "--input-size", type=int, default=DEEPFAKE_MOBILENET_SIZE, help="mobilenet's input (default: %(default)s)"
    )
    add_run_options(ap, save_every=250)
    args = ap.parse_args(argv)

    from .common import face_landmarks
    from .surrogate import aligned_split

    dev = seed_and_device(args.seed, args.device)
    crops, lms, names = aligned_split(
        args.data, held_out=False, limit=args.limit, cache=args.faces_cache, size=DEEPFAKE_SIZE
    )
    dcrops, dlms, dnames = aligned_split(
        args.data, held_out=True, limit=args.dev_limit, cache=args.faces_cache, size=DEEPFAKE_SIZE
    )
    photos = args.painted == "photos"
    if photos:
        all_names, all_lms = face_landmarks(args.data, args.faces_cache)
        row = {str(n): i for i, n in enumerate(all_names)}

        def photo_lms(ns: np.ndarray) -> np.ndarray:
            return np.stack([all_lms[row[str(n)]] for n in ns])

    bank = None
    if args.surrogates > 0:
        print(
            f"painting {args.surrogates} training faces "
            + (
                "with donor faces through the photo pipeline (models/donors.md) ..."
                if photos
                else "with the earlier surrogate generator into the aligned crops (models/surrogate.md) ..."
            )
        )
        pick = np.random.default_rng(args.seed + 1).choice(len(crops), min(args.surrogates, len(crops)), replace=False)
        if photos:
            bank = photo_surrogates(
                args.data, names[pick], photo_lms(names[pick]), np.random.default_rng(args.seed + 2)
            )
            bank = bank if len(bank) else None  # every face covered solid: no surrogate fakes
        else:
            bank = surrogate_fakes(crops[pick], lms[pick], np.random.default_rng(args.seed + 2))
    dev_data = dev_sets(dcrops, dlms, surrogates=bank is not None and not photos)
    if bank is not None and photos:
        if len(dev_fakes := photo_surrogates(args.data, dnames, photo_lms(dnames), np.random.default_rng(12345 + 1))):
            dev_data["surrogate"] = dev_fakes
    video, generated = _extra_sets(args, dev_data)
    print(f"training faces: {len(crops)}; dev: {len(dcrops)} real faces, one fake of each kind each; device {dev}")
    model = DeepfakeNet() if args.arch == "compact" else DeepfakeMobileNet(size=args.input_size).start_from_centerface()
    if args.init is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(args.init)))
    model = model.to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    warm = max(1, args.steps // 30)

    def lr_at(step: int) -> float:
        return min(1.0, (step + 1) / warm) * (
            0.5 * (1 + math.cos(math.pi * min(step, args.steps) / args.steps)) * 0.98 + 0.02
        )

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rng = np.random.default_rng(args.seed)
    step = 0
    history: list[dict[str, float]] = []
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "last.pt"
    parts = {"model": model, "opt": opt, "sched": sched}
    if (st := resume(ckpt, parts, rng, dev)) is not None:
        step, history = st["step"], st["history"]
        print(f"resumed from {ckpt} at step {step}")
    end = args.steps if args.stop_after is None else min(args.steps, step + args.stop_after)
    half = max(1, args.batch // 2)

    def batch_loss() -> torch.Tensor:
        batch = _batch(half, crops, lms, bank, video, generated, args, rng)
        flip = rng.random(len(batch)) < 0.5
        batch[flip] = batch[flip][:, :, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(255.0).to(dev)
        y = torch.cat([torch.zeros(half), torch.ones(half)]).to(dev)
        return F.binary_cross_entropy_with_logits(model(x), y)

    def checkpoint(at: int, bar: Any) -> None:
        aucs = dev_auc(model, dev_data, dev)
        history.append({"step": at, **aucs})
        bar.write(f"step {at}: dev AUC " + ", ".join(f"{k} {a:.3f}" for k, a in aucs.items()))
        save_checkpoint(checkpoint_state(parts, rng, step=at, history=history), ckpt)

    step, done, t0 = run_steps(
        step,
        end,
        desc="deepfake",
        opt=opt,
        sched=sched,
        batch_loss=batch_loss,
        checkpoint=checkpoint,
        save_every=args.save_every,
        time_limit=args.time_limit,
    )
    finish_run(
        done=done,
        started=t0,
        step=step,
        steps=args.steps,
        export=args.export,
        weights=model.state_dict(),
        source="deepfake detector trained on faces-utk, self-blends and swaps (see models/deepfake.md)",
    )


if __name__ == "__main__":
    main()
