"""How the surrogate painter's identity check was tuned: the trade-off between de-identification,
realism and the difference between passwords, for each threshold and number of candidates.

    python benchmarks/identity_check.py [--limit N] [--candidates 6] [--training | --bank-kept-out BANK]
        [--identity-weights F] [--save F.npz | --load F.npz] [--plot F.png]

Each held-out faces-utk face (as in benchmarks/deidentification.py) is painted, for passwords A and B,
with the first ``--candidates`` palette rows its seed hands out (the candidates the painter would try,
in order; no check), and for every painting the script records the check's IdentityNet descriptors
(the ``identity_check`` weights, or ``--identity-weights``), the audit's IdentityNet's (for comparison),
dlib's, and whether dlib's HOG detector still finds a face. Then it replays the painter's rule offline:
take the first candidate that the check's IdentityNet puts more than ``tau`` from the original, else the
farthest of the first K. Printed per (tau, K): how many faces were retried, de-identified by dlib
(distance > 0.6; all ages, 0-4, 13 and up), still a face to dlib's detector, and passwords A and B
giving different people for dlib. K = 1 is the painter without the check. One pair of passwords leaves
about a point of sampling noise on "passwords differ"; benchmarks/deidentification.py --extra-pairs
measures the shipped rule more tightly. ``--bank-kept-out`` paints the training faces kept out of the
check's fine-tuning instead (where its threshold was chosen; models/surrogate.md, Stage 9). The 891
faces with 4 candidates take about 15 min on a 2-core CPU; ``--save`` keeps the recorded descriptors,
``--load`` replays them without painting; ``--plot`` draws both IdentityNets' distances against dlib's.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _data import DATA, require
from tqdm import tqdm

TAUS = (0.5, 0.55, 0.575, 0.6, 0.625, 0.65, 0.7, 0.75, 0.8)


def record(
    limit: int | None,
    candidates: int,
    training: bool = False,
    kept_out: str | None = None,
    identity_weights: str | None = None,
) -> dict[str, np.ndarray]:
    from anonymizer.audit.recognizers import DlibRecognizer, IdentityNetRecognizer
    from anonymizer.nn.runtime import configure_runtime
    from anonymizer.pipeline.surrogate import ATTEMPTS, CHECK_WEIGHTS, SurrogatePainter
    from anonymizer.train.faces import age_of, prepare_faces
    from anonymizer.vault.surrogate import SurrogateSeed

    configure_runtime(2)
    dlib, audit = DlibRecognizer(), IdentityNetRecognizer()  # audit: the shipped IdentityNet, for comparison
    if identity_weights is None:
        idn = IdentityNetRecognizer(weights=CHECK_WEIGHTS)
    else:
        from safetensors.torch import load_file

        idn = IdentityNetRecognizer(weights=None)
        idn.model.load_state_dict(load_file(identity_weights))
        idn.model.eval()
    fs = prepare_faces(require(DATA / "faces-utk"))
    split = ~fs.held_out if training else fs.held_out
    idx = np.flatnonzero(split & np.isfinite(fs.descriptors).all(1))
    if training:  # files are in name order, which starts with the age: a seeded sample of all ages
        idx = np.sort(np.random.default_rng(0).permutation(idx)[:limit])
    if kept_out is not None:  # the training faces kept out of the check's fine-tuning (its --seed 0)
        from anonymizer.train.identity import bank_split

        with np.load(kept_out) as f:
            bank_index = f["index"]
        idx = np.sort(bank_index[bank_split(len(bank_index), 0)[0]])
    idx = idx[:limit]
    painter = SurrogatePainter(identity_check=False)
    if painter.palette is None or painter.row_nets is None:
        raise SystemExit("the surrogate weights have no palette")
    size, weights = len(painter.palette), painter.row_weights
    palette, nets, painting = painter.palette, painter.row_nets, {"row": 0}
    painter.candidate = lambda seed, track, attempt=0: (  # type: ignore[method-assign]
        palette[painting["row"]][None],
        int(nets[painting["row"]]),
    )
    seeds = (SurrogateSeed.from_password("benchmark password A"), SurrogateSeed.from_password("benchmark password B"))
    out: dict[str, list] = {
        k: [] for k in ("age", "id0", "dl0", "au0", "idA", "dlA", "auA", "idB", "dlB", "auB", "hogA", "rowA", "rowB")
    }
    for i in tqdm(idx, unit="face"):
        rgb, face = fs.load_rgb(i), fs.face(i)
        out["age"].append(age_of(str(fs.names[i])))
        out["id0"].append(idn.embed(rgb, face))
        out["au0"].append(audit.embed(rgb, face))
        out["dl0"].append(fs.descriptors[i])
        for tag, seed in zip("AB", seeds, strict=True):
            s = seed.for_context(rgb.tobytes())  # as anonymize_image does
            ids, dls, aus, hogs, rows = [], [], [], [], []
            for k in range(candidates):
                # the painter's candidate k of track 0 is the seed's k-th row (k < ATTEMPTS); later ones
                # continue the same order, as a larger ATTEMPTS would
                row = painting["row"] = int(s.palette_index(k, size, weights))  # type: ignore[arg-type]
                assert k >= ATTEMPTS or bool(
                    (SurrogatePainter.candidate(painter, s, 0, k)[0] == palette[row][None]).all()
                )
                painted = painter.paint(rgb, [face], s)[0]
                ids.append(idn.embed(painted, face))
                aus.append(audit.embed(painted, face))
                dls.append(dlib.embed(painted, face))
                rows.append(row)
                if tag == "A":
                    hogs.append(dlib.count_faces(painted) > 0)
            out["id" + tag].append(ids)
            out["dl" + tag].append(dls)
            out["au" + tag].append(aus)
            out["row" + tag].append(rows)
            if tag == "A":
                out["hogA"].append(hogs)
    return {k: np.array(v) for k, v in out.items()}


def choose(distances: np.ndarray, tau: float, k: int) -> np.ndarray:
    """The painter's rule per face: the first of the first ``k`` candidates further than ``tau``, else the farthest."""
    far = distances[:, :k] > tau
    first = np.argmax(far, axis=1)
    return np.where(far.any(axis=1), first, np.argmax(distances[:, :k], axis=1))


