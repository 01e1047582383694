"""The faces-utk training set, prepared once: our detector's box and 5 landmarks per face, and (when the
audit extra is installed) dlib's 128-d descriptor, cached outside the repository.

The data is research-only (../shared/data/README.md): the cache lives in ``$ANONYMIZER_HOME/datasets``,
never in the project tree. The held-out part is fixed by file name (sha256 of the name, 1 in 10), so it
does not depend on the order of files or on which other files are present.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def is_held_out(name: str) -> bool:
    """The fixed held-out tenth of faces-utk (by file name)."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 10 == 0


def age_of(name: str) -> int:
    """faces-utk names start with the age in years (``23_1_0_2017....jpg.chip.jpg``); -1 when a name does
    not."""
    head = name.split("_", 1)[0]
    return int(head) if head.isdigit() else -1


@dataclass
class FaceSet:
    """names (N,), boxes float32 (N, 4), landmarks float32 (N, 5, 2), scores (N,), descriptors float32
    (N, 128) (NaN rows where dlib found nothing or was not run), held_out bool (N,)."""

    root: Path
    names: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray
    held_out: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def load_rgb(self, i: int) -> np.ndarray:
        from ..media.image import load_image

        return load_image(self.root / str(self.names[i])).rgb

    def face(self, i: int):  # noqa: ANN201 (a Face; imported lazily)
        from ..types import Face

        x1, y1, x2, y2 = self.boxes[i]
        return Face(
            box=(float(x1), float(y1), float(x2), float(y2)),
            score=float(self.scores[i]),
            landmarks=tuple((float(x), float(y)) for x, y in self.landmarks[i]),
        )


def cache_path(root: Path) -> Path:
    from ..weights import home

    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    return home() / "datasets" / f"{root.name}-{tag}-v{CACHE_VERSION}.npz"


def prepare_faces(
    root: str | Path, *, with_dlib: bool = True, progress: bool = True, limit: int | None = None
) -> FaceSet:
    """Detect (and describe with dlib) every face crop in ``root`` once; later calls read the cache."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("faces folder not found (the research data lives in ../shared/data)", path=root)
    names = sorted(p.name for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if limit is not None:
        names = names[:limit]
    cache = cache_path(root)
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        cached = list(z["names"])
        if cached[: len(names)] == names and (not with_dlib or bool(z["with_dlib"])):
            n = len(names)
            return FaceSet(
                root,
                z["names"][:n],
                z["boxes"][:n],
                z["landmarks"][:n],
                z["scores"][:n],
                z["descriptors"][:n],
                z["held_out"][:n],
            )
    from tqdm import tqdm

    from ..pipeline.models import get_finder

    finder = get_finder(threshold=0.3, upscale=0.0)
    rec = None
    if with_dlib:
        from ..audit.recognizers import DlibRecognizer

        rec = DlibRecognizer()
    n = len(names)
    boxes = np.full((n, 4), np.nan, np.float32)
    lms = np.full((n, 5, 2), np.nan, np.float32)
    scores = np.zeros(n, np.float32)
    desc = np.full((n, 128), np.nan, np.float32)
    fs = FaceSet(root, np.asarray(names), boxes, lms, scores, desc, np.asarray([is_held_out(x) for x in names]))
    for i in tqdm(range(n), desc=f"preparing {root.name}", unit="face", disable=not progress):
        rgb = fs.load_rgb(i)
        faces = finder.find(rgb)
        if not faces:
            continue
        h, w = rgb.shape[:2]
        # the crop's own face: the one nearest the centre among the confident ones
        face = min(
            faces,
            key=lambda f: (
                ((f.box[0] + f.box[2]) / 2 - w / 2) ** 2 + ((f.box[1] + f.box[3]) / 2 - h / 2) ** 2 - 1e4 * f.score
            ),
        )
        boxes[i] = face.box
        lms[i] = face.landmarks
        scores[i] = face.score
        if rec is not None:
            desc[i] = rec.embed(rgb, face)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez(
        tmp,
        names=fs.names,
        boxes=boxes,
        landmarks=lms,
        scores=scores,
        descriptors=desc,
        held_out=fs.held_out,
        with_dlib=np.asarray(with_dlib),
    )
    tmp.replace(cache)
    log.info("cached %d faces in %s", n, cache)
    return fs


def subset(root: str | Path, out: str | Path, *, train: int, held_out: int, seed: int = 0) -> tuple[int, int]:
    """Copy a seeded random pick of ``train`` training faces and the first ``held_out`` held-out faces
    (those with landmarks, in name order: the dev faces the trainers take first) of ``root``, byte for
    byte, into the new folder ``out``, with a slim faces cache ``out/faces-cache.npz`` (names, landmarks;
    for the trainers' ``--faces-cache``). For carrying training data to a machine with a size limit (the
    lent GPU machine takes 64 MiB with the repository). Returns (training, held-out) faces copied."""
    import shutil

    root, out = Path(root), Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError("output folder exists and is not empty (nothing is overwritten)", path=out)
    fs = prepare_faces(root, with_dlib=False)
    ok = [i for i in range(len(fs)) if np.isfinite(fs.landmarks[i]).all() and (root / str(fs.names[i])).is_file()]
    tr = [i for i in ok if not fs.held_out[i]]
    ho = [i for i in ok if fs.held_out[i]][:held_out]
    tr = sorted(np.random.default_rng(seed).choice(tr, min(train, len(tr)), replace=False).tolist())
    keep = sorted(tr + ho)
    out.mkdir(parents=True, exist_ok=True)
    for i in keep:
        shutil.copyfile(root / str(fs.names[i]), out / str(fs.names[i]))
    tmp = out / "faces-cache.tmp.npz"
    np.savez(tmp, names=fs.names[keep], landmarks=fs.landmarks[keep])
    tmp.replace(out / "faces-cache.npz")
    return len(tr), len(ho)


def main(argv: list[str] | None = None) -> None:
    """``python -m anonymizer.train.faces --subset OUT --train N --held-out M``: see :func:`subset`."""
    import argparse

    ap = argparse.ArgumentParser(
        description="Copy a seeded subset of a faces folder with a slim faces cache "
        "(for a machine that takes less data). The data stays research-only: keep OUT "
        "out of the repository's history."
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data/faces-utk"), help="default: %(default)s")
    ap.add_argument("--subset", type=Path, required=True, help="the new folder (must not exist or be empty)")
    ap.add_argument("--train", type=int, required=True, help="training faces, a seeded random pick")
    ap.add_argument("--held-out", type=int, default=300, help="the first held-out faces (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    args = ap.parse_args(argv)
    try:
        n_train, n_held = subset(args.data, args.subset, train=args.train, held_out=args.held_out, seed=args.seed)
    except InputError as e:
        raise SystemExit(str(e)) from None
    size = sum(p.stat().st_size for p in args.subset.iterdir()) / 2**20
    print(
        f"{args.subset}: {n_train} training and {n_held} held-out faces, {size:.1f} MiB "
        f"(--data {args.subset} --faces-cache {args.subset / 'faces-cache.npz'})"
    )


if __name__ == "__main__":
    main()
