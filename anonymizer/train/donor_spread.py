"""Select the shipped donor bank from the donor pool, so that two passwords rarely give faces a face
recogniser calls the same person (issue 31, models/donors.md "Selection").

    python -m anonymizer.train.donor_spread --pool /tmp/donor_pool --keep 400 --out models/donors

The pool is what :mod:`anonymizer.train.donor_bank` builds (every eligible photo). Here:

1. **Suitable**: donors without glasses, hair over the temples or a blurred face
   (:func:`anonymizer.pipeline.donor_swap.donor_weights`).
2. **Looks**: each donor's apparent sex and age (:class:`anonymizer.nn.attributes.FaceAttributes` on its
   IdentityNet descriptor, as the painter reads a face's), recorded as the traits ``female`` and ``age``,
   with which the painter matches donors to faces. From 13 up, a donor whose apparent sex is unclear
   (:data:`CLEAR_SEX`) or disagrees with the sex its source records is set aside: step 3 would keep such
   donors preferentially (they are far from the others of their apparent sex), and they would then be
   drawn for faces of the other sex.
3. **Spread**: dlib (the ``audit`` extra, needed here only) describes every suitable donor at its mesh's
   five points. Two donors rendered into the same face look like different people to dlib almost exactly
   when the donors themselves are far apart (benchmarks/donor_pairs.py), and some donors are "hubs",
   near many others. Donors only compete when the painter could draw both for one face: the same apparent
   sex, ages within :data:`COMPETE_AGE` years and skin lightness within :data:`COMPETE_TONE` L*. Until
   ``--keep`` are left, the donor with the most competitors within ``--apart`` (ties: the lower sum of
   distances, then the lower index) is set aside.
4. **Write** ``--out`` (replaced whole): the kept donors' crops (the pool's JPEG bytes, renamed
   ``d0000.jpg`` ...), ``bank.safetensors`` (the pool's tensors for them, plus the traits ``female``,
   ``age``, ``hair`` and ``sharp`` and dlib's distances between the kept donors, ``dlib_distance`` [N, N], with which
   the painter spreads its draw, :func:`anonymizer.pipeline.donor_swap.spread_draw`), ``index.csv`` (the
   pool's rows, with the traits) and the contact sheet ``--sheet``
   (default ``<out>.png``).

Deterministic: no randomness, the same pool gives the same bytes.

    python -m anonymizer.train.donor_spread --distances-only --out models/donors

(re)writes only the ``dlib_distance`` of an existing bank, in place.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..nn.attributes import FaceAttributes
    from ..pipeline.donors import DonorBank

#: donors compete for a face when their apparent ages differ by less than this (years) ...
COMPETE_AGE = 15.0
#: ... and their skin lightness by less than this (L*), and they have the same apparent sex
COMPETE_TONE = 15.0
#: a donor aged 13 or more is kept only when its apparent sex is clear: the probability of female at most
#: this or at least 1 - this (and, where the source records the sex, the same)
CLEAR_SEX = 0.25


def descriptors(bank: DonorBank, indices: np.ndarray) -> np.ndarray:
    """dlib's descriptors [K, 128] of the donors ``indices`` of ``bank`` (a DonorBank): each crop at its
    mesh's five points (also benchmarks/donor_pairs.py)."""
    from ..audit.recognizers import DlibRecognizer
    from ..pipeline.donor_swap import mesh_face

    rec = DlibRecognizer()
    return np.stack([rec.embed(bank.image(int(i)), mesh_face(bank.mesh(int(i)))) for i in indices])


