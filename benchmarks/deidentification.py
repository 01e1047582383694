"""De-identification by method: how often dlib can no longer match the anonymized face to the original,
and how often the output still looks like a face.

    python benchmarks/deidentification.py [--limit N] [--dev] [--methods solid pixelate blur surrogate]
        [--surrogate-weights W.safetensors] [--extra-pairs N] [--no-identity-check] [--picture models/surrogate.png]

Faces: the fixed held-out tenth of ../shared/data/faces-utk (anonymizer.train.faces.is_held_out), with
our detector's face in each 200x200 crop; ``--dev`` measures every ninth face outside that tenth instead
(about as many faces, never the held-out ones: tune there, report the held-out figures). Each face is
covered with the method at the defaults of `anonymizer anonymize` (ellipse mask, scale 1.5).
"De-identified": dlib's descriptor of the output, taken at the original face's box (the attacker knows where
the face was), is more than 0.6 from the original's. "Still a face": dlib's own HOG detector (upsampling once)
finds a face in the output, and, separately, our detector finds one with score >= 0.5.

``surrogate`` replaces the face by a donor's (anonymizer.pipeline.donor_painter, as `anonymize --method
surrogate` does) chosen by password A; it also reports the share of faces whose surrogates for passwords
A and B are different people to dlib (distance > 0.6), whether painting again with A gives byte-identical
output, and whether the whole `anonymize_image` (detector included) gives the same pixels with 1 and 2
torch threads; and, with a bank that records its donors' looks, how often password A's donor has the
face's labelled sex and how far its apparent age is from the face's labelled age, beside a draw blind to
looks. ``--surrogate-weights`` measures the earlier generator (anonymizer.pipeline.surrogate) with
those weights instead; its identity check (IdentityNet) is on, as it was in `anonymize`;
``--no-identity-check`` paints every track's first candidate instead.
``--extra-pairs N`` measures "passwords differ" on N more pairs of passwords as well (one pair leaves
about one point of sampling noise on 891 faces).

``stranger`` (never a default; research only) is the ceiling of any surrogate painted through this
mask: it paints the face region of a *real* other person of the same age group and sex (held-out faces,
aligned the same way) through the surrogate pipeline (colour matching, SRGAN, blending), and a second
stranger for "passwords differ". A perfect generator of natural faces would score about this.

``--picture`` draws the public-domain faces in samples/ beside their surrogates for three passwords (no
research data goes into the repository) and exits.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _data import DATA, require
from tqdm import tqdm

from anonymizer.api import get_finder
from anonymizer.audit.recognizers import DlibRecognizer, distance
from anonymizer.nn.runtime import configure_runtime
from anonymizer.ops.replace import METHODS
from anonymizer.pipeline.photo import cover_faces
from anonymizer.train.faces import age_of, prepare_faces
from anonymizer.vault.surrogate import SurrogateSeed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="at most N held-out faces (default: all)")
    ap.add_argument(
        "--methods",
        nargs="*",
        default=None,
        help="default: solid pixelate blur, and surrogate when trained; stranger: the real-stranger ceiling",
    )
    ap.add_argument("--surrogate-weights", default=None, help="evaluate the surrogate generator with these weights")
    ap.add_argument(
        "--extra-pairs",
        type=int,
        default=0,
        help="surrogate: also measure 'passwords differ' over N more pairs of passwords, for a tighter "
        "estimate (each pair paints every face twice more; default: %(default)s)",
    )
    ap.add_argument(
        "--no-identity-check",
        action="store_true",
        help="surrogate: paint each track's first candidate, without the painter's identity check",
    )
    ap.add_argument(
        "--dev",
        action="store_true",
        help="every ninth face outside the held-out split instead of the held-out faces (for tuning)",
    )
    ap.add_argument(
        "--picture", default=None, help="only draw sample faces and their surrogates for three passwords (PNG)"
    )
    args = ap.parse_args()
    if args.extra_pairs < 0:
        raise SystemExit("--extra-pairs must be >= 0")
    if args.picture is not None:
        painter = surrogate_painter(args.surrogate_weights, not args.no_identity_check)
        if painter is None:
            raise SystemExit("surrogate: no trained weights in models/ (pass --surrogate-weights)")
        picture(painter, args.picture)
        return
    painter = None
    if args.surrogate_weights or args.methods is None or "surrogate" in args.methods:
        painter = surrogate_painter(args.surrogate_weights, not args.no_identity_check)
    methods = args.methods or [*METHODS, *(["surrogate"] if painter is not None else [])]
    if "surrogate" in methods and painter is None:
        raise SystemExit("surrogate: no trained weights in models/ (pass --surrogate-weights)")
    configure_runtime(2)
    rec = DlibRecognizer()
    finder = get_finder(threshold=0.3, upscale=0.0)
    fs = prepare_faces(require(DATA / "faces-utk"))
    ok = (~fs.held_out if args.dev else fs.held_out) & np.isfinite(fs.descriptors).all(1)
    idx = np.flatnonzero(ok)[:: 9 if args.dev else 1][: args.limit]
    rows = []
    t0 = time.perf_counter()
    base_dlib = np.mean([rec.count_faces(fs.load_rgb(i)) > 0 for i in idx])
    seeds = (SurrogateSeed.from_password("benchmark password A"), SurrogateSeed.from_password("benchmark password B"))
    extra = [
        (
            SurrogateSeed.from_password(f"benchmark password A{k}"),
            SurrogateSeed.from_password(f"benchmark password B{k}"),
        )
        for k in range(1, args.extra_pairs + 1)
    ]
    ages = np.array([age_of(str(fs.names[i])) for i in idx])
    per_group: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
    strangers = Strangers(fs, np.flatnonzero(ok)) if "stranger" in methods else None
    for method in methods:
        same_bytes = 0
        dists = []
        misses = []
        flags: dict[str, list[bool]] = {
            "deid": [],
            "dlib": [],
            "ours": [],
            "differ": [],
            "differ_extra": [],
            "threads": [],
        }
        donors: list[int] = []
        unsteady: list[str] = []  # faces whose pixels depend on the thread count
        for i in tqdm(idx, desc=method, unit="face"):
            rgb = fs.load_rgb(i)
            face = fs.face(i)
            if method == "surrogate":
                assert painter is not None
                ctx = rgb.tobytes()  # as anonymize_image does: the photo's digest mixed into the seed
                chosen: dict[int, int] = {}
                out = painter.paint(rgb, [face], seeds[0].for_context(ctx), choices=chosen)[0]
                if chosen:
                    donors.append(painter.donor_of(chosen[0]))
                other = painter.paint(rgb, [face], seeds[1].for_context(ctx))[0]
                flags["differ"].append(distance(rec.embed(out, face), rec.embed(other, face)) > 0.6)
                same_bytes += out.tobytes() == painter.paint(rgb, [face], seeds[0].for_context(ctx))[0].tobytes()
                flags["threads"].append(same_at_any_thread_count(rgb, seeds[0]))
                if not flags["threads"][-1]:
                    unsteady.append(str(fs.names[i]))
                for sa, sb in extra:
                    ea = rec.embed(painter.paint(rgb, [face], sa.for_context(ctx))[0], face)
                    eb = rec.embed(painter.paint(rgb, [face], sb.for_context(ctx))[0], face)
                    flags["differ_extra"].append(distance(ea, eb) > 0.6)
            elif method == "stranger":
                assert strangers is not None
                out, other = strangers.paint(i, rgb, face)
                flags["differ"].append(distance(rec.embed(out, face), rec.embed(other, face)) > 0.6)
            else:
                out, _, _ = cover_faces(rgb, [face], method=method)
            d = distance(fs.descriptors[i], rec.embed(out, face))
            dists.append(d)
            if d <= 0.6:
                misses.append(f"{fs.names[i]} ({d:.3f})")
            flags["deid"].append(d > 0.6)
            flags["dlib"].append(rec.count_faces(out) > 0)
            flags["ours"].append(any(f.score >= 0.5 for f in finder.find(out)))
        deid, dlib_face, our_face = (np.array(flags[k]) for k in ("deid", "dlib", "ours"))
        differ = np.array(flags["differ"]) if flags["differ"] else None
        per_group.append((method, deid, dlib_face, our_face, differ))
        rows.append((method, deid.mean(), float(np.median(dists)), dlib_face.mean(), our_face.mean()))
        if method == "surrogate":
            print(
                f"surrogate: passwords A and B give different people (dlib > 0.6) for {np.mean(flags['differ']):.1%} "
                "of faces; "
                f"the same password gives byte-identical output for {same_bytes / len(idx):.1%}; anonymize_image "
                f"gives the same pixels with 1 and 2 threads for {np.mean(flags['threads']):.1%}"
            )
            if unsteady:
                print(f"surrogate: other pixels at 1 and 2 threads: {', '.join(unsteady)}")
            if len(donors) == len(idx):
                looks_report(painter, donors, idx, fs.names)
            if extra:
                every = np.array(flags["differ"] + flags["differ_extra"])
                se = float(np.sqrt(every.mean() * (1 - every.mean()) / len(every)))
                print(
                    f"surrogate: over {1 + len(extra)} pairs of passwords, different people for {every.mean():.1%} of "
                    f"(face, pair) (+-{se:.1%} standard error if the pairs were independent; the extra pairs alone "
                    f"{np.mean(flags['differ_extra']):.1%})"
                )
        if misses:
            # faces-utk names start with the age: dlib's descriptors of infants sit close together
            print(f"{method}: not de-identified: {', '.join(misses)}")
    print(
        f"faces-utk {'dev' if args.dev else 'held-out'}: {len(idx)} faces; dlib's detector finds a face in "
        f"{base_dlib:.1%} of the originals "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    print(
        "| method | de-identified (dlib distance > 0.6) | median distance | still a face (dlib HOG) | still a face "
        "(ours, score >= 0.5) |"
    )
    print("|---|---|---|---|---|")
    for method, deid, med, dlib_face, our_face in rows:
        print(f"| {method} | {deid:.1%} | {med:.3f} | {dlib_face:.1%} | {our_face:.1%} |")
    by_age(per_group, ages, fs.descriptors[idx])


AGE_GROUPS = ((0, 4), (5, 12), (13, 200))


def looks_report(painter, donors: list[int], idx: np.ndarray, names: np.ndarray) -> None:  # noqa: ANN001 (a DonorPainter)
    """How well the donors (password A's) suit the faces by their faces-utk labels: the share whose
    apparent sex (the bank's ``female`` trait) is the face's labelled sex, and the median gap between the
    donor's apparent age and the face's labelled age; beside what a draw that ignores looks would give
    (every face against every suitable donor)."""
    traits = getattr(getattr(painter, "bank", None), "traits", {})
    if "female" not in traits or "age" not in traits:
        return
    from anonymizer.train.attributes import labels

    female, age = traits["female"] > 0.5, traits["age"]
    ages, sexes = labels(names[idx])
    years, sex = ages.astype(np.float64), sexes == 1
    pool = np.flatnonzero(painter.weights > 0)
    for label, sel in (("all ages", years >= 0), ("13 and up", years >= 13)):
        d = np.asarray(donors)[sel]
        blind_sex = np.mean([(female[pool] == s).mean() for s in sex[sel]])
        blind_age = np.median(np.abs(age[pool][None] - years[sel][:, None]))
        print(
            f"surrogate looks, {label} ({int(sel.sum())} faces): the donor's apparent sex is the face's labelled "
            f"sex for {np.mean(female[d] == sex[sel]):.1%} (a draw blind to looks: {blind_sex:.1%}); median "
            f"|donor's apparent age - labelled age| {np.median(np.abs(age[d] - years[sel])):.1f} years (blind: "
            f"{blind_age:.1f})"
        )


def same_at_any_thread_count(rgb: np.ndarray, seed: SurrogateSeed) -> bool:
    """Whether ``anonymize_image(rgb, method="surrogate")`` (detection included) gives the same pixels with 1
    and with 2 torch threads (the painter ``get_painter`` returns)."""
    import torch

    from anonymizer.api import anonymize_image

    outs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        outs.append(anonymize_image(rgb, method="surrogate", surrogate_seed=seed).image.tobytes())
    return outs[0] == outs[1]


class Strangers:
    """The ``stranger`` ceiling: each face gets the face region of two real other held-out people of its
    age group and sex (fixed random picks), painted through the surrogate pipeline in place of the
    generator's output."""

    def __init__(self, fs, pool: np.ndarray) -> None:  # noqa: ANN001 (a FaceSet)
        import torch

        from anonymizer.pipeline.surrogate import SurrogatePainter

        class Donor(torch.nn.Module):
            crop: np.ndarray

            def forward(self, image, mask, heatmaps, code):  # noqa: ANN001, ANN202 (the generator's signature)
                d = torch.from_numpy(self.crop).permute(2, 0, 1)[None].float() / 255.0
                return image * (1 - mask) + d * mask

        self.fs, self.pool = fs, pool
        self.donor = Donor()
        self.painter = SurrogatePainter(generator=self.donor, identity_check=False)  # a stranger, as drawn
        names = [str(fs.names[j]) for j in pool]
        groups = [next(k for k, (lo, hi) in enumerate(AGE_GROUPS) if lo <= age_of(n) <= hi) for n in names]
        self.kind = np.array([f"{g}_{n.split('_')[1]}" for g, n in zip(groups, names, strict=True)])
        self.rng = np.random.default_rng(0)

    def _crop(self, j: int) -> np.ndarray:
        import cv2

        from anonymizer.nn.surrogate import SURROGATE_SIZE, crop_template
        from anonymizer.ops.align import similarity_transform

        m = similarity_transform(self.fs.landmarks[j].astype(np.float64), crop_template())
        return cv2.warpAffine(
            self.fs.load_rgb(j),
            m,
            (SURROGATE_SIZE, SURROGATE_SIZE),
            flags=cv2.INTER_AREA,
            borderMode=cv2.BORDER_REPLICATE,
        )

    def paint(self, i: int, rgb: np.ndarray, face) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001 (a Face)
        k = int(np.flatnonzero(self.pool == i)[0])
        same = np.flatnonzero((self.kind == self.kind[k]) & (np.arange(len(self.pool)) != k))
        seed = SurrogateSeed.from_password("unused")
        outs = []
        for j in self.rng.choice(same, 2, replace=False):
            self.donor.crop = self._crop(int(self.pool[j]))
            outs.append(self.painter.paint(rgb, [face], seed)[0])
        return outs[0], outs[1]


def by_age(
    per_group: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]],
    ages: np.ndarray,
    descriptors: np.ndarray,
) -> None:
    """The same shares per age group, beside the natural ceiling: how often two *real* different people of
    the same age group are more than 0.6 apart for dlib (all pairs of held-out faces). No method that draws
    a natural face of the same age can be expected to beat that share on "passwords differ", and a
    de-identified share above it means the method moves faces further than a stranger would."""
    print("\nby age group (faces-utk names carry the age):")
    print(
        "| method | ages | faces | de-identified | still a face (dlib HOG) | still a face (ours) | passwords differ | "
        "real strangers of that age > 0.6 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for lo, hi in AGE_GROUPS:
        sel = (ages >= lo) & (ages <= hi)
        if not sel.any():
            continue
        sub = descriptors[sel]
        pair = np.linalg.norm(sub[:, None] - sub[None], axis=2)[np.triu_indices(int(sel.sum()), k=1)]
        strangers = f"{np.mean(pair > 0.6):.1%}" if len(pair) else "-"
        label = f"{lo}-{hi}" if hi < 200 else f"{lo}+"
        for method, deid, dlib_face, our_face, differ in per_group:
            apart = f"{differ[sel].mean():.1%}" if differ is not None else "-"
            print(
                f"| {method} | {label} | {int(sel.sum())} | {deid[sel].mean():.1%} | {dlib_face[sel].mean():.1%} | "
                f"{our_face[sel].mean():.1%} | {apart} | {strangers} |"
            )


PICTURE_PASSWORDS = ("correct horse battery staple", "Tr0ub4dor&3", "another password entirely")


def picture(painter, path: str) -> None:  # noqa: ANN001 (a SurrogatePainter)
    """Rows: faces from samples/; columns: the original, then its surrogate for each of three passwords.
    Prints, per face, each password's candidate and palette row (and its network) and dlib's distances."""
    from _data import ROOT
    from PIL import Image, ImageDraw

    from anonymizer.media.image import load_image

    finder = get_finder()
    rec = DlibRecognizer()
    seeds = [SurrogateSeed.from_password(p) for p in PICTURE_PASSWORDS]
    rows = []
    for name, count in (("grace_hopper.jpg", 1), ("astronaut.png", 1), ("group_solvay_1927_closeup.jpg", 2)):
        rgb = load_image(ROOT / "samples" / name).rgb
        faces = sorted(finder.find(rgb), key=lambda f: -f.width)[:count]
        choices: list[dict[int, int]] = [{} for _ in seeds]
        ctx = rgb.tobytes()  # as anonymize_image does: the photo's digest mixed into the seed
        outs = [
            painter.paint(rgb, faces, seed.for_context(ctx), choices=ch)[0]
            for seed, ch in zip(seeds, choices, strict=True)
        ]
        for track, face in enumerate(faces):
            ref = rec.embed(rgb, face)
            embs = [rec.embed(out, face) for out in outs]
            said = []
            for k, (seed, ch, emb) in enumerate(zip(seeds, choices, embs, strict=True)):
                if not hasattr(painter, "candidate_row"):  # the donor painter: choices name the donor
                    said.append(f"password {k + 1}: donor {ch.get(track)}, {distance(ref, emb):.2f} from the original")
                    continue
                attempt = ch.get(track, 0)
                row, net = (
                    painter.candidate_row(seed.for_context(ctx), track, attempt),
                    painter.candidate(seed.for_context(ctx), track, attempt)[1],
                )
                said.append(
                    f"password {k + 1}: candidate {attempt}, row {row} (network {net}), "
                    f"{distance(ref, emb):.2f} from the original"
                )
            apart = ", ".join(f"{a + 1}-{b + 1} {distance(embs[a], embs[b]):.2f}" for a, b in ((0, 1), (0, 2), (1, 2)))
            print(f"{name} face {track}: " + "; ".join(said) + f"; passwords apart (dlib): {apart}")
            cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
            half = max(face.width, face.height) * 0.8
            box = tuple(int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half))
            tiles = []
            for label, img in zip(("original", "password 1", "password 2", "password 3"), [rgb, *outs], strict=True):
                t = Image.fromarray(img).crop(box).resize((192, 192), Image.Resampling.LANCZOS)
                d = ImageDraw.Draw(t)
                d.rectangle([0, 0, 191, 14], fill=(0, 0, 0))
                d.text((3, 2), label, fill=(255, 255, 255))
                tiles.append(np.asarray(t))
            rows.append(np.concatenate(tiles, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    print(f"picture: {path} (faces from samples/; passwords {', '.join(repr(p) for p in PICTURE_PASSWORDS)})")


def surrogate_painter(weights_file: str | None, identity_check: bool = True):  # noqa: ANN201 (a painter or None)
    """The donor painter `anonymize` uses (without its identity check when ``identity_check`` is False);
    with ``weights_file`` the earlier generator's painter with those weights."""
    from anonymizer.errors import WeightsError
    from anonymizer.nn.surrogate import SurrogateGenerator
    from anonymizer.pipeline.surrogate import SurrogatePainter

    if weights_file is not None:
        from safetensors.torch import load_file

        gen = SurrogateGenerator()
        gen.load_state_dict(load_file(weights_file))
        return SurrogatePainter(generator=gen, identity_check=identity_check)
    try:
        from anonymizer.api import get_painter
        from anonymizer.pipeline.donor_painter import DonorPainter

        return get_painter() if identity_check else DonorPainter(identity_check=False)
    except WeightsError:
        return None


if __name__ == "__main__":
    main()
