"""Deepfake detector: ROC AUC on the held-out faces for each kind of fake made here.

    python benchmarks/deepfake.py [--weights-file W.safetensors] [--picture models/deepfake.png]

Real: the fixed held-out tenth of ../shared/data/faces-utk (never trained on), aligned onto the 128-px
crop by our detector's landmarks. Fakes: one self-blend and one face swap (with another held-out face)
per real face, fixed seeds (anonymizer.train.deepfake.dev_sets); and our own surrogates: each held-out
photo with its face painted by the shipped surrogate generator (password "benchmark password A", the
pipeline of `anonymize --method surrogate`), aligned by the original face's landmarks. AUC: P(a fake
scores above a real face).

Real video and generated people (issue 34): the held-out people of ``--video-faces`` (real talking-head
clips; five MEAD and LRS3 people: anonymizer.train.video_faces; made from ../shared/data/videos-real when the file is
missing) against a self-blend of each face and a swap with another held-out person's; the held-out tenth
of ``--generated`` (StyleGAN-family donor photos, ../shared/data/donors) against every real face above.
Re-encoded: the held-out video reals and fakes alike shrunk and JPEG-encoded after the fakes were made (real
manipulated footage is compressed after blending): AUC at four levels. Out of domain: the real faces of
samples/, dlib-faces and wider-dev (our detector's faces at least 64 px
tall, score >= 0.5), never trained on: the share flagged at the decision threshold (the audit's,
anonymizer.pipeline.deepfake.SYNTHETIC_THRESHOLD, or ``--threshold``), per source and in all, and the
threshold that would flag at most 10% of them. Speed: aligned faces scored per second.

``--picture`` scores the public-domain faces in samples/ and their own self-blends and swaps (no research
data goes into the repository).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _data import DATA, ROOT, require
from PIL import Image, ImageDraw

from anonymizer.nn.deepfake import DEEPFAKE_MOBILENET_SIZE, DEEPFAKE_SIZE
from anonymizer.nn.runtime import configure_runtime
from anonymizer.nn.surrogate import crop_template
from anonymizer.ops.metrics import roc_auc
from anonymizer.pipeline.deepfake import SYNTHETIC_THRESHOLD, DeepfakeScorer, align_for_deepfake
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
            d.text((3, 2), f"{kind} p={p:.4f}", fill=(255, 80, 80) if scorer.flagged(p) else (120, 255, 120))
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


def face_file(path: Path, build: list[str]) -> Path:
    """``path``, made by anonymizer.train.video_faces with ``build`` when missing."""
    if not path.exists():
        from anonymizer.train import video_faces

        video_faces.main([*build, "--out", str(path)])
    return path


def held_out_sets(video: Path, generated: Path) -> dict[str, np.ndarray]:
    """video_real, video_sbi, video_swap (held-out people) and generated (held-out photos)."""
    from anonymizer.train.deepfake import video_fakes
    from anonymizer.train.video_faces import held_out

    with np.load(face_file(video, ["--videos", str(require(DATA / "videos-real"))])) as z:
        out = held_out(z["persons"])
        crops, lms, persons = z["crops"][out], z["landmarks"][out], z["persons"][out]
    sets = {"video_real": crops, **video_fakes(crops, lms, persons)}
    with np.load(face_file(generated, ["--stills", str(require(DATA / "donors"))])) as z:
        sets["generated"] = z["crops"][held_out(z["persons"])]
    return sets


def out_of_domain() -> dict[str, np.ndarray]:
    """Aligned real faces (at least 64 px, score >= 0.5) of samples/, dlib-faces and wider-dev, per source."""
    from anonymizer.api import get_finder
    from anonymizer.media.image import load_image

    finder = get_finder()
    sources = {"samples": sorted((ROOT / "samples").glob("*.[jp][pn]g"))}
    for folder in ("dlib-faces", "wider-dev/images"):
        if (DATA / folder).is_dir():
            sources[folder.split("/")[0]] = sorted(
                p for p in (DATA / folder).rglob("*") if p.suffix.lower() in (".jpg", ".png")
            )
    out = {}
    for name, paths in sources.items():
        crops = []
        for p in paths:
            rgb = load_image(p).rgb
            crops += [align_for_deepfake(rgb, f) for f in finder.find(rgb) if f.score >= 0.5 and f.height >= 64]
        out[name] = np.stack(crops) if crops else np.zeros((0, DEEPFAKE_SIZE, DEEPFAKE_SIZE, 3), np.uint8)
    return out


def report_out_of_domain(scorer: DeepfakeScorer, rate: float) -> None:
    """The share of out-of-domain real faces flagged at the scorer's threshold, per source and in all, and
    the threshold that would flag at most 10% of them."""
    t = scorer.threshold
    ood = {k: scorer.score_crops(v) for k, v in out_of_domain().items()}
    every = np.concatenate(list(ood.values()))
    per = ", ".join(f"{k} {(v >= t).mean():.1%} of {len(v)}" for k, v in ood.items() if len(v))
    print(
        f"out of domain: {len(every)} real faces (>= 64 px) flagged at {t:.4f}: {(every >= t).mean():.1%} ({per}); "
        f"at most 10% of them from {np.quantile(every, 0.9):.4f}; speed {rate:.0f} faces/s (aligned)"
    )


def reencoded(crops: np.ndarray, scale: float, quality: int) -> np.ndarray:
    """``crops`` (N, S, S, 3) uint8 RGB shrunk to ``scale`` and back (when under 1), then JPEG at ``quality``."""
    from anonymizer.train.deepfake import jpeg, shrunk

    return np.stack([jpeg(shrunk(im, scale) if scale < 1 else im, quality) for im in crops])


def report_reencoded(scorer: DeepfakeScorer, video: dict[str, np.ndarray]) -> None:
    """AUC of the held-out video self-blends and swaps when reals and fakes alike are re-encoded after the fakes
    were made, as real manipulated footage is compressed after blending."""
    for scale, quality in ((1.0, 95), (1.0, 75), (0.7, 75), (0.5, 60)):
        s = {k: scorer.score_crops(reencoded(v, scale, quality)) for k, v in video.items()}
        print(
            f"re-encoded ({scale:.0%} size, JPEG {quality}): video_sbi {roc_auc(s['video_sbi'], s['video_real']):.3f}, "
            f"video_swap {roc_auc(s['video_swap'], s['video_real']):.3f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--weights-file", type=Path, default=None, help="evaluate these weights (default: the shipped ones)"
    )
    ap.add_argument(
        "--arch",
        choices=("compact", "mobilenet"),
        default="mobilenet",
        help="--weights-file's network (default: %(default)s; compact: the earlier models/deepfake.safetensors)",
    )
    ap.add_argument(
        "--input-size", type=int, default=DEEPFAKE_MOBILENET_SIZE, help="mobilenet's input (default: %(default)s)"
    )
    ap.add_argument("--limit", type=int, default=None, help="at most N held-out faces (default: all)")
    ap.add_argument("--picture", type=Path, default=None, help="write scored sample faces here (PNG)")
    ap.add_argument("--video-faces", type=Path, default=Path("runs/video_faces.npz"), help="default: %(default)s")
    ap.add_argument("--generated", type=Path, default=Path("runs/generated_faces.npz"), help="default: %(default)s")
    ap.add_argument(
        "--threshold", type=float, default=SYNTHETIC_THRESHOLD, help="flag faces from this score (default: %(default)s)"
    )
    args = ap.parse_args()
    configure_runtime(2)
    if args.weights_file is not None:
        from safetensors.torch import load_file

        from anonymizer.nn.deepfake import DeepfakeMobileNet, DeepfakeNet

        net = DeepfakeNet() if args.arch == "compact" else DeepfakeMobileNet(size=args.input_size)
        net.load_state_dict(load_file(str(args.weights_file)))
        scorer = DeepfakeScorer(model=net, threshold=args.threshold)
    else:
        scorer = DeepfakeScorer(threshold=args.threshold)
    t = scorer.threshold
    crops, lms = aligned_faces(require(DATA / "faces-utk"), held_out=True, limit=args.limit, size=DEEPFAKE_SIZE)
    sets = dev_sets(crops, lms)
    real = scorer.score_crops(sets["real"])
    print(f"faces-utk held-out: {len(crops)} real faces, one fake of each kind per face")
    print(f"| fake | ROC AUC | fakes flagged (>= {t:.4f}) | reals flagged |")
    print("|---|---|---|---|")
    sets["surrogate"] = surrogate_crops(args.limit)
    for kind in ("sbi", "swap", "surrogate"):
        fake = scorer.score_crops(sets[kind])
        print(f"| {kind} | {roc_auc(fake, real):.3f} | {(fake >= t).mean():.1%} | {(real >= t).mean():.1%} |")
    more = held_out_sets(args.video_faces, args.generated)
    started = time.perf_counter()
    video_real = scorer.score_crops(more["video_real"])
    rate = len(more["video_real"]) / (time.perf_counter() - started)
    both = np.concatenate([real, video_real])
    print(f"held-out people of real video: {len(video_real)} faces; generated: {len(more['generated'])} photos")
    for kind, against in (("video_sbi", video_real), ("video_swap", video_real), ("generated", both)):
        fake = scorer.score_crops(more[kind])
        print(f"| {kind} | {roc_auc(fake, against):.3f} | {(fake >= t).mean():.1%} | {(against >= t).mean():.1%} |")
    report_out_of_domain(scorer, rate)
    report_reencoded(scorer, {k: more[k] for k in ("video_real", "video_sbi", "video_swap")})
    if args.picture is not None:
        picture(scorer, args.picture)


if __name__ == "__main__":
    main()
