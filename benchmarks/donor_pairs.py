"""Why two passwords often give the same-looking person: pairs of donors rendered into the same held-out
faces, against how far apart the donors themselves are for dlib (issue 31, models/donors.md).

    python benchmarks/donor_pairs.py [--faces 100] [--pairs 3] [--suited]

dlib describes every donor of models/donors (its crop, at its mesh's five points). For each of the first
--faces held-out faces of ../shared/data/faces-utk aged 13 and up, --pairs random pairs of suitable donors
(seeded) are rendered in by the donor painter without its identity check; "differ": dlib's descriptors of
the two outputs are more than 0.6 apart. With ``--suited`` the pairs are drawn as the painter weighs
donors for the face (:func:`anonymizer.pipeline.donor_swap.draw_weights`: donors alike in looks, the
pairs that matter), instead of uniformly. Printed: the correlation of the donors' distance with the
rendered one, the share of rendered pairs that differ by the donors' own distance, the logistic curve
fitted to it (maximum likelihood), and how far the bank can be thinned into a spread set (the largest of
20 seeded greedy subsets whose every pair is more than 0.6 / 0.65 / 0.7 apart).
"""

from __future__ import annotations

import argparse

import numpy as np
from _data import DATA, require
from tqdm import tqdm

from anonymizer.audit.recognizers import DlibRecognizer, distance
from anonymizer.nn.runtime import configure_runtime
from anonymizer.pipeline.donor_painter import DonorPainter
from anonymizer.train.donor_spread import descriptors
from anonymizer.train.faces import age_of, prepare_faces
from anonymizer.vault.surrogate import SurrogateSeed

NO_DRAW = SurrogateSeed(bytes(32))


def spread_subset(dist: np.ndarray, apart: float, tries: int = 20) -> int:
    """The size of the largest of ``tries`` seeded greedy subsets whose pairs are all more than ``apart``."""
    rng, best = np.random.default_rng(0), 0
    for _ in range(tries):
        keep: list[int] = []
        for i in rng.permutation(len(dist)):
            if all(dist[i, j] > apart for j in keep):
                keep.append(int(i))
        best = max(best, len(keep))
    return best


def fit_confusion(apart: np.ndarray, differ: np.ndarray) -> tuple[float, float]:
    """(at, softness) of the logistic 1 / (1 + exp((apart - at) / softness)), the chance that a pair of
    donors ``apart`` rendered into one face is one person to dlib, fitted by maximum likelihood to the
    rendered pairs (``differ``: bool) on a grid."""
    best, fit = -np.inf, (0.0, 0.0)
    for at in np.arange(0.40, 0.90, 0.005):
        for soft in np.arange(0.01, 0.15, 0.0025):
            same = np.clip(1.0 / (1.0 + np.exp((apart - at) / soft)), 1e-9, 1 - 1e-9)
            ll = float(np.where(differ, np.log1p(-same), np.log(same)).sum())
            if ll > best:
                best, fit = ll, (float(at), float(soft))
    return fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--suited", action="store_true", help="draw pairs as the painter weighs donors for the face")
    args = ap.parse_args()
    configure_runtime(2)
    painter, rec = DonorPainter(identity_check=False), DlibRecognizer()
    desc = descriptors(painter.bank, np.arange(len(painter.bank)))
    dist = np.linalg.norm(desc[:, None] - desc[None], axis=-1)
    upper = dist[np.triu_indices(len(dist), 1)]
    fs = prepare_faces(require(DATA / "faces-utk"))
    idx = np.flatnonzero(fs.held_out & np.isfinite(fs.descriptors).all(1))
    idx = np.array([i for i in idx if age_of(str(fs.names[i])) >= 13])[: args.faces]
    rng, usable = np.random.default_rng(0), np.flatnonzero(painter.weights > 0)
    rows = []
    for i in tqdm(idx, unit="face"):
        rgb, face = fs.load_rgb(i), fs.face(i)
        p = None
        if args.suited:
            even = painter.describe(rgb, face, even_light=True)
            p = painter.draw_weights(rgb, painter.plan(rgb, face)[1], painter.describe(rgb, face), even)
        for _ in range(args.pairs):
            a, b = (
                int(k)
                for k in (
                    rng.choice(len(p), 2, replace=False, p=p) if p is not None else rng.choice(usable, 2, replace=False)
                )
            )
            # a fixed donor per pair: the choices dict hands the track its donor, the seed draws nothing
            ea, eb = (rec.embed(painter.paint(rgb, [face], NO_DRAW, choices={0: k})[0], face) for k in (a, b))
            rows.append((dist[a, b], distance(ea, eb)))
    r = np.array(rows)
    print(
        f"{len(r)} pairs rendered into {len(idx)} held-out adults: donors' distance vs rendered, correlation "
        f"{np.corrcoef(r.T)[0, 1]:.2f}; rendered pairs that differ (> 0.6): {(r[:, 1] > 0.6).mean():.1%}"
    )
    print("| donors apart | share of the bank's pairs | share of such rendered pairs that differ |")
    print("|---|---|---|")
    for lo, hi in ((0.0, 0.5), (0.5, 0.55), (0.55, 0.6), (0.6, 0.65), (0.65, 0.7), (0.7, 0.75), (0.75, 9.0)):
        m = (r[:, 0] > lo) & (r[:, 0] <= hi)
        bank_share = ((upper > lo) & (upper <= hi)).mean()
        print(f"| {lo:.2f}-{hi:.2f} | {bank_share:.1%} | {(r[m, 1] > 0.6).mean():.1%} of {m.sum()} |")
    at, soft = fit_confusion(r[:, 0], r[:, 1] > 0.6)
    print(f"one person to dlib when rendered: 1 / (1 + exp((donors' distance - {at:.3f}) / {soft:.4f})) (fitted)")
    for apart in (0.6, 0.65, 0.7):
        print(f"largest spread subset with every pair more than {apart} apart: {spread_subset(dist, apart)} donors")


if __name__ == "__main__":
    main()