def donor_looks(
    bank: DonorBank, indices: np.ndarray, head: FaceAttributes | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(probability of female, apparent age in years), float32 [K] each, of the donors ``indices``: as
    :meth:`anonymizer.pipeline.donor_painter.DonorPainter.looks` reads a face (float64 descriptor), with
    ``head`` (a FaceAttributes, turned to float64; default: the shipped weights)."""
    import torch

    from ..nn.attributes import face_attributes
    from ..nn.identity import IDENTITY_CROP
    from ..ops.align import align_face
    from ..pipeline.donor_swap import five_points
    from .embedding import embed_crops

    crops = [align_face(bank.image(int(i)), five_points(bank.mesh(int(i))), size=IDENTITY_CROP) for i in indices]
    desc = embed_crops(crops, desc="donors", dtype=torch.float64)
    head = (head if head is not None else face_attributes()).eval().double()
    with torch.inference_mode():
        female, age = head.predict(torch.from_numpy(desc))
    return female.numpy().astype(np.float32), age.numpy().astype(np.float32)


def clear_looks(female: np.ndarray, age: np.ndarray, recorded: np.ndarray) -> np.ndarray:
    """bool [K]: donors under 13, or whose apparent sex is clear (:data:`CLEAR_SEX`) and agrees with the
    ``recorded`` one (codes of :data:`anonymizer.pipeline.donors.SEXES`; 0 where not recorded)."""
    from ..pipeline.donors import SEXES

    clear = (female <= CLEAR_SEX) | (female >= 1 - CLEAR_SEX)
    known = recorded > 0
    agrees = ~known | ((female > 0.5) == (recorded == SEXES.index("female")))
    return (age < 13) | (clear & agrees)


def competing(female: np.ndarray, age: np.ndarray, lightness: np.ndarray) -> np.ndarray:
    """bool [K, K]: donors the painter could draw for the same face (see :data:`COMPETE_AGE`)."""
    sex = female > 0.5
    return (
        (sex[:, None] == sex[None])
        & (np.abs(age[:, None] - age[None]) < COMPETE_AGE)
        & (np.abs(lightness[:, None] - lightness[None]) < COMPETE_TONE)
    )


def thin_hubs(dist: np.ndarray, keep: int, apart: float) -> np.ndarray:
    """Indices (sorted) of the ``keep`` points left after repeatedly setting aside the one with the most
    others within ``apart`` in the distance matrix ``dist`` [K, K] (ties: the smaller sum of distances to
    the others left, then the lower index). Pairs that never compete can be given an infinite distance."""
    left = list(range(len(dist)))
    finite = np.where(np.isfinite(dist), dist, 0.0)
    while len(left) > keep:
        d = dist[np.ix_(left, left)]
        near = (d < apart).sum(1) - 1  # not itself
        order = np.lexsort((np.arange(len(left)), finite[np.ix_(left, left)].sum(1), -near))
        left.pop(int(order[0]))
    return np.array(sorted(left), np.int64)


def share_apart(dist: np.ndarray, idx: np.ndarray, apart: float, among: np.ndarray | None = None) -> float:
    """The share of pairs among ``idx`` more than ``apart`` from each other (of the pairs ``among`` marks,
    bool [K, K], when given)."""
    upper = np.triu(np.ones((len(idx), len(idx)), bool), 1)
    if among is not None:
        upper &= among[np.ix_(idx, idx)]
    d = dist[np.ix_(idx, idx)][upper]
    return float((d > apart).mean()) if len(d) else 1.0


def donor_distances(bank: DonorBank) -> np.ndarray:
    """float32 [N, N]: dlib's distance between every two donors of ``bank`` (:func:`descriptors`)."""
    desc = descriptors(bank, np.arange(len(bank)))
    return np.linalg.norm(desc[:, None] - desc[None], axis=-1).astype(np.float32)


def write_distances(root: Path) -> None:
    """Add (or replace) the bank's ``dlib_distance`` in ``root``/bank.safetensors, written atomically."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from ..pipeline.donors import BANK_FILE, DISTANCES, DonorBank

    path = root / BANK_FILE
    tensors = load_file(str(path))
    with safe_open(str(path), "np") as st:
        metadata = st.metadata()
    tensors[DISTANCES] = donor_distances(DonorBank.load(root))
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.chmod(0o644)
    tmp.replace(path)


def write_selection(
    pool: object, kept: np.ndarray, traits: dict[str, np.ndarray], distances: np.ndarray, out: Path
) -> None:
    """Write the donors ``kept`` of ``pool`` (a DonorBank) with ``traits`` (float32 [len(kept)] each) and
    their ``distances`` [len(kept), len(kept)] as a bank in ``out``, built beside it and swapped in whole."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from ..pipeline.donors import BANK_FILE, DISTANCES, INDEX_FILE

    root = pool.root  # type: ignore[attr-defined]
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names = [f"d{k:04d}.jpg" for k in range(len(kept))]
    for name, i in zip(names, kept, strict=True):
        shutil.copyfile(root / pool.files[int(i)], tmp / name)  # type: ignore[attr-defined]
        (tmp / name).chmod(0o644)
    tensors = load_file(str(root / BANK_FILE))
    with safe_open(str(root / BANK_FILE), "np") as st:
        metadata = st.metadata()
    per_donor = {k: v[kept] for k, v in tensors.items() if k not in ("reference", "triangles", DISTANCES)}
    shared = {"reference": tensors["reference"], "triangles": tensors["triangles"]}
    save_file(
        {
            **per_donor,
            **shared,
            **{k: v.astype(np.float32) for k, v in traits.items()},
            DISTANCES: distances.astype(np.float32),
        },
        str(tmp / BANK_FILE),
        metadata=metadata,
    )
    (tmp / BANK_FILE).chmod(0o644)
    rows = [dict(pool.rows[int(i)]) for i in kept]  # type: ignore[attr-defined]
    with open(tmp / INDEX_FILE, "w", newline="") as f:
        w = csv.DictWriter(f, [*rows[0], *traits], lineterminator="\n")
        w.writeheader()
        for name, row, k in zip(names, rows, range(len(kept)), strict=True):
            w.writerow({**row, "file": name, **{t: f"{v[k]:.3f}" for t, v in traits.items()}})
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def measured(pool: DonorBank) -> DonorBank:
    """``pool`` with the traits the selection filters and draws by, measured once where it lacks them:
    ``hair`` (:func:`~anonymizer.pipeline.donor_swap.hair_share`), ``sharp``
    (:func:`~anonymizer.pipeline.donor_swap.sharpness`), and ``female`` and ``age`` (:func:`donor_looks`;
    a child's face may be smoother, :data:`~anonymizer.pipeline.donor_swap.SHARP_MIN_CHILD`)."""
    from dataclasses import replace

    from ..pipeline.donor_swap import hair_share, sharpness

    traits = dict(pool.traits)
    everyone = range(len(pool))
    if "hair" not in traits:
        traits["hair"] = np.array([hair_share(pool.image(i), pool.mesh(i)) for i in everyone], np.float32)
    if "sharp" not in traits:
        traits["sharp"] = np.array([sharpness(pool.image(i), pool.mesh(i)) for i in everyone], np.float32)
    if "female" not in traits or "age" not in traits:
        traits["female"], traits["age"] = donor_looks(pool, np.arange(len(pool)))
    return replace(pool, traits=traits)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", type=Path, help="the pool built by anonymizer.train.donor_bank")
    ap.add_argument("--out", type=Path, required=True, help="the bank's folder, e.g. models/donors (replaced)")
    ap.add_argument("--keep", type=int, default=200, help="donors to ship (default: %(default)s)")
    ap.add_argument("--apart", type=float, default=0.7, help="dlib distance counted as near (default: %(default)s)")
    ap.add_argument("--sheet", type=Path, default=None, help="contact sheet PNG (default: <out>.png)")
    ap.add_argument(
        "--distances-only", action="store_true", help="only (re)write the dlib distances of the bank in --out"
    )
    args = ap.parse_args(argv)
    if args.distances_only:
        write_distances(args.out)
        print(f"dlib distances of {args.out} written")
        return
    if args.pool is None:
        raise SystemExit("--pool is required (unless --distances-only)")

    from ..pipeline.donor_swap import donor_weights
    from ..pipeline.donors import DonorBank
    from .donor_bank import draw_sheet

    if args.out.resolve() == args.pool.resolve():
        raise SystemExit("--out must not be the pool")
    pool = measured(DonorBank.load(args.pool))
    suitable = np.flatnonzero(donor_weights(pool) > 0)
    female, age = pool.traits["female"][suitable], pool.traits["age"][suitable]
    clear = clear_looks(female, age, pool.codes.get("sex", np.zeros(len(pool), np.uint8))[suitable])
    print(
        f"{len(pool)} donors in the pool, {len(suitable)} suitable, {int(clear.sum())} of them with a clear apparent "
        "sex"
    )
    suitable, female, age = suitable[clear], female[clear], age[clear]
    if not 1 <= args.keep <= len(suitable):
        raise SystemExit(f"--keep must be 1 .. {len(suitable)} (the suitable donors of clear looks), got {args.keep}")
    desc = descriptors(pool, suitable)
    dist = np.linalg.norm(desc[:, None] - desc[None], axis=-1)
    rival = competing(female, age, pool.labs[suitable, 0])
    kept = thin_hubs(np.where(rival, dist, np.inf), args.keep, args.apart)
    chosen = suitable[kept]
    traits = {
        "female": female[kept],
        "age": age[kept],
        "hair": pool.traits["hair"][chosen],
        "sharp": pool.traits["sharp"][chosen],
    }
    write_selection(pool, chosen, traits, dist[np.ix_(kept, kept)], args.out)
    bank = DonorBank.load(args.out)
    sheet = args.sheet or args.out.with_suffix(".png")
    draw_sheet([bank.image(i) for i in range(min(48, len(bank)))], bank.meshes[:48], bank.triangles, sheet)
    everyone = np.arange(len(suitable))
    print(f"{len(kept)} kept")
    for apart in (0.6, 0.7):
        print(
            f"pairs more than {apart} apart: {share_apart(dist, everyone, apart):.1%} of the candidates, "
            f"{share_apart(dist, kept, apart):.1%} of the kept; of the competing pairs "
            f"{share_apart(dist, everyone, apart, rival):.1%} and {share_apart(dist, kept, apart, rival):.1%}"
        )
    ages = bank.traits["age"]
    print(
        f"kept: {int((bank.traits['female'] > 0.5).sum())} look female; ages under 13: {int((ages < 13).sum())}, "
        f"13-19: {int(((ages >= 13) & (ages < 20)).sum())}, 20-39: {int(((ages >= 20) & (ages < 40)).sum())}, "
        f"40-59: {int(((ages >= 40) & (ages < 60)).sum())}, 60 and up: {int((ages >= 60).sum())}; "
        f"{args.out}, {sheet}"
    )


if __name__ == "__main__":
    main()
