"""The donor bank: aligned face crops of people who do not exist, with their face meshes, for realistic
surrogate faces (issue 31).

The bank is data shipped in the repository's ``models/donors/`` (a pool built by ``python -m
anonymizer.train.donor_bank``, the bank selected from it by ``python -m anonymizer.train.donor_spread``,
described in ``models/donors.md``; non-commercial research data: the faces are StyleGAN-generated):

- ``d0000.jpg`` ...: square RGB crops, eyes level and in the same place in every crop;
- ``bank.safetensors``: ``mesh`` float32 [N, 468, 3] (MediaPipe's face mesh, x, y in crop pixels, z
  relative depth in the same unit), ``pose`` float32 [N, 3] (yaw, pitch, roll in degrees), ``lab`` float32
  [N, 3] (skin tone, CIELAB), ``presence`` float32 [N], ``triangles`` int32 [T, 3] (indices into the 468
  points, for piecewise-affine warping), ``reference`` float32 [468, 3] (the donors' frontal mean mesh),
  uint8 [N] codes ``sex``, ``group``, ``collection``, ``glasses`` (names in :data:`SEXES`, :data:`GROUPS`,
  :data:`COLLECTIONS`), and optionally float32 [N] traits ``female``, ``age`` (apparent sex and age) and
  ``hair``;
- ``index.csv``: one row per donor, in the same order (file, source file, collection, sex, group, L*, ...).

Loading reads only these files (safetensors: no unpickling) and checks that they agree; anything missing
or inconsistent is a :class:`~anonymizer.errors.WeightsError` naming the file.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import weights
from ..errors import InputError, WeightsError
from ..ops.align import similarity_fit

BANK_FILE = "bank.safetensors"
INDEX_FILE = "index.csv"
MESH_POINTS = 468
#: Code names of the uint8 fields (index = code); 0 is "not recorded" (tpdne records neither sex nor group).
SEXES = ("unknown", "female", "male")
GROUPS = ("unknown", "asian", "black", "latino", "white")
COLLECTIONS = ("generated-photos", "tpdne")
#: tensor -> (dtype, shape with "N" for the number of donors, "T" for any length)
_SPEC: dict[str, tuple[str, tuple[int | str, ...]]] = {
    "mesh": ("float32", ("N", MESH_POINTS, 3)),
    "pose": ("float32", ("N", 3)),
    "lab": ("float32", ("N", 3)),
    "presence": ("float32", ("N",)),
    "triangles": ("int32", ("T", 3)),
    "reference": ("float32", (MESH_POINTS, 3)),
}
_CODES = ("sex", "group", "collection", "glasses")
#: optional float32 [N] traits: how female (0..1) and how old (years) the donor looks
#: (:mod:`anonymizer.nn.attributes`), its :func:`~anonymizer.pipeline.donor_swap.hair_share` and its
#: :func:`~anonymizer.pipeline.donor_swap.sharpness`
_TRAITS = ("female", "age", "hair", "sharp")
#: optional float32 [N, N]: dlib's distance between every two donors (written by
#: :mod:`anonymizer.train.donor_spread`), with which the draw spreads over donors that look unalike
DISTANCES = "dlib_distance"
#: skin regions (convex hulls of mesh points): the forehead above the brows and the two cheeks
SKIN_REGIONS = (
    (69, 108, 151, 337, 299, 9),
    (117, 118, 101, 36, 205, 187, 123, 50),
    (346, 347, 330, 266, 425, 411, 352, 280),
)


def default_path() -> Path:
    """``models/donors`` in the repository (beside the shipped weights, :data:`anonymizer.weights.MODELS_DIR`)."""
    return weights.MODELS_DIR / "donors"


def _fits(shape: tuple[int, ...], spec: tuple[int | str, ...], n: int) -> bool:
    if len(shape) != len(spec):
        return False
    return all(d == "T" or (n if d == "N" else d) == g for d, g in zip(spec, shape, strict=True))


def _check_tensors(tensors: dict[str, np.ndarray], path: Path) -> int:
    """The number of donors N (the mesh's first dimension); raises WeightsError when a tensor is missing,
    has the wrong dtype or shape, or another N, or when a triangle indexes no mesh point."""
    if missing := [k for k in _SPEC if k not in tensors]:
        raise WeightsError(f"missing tensors {', '.join(missing)}; expected {', '.join(_SPEC)}", path=path)
    n = tensors["mesh"].shape[0] if tensors["mesh"].ndim else -1
    optional = [
        *((c, ("uint8", ("N",))) for c in _CODES if c in tensors),
        *((c, ("float32", ("N",))) for c in _TRAITS if c in tensors),
        *([(DISTANCES, ("float32", ("N", "N")))] if DISTANCES in tensors else []),
    ]
    for name, (dtype, shape) in [*_SPEC.items(), *optional]:
        t = tensors[name]
        if str(t.dtype) != dtype or not _fits(t.shape, shape, n):
            dims = ", ".join(str(d) for d in shape)
            raise WeightsError(
                f"{name!r} must be {dtype} [{dims}] with N = {n} (the mesh's), got {t.dtype} {list(t.shape)}", path=path
            )
    tri = tensors["triangles"]
    if len(tri) == 0 or tri.min() < 0 or tri.max() >= MESH_POINTS:
        span = f"{tri.min()}..{tri.max()}" if len(tri) else "none"
        raise WeightsError(
            f"'triangles' must index the {MESH_POINTS} mesh points, got {len(tri)} triangles, indices {span}", path=path
        )
    return n


def _read_index(path: Path, n: int) -> list[dict[str, str]]:
    if not path.is_file():
        raise WeightsError("donor index is missing", path=path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise WeightsError(f"unreadable donor index ({exc})", path=path) from exc
    if rows and "file" not in rows[0]:
        raise WeightsError(f"donor index has no 'file' column (columns: {', '.join(rows[0])})", path=path)
    if len(rows) != n:
        raise WeightsError(f"donor index has {len(rows)} rows, the bank {n} donors", path=path)
    return rows


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise WeightsError("donor image is missing", path=path)
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError) as exc:
        raise WeightsError(f"unreadable donor image ({exc})", path=path) from exc


@dataclass(frozen=True, eq=False)
class DonorBank:
    """The loaded bank (:meth:`load`); arrays in donor order, read-only.

    root: the bank's folder; files: the crops' file names; size: their side in pixels; meshes float32
    [N, 468, 3]; poses float32 [N, 3] (yaw, pitch, roll, degrees); labs float32 [N, 3]; presence float32 [N];
    triangles int32 [T, 3]; reference float32 [468, 3] (the frontal mean mesh
    :func:`head_pose` measures against); codes: uint8 [N] arrays by name (sex, group, collection, glasses;
    those present); traits: float32 [N] arrays by name (female, age, hair; those present); rows: the
    index's rows (strings); distances: float32 [N, N], dlib's distance between every two donors, or None.
    """

    root: Path
    files: tuple[str, ...]
    size: int
    meshes: np.ndarray
    poses: np.ndarray
    labs: np.ndarray
    presence: np.ndarray
    triangles: np.ndarray
    reference: np.ndarray
    codes: dict[str, np.ndarray]
    traits: dict[str, np.ndarray]
    rows: tuple[dict[str, str], ...]
    distances: np.ndarray | None = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> DonorBank:
        """Read the bank in ``path`` (default: :func:`default_path`) and check its files agree: every tensor
        of the expected dtype and shape with the same N, the index with N rows, N square crops of one size.
        Raises WeightsError naming the file at fault."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        root = Path(path) if path is not None else default_path()
        bank = root / BANK_FILE
        if not bank.is_file():
            raise WeightsError("donor bank is missing (built by python -m anonymizer.train.donor_bank)", path=bank)
        try:
            tensors = load_file(str(bank))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"not a readable safetensors file ({exc})", path=bank) from exc
        n = _check_tensors(tensors, bank)
        rows = _read_index(root / INDEX_FILE, n)
        files = tuple(r["file"] for r in rows)
        sizes = {_image_size(root / f) for f in files}
        if len(sizes) > 1 or any(w != h for w, h in sizes):
            raise WeightsError(f"donor crops must be square and of one size, got sizes {sorted(sizes)}", path=root)
        for t in tensors.values():
            t.setflags(write=False)
        return cls(
            root=root,
            files=files,
            size=sizes.pop()[0] if sizes else 0,
            meshes=tensors["mesh"],
            poses=tensors["pose"],
            labs=tensors["lab"],
            presence=tensors["presence"],
            triangles=tensors["triangles"],
            reference=tensors["reference"],
            codes={c: tensors[c] for c in _CODES if c in tensors},
            traits={c: tensors[c] for c in _TRAITS if c in tensors},
            rows=tuple(rows),
            distances=tensors.get(DISTANCES),
        )

    def __len__(self) -> int:
        return len(self.files)

    def _check(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"donor {i} out of range for a bank of {len(self)}")
        return i % len(self)

    def image(self, i: int) -> np.ndarray:
        """Donor ``i``'s crop: uint8 RGB (size, size, 3)."""
        from ..media.image import load_image

        path = self.root / self.files[self._check(i)]
        try:
            rgb = load_image(path).rgb
        except InputError as exc:
            raise WeightsError(f"unreadable donor image ({exc.reason})", path=path) from exc
        if rgb.shape != (self.size, self.size, 3):
            raise WeightsError(f"donor image is {rgb.shape}, expected ({self.size}, {self.size}, 3)", path=path)
        return rgb

    def mesh(self, i: int) -> np.ndarray:
        """Donor ``i``'s face mesh: float32 (468, 3), x, y in crop pixels, z relative depth (same unit)."""
        return self.meshes[self._check(i)]

    def pose(self, i: int) -> np.ndarray:
        """Donor ``i``'s head pose: float32 (3,) yaw, pitch, roll in degrees (models/donors.md)."""
        return self.poses[self._check(i)]

    def lab(self, i: int) -> np.ndarray:
        """Donor ``i``'s skin tone: float32 (3,) mean CIELAB L* (0..100), a*, b* of cheeks and forehead."""
        return self.labs[self._check(i)]


