"""Choose a surrogate generator's code palette: codes whose faces are mutually different people to dlib.

    python -m anonymizer.train.surrogate_palette --weights models/surrogate.safetensors --out runs/palette.npy

Measured on stage 4 of the generator (models/surrogate.md): whether two codes give two different people
hardly depends on the face they are painted into (over two sets of 64 faces the share of faces on which
a pair of codes differs correlates at 0.997), and only about ten of its codes are mutually more than 0.6
apart. Two codes drawn at random are the same person to dlib about one time in six. So instead of
random codes for everybody, the painter first hands out codes from a palette of PALETTE_SIZE codes chosen
here, and ``python -m anonymizer.train.surrogate --palette`` then trains the generator to pull exactly
those codes apart.

Method: ``--pool`` standard-normal codes are painted into ``--faces`` training faces (faces-utk outside the
held-out tenth; the generator's crop, colour-matched as the painter does); dlib describes each face
(:meth:`~anonymizer.audit.recognizers.DlibRecognizer.embed_aligned`). Codes that leave any of those faces
within dlib's 0.6 of the original are dropped; from the rest, a greedy farthest-first pass and three
rounds of swaps choose PALETTE_SIZE codes maximising the share of (face, pair of codes) that are more than
0.6 apart. Seeded; ``--out`` gets a (PALETTE_SIZE, CODE_DIM) float32 .npy; the descriptors are kept
beside it (``.partial.npz``) every 64 codes, so an interrupted run resumes.

Weighing the rows, after training on them:

    python -m anonymizer.train.surrogate_palette --weigh --weights runs/x/surrogate.safetensors \\
        --faces 48 --out runs/x/weighted.safetensors

Two passwords pick their rows independently, so they give the same person with probability
p^T S p, where p is how often each row is handed out and S (rows x rows) the share of faces on which two
rows are the same person to dlib (1 on the diagonal: the same row). Uniform p is not the best when some
rows resemble many others: ``--weigh`` paints the generator's own palette into ``--faces`` training faces,
measures S, finds the p that minimises p^T S p (exponentiated-gradient descent on the simplex,
:func:`row_weights`) and writes a copy of the weights with p in the generator's ``palette_weight``
(the painter's shuffle then follows it: :meth:`~anonymizer.vault.surrogate.SurrogateSeed.palette_index`).

More codes than the trained rows (``--extra N --min-face F``): weighing concentrates p on the rows that
resemble few others, so that the same row drawn twice becomes a large share of p^T S p (1 / rows' worth).
``--extra`` weighs N seeded standard-normal codes along with the rows (codes the generator was trained on
before the palette existed), leaves out every code that dlib's HOG detector finds as a face in fewer than
F of the faces, and writes a copy whose palette is the codes kept (the rows first) with their weights.

Another generator's rows (``--join W``, an ensemble): one small generator holds only so many mutually
different people (about 10-17 for dlib), and a generator from another point of training holds partly
other ones. ``--join`` paints W's palette rows with W's own network, weighs them along with the rows of
``--weights`` and writes a copy that carries W's network too (``alt.K.`` keys; the generator's
``palette_net`` says which network paints each row). ``--drop-unweighted`` starts from the rows of
``--weights`` that carry weight (a weighed file's rows of weight 0 are left out before painting).
An ensemble as ``--weights`` (the shipped file is one) is weighed with each row painted by its own
network, and keeps its networks; it cannot take ``--join`` or ``--targets``.

A target person per row, for ``python -m anonymizer.train.surrogate --row-targets`` (a plain generator:
stage 5's, ``git show 404fab5:models/surrogate.safetensors``, in models/surrogate.md's Stage 6):

    python -m anonymizer.train.surrogate_palette --targets --weights runs/stage5.safetensors \
        --faces 16 --pool 192 --seed 5 --out runs/targets/targets.npy

The generator's rows move dlib's descriptor along few directions (5 to 6 components carry 80% of their
mean shifts), while the face region of a real other adult, pasted in through the same mask, moves it
along many (about 24): rows collide where strangers do not. ``--targets`` measures, for ``--pool``
training faces of people 13 and older, the mean shift of dlib's descriptor when their face region is
painted into ``--faces`` other training faces (aligned by the five landmarks, colour-matched and
blended through the generator's mask: the ``stranger`` of benchmarks/deidentification.py), chooses
PALETTE_SIZE of those people whose shifts are far apart (greedy farthest-first on the distances between
mean shifts), assigns them to the palette's rows so that each row's own mean shift is close to its
target's (greedy on the distances), and writes the shifts (PALETTE_SIZE, 128) float32 in row order.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..nn.surrogate import CODE_DIM, PALETTE_SIZE


def pair_differ(desc: np.ndarray, threshold: float = 0.6) -> np.ndarray:
    """desc (F faces, C codes, 128) -> (C, C) share of faces on which two codes are more than
    ``threshold`` apart."""
    far = np.zeros(desc.shape[1:2] * 2)
    for d in desc:
        far += np.linalg.norm(d[:, None] - d[None], axis=-1) > threshold
    return far / len(desc)


def choose(differ: np.ndarray, candidates: np.ndarray, k: int, *, rounds: int = 3) -> list[int]:
    """``k`` of ``candidates`` (indices into the square ``differ``) with a large summed ``differ`` among
    them: greedy farthest-first, then swaps that raise each member's sum with the others."""
    cand = [int(c) for c in candidates]
    if len(cand) < k:
        raise SystemExit(
            f"only {len(cand)} candidate codes for a palette of {k}: use a larger --pool or a lower --min-deid"
        )
    sel = [cand[int(np.argmax(differ[np.ix_(cand, cand)].sum(1)))]]
    while len(sel) < k:
        rest = [c for c in cand if c not in sel]
        sel.append(rest[int(np.argmax(differ[np.ix_(rest, sel)].sum(1)))])
    for _ in range(rounds):
        for i in range(k):
            others = sel[:i] + sel[i + 1 :]
            rest = [c for c in cand if c not in sel]
            best = rest[int(np.argmax(differ[np.ix_(rest, others)].sum(1)))]
            if differ[best, others].sum() > differ[sel[i], others].sum():
                sel[i] = best
    return sel