def share(flags: np.ndarray) -> str:
    return f"{flags.mean():.1%}" if len(flags) else "-"


def replay(d: dict[str, np.ndarray]) -> None:
    age = d["age"]
    n, candidates = d["rowA"].shape
    r = np.arange(n)
    id_a = np.linalg.norm(d["idA"] - d["id0"][:, None], axis=2)
    id_b = np.linalg.norm(d["idB"] - d["id0"][:, None], axis=2)
    dl_a = np.linalg.norm(d["dlA"] - d["dl0"][:, None], axis=2)
    print(
        f"{n} faces ({int((age <= 4).sum())} aged 0-4, {int((age >= 13).sum())} aged 13+), {candidates} candidates; "
        "first candidate: IdentityNet vs dlib distance to the original, correlation "
        f"{np.corrcoef(id_a[:, 0], dl_a[:, 0])[0, 1]:.3f}"
    )
    print(
        "| tau | K | retried | de-identified | ages 0-4 | ages 13+ | still a face (dlib HOG) | passwords A, B differ | "
        "same row |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for tau in TAUS:
        for k in range(1, candidates + 1):
            ca, cb = choose(id_a, tau, k), choose(id_b, tau, k)
            deid = dl_a[r, ca] > 0.6
            differ = np.linalg.norm(d["dlA"][r, ca] - d["dlB"][r, cb], axis=1) > 0.6
            same = d["rowA"][r, ca] == d["rowB"][r, cb]
            label = f"{tau:.3g}" if k > 1 else "(none)"
            if k == 1 and tau != TAUS[0]:
                continue
            print(
                f"| {label} | {k} | {np.mean(ca > 0):.1%} | {deid.mean():.1%} | {share(deid[age <= 4])} | "
                f"{share(deid[age >= 13])} | {d['hogA'][r, ca].mean():.1%} | {differ.mean():.1%} | {same.mean():.1%} |"
            )
    # the reference: dlib itself as the check (the judge; never used by the painter)
    dl_b = np.linalg.norm(d["dlB"] - d["dl0"][:, None], axis=2)
    k = min(4, candidates)
    for tau in (0.6, 0.7, 0.8):
        ca, cb = choose(dl_a, tau, k), choose(dl_b, tau, k)
        differ = np.linalg.norm(d["dlA"][r, ca] - d["dlB"][r, cb], axis=1) > 0.6
        print(
            f"dlib itself as the check at {tau}, {k} candidates: retried {np.mean(ca > 0):.1%}, "
            f"de-identified {np.mean(dl_a[r, ca] > 0.6):.1%}, passwords A, B differ {differ.mean():.1%}"
        )


def plot(d: dict[str, np.ndarray], path: str) -> None:
    """Each painted candidate's distance to its original face, dlib's (x) against the audit's IdentityNet
    (left) and the check's (right, with the check's threshold), as log-density pictures side by side."""
    from identity import density_plot
    from PIL import Image

    from anonymizer.nn.identity import IDENTITY_THRESHOLD
    from anonymizer.pipeline.surrogate import CHECK_DISTANCE

    def far(key: str) -> np.ndarray:
        return np.linalg.norm(np.concatenate([d[key + "A"], d[key + "B"]], 1) - d[key + "0"][:, None], axis=2).ravel()

    dl = far("dl")
    panels = []
    for key, name, line in (
        ("au", "audit IdentityNet", IDENTITY_THRESHOLD),
        ("id", "check IdentityNet", CHECK_DISTANCE),
    ):
        if key + "0" not in d:  # recorded before the audit's IdentityNet was
            continue
        net = far(key)
        panels.append(
            density_plot(
                dl,
                net,
                None,
                title=f"{name} vs dlib: Pearson {np.corrcoef(dl, net)[0, 1]:.3f}",
                y_threshold=line,
                px=300,
                y_label=name,
            )
        )
    out = Image.new("RGB", (sum(p.width for p in panels), panels[0].height), "white")
    for k, p in enumerate(panels):
        out.paste(p, (k * panels[0].width, 0))
    out.save(path)
    print(f"wrote {path} ({len(dl)} surrogates: distance to the original face)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="at most N held-out faces (default: all)")
    ap.add_argument(
        "--candidates", type=int, default=6, help="candidates painted per face and password (default: %(default)s)"
    )
    faces = ap.add_mutually_exclusive_group()
    faces.add_argument(
        "--training",
        action="store_true",
        help="paint training faces instead (the generator has seen them; with --limit a seeded sample): "
        "a second set on which to check a rule chosen on the held-out faces",
    )
    faces.add_argument(
        "--bank-kept-out",
        default=None,
        metavar="BANK",
        help="paint the training faces that the identity check's fine-tuning kept out of BANK "
        "(python -m anonymizer.train.identity --paint-bank; the set on which the threshold is chosen)",
    )
    ap.add_argument(
        "--identity-weights",
        default=None,
        help="IdentityNet weights (.safetensors) to record instead of the painter's check weights",
    )
    ap.add_argument(
        "--plot",
        default=None,
        help="draw the distances to the original, both IdentityNets against dlib, into this .png",
    )
    ap.add_argument("--save", default=None, help="keep the recorded descriptors in this .npz")
    ap.add_argument("--load", default=None, help="replay descriptors recorded with --save instead of painting")
    args = ap.parse_args()
    if args.candidates < 1:
        raise SystemExit("--candidates must be >= 1")
    t0 = time.perf_counter()
    if args.load:
        with np.load(args.load) as f:
            d = {k: f[k] for k in f.files}
    else:
        d = record(args.limit, args.candidates, args.training, args.bank_kept_out, args.identity_weights)
        if args.save:
            np.savez(args.save, **d)
    replay(d)
    if args.plot:
        plot(d, args.plot)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
