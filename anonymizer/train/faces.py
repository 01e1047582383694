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

        return Face(box=tuple(float(v) for v in self.boxes[i]), score=float(self.scores[i]),  # type: ignore[arg-type]
                    landmarks=tuple((float(x), float(y)) for x, y in self.landmarks[i]))


def cache_path(root: Path) -> Path:
    from ..weights import home

    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    return home() / "datasets" / f"{root.name}-{tag}-v{CACHE_VERSION}.npz"


def prepare_faces(root: str | Path, *, with_dlib: bool = True, progress: bool = True, limit: int | None = None) -> FaceSet:
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
            return FaceSet(root, z["names"][:n], z["boxes"][:n], z["landmarks"][:n], z["scores"][:n], z["descriptors"][:n], z["held_out"][:n])
    from tqdm import tqdm

    from ..api import get_finder

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
        face = min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - w / 2) ** 2 + ((f.box[1] + f.box[3]) / 2 - h / 2) ** 2 - 1e4 * f.score)
        boxes[i] = face.box
        lms[i] = face.landmarks
        scores[i] = face.score
        if rec is not None:
            desc[i] = rec.embed(rgb, face)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez(tmp, names=fs.names, boxes=boxes, landmarks=lms, scores=scores, descriptors=desc,
             held_out=fs.held_out, with_dlib=np.asarray(with_dlib))
    tmp.replace(cache)
    log.info("cached %d faces in %s", n, cache)
    return fs
