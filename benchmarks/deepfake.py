"""Deepfake detector: ROC AUC on the held-out faces for each kind of fake made here.

    python benchmarks/deepfake.py [--weights-file W.safetensors] [--picture models/deepfake.png]

Real: the fixed held-out tenth of ../shared/data/faces-utk (never trained on), aligned onto the 128-px
crop by our detector's landmarks. Fakes: one self-blend and one face swap (with another held-out face)
per real face, fixed seeds (anonymizer.train.deepfake.dev_sets); and our own surrogates: each held-out
photo with its face painted by the shipped surrogate generator (password "benchmark password A", the
pipeline of `anonymize --method surrogate`), aligned by the original face's landmarks. AUC: P(a fake
scores above a real face).

``--picture`` scores the public-domain faces in samples/ and their own self-blends and swaps (no research
data goes into the repository).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _data import DATA, ROOT, require
from PIL import Image, ImageDraw

from anonymizer.nn.deepfake import DEEPFAKE_SIZE
from anonymizer.nn.runtime import configure_runtime
from anonymizer.nn.surrogate import crop_template
from anonymizer.ops.metrics import roc_auc
from anonymizer.pipeline.deepfake import DeepfakeScorer, align_for_deepfake
from anonymizer.train.deepfake import dev_sets
from anonymizer.train.surrogate import aligned_faces


def picture(scorer: DeepfakeScorer, path: Path) -> None:
    from anonymizer.api import get_finder, get_painter
    from anonymizer.media.image import load_image
    from anonymizer.vault.surrogate import SurrogateSeed

    crops, lms, donors = [], [], []
    seed = SurrogateSeed.from_password("benchmark password A")
    for name in ("grace_hopper.jpg", "astronaut.png", "group_solvay_1927_closeup.jpg"):
        rgb = load_image(ROOT / "samples" / name).rgb
        for f in sorted(get_finder().find(rgb), key=lambda f: -f.width)[:2]:
            crops.append(align_for_deepfake(rgb, f))
            lms.append(crop_template(DEEPFAKE_SIZE))  # aligned: the landmarks sit on the template
            # the surrogate as `anonymize --method surrogate` makes it: the donor painter in the photo
            donors.append(align_for_deepfake(get_painter().paint(rgb, [f], seed.for_context(rgb.tobytes()))[0], f))
    sets = dev_sets(np.stack(crops), np.stack(lms).astype(np.float32))
    sets["surrogate"] = np.stack(donors)
    rows = []
    for kind in ("real", "sbi", "swap", "surrogate"):
        probs = scorer.score_crops(sets[kind])
        tiles = []
        for img, p in zip(sets[kind], probs, strict=True):
            t = Image.fromarray(img).resize((160, 160))
            d = ImageDraw.Draw(t)
            d.rectangle([0, 0, 159, 14], fill=(0, 0, 0))
            d.text((3, 2), f"{kind} p={p:.2f}", fill=(255, 80, 80) if p >= 0.5 else (120, 255, 120))
            tiles.append(np.asarray(t))
        rows.append(np.concatenate(tiles, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    print(f"picture: {path} (rows: real, self-blend, swap, surrogate; faces from samples/)")


def surrogate_crops(limit: int | None) -> np.ndarray:
    """Held-out faces-utk photos with their face replaced by a surrogate, aligned for the classifier."""
    from tqdm import tqdm

    from anonymizer.api import get_painter
    from anonymizer.train.faces import prepare_faces
    from anonymizer.vault.surrogate import SurrogateSeed

    fs = prepare_faces(require(DATA / "faces-utk"), with_dlib=False)
    idx = np.flatnonzero(fs.held_out & np.isfinite(fs.landmarks).all((1, 2)))[:limit]
    painter, seed = get_painter(), SurrogateSeed.from_password("benchmark password A")
    out = []
    for i in tqdm(idx, desc="surrogates", unit="face"):
        face, rgb = fs.face(int(i)), fs.load_rgb(int(i))
        out.append(align_for_deepfake(painter.paint(rgb, [face], seed.for_context(rgb.tobytes()))[0], face))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--weights-file", type=Path, default=None, help="evaluate these weights (default: the shipped ones)"
    )
    ap.add_argument("--limit", type=int, default=None, help="at most N held-out faces (default: all)")
    ap.add_argument("--picture", type=Path, default=None, help="write scored sample faces here (PNG)")
    args = ap.parse_args()
    configure_runtime(2)
    if args.weights_file is not None:
        from safetensors.torch import load_file

        from anonymizer.nn.deepfake import DeepfakeNet

        net = DeepfakeNet()
        net.load_state_dict(load_file(str(args.weights_file)))
        scorer = DeepfakeScorer(model=net)
    else:
        scorer = DeepfakeScorer()
    crops, lms = aligned_faces(require(DATA / "faces-utk"), held_out=True, limit=args.limit, size=DEEPFAKE_SIZE)
    sets = dev_sets(crops, lms)
    real = scorer.score_crops(sets["real"])
    print(f"faces-utk held-out: {len(crops)} real faces, one fake of each kind per face")
    print("| fake | ROC AUC | fakes scored >= 0.5 | reals scored >= 0.5 |")
    print("|---|---|---|---|")
    sets["surrogate"] = surrogate_crops(args.limit)
    for kind in ("sbi", "swap", "surrogate"):
        fake = scorer.score_crops(sets[kind])
        print(f"| {kind} | {roc_auc(fake, real):.3f} | {(fake >= 0.5).mean():.1%} | {(real >= 0.5).mean():.1%} |")
    if args.picture is not None:
        picture(scorer, args.picture)


if __name__ == "__main__":
    main()
