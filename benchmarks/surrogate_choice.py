"""How much "passwords differ" the choice of a face's palette code can still give the shipped generator.

    python benchmarks/surrogate_choice.py [--faces 60] [--seed 7] [--surrogate-weights W.safetensors]

Two passwords give the same person when the codes they draw paint the same person into that face. This
script paints every palette code with a row weight > 0 into ``--faces`` training faces of
../shared/data/faces-utk (crop level, as ``python -m anonymizer.train.surrogate_palette --weigh`` paints),
describes each painting with dlib and with the identity check's IdentityNet, and replays how codes are
chosen for 20,000 simulated passwords. Per policy it prints the share of (face, pair of passwords) whose
two surrogates are different people to dlib (distance > 0.6, "differ") and the share of surrogates that
dlib no longer matches to the original ("de-id"; at crop level, so lower than the benchmark's):

- the shipped row weights, with and without the identity check (its ATTEMPTS and thresholds around
  CHECK_DISTANCE, the check's distances taken at crop level);
- per-face weights from the check's own distances (what a painter could compute at run time);
- the oracle: per-face weights from dlib's own answer on that face, no check. No way of choosing among
  these codes gives more than this: it is the generator's ceiling.

Numbers and the conclusion are in models/surrogate.md ("Measured after stage 9 and not shipped").
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _data import DATA, require
from deidentification import surrogate_painter
from tqdm import tqdm

from anonymizer.audit.recognizers import DlibRecognizer
from anonymizer.nn.identity import IDENTITY_CROP
from anonymizer.nn.surrogate import face_mask, landmark_heatmaps
from anonymizer.ops.align import align_face
from anonymizer.pipeline.surrogate import ATTEMPTS, CHECK_DISTANCE, align_to_crop, match_colour
from anonymizer.train.faces import prepare_faces
from anonymizer.train.surrogate_palette import pair_differ, row_weights

PASSWORDS = 20000


def choose(p: np.ndarray, u: np.ndarray, check: np.ndarray | None, *, attempts: int, threshold: float) -> np.ndarray:
    """The code each simulated password takes (PASSWORDS,): the exponential race of the painter's weighted
    order (:meth:`anonymizer.vault.surrogate.SurrogateSeed.palette_index`) over weights ``p``, then, with the
    check's distances ``check`` (codes,), the first of ``attempts`` candidates further than ``threshold``
    from the original (else the farthest), as :meth:`anonymizer.pipeline.surrogate.SurrogatePainter.paint`."""
    with np.errstate(divide="ignore", over="ignore"):  # weights near 0: times of inf, last
        race = np.where(p > 0, -np.log(u) / np.where(p > 0, p, 1.0), np.inf)
    order = np.argsort(race, axis=1)[:, :attempts]
    if check is None:
        return order[:, 0]  # type: ignore[no-any-return]
    d = check[order]
    ok = d > threshold
    first = np.where(ok.any(1), ok.argmax(1), d.argmax(1))
    return order[np.arange(len(order)), first]  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=60, help="training faces (default: %(default)s)")
    ap.add_argument(
        "--seed", type=int, default=7, help="which faces, and the simulated passwords (default: %(default)s)"
    )
    ap.add_argument("--surrogate-weights", default=None, help="generator weights (default: the shipped ones)")
    args = ap.parse_args()
    if args.faces < 2:
        raise SystemExit(f"--faces must be >= 2, got {args.faces}")
    if args.surrogate_weights is not None and not Path(args.surrogate_weights).is_file():
        raise SystemExit(f"{args.surrogate_weights}: no such weights file")
    t0 = time.time()
    fs = prepare_faces(require(DATA / "faces-utk"), with_dlib=True, progress=True)
    usable = np.flatnonzero(~fs.held_out & np.isfinite(fs.landmarks).all((1, 2)))
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(usable, args.faces, replace=False)
    painter = surrogate_painter(args.surrogate_weights)  # the generator and the identity check, as benchmarked
    if painter is None or painter.palette is None or painter.row_nets is None or painter.row_weights is None:
        raise SystemExit("no generator weights with a weighed palette")
    gen, chk = painter.gen, painter.check
    pool = np.flatnonzero(painter.row_weights > 0)
    codes = painter.palette[torch.from_numpy(pool)]
    nets = torch.from_numpy(painter.row_nets[pool])  # which network paints each code (an ensemble's)
    weights = painter.row_weights[pool] / painter.row_weights[pool].sum()
    rec = DlibRecognizer()
    n = len(pool)
    same, deid, check_d, check_same = [], [], [], []
    for i in tqdm(idx, desc="faces", unit="face"):
        crop, lm, _ = align_to_crop(fs.load_rgb(i), fs.landmarks[i])
        lm_t = torch.from_numpy(lm)[None]
        mask, heat = face_mask(lm_t), landmark_heatmaps(lm_t)
        x = torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(255.0)
        with torch.inference_mode():
            out = gen(x.expand(n, -1, -1, -1), mask.expand(n, -1, -1, -1), heat.expand(n, -1, -1, -1), codes, nets)
        inside = mask[0, 0].numpy() > 0.5
        painted = np.stack([match_colour(img, crop, inside) for img in out.permute(0, 2, 3, 1).numpy() * 255.0])
        d = rec.embed_aligned(painted, np.repeat(lm[None], n, 0))
        d0 = rec.embed_aligned(crop[None], lm[None])[0]
        c = chk.embed_crops(np.stack([align_face(p, lm, size=IDENTITY_CROP) for p in painted]))  # type: ignore[attr-defined]
        c0 = chk.embed_crops(align_face(crop, lm, size=IDENTITY_CROP)[None])[0]  # type: ignore[attr-defined]
        same.append(1.0 - pair_differ(d[None]))
        deid.append(np.linalg.norm(d - d0, axis=1) > 0.6)
        check_d.append(np.linalg.norm(c - c0, axis=1))
        check_same.append(1.0 - pair_differ(c[None], CHECK_DISTANCE))
    u = rng.random((PASSWORDS, n))
    total = np.sum(same, axis=0)

    Policy = Callable[
        [int], tuple[np.ndarray, np.ndarray | None, int, float]
    ]  # face -> (weights, check, attempts, threshold)

    def report(name: str, policy: Policy) -> None:
        res = []
        for f in range(args.faces):
            p, check, attempts, threshold = policy(f)
            q = np.bincount(choose(p, u, check, attempts=attempts, threshold=threshold), minlength=n) / PASSWORDS
            res.append((1.0 - q @ same[f] @ q, q @ deid[f]))
        r = np.mean(res, axis=0)
        print(f"{name:62s} differ {r[0]:6.1%}   de-id {r[1]:6.1%}", flush=True)

    print(f"{args.faces} training faces (seed {args.seed}), {n} codes with weight > 0, {PASSWORDS} simulated passwords")
    report("shipped weights, no check", lambda f: (weights, None, 1, 0.0))
    for t in (0.5, 0.55, CHECK_DISTANCE, 0.65):
        report(
            f"shipped weights, check {ATTEMPTS} attempts at {t:g}" + (" (shipped)" if t == CHECK_DISTANCE else ""),
            lambda f, t=t: (weights, check_d[f], ATTEMPTS, t),
        )
    for lam in (0.0, 0.5):

        def per_face(f: int, lam: float = lam) -> tuple[np.ndarray, np.ndarray, int, float]:
            loo = (total - same[f]) / (args.faces - 1)  # the other faces' dlib answers: a global prior
            s = lam * loo + (1 - lam) * check_same[f]
            return row_weights(s, iterations=5000), check_d[f], ATTEMPTS, CHECK_DISTANCE

        report(f"per-face weights from the check (prior {lam:g}), check as shipped", per_face)
    report(
        "oracle: per-face weights from dlib on that face, no check",
        lambda f: (row_weights(same[f], iterations=5000), None, 1, 0.0),
    )
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