def row_weights(same: np.ndarray, *, iterations: int = 20000, step: float = 0.5) -> np.ndarray:
    """The p on the simplex (rows,) that minimises p^T S p for ``same`` = S (rows x rows, the chance that
    two rows are the same person, 1 on the diagonal): exponentiated-gradient descent from uniform."""
    if same.ndim != 2 or same.shape[0] != same.shape[1] or not np.isfinite(same).all():
        raise ValueError(f"expected a finite square matrix, got shape {same.shape}")
    p = np.full(len(same), 1.0 / len(same))
    for _ in range(iterations):
        g = 2.0 * same @ p
        p = p * np.exp(-step * (g - g @ p))
        p /= p.sum()
    return p


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/faces-utk"), help="default: %(default)s")
    ap.add_argument(
        "--weights",
        type=Path,
        default=Path("models/surrogate.safetensors"),
        help="generator weights (default: %(default)s)",
    )
    ap.add_argument(
        "--out", type=Path, default=Path("runs/palette.npy"), help="the palette, .npy (default: %(default)s)"
    )
    ap.add_argument("--pool", type=int, default=1024, help="candidate codes (default: %(default)s)")
    ap.add_argument(
        "--faces", type=int, default=8, help="training faces each code is painted into (default: %(default)s)"
    )
    ap.add_argument(
        "--min-deid",
        type=float,
        default=1.0,
        help="keep codes that de-identify at least this share of the faces (dlib > 0.6; default: %(default)s)",
    )
    ap.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    ap.add_argument(
        "--targets",
        action="store_true",
        help="instead: choose a real person's dlib shift as a target for each row of the palette in --weights "
        "and write them to --out (.npy, rows x 128); --pool is then the number of candidate people",
    )
    ap.add_argument(
        "--weigh",
        action="store_true",
        help="instead: weigh the rows of the palette in --weights and write a copy of those weights to --out "
        "(.safetensors)",
    )
    ap.add_argument(
        "--extra",
        type=int,
        default=0,
        help="with --weigh: also weigh this many more seeded standard-normal codes, and give the copy a palette "
        "of the rows and those codes (default: %(default)s)",
    )
    ap.add_argument(
        "--join",
        type=Path,
        action="append",
        default=[],
        help="with --weigh: another generator's weights whose palette rows are weighed along, painted by that "
        "generator (repeatable; the copy is an ensemble that carries it)",
    )
    ap.add_argument(
        "--drop-unweighted",
        action="store_true",
        help="with --weigh: leave out the rows of --weights whose row weight is 0 before weighing",
    )
    ap.add_argument(
        "--min-face",
        type=float,
        default=0.0,
        help="with --weigh: leave out rows and codes whose faces dlib's HOG detector (upsampling twice) finds in "
        "fewer than this share of the faces (0..1; default: %(default)s, keep all)",
    )
    args = ap.parse_args(argv)

    import torch
    from safetensors.torch import load_file
    from tqdm import tqdm

    from ..audit.recognizers import DlibRecognizer
    from ..nn.surrogate import SurrogateGenerator, face_mask, landmark_heatmaps
    from ..pipeline.surrogate import align_to_crop, match_colour
    from .faces import age_of, prepare_faces

    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: no such folder (faces-utk, see ../shared/data/README.md)")
    if not args.weights.is_file():
        raise SystemExit(f"{args.weights}: no such weights file")
    if args.weigh and args.out.suffix != ".safetensors":
        raise SystemExit(f"{args.out}: --weigh writes generator weights, a .safetensors file")
    if args.weigh and args.out.resolve() == args.weights.resolve():
        raise SystemExit(f"{args.out}: --weigh writes a copy; give --out another path than --weights")
    if (args.extra or args.min_face or args.join or args.drop_unweighted) and not args.weigh:
        raise SystemExit("--extra, --min-face, --join and --drop-unweighted go with --weigh")
    for j in args.join:
        if not j.is_file():
            raise SystemExit(f"{j}: no such weights file (--join)")
    if args.extra < 0 or not 0.0 <= args.min_face <= 1.0:
        raise SystemExit(f"--extra must be >= 0 and --min-face within 0..1, got {args.extra}, {args.min_face}")
    rng = np.random.default_rng(args.seed)
    fs = prepare_faces(args.data, with_dlib=True, progress=True)
    usable = np.flatnonzero(~fs.held_out & np.isfinite(fs.descriptors).all(1) & np.isfinite(fs.landmarks).all((1, 2)))
    idx = rng.choice(usable, args.faces, replace=False)
    aligned = [align_to_crop(fs.load_rgb(i), fs.landmarks[i]) for i in idx]  # as the painter aligns faces
    crop_a, lm_a = np.stack([a[0] for a in aligned]), np.stack([a[1] for a in aligned])
    state = load_file(str(args.weights))
    gen = SurrogateGenerator()
    gen.load_state_dict(state)
    gen.eval()
    joined_states = [load_file(str(j)) for j in args.join]
    joined = []
    for j, st in zip(args.join, joined_states, strict=True):
        if any(k.startswith("alt.") for k in st) or len(gen.alt):
            raise SystemExit(f"{j}: --join takes plain generators, not ensembles (nor joins into one)")
        g = SurrogateGenerator()
        g.load_state_dict(st)
        if not g.has_palette:
            raise SystemExit(f"{j}: this generator has no palette to join")
        joined.append(g.eval())
    rec = DlibRecognizer()
    lm_t = torch.from_numpy(lm_a)
    mask, hm = face_mask(lm_t), landmark_heatmaps(lm_t)
    x = torch.from_numpy(crop_a).permute(0, 3, 1, 2).float().div(255.0)
    inside = mask[:, 0].numpy() > 0.5

    def paint(code: np.ndarray, net: int = 0) -> np.ndarray:
        """``code`` painted into the faces (faces, S, S, 3) float 0..255 by network ``net`` (0 .. len(gen.alt):
        --weights' own networks, an ensemble's too; then the --join ones, which need a plain --weights),
        colour-matched as the painter does."""
        with torch.inference_mode():
            c = torch.from_numpy(code).expand(len(x), -1)
            out = gen(x, mask, hm, c, net) if net <= len(gen.alt) else joined[net - len(gen.alt) - 1](x, mask, hm, c)
        return np.stack(
            [match_colour(img, crop_a[j], inside[j]) for j, img in enumerate(out.permute(0, 2, 3, 1).numpy() * 255.0)]
        )

    def describe(code: np.ndarray) -> np.ndarray:
        """dlib's descriptors (faces, 128) of ``code`` painted into the faces."""
        return rec.embed_aligned(paint(code), lm_a)

    def look(code: np.ndarray, net: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """dlib's descriptors (faces, 128) of ``code`` painted into the faces by network ``net`` and, with
        --min-face, whether its HOG detector finds each of those faces (faces,) bool (else None)."""
        painted = paint(code, net)
        found = None
        if args.min_face > 0:
            found = np.array([rec.count_faces(p, upsample=2) > 0 for p in np.clip(painted, 0, 255).astype(np.uint8)])
        return rec.embed_aligned(painted, lm_a), found

    if args.targets:
        if not gen.has_palette:
            raise SystemExit(f"{args.weights}: this generator has no palette to give targets")
        if len(gen.alt):
            raise SystemExit(f"{args.weights}: --targets takes a plain generator, not an ensemble")
        original = rec.embed_aligned(crop_a, lm_a)
        ages = np.array([age_of(str(n)) for n in fs.names])
        people = np.setdiff1d(usable[ages[usable] >= 13], idx)
        if len(people) < args.pool:
            raise SystemExit(f"only {len(people)} candidate people for --pool {args.pool}")
        pick = rng.choice(people, args.pool, replace=False)
        shift = np.stack(
            [
                rec.embed_aligned(
                    stranger_paint(fs.load_rgb(p), fs.landmarks[p], crop_a, lm_a, inside, mask[:, 0].numpy()), lm_a
                )
                - original
                for p in tqdm(pick, desc="people", unit="person")
            ]
        ).mean(1)  # (pool, 128)
        rows = np.stack(
            [describe(code) - original for code in tqdm(gen.palette.numpy(), desc="rows", unit="row")]
        ).mean(1)
        targets = assign_targets(shift, rows)
        spread = np.linalg.norm(targets[:, None] - targets[None], axis=-1)[np.triu_indices(len(targets), 1)]
        now = np.linalg.norm(rows[:, None] - rows[None], axis=-1)[np.triu_indices(len(rows), 1)]
        print(
            f"targets: mean distance between two rows' shifts {spread.mean():.3f} (the rows now: {now.mean():.3f}); "
            f"row to its target {np.linalg.norm(targets - rows, axis=1).mean():.3f}"
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.save(args.out, targets.astype(np.float32))
        print(f"wrote {args.out}")
        return
    if args.weigh:
        if not gen.has_palette:
            raise SystemExit(f"{args.weights}: this generator has no palette to weigh")
        own, own_nets = gen.palette.numpy(), gen.row_nets  # an ensemble's rows keep their networks
        if args.drop_unweighted and gen.row_weights is not None:
            own, own_nets = own[gen.row_weights > 0], own_nets[gen.row_weights > 0]
        extra = rng.standard_normal((args.extra, CODE_DIM)).astype(np.float32)
        codes = np.concatenate([own, extra, *(g.palette.numpy() for g in joined)])
        nets = np.concatenate(
            [
                own_nets,
                np.zeros(args.extra, np.int64),
                *(np.full(len(g.palette), k, np.int64) for k, g in enumerate(joined, 1)),
            ]
        )
        alt = {
            f"alt.{k}.{name}": v
            for k, st in enumerate(joined_states)
            for name, v in st.items()
            if not name.startswith("palette")
        }
        weigh(
            {**state, **alt},
            codes,
            look,
            nets=nets,
            out=args.out,
            source=args.weights.name,
            rows=len(own),
            min_face=args.min_face,
        )
        return
    codes = rng.standard_normal((args.pool, CODE_DIM)).astype(np.float32)
    original = rec.embed_aligned(crop_a, lm_a)
    partial = args.out.with_suffix(".partial.npz")
    desc = np.full((args.faces, args.pool, 128), np.nan, np.float32)
    done = 0
    if partial.is_file():
        z = np.load(partial, allow_pickle=False)
        if np.array_equal(z["codes"], codes) and np.array_equal(z["faces"], idx):
            desc, done = z["desc"], int(z["done"])
            print(f"resumed from {partial}: {done} codes described")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for c in tqdm(range(done, args.pool), initial=done, total=args.pool, desc="palette", unit="code"):
        desc[:, c] = describe(codes[c])
        if (c + 1) % 64 == 0:
            np.savez(partial, desc=desc, codes=codes, faces=idx, done=c + 1)
    deid = (np.linalg.norm(desc - original[:, None], axis=-1) > 0.6).mean(0)
    differ = pair_differ(desc)
    keep = np.flatnonzero(deid >= args.min_deid)
    sel = choose(differ, keep, PALETTE_SIZE)
    iu = np.triu_indices(args.pool, 1)
    ius = np.triu_indices(PALETTE_SIZE, 1)
    print(
        f"{args.pool} codes on {args.faces} faces: two random codes differ on {differ[iu].mean():.1%}, "
        f"de-identify {deid.mean():.1%}; {len(keep)} codes de-identify >= {args.min_deid:.0%}"
    )
    print(
        f"palette of {PALETTE_SIZE}: two of its codes differ on {differ[np.ix_(sel, sel)][ius].mean():.1%} "
        f"(in sample), de-identify {deid[sel].mean():.1%}"
    )
    np.save(args.out, codes[sel])
    partial.unlink(missing_ok=True)
    print(f"wrote {args.out}")


def stranger_paint(
    rgb: np.ndarray, landmarks: np.ndarray, crops: np.ndarray, lms: np.ndarray, inside: np.ndarray, alpha: np.ndarray
) -> np.ndarray:
    """The face in ``rgb`` (its five ``landmarks``) painted into each aligned crop (N, S, S, 3) with landmarks
    ``lms`` (N, 5, 2): warped onto the crop's landmarks, colour-matched inside ``inside`` (N, S, S) and
    blended through ``alpha`` (N, S, S), as the painter blends a generated face."""
    import cv2

    from ..ops.align import similarity_transform
    from ..ops.replace import composite
    from ..pipeline.surrogate import match_colour

    out = []
    for crop, lm, ins, a in zip(crops, lms, inside, alpha, strict=True):
        m = similarity_transform(np.asarray(landmarks, np.float64), lm)
        warped = cv2.warpAffine(rgb, m, crop.shape[1::-1], flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        out.append(composite(crop, match_colour(warped.astype(np.float32), crop, ins), a))
    return np.stack(out)


def assign_targets(shifts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Targets (rows, D) for the palette's ``rows`` (their mean shifts, (R, D)) from candidate ``shifts``
    (C >= R, D): R candidates far apart (farthest-first from the one farthest from the rest), then each
    row given the nearest free chosen candidate, the closest (row, candidate) pairs first."""
    r = len(rows)
    if len(shifts) < r:
        raise ValueError(f"{len(shifts)} candidates for {r} rows")
    dist = np.linalg.norm(shifts[:, None] - shifts[None], axis=-1)
    sel = [int(np.argmax(dist.sum(1)))]
    while len(sel) < r:
        sel.append(int(np.argmax(np.where(np.isin(np.arange(len(shifts)), sel), -np.inf, dist[:, sel].min(1)))))
    chosen = shifts[sel]
    cost = np.linalg.norm(rows[:, None] - chosen[None], axis=-1)  # (rows, chosen)
    out = np.zeros_like(rows, dtype=np.float64)
    free_r, free_c = np.ones(r, bool), np.ones(r, bool)
    for flat in np.argsort(cost, axis=None, kind="stable"):
        i, j = divmod(int(flat), r)
        if free_r[i] and free_c[j]:
            out[i], free_r[i], free_c[j] = chosen[j], False, False
    return out


def weigh(
    state: dict[str, Any],
    codes: np.ndarray,
    look: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray | None]],
    *,
    out: Path,
    source: str,
    rows: int,
    min_face: float = 0.0,
    nets: np.ndarray | None = None,
) -> None:
    """``--weigh``: S from the ``codes`` (the palette's ``rows`` rows first, then any ``--extra`` codes and
    any ``--join`` rows) painted into the faces, each by its network in ``nets`` (None: all 0; ``look``:
    descriptors and, with ``min_face`` > 0, whether dlib's detector finds each face), the codes found in
    fewer than ``min_face`` of the faces left out, p = :func:`row_weights` (S), and the generator's
    ``state`` (read from the file named ``source``, with any joined networks' ``alt.K.`` tensors) with the
    codes kept as its ``palette``, p as its ``palette_weight`` and their networks as its ``palette_net``
    written to ``out`` (atomically)."""
    import torch
    from tqdm import tqdm

    from .common import save_weights

    nets = np.zeros(len(codes), np.int64) if nets is None else nets
    looks = [
        look(code, int(net))
        for code, net in tqdm(zip(codes, nets, strict=True), total=len(codes), desc="weigh", unit="code")
    ]
    desc = np.stack([d for d, _ in looks], axis=1)  # (faces, codes, 128)
    keep = np.ones(len(codes), bool)
    if min_face > 0:
        face = np.stack([f for _, f in looks if f is not None], axis=1).mean(0)  # (codes,)
        keep = face >= min_face
        extra = f"{face[rows:].mean():.1%}" if len(codes) > rows else "-"
        print(
            f"--min-face {min_face:g}: {keep[:rows].sum()} of the {rows} rows and {keep[rows:].sum()} of the "
            f"{len(codes) - rows} other codes (--extra, --join) kept (found as a face in {face[:rows].mean():.1%} and "
            f"{extra} of the faces)"
        )
        if not keep.any():
            raise SystemExit(f"no code is found as a face in {min_face:.0%} of the faces: lower --min-face")
    same = 1.0 - pair_differ(desc[:, keep])
    np.fill_diagonal(same, 1.0)
    p = row_weights(same)
    u = np.full(len(p), 1.0 / len(p))
    if len(codes) > rows:
        own = 1.0 - pair_differ(desc[:, :rows])
        np.fill_diagonal(own, 1.0)
        q, v = row_weights(own), np.full(rows, 1.0 / rows)
        print(
            f"the palette's own {rows} rows: two passwords give the same person for {v @ own @ v:.1%} of faces equally "
            f"often, {q @ own @ q:.1%} weighed"
        )
    print(
        f"{len(p)} codes on {len(desc)} faces (in sample): two passwords give the same person for {u @ same @ u:.1%} "
        "of "
        f"faces with every code equally often, {p @ same @ p:.1%} weighed; the weighed codes are "
        f"{1 / np.sum(p**2):.1f} "
        f"codes' worth (largest weight {p.max() * len(p):.2f}x equal)"
    )
    for k in range(1, int(nets.max()) + 1):
        print(f"network {k}: {int((nets[keep] == k).sum())} rows kept, {p[nets[keep] == k].sum():.1%} of the weight")
    state = {
        **state,
        "palette": torch.from_numpy(np.ascontiguousarray(codes[keep], np.float32)),
        "palette_weight": torch.from_numpy(p.astype(np.float32)),
        "palette_net": torch.from_numpy(np.ascontiguousarray(nets[keep])),
    }
    save_weights(state, out, f"{source} with palette rows weighed by anonymizer.train.surrogate_palette")


if __name__ == "__main__":
    main()