def skin_mask(mesh: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool [H, W] (``shape``): the forehead and both cheeks (:data:`SKIN_REGIONS`) of a face whose mesh
    (468, 2+) is in pixels of an image of that shape (:func:`bare_skin` leaves out those under a beard)."""
    mask = np.zeros(shape, np.uint8)
    for hull in _skin_hulls(mesh):
        cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _skin_hulls(mesh: np.ndarray) -> list[np.ndarray]:
    return [cv2.convexHull(np.round(mesh[list(r), :2] * 16).astype(np.int32)) for r in SKIN_REGIONS]


#: :func:`bare_skin` keeps the skin regions whose texture (median |Laplacian| of L*) is within this factor
#: of the smoothest one's: a beard, stubble, a fringe or glasses make a region rough
SMOOTH_WITHIN = 1.5
#: ... and leaves out a cheek drawn smaller than this share of the other one (in the image): the far cheek
#: of a turned head, which reaches the silhouette and takes in hair or background (a face turned 25-40
#: degrees read its skin partly from a wall and came out grey)
FAR_CHEEK = 0.5


def bare_skin(rgb: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """bool [H, W]: the skin regions of :func:`skin_mask` of the face whose mesh is in ``rgb``'s pixels (uint8
    RGB), keeping only those about as smooth as the smoothest (:data:`SMOOTH_WITHIN`): a white beard over
    the cheeks or a fringe over the forehead is not the person's skin tone; nor is the far cheek of a turned
    head (:data:`FAR_CHEEK`)."""
    h, w = rgb.shape[:2]
    masks, rough = [], []
    hulls = _skin_hulls(mesh)  # forehead, then the two cheeks
    area = [cv2.contourArea(hull) for hull in hulls]
    far = {i for i, j in ((1, 2), (2, 1)) if area[i] < FAR_CHEEK * area[j]}
    for hull in (hull for i, hull in enumerate(hulls) if i not in far):
        m = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(m, hull, 1, lineType=cv2.LINE_8, shift=4)
        ys, xs = np.nonzero(m)
        if len(xs) < 16:
            continue
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        lap = np.abs(cv2.Laplacian(cv2.GaussianBlur(grey, (3, 3), 0), cv2.CV_32F))
        masks.append(m.astype(bool))
        rough.append(float(np.median(lap[m[y0:y1, x0:x1] > 0])) + 0.5)
    out = np.zeros((h, w), bool)
    for m, r in zip(masks, rough, strict=True):
        if r <= SMOOTH_WITHIN * min(rough):
            out |= m
    return out


def skin_stats(rgb: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, spread): float64 (3,) each, CIELAB (L* 0..100, a*, b*; D65, sRGB) of ``rgb`` (uint8 RGB) over
    the pixels of ``inside`` (bool [H, W]) whose lightness lies between its 10th and 90th percentiles
    (highlights, strands of hair and shadows left out); NaN when ``inside`` is empty."""
    ys, xs = np.nonzero(inside)
    if len(xs) == 0:
        return np.full(3, np.nan), np.full(3, np.nan)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1  # only the window: photos can be large
    window = np.ascontiguousarray(rgb[y0:y1, x0:x1]).astype(np.float32) / 255
    lab = cv2.cvtColor(window, cv2.COLOR_RGB2LAB)[inside[y0:y1, x0:x1]].astype(np.float64)
    lo, hi = np.percentile(lab[:, 0], [10, 90])
    keep = lab[(lab[:, 0] >= lo) & (lab[:, 0] <= hi)]
    keep = keep if len(keep) else lab
    return keep.mean(0), keep.std(0)


