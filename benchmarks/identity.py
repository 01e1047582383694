"""IdentityNet against dlib: distance correlation on held-out faces-utk pairs, and same/different-person
accuracy on ORL (AT&T) pairs for both recognizers side by side, each at its own threshold (dlib 0.6;
IdentityNet the threshold calibrated on the faces-utk held-out pairs, the one at which its decisions
agree best with dlib's at 0.6; this script prints it).

    python benchmarks/identity.py [--weights models/identity_net.safetensors]

faces-utk: the fixed held-out tenth (anonymizer.train.faces.is_held_out), every pair of faces; Pearson and
Spearman correlation between IdentityNet and dlib distances. ORL: 400 greyscale faces of 40 people; every
same-person pair (1,800) and every different-person pair (78,000); accuracy at the 0.6 threshold (mean
of the same-person and different-person rates, since pairs are unbalanced), the best threshold's, and
ROC AUC. Faces are found by our detector; where it finds none (small greyscale crops) the whole image
is the box and the landmarks come from the template placed over it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _data import DATA, require
from PIL import Image

from anonymizer.api import get_finder
from anonymizer.audit.recognizers import DlibRecognizer, IdentityNetRecognizer
from anonymizer.media.image import load_image
from anonymizer.nn.identity import IDENTITY_CROP
from anonymizer.nn.runtime import configure_runtime
from anonymizer.ops.align import TEMPLATE_112, align_face
from anonymizer.train.faces import prepare_faces
from anonymizer.types import Face


def rank(x: np.ndarray) -> np.ndarray:
    r = np.empty(len(x))
    r[np.argsort(x)] = np.arange(len(x))
    return r


def auc(same: np.ndarray, diff: np.ndarray) -> float:
    """P(a same-person distance < a different-person distance)."""
    allv = np.concatenate([same, diff])
    r = rank(allv)[: len(same)]
    return float(1 - (r.sum() - len(same) * (len(same) - 1) / 2) / (len(same) * len(diff)))


def accuracy(same: np.ndarray, diff: np.ndarray, t: float) -> float:
    return 0.5 * (float((same <= t).mean()) + float((diff > t).mean()))


def best_threshold(same: np.ndarray, diff: np.ndarray) -> tuple[float, float]:
    grid = np.linspace(0.1, 1.5, 281)
    accs = [accuracy(same, diff, t) for t in grid]
    i = int(np.argmax(accs))
    return float(grid[i]), float(accs[i])


def pair_distances(emb: np.ndarray) -> np.ndarray:
    d = np.sqrt(np.maximum(((emb[:, None, :] - emb[None, :, :]) ** 2).sum(-1), 0))
    return d


def density_plot(
    x: np.ndarray,
    y: np.ndarray,
    path: Path | None,
    *,
    title: str,
    y_threshold: float,
    lim: float = 1.2,
    px: int = 360,
    y_label: str = "IdentityNet",
) -> Image.Image:
    """A log-density scatter of (x, y) distances with dlib's 0.6 (vertical), IdentityNet's threshold
    (horizontal) and the diagonal, saved as PNG when ``path`` is given; returns the picture."""
    from PIL import ImageDraw

    h, _, _ = np.histogram2d(y, x, bins=px, range=[[0, lim], [0, lim]])
    v = np.log1p(h[::-1])
    v = (255 * (1 - v / max(v.max(), 1e-9))).astype(np.uint8)
    pad, top = 46, 40
    im = Image.new("RGB", (px + pad + 12, px + pad + top), "white")
    im.paste(Image.fromarray(v).convert("RGB"), (pad, top))
    d = ImageDraw.Draw(im)
    t = pad + int(0.6 / lim * px)
    d.line([(t, top), (t, top + px)], fill=(200, 40, 40))
    ty = top + px - int(y_threshold / lim * px)
    d.line([(pad, ty), (pad + px, ty)], fill=(200, 40, 40))
    d.line([(pad, top + px), (pad + px, top)], fill=(120, 120, 220))
    d.rectangle([pad, top, pad + px, top + px], outline="black")
    for k in range(0, 7):
        val = k * 0.2
        p = int(val / lim * px)
        d.text((pad + p - 8, top + px + 4), f"{val:.1f}", fill="black")
        d.text((6, top + px - p - 6), f"{val:.1f}", fill="black")
    d.text((pad, 6), title, fill="black")
    d.text((pad + px // 2 - 40, top + px + 20), "dlib distance", fill="black")
    d.text((2, top - 14), y_label, fill="black")
    if path is not None:
        im.save(path)
    return im


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="default", help="IdentityNet weights name (default: the shipped ones)")
    ap.add_argument("--utk-limit", type=int, default=None, help="use only the first N faces-utk files")
    ap.add_argument("--plot", type=Path, default=None, help="write the held-out distance density plot here (PNG)")
    args = ap.parse_args()
    configure_runtime(2)
    dlib_rec = DlibRecognizer()
    ours = IdentityNetRecognizer(args.weights)

    fs = prepare_faces(require(DATA / "faces-utk"), limit=args.utk_limit)
    ok = fs.held_out & np.isfinite(fs.descriptors).all(1) & np.isfinite(fs.landmarks).all((1, 2))
    idx = np.flatnonzero(ok)
    crops = np.stack([align_face(fs.load_rgb(i), fs.landmarks[i], size=IDENTITY_CROP) for i in idx])
    e_ours = ours.embed_crops(crops)
    d_dlib, d_ours = pair_distances(fs.descriptors[idx]), pair_distances(e_ours)
    iu = np.triu_indices(len(idx), 1)
    a, b = d_dlib[iu], d_ours[iu]
    pearson = float(np.corrcoef(a, b)[0, 1])
    spearman = float(np.corrcoef(rank(a), rank(b))[0, 1])
    grid = np.linspace(0.3, 0.9, 121)
    agreement = [float(((a <= 0.6) == (b <= t)).mean()) for t in grid]
    t_cal = float(grid[int(np.argmax(agreement))])
    agree = float(((a <= 0.6) == (b <= ours.threshold)).mean())
    err = float(np.linalg.norm(e_ours - fs.descriptors[idx], axis=1).mean())
    print(f"faces-utk held-out: {len(idx)} faces, {len(a)} pairs")
    print(f"  distance correlation IdentityNet vs dlib: Pearson {pearson:.3f}, Spearman {spearman:.3f}")
    if args.plot is not None:
        density_plot(
            a,
            b,
            args.plot,
            title=f"held-out faces-utk pairs (n={len(a)}): Pearson {pearson:.3f}",
            y_threshold=ours.threshold,
        )
    print(
        f"  IdentityNet at its threshold {ours.threshold:.3f} agrees with dlib at 0.6 on {agree:.1%} of pairs "
        f"(best agreement {max(agreement):.1%} at {t_cal:.3f}: the calibrated threshold); mean distance from "
        f"IdentityNet's embedding to dlib's descriptor of the same face {err:.3f}"
    )

    root = require(DATA / "orl-faces")
    finder = get_finder(threshold=0.3, upscale=2.0)
    files = sorted(root.glob("s*/*.pgm"), key=lambda p: (int(p.parent.name[1:]), int(p.stem)))
    people = np.array([int(p.parent.name[1:]) for p in files])
    emb_d, emb_o, fallback = [], [], 0
    for p in files:
        rgb = load_image(p).rgb
        faces = finder.find(rgb)
        if faces:
            face = max(faces, key=lambda f: f.score)
        else:
            fallback += 1
            h, w = rgb.shape[:2]
            s = min(w, h) / 112.0
            lm = TEMPLATE_112 * s + np.array([(w - 112 * s) / 2, (h - 112 * s) / 2])
            face = Face(box=(0.0, 0.0, float(w), float(h)), score=0.0, landmarks=tuple(map(tuple, lm)))
        emb_d.append(dlib_rec.embed(rgb, face))
        emb_o.append(ours.embed(rgb, face))
    same_mask = people[:, None] == people[None, :]
    iu = np.triu_indices(len(files), 1)
    same_pairs = same_mask[iu]
    print(
        f"ORL: {len(files)} faces of {len(set(people))} people ({fallback} without a detection: whole-image box); "
        f"{int(same_pairs.sum())} same-person and {int((~same_pairs).sum())} different-person pairs"
    )
    print("  | recognizer | accuracy at its threshold | best threshold (accuracy) | ROC AUC |")
    print("  |---|---|---|---|")
    for name, emb, thr in (
        ("dlib ResNet", np.stack(emb_d), dlib_rec.threshold),
        ("IdentityNet", np.stack(emb_o), ours.threshold),
    ):
        d = pair_distances(emb)[iu]
        same, diff = d[same_pairs], d[~same_pairs]
        t, acc = best_threshold(same, diff)
        print(
            f"  | {name} | {accuracy(same, diff, thr):.1%} (at {thr:.3f}) | {t:.2f} ({acc:.1%}) | "
            f"{auc(same, diff):.3f} |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
