"""Why two passwords often give the same-looking person: pairs of donors rendered into the same held-out
faces, against how far apart the donors themselves are for dlib (issue 31, models/donors.md).

    python benchmarks/donor_pairs.py [--faces 100] [--pairs 3]

dlib describes every donor of models/donors (its crop, at its mesh's five points). For each of the first
--faces held-out faces of ../shared/data/faces-utk aged 13 and up, --pairs random pairs of suitable donors
(seeded) are rendered in by the donor painter without its identity check; "differ": dlib's descriptors of
the two outputs are more than 0.6 apart. Printed: the correlation of the donors' distance with the
rendered one, the share of rendered pairs that differ by the donors' own distance, and how far the bank
can be thinned into a spread set (the largest of 20 seeded greedy subsets whose every pair is more than
0.6 / 0.65 / 0.7 apart).
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from _data import DATA, require

from anonymizer.audit.recognizers import DlibRecognizer, distance
from anonymizer.pipeline.donor_painter import DonorPainter
from anonymizer.pipeline.photo import configure_runtime
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=3)
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
        for _ in range(args.pairs):
            a, b = (int(k) for k in rng.choice(usable, 2, replace=False))
            # a fixed donor per pair: the choices dict hands the track its donor, the seed draws nothing
            ea, eb = (rec.embed(painter.paint(rgb, [face], NO_DRAW, choices={0: k})[0], face) for k in (a, b))
            rows.append((dist[a, b], distance(ea, eb)))
    r = np.array(rows)
    print(f"{len(r)} pairs rendered into {len(idx)} held-out adults: donors' distance vs rendered, correlation "
          f"{np.corrcoef(r.T)[0, 1]:.2f}; rendered pairs that differ (> 0.6): {(r[:, 1] > 0.6).mean():.1%}")
    print("| donors apart | share of the bank's pairs | share of such rendered pairs that differ |")
    print("|---|---|---|")
    for lo, hi in ((0.0, 0.6), (0.6, 0.65), (0.65, 0.7), (0.7, 0.75), (0.75, 9.0)):
        m = (r[:, 0] > lo) & (r[:, 0] <= hi)
        bank_share = ((upper > lo) & (upper <= hi)).mean()
        print(f"| {lo:.2f}-{hi:.2f} | {bank_share:.1%} | {(r[m, 1] > 0.6).mean():.1%} of {m.sum()} |")
    for apart in (0.6, 0.65, 0.7):
        print(f"largest spread subset with every pair more than {apart} apart: {spread_subset(dist, apart)} donors")


if __name__ == "__main__":
    main()