def skin_lab(rgb: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """Mean CIELAB of the forehead and both cheeks (:func:`skin_mask`, :func:`skin_stats`) of the face whose
    mesh (468, 2+; pixels) lies in ``rgb`` (uint8 RGB), float64 (3,); NaN when they fall outside it. Only
    the window the regions span is masked (photos can be large, and this runs once per face)."""
    pts = mesh[[i for r in SKIN_REGIONS for i in r], :2]
    h, w = rgb.shape[:2]
    x0, y0 = (max(int(np.floor(v)) - 1, 0) for v in pts.min(0))
    x1, y1 = min(int(np.ceil(pts[:, 0].max())) + 2, w), min(int(np.ceil(pts[:, 1].max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return np.full(3, np.nan)
    local = np.asarray(mesh, np.float64)[:, :2] - (x0, y0)
    return skin_stats(rgb[y0:y1, x0:x1], skin_mask(local, (y1 - y0, x1 - x0)))[0]


def mirror_permutation(reference: np.ndarray) -> np.ndarray:
    """int64 [P]: for each point of a frontal, left-right symmetric mesh (its plane of symmetry x = 0, as the
    bank's ``reference``), the index of its mirror image, one to one (a point on the midline: itself).
    Pairs are taken nearest first after reflecting x, so that two points never claim the same mirror
    image (plain nearest neighbours did for two of the 468)."""
    ref = np.asarray(reference, np.float64)
    cost = np.linalg.norm((ref * np.array([-1.0, 1.0, 1.0]))[:, None] - ref[None], axis=-1)
    cost = np.minimum(cost, cost.T)
    pairs = np.full(len(ref), -1, np.int64)
    left = len(ref)
    for flat in np.argsort(cost, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(ref))
        if pairs[i] < 0 and pairs[j] < 0:
            pairs[i], pairs[j] = j, i
            left -= 1 if i == j else 2
            if left == 0:
                break
    return pairs


def mirrored(image: np.ndarray, mesh: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A donor's crop (uint8 [H, W, 3]) and mesh ([P, 3], x, y in its pixels) as seen in a mirror: the crop
    flipped left to right and each point where its mirror image (``pairs``, :func:`mirror_permutation`) was,
    so that point k still names the same part of the face. A head turned one way is then turned the other."""
    flipped = np.ascontiguousarray(image[:, ::-1])
    points = np.array(mesh, np.float32)[pairs]
    points[:, 0] = image.shape[1] - 1 - points[:, 0]
    return flipped, points


def head_pose(mesh: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of a mesh (468, 3; x right, y down, z away from the camera) against the
    frontal ``reference``: the rotation R of the Umeyama similarity fit reference -> mesh, read as
    R = Rz(roll) Ry(-yaw) Rx(pitch). yaw > 0: the face turns to the image's right (the nose tip moves right);
    pitch > 0: it looks down; roll > 0: it tilts clockwise as seen in the image."""
    _, r, _ = similarity_fit(reference, mesh)
    yaw = -math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0]))))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return np.array([yaw, pitch, roll])


__all__ = [
    "COLLECTIONS",
    "GROUPS",
    "SEXES",
    "SKIN_REGIONS",
    "DonorBank",
    "default_path",
    "head_pose",
    "mirror_permutation",
    "mirrored",
    "bare_skin",
    "skin_lab",
    "skin_mask",
    "skin_stats",
]
