"""Mark which donors of the bank the password may draw, so that two passwords rarely give faces a face
recogniser calls the same person (issue 31, models/donors.md "Spread").

    python -m anonymizer.train.donor_spread --bank models/donors --keep 150

Two donors rendered into the same face look like different people to dlib almost exactly when the donors
themselves are far apart (benchmarks/donor_pairs.py), and some donors are "hubs", near many others. dlib
(the ``audit`` extra, needed here only) describes every suitable donor's crop
(:func:`anonymizer.pipeline.donor_swap.donor_weights` > 0) at its mesh's five points; then, until ``--keep``
are left, the donor with the most others within ``--apart`` (ties: the lower sum of distances to them,
then the lower index) is set aside. The result goes into ``bank.safetensors`` as the uint8 code
``spread`` (1: drawn), which :func:`~anonymizer.pipeline.donor_swap.donor_weights` applies; the other
tensors are unchanged. Deterministic: no randomness, the same bank gives the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def descriptors(bank: object, indices: np.ndarray) -> np.ndarray:
    """dlib's descriptors [K, 128] of the donors ``indices`` of ``bank`` (a DonorBank): each crop at its
    mesh's five points (also benchmarks/donor_pairs.py)."""
    from ..audit.recognizers import DlibRecognizer
    from ..pipeline.donor_swap import five_points
    from ..types import Face

    rec, out = DlibRecognizer(), []
    for i in indices:
        mesh = bank.mesh(int(i))  # type: ignore[attr-defined]
        (x1, y1), (x2, y2) = mesh[:, :2].min(0), mesh[:, :2].max(0)
        face = Face(box=(float(x1), float(y1), float(x2), float(y2)), score=1.0,
                    landmarks=tuple((float(x), float(y)) for x, y in five_points(mesh)))
        out.append(rec.embed(bank.image(int(i)), face))  # type: ignore[attr-defined]
    return np.stack(out)


def thin_hubs(dist: np.ndarray, keep: int, apart: float) -> np.ndarray:
    """Indices (sorted) of the ``keep`` points left after repeatedly setting aside the one with the most
    others within ``apart`` in the distance matrix ``dist`` [K, K] (ties: the smaller sum of distances to
    the others left, then the lower index)."""
    left = list(range(len(dist)))
    while len(left) > keep:
        d = dist[np.ix_(left, left)]
        near = (d < apart).sum(1) - 1  # not itself
        order = np.lexsort((np.arange(len(left)), d.sum(1), -near))
        left.pop(int(order[0]))
    return np.array(sorted(left), np.int64)


def share_apart(dist: np.ndarray, idx: np.ndarray, apart: float) -> float:
    """The share of pairs among ``idx`` more than ``apart`` from each other."""
    d = dist[np.ix_(idx, idx)][np.triu_indices(len(idx), 1)]
    return float((d > apart).mean()) if len(d) else 1.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bank", type=Path, required=True, help="the bank's folder, e.g. models/donors")
    ap.add_argument("--keep", type=int, default=150, help="donors the password may draw (default: %(default)s)")
    ap.add_argument("--apart", type=float, default=0.7, help="dlib distance counted as near (default: %(default)s)")
    args = ap.parse_args(argv)

    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from ..pipeline.donor_swap import donor_weights
    from ..pipeline.donors import BANK_FILE, DonorBank

    bank = DonorBank.load(args.bank)
    suitable = np.flatnonzero(donor_weights(bank, spread=False) > 0)
    if not 1 <= args.keep <= len(suitable):
        raise SystemExit(f"--keep must be 1 .. {len(suitable)} (the suitable donors), got {args.keep}")
    desc = descriptors(bank, suitable)
    dist = np.linalg.norm(desc[:, None] - desc[None], axis=-1)
    kept = thin_hubs(dist, args.keep, args.apart)
    spread = np.zeros(len(bank), np.uint8)
    spread[suitable[kept]] = 1
    path = args.bank / BANK_FILE
    tensors = load_file(str(path))
    with safe_open(str(path), "np") as st:  # the file's metadata stays as it is
        metadata = st.metadata()
    tmp = path.with_suffix(".tmp")
    save_file({**tensors, "spread": spread}, str(tmp), metadata=metadata)
    tmp.chmod(0o644)
    tmp.replace(path)
    everyone = np.arange(len(suitable))
    for apart in (0.6, 0.7):
        print(f"pairs more than {apart} apart: {share_apart(dist, everyone, apart):.1%} of the {len(suitable)} "
              f"suitable donors, {share_apart(dist, kept, apart):.1%} of the {len(kept)} kept")
    print(f"{path}: spread marks {int(spread.sum())} of {len(bank)} donors")


if __name__ == "__main__":
    main()
