"""Build the donor pool: aligned crops of StyleGAN-made faces (people who do not exist) with their face
meshes, for realistic surrogate faces (issue 31). The shipped bank is a selection from it
(:mod:`anonymizer.train.donor_spread`):

    python -m anonymizer.train.donor_bank --data ../shared/data/donors --out /tmp/donor_pool --cache /tmp/donor_det.npz
    python -m anonymizer.train.donor_spread --pool /tmp/donor_pool --keep 400 --out models/donors

For every photo of ``--data`` (its ``generated-photos/`` and ``tpdne/`` collections, see their SOURCE.md):
1. Detect faces (the default finder at threshold 0.5); a photo is kept only with exactly one face.
2. Crop: MediaPipe's region of interest (:func:`anonymizer.nn.facemesh.mesh_crop_matrix`: a square 1.5x
   the box's longer side, centred, eyes level) warped into ``--size`` pixels, the face mesh run on it
   (resized to 192), and then the region taken again from the mesh itself, as MediaPipe's tracking does
   from one frame to the next (:func:`refined_crop_matrix`: eyes level from the mesh's eye corners,
   the square 1.5x the detector box's average size measured on the mesh, the eyes always in the same place),
   and meshed once more.
   The detector's box moves with hair and forehead, so the first crops put the eyes at different heights;
   the refined ones put every face in the same place.
3. Measure: presence; head pose (yaw, pitch, roll in degrees, :func:`head_pose`: the rotation of a
   similarity (Umeyama) fit of the 3D mesh against a left-right symmetric mean mesh of all the photos;
   pitch 0 is the average donor's pitch); skin tone (:func:`skin_lab`, CIELAB of the cheeks and the
   forehead); the lip gap (inner lips apart over the face height); whether the whole mesh is in the crop
   and in the photo (the crop's border is the photo mirrored: no part of a donor's face is);
   whether the face looks to wear glasses (:func:`glasses_score`, a horizontal edge across the nose bridge).
4. Select ``--count`` donors (default: all) among those with presence >= 0.9, |yaw| and |pitch| <= 18
   degrees, the mouth not wide open and the mesh inside the crop: round robin (seeded) over strata of
   group (female / male of generated-photos, tpdne whose sex is not recorded) x five equal-width L* bins,
   so dark and light skin and both collections are all well represented, whatever their share.
5. Write ``--out``: ``d0000.jpg`` ... (JPEG quality 90), ``bank.safetensors`` (mesh, pose, lab, presence,
   sex, group, collection, glasses, reference, triangles) and ``index.csv``; and the contact sheet
   ``--sheet`` (default: ``<out>.png`` beside the folder).

Photos' detections can be cached across runs with ``--cache`` (keep it out of the repository, e.g. in /tmp).
The images are non-commercial research data (see models/donors.md).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import time
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..media.files import write_atomic
from ..nn.facemesh import MESH_INPUT, MESH_LEFT_EYE, MESH_RIGHT_EYE, FaceMesh, mesh_crop_matrix
from ..ops.align import similarity_fit, similarity_onto
from ..pipeline.donors import BANK_FILE, COLLECTIONS, GROUPS, INDEX_FILE, SEXES, head_pose, skin_lab

DETECT_THRESHOLD = 0.5
MIN_PRESENCE = 0.9
#: turned or nodding further than this (degrees) is not used: the far side of the face would be stretched
MAX_YAW = 18.0
MAX_PITCH = 18.0
#: inner lips (13, 14) apart by at most this share of the face height (10 -> 152): closed, smiling or
#: showing teeth, not a mouth wide open (0.02 kept closed mouths only: 755 eligible photos; rendered
#: smiles with teeth look as natural, and dlib tells the larger pool's faces apart more often)
MAX_LIP_GAP = 0.08
#: The detector's box: its longer side is this many times the mesh's face height (forehead 10 -> chin 152),
#: median of 80 photos (1.10 in both collections, standard deviation 0.02-0.04).
BOX_OVER_FACE = 1.1
#: The refined crop's side over the mesh's face height: MediaPipe's 1.5x the (average) detector box.
REFINED_SIDE = 1.5 * BOX_OVER_FACE
#: Where the refined crop puts the point halfway between the eye centres and the chin, as shares of its
#: side: the eyes come about 0.42 from the top, where MediaPipe's crop puts them on average.
REFINED_CENTRE = (0.5, 0.62)
L_BINS = 5
#: :func:`glasses_score` above this: the face looks to wear glasses (checked by eye on the photos' scores:
#: framed glasses mostly above, faces without glasses mostly below)
GLASSES_ABOVE = 2.5
#: triangles on the triangulation's boundary with an angle under this (degrees) are dropped (slivers)
MIN_HULL_ANGLE = 10.0

MESH_FOREHEAD_TOP = 10
MESH_CHIN = 152
MESH_LIP_UPPER = 13
MESH_LIP_LOWER = 14

DETECTIONS_VERSION = 1


@dataclass(frozen=True)
class Photo:
    """One donor photo: its path, collection and, where the collection records them, sex and group."""

    path: Path
    collection: str
    sex: str = "unknown"
    group: str = "unknown"

    @property
    def name(self) -> str:
        return f"{self.collection}/{self.path.name}"


def list_photos(root: Path) -> list[Photo]:
    """Every photo of ``root``'s collections, in name order; generated-photos' sex and group from its index.csv."""
    photos: list[Photo] = []
    gp = root / "generated-photos"
    with open(gp / "index.csv", newline="") as f:
        meta = {row["file"]: row for row in csv.DictReader(f)}
    for p in sorted(gp.glob("*.jpg")):
        row = meta.get(p.name, {})
        photos.append(Photo(p, "generated-photos", row.get("sex", "unknown"), row.get("group", "unknown")))
    tp = root / "tpdne"
    photos += [Photo(p, "tpdne") for p in sorted(tp.glob("*.jpg"), key=lambda p: (len(p.stem), p.stem))]
    return photos


def detect_all(photos: list[Photo], cache: Path | None) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(faces found (-1: unreadable), box (4,), five landmarks (5, 2)) of the most confident face of each
    photo, NaN when none; from ``cache`` when it holds the same photos."""
    from tqdm import tqdm

    from ..errors import InputError
    from ..media.image import load_image
    from ..pipeline.models import get_finder

    names = np.asarray([p.name for p in photos])
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if int(z["version"]) == DETECTIONS_VERSION and np.array_equal(z["names"], names):
            return list(zip(z["counts"].tolist(), z["boxes"], z["landmarks"], strict=True))
    finder = get_finder(threshold=DETECT_THRESHOLD)
    counts = np.zeros(len(photos), np.int64)
    boxes = np.full((len(photos), 4), np.nan)
    lms = np.full((len(photos), 5, 2), np.nan)
    for i, p in enumerate(tqdm(photos, desc="detecting", unit="photo")):
        try:
            faces = finder.find(load_image(p.path).rgb)
        except InputError:
            counts[i] = -1
            continue
        counts[i] = len(faces)
        if faces:
            best = max(faces, key=lambda f: f.score)
            boxes[i], lms[i] = best.box, best.landmarks
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, version=DETECTIONS_VERSION, names=names, counts=counts, boxes=boxes, landmarks=lms)
        tmp.replace(cache)
    return list(zip(counts.tolist(), boxes, lms, strict=True))


def run_mesh(net: FaceMesh, crop: np.ndarray) -> tuple[np.ndarray, float]:
    """(mesh float64 (468, 3) in pixels of ``crop``, presence) for a square RGB uint8 crop of any side."""
    side = crop.shape[0]
    small = cv2.resize(crop, (MESH_INPUT, MESH_INPUT), interpolation=cv2.INTER_AREA) if side != MESH_INPUT else crop
    x = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        out = net(x)
    return out.landmarks[0].double().numpy() * (side / MESH_INPUT), float(out.presence[0])


def eye_centres(mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image-left and image-right eye centres (x, y): the means of each eye's two corners."""
    return mesh[list(MESH_LEFT_EYE), :2].mean(0), mesh[list(MESH_RIGHT_EYE), :2].mean(0)


def refined_crop_matrix(mesh_xy: np.ndarray, size: int) -> np.ndarray:
    """The (2, 3) affine from photo pixels into a ``size`` crop, from a face mesh (468, 2) in the photo:
    rotated so the mesh's eyes are level, the square :data:`REFINED_SIDE` times the face height (forehead
    to chin, the mesh's longer extent), the point halfway between the eyes' midpoint and the chin at
    :data:`REFINED_CENTRE`. The same geometry as :func:`mesh_crop_matrix` (1.5x a face-sized square, eyes
    level), measured on the mesh, which is steadier than the detector's box."""
    left, right = eye_centres(mesh_xy)
    angle = math.atan2(right[1] - left[1], right[0] - left[0])
    height = float(np.linalg.norm(mesh_xy[MESH_CHIN] - mesh_xy[MESH_FOREHEAD_TOP]))
    centre = ((left + right) / 2 + mesh_xy[MESH_CHIN]) / 2
    s = size / (REFINED_SIDE * height)
    cos, sin = s * math.cos(angle), s * math.sin(angle)
    m = np.array([[cos, sin, 0.0], [-sin, cos, 0.0]])
    m[:, 2] = np.array(REFINED_CENTRE) * size - m[:, :2] @ centre
    return m


def warp(rgb: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def crop_and_mesh(
    net: FaceMesh, rgb: np.ndarray, box: np.ndarray, landmarks: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """(crop uint8 (size, size, 3), mesh (468, 3) in its pixels, presence, the photo-to-crop matrix):
    MediaPipe's crop from the detection, then the refined crop from that crop's mesh."""
    m0 = mesh_crop_matrix(box, landmarks, size=size)
    mesh0, _ = run_mesh(net, warp(rgb, m0, size))
    m = refined_crop_matrix(to_photo(mesh0[:, :2], m0), size)
    crop = warp(rgb, m, size)
    mesh, presence = run_mesh(net, crop)
    return crop, mesh, presence, m


def to_photo(xy: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Points (n, 2) of a crop mapped back into the photo through the inverse of its (2, 3) ``matrix``."""
    inv = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    return xy @ inv[:, :2].T + inv[:, 2]


def inside(xy: np.ndarray, width: int, height: int) -> bool:
    """Whether every point (n, 2) lies within an image of ``width`` x ``height`` pixels (pixel centres)."""
    return bool((xy >= 0).all() and (xy[:, 0] <= width - 1).all() and (xy[:, 1] <= height - 1).all())


def lip_gap(mesh: np.ndarray) -> float:
    """Distance between the inner lips over the face height (forehead top to chin), in the image plane."""
    gap = np.linalg.norm(mesh[MESH_LIP_LOWER, :2] - mesh[MESH_LIP_UPPER, :2])
    return float(gap / np.linalg.norm(mesh[MESH_CHIN, :2] - mesh[MESH_FOREHEAD_TOP, :2]))


def glasses_score(crop: np.ndarray, mesh: np.ndarray) -> float:
    """How much the nose bridge between the eyes looks crossed by a horizontal edge (a spectacle frame's
    bridge): the strongest row of vertical gradient in a box between the inner eye corners (their middle
    half, from half their distance above the eyes to 0.15 of it below), over the box's mean gradient.
    Above :data:`GLASSES_ABOVE`: framed glasses (rimless ones mostly score lower)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    x0, x1 = sorted((mesh[133, 0], mesh[362, 0]))
    w = x1 - x0
    yc = (mesh[133, 1] + mesh[362, 1]) / 2
    ya, yb = max(int(yc - 0.5 * w), 0), int(yc + 0.15 * w)
    xa, xb = int(x0 + 0.25 * w), int(x1 - 0.25 * w)
    box = grey[ya:yb, xa:xb]
    if box.shape[0] < 3 or box.shape[1] < 3:
        return 0.0
    gy = np.abs(cv2.Sobel(box, cv2.CV_32F, 0, 1, ksize=3))[1:-1, 1:-1]
    gx = np.abs(cv2.Sobel(box, cv2.CV_32F, 1, 0, ksize=3))[1:-1, 1:-1]
    return float(gy.mean(1).max() / ((gx.mean() + gy.mean()) / 2 + 1))


def mirror_pairs(mesh: np.ndarray) -> np.ndarray:
    """For each point of a frontal, upright mesh (468, 3), the index of its mirror image (itself on the midline):
    nearest neighbours after reflecting x about the mesh's mid-vertical, then fitting the reflection rigidly."""
    ref = mesh - mesh.mean(0)
    flipped = ref * np.array([-1.0, 1.0, 1.0])
    for _ in range(3):
        pairs = np.argmin(((flipped[:, None] - ref[None]) ** 2).sum(-1), axis=1)
        _, r, t = similarity_fit(flipped, ref[pairs])
        flipped = flipped @ r.T + t
    return pairs


def symmetric_reference(meshes: np.ndarray, iterations: int = 3) -> np.ndarray:
    """A frontal reference mesh (468, 3), centred, unit RMS radius: the generalised Procrustes mean of
    ``meshes`` (N, 468, 3) in their mean orientation, made left-right symmetric (averaged with its mirror
    image) and turned so that its plane of symmetry is x = 0: its yaw and roll are 0, its pitch is the
    meshes' average pitch."""
    norm = meshes - meshes.mean(1, keepdims=True)
    norm /= np.sqrt((norm**2).sum(-1).mean(-1))[:, None, None]
    ref = norm[0]
    for _ in range(iterations):
        ref = np.mean([similarity_onto(m, ref) for m in norm], 0)
        ref = (ref - ref.mean(0)) / np.sqrt((ref**2).sum(-1).mean())
    # the mean keeps the first mesh's orientation: turn it to the meshes' mean rotation (the rotation
    # nearest the mean of their rotation matrices)
    u, _, vt = np.linalg.svd(np.mean([similarity_fit(ref, m)[1] for m in norm], 0))
    ref = ref @ (u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt).T
    pairs = mirror_pairs(ref)
    mirrored = (ref * np.array([-1.0, 1.0, 1.0]))[pairs]
    s, r, t = similarity_fit(mirrored, ref)
    sym = (ref + s * mirrored @ r.T + t) / 2
    # the x axis: the mean direction from each point to its mirror image, across the face
    across = sym[pairs] - sym
    x = (across * np.sign(across[:, :1])).sum(0)
    x /= np.linalg.norm(x)
    y = np.array([0.0, 1.0, 0.0]) - x[1] * x
    y /= np.linalg.norm(y)
    frame = np.stack([x, y, np.cross(x, y)])
    sym = (sym - sym.mean(0)) @ frame.T
    return sym / np.sqrt((sym**2).sum(-1).mean())


def stratified_pick(strata: list[tuple[str, int]], count: int, rng: np.random.Generator) -> list[int]:
    """``count`` indices of ``strata`` (one stratum key per candidate), taken in rounds of one per stratum
    (the strata in a fresh random order each round, each stratum's members in a random order), so small
    strata are used up before large ones give more than their share."""
    members: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(strata):
        members.setdefault(key, []).append(i)
    queues = {k: list(rng.permutation(v)) for k, v in sorted(members.items())}
    picked: list[int] = []
    while len(picked) < count and any(queues.values()):
        for k in [sorted(queues)[j] for j in rng.permutation(len(queues))]:
            if queues[k] and len(picked) < count:
                picked.append(int(queues[k].pop()))
    return picked


def triangle_angles(points: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """The three inner angles (T, 3), in degrees, of triangles ``tri`` (T, 3) over ``points`` (n, 2)."""
    p = points[tri]
    u, v = np.roll(p, -1, axis=1) - p, np.roll(p, 1, axis=1) - p
    cos = (u * v).sum(-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def boundary_edges(tri: np.ndarray) -> np.ndarray:
    """bool (T, 3): edge k of triangle t (from corner k to corner k + 1) belongs to no other triangle."""
    edges = np.sort(np.stack([tri, np.roll(tri, -1, axis=1)], -1), axis=-1).reshape(-1, 2)
    _, inverse, counts = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    return (counts[inverse.reshape(-1)] == 1).reshape(tri.shape)


def triangulate(points: np.ndarray, *, min_angle: float = MIN_HULL_ANGLE) -> np.ndarray:
    """Delaunay triangles int32 (T, 3) over ``points`` (n, 2) (OpenCV's Subdiv2D), without the slivers along
    the hull: triangles with an edge on the boundary and an angle under ``min_angle`` degrees are peeled
    off until none is left (Delaunay fills the hull's shallow concavities, here the face's outline at the
    temples, with long skinny triangles that would warp background into the face). Slivers inside (the
    closed lips' inner edges, the nostrils) stay: they keep the face covered."""
    lo, hi = points.min(0) - 1, points.max(0) + 1
    subdiv = cv2.Subdiv2D(
        (
            int(math.floor(lo[0])),
            int(math.floor(lo[1])),
            int(math.ceil(hi[0] - lo[0])) + 1,
            int(math.ceil(hi[1] - lo[1])) + 1,
        )
    )
    coord: dict[tuple[float, float], int] = {}
    for i, (x, y) in enumerate(points.astype(np.float32)):
        vx, vy = subdiv.getVertex(subdiv.insert((float(x), float(y))))[0]
        coord.setdefault((float(vx), float(vy)), i)  # a repeated point is one vertex: its first index
    tris = []
    for t in subdiv.getTriangleList():
        corners = [(float(t[0]), float(t[1])), (float(t[2]), float(t[3])), (float(t[4]), float(t[5]))]
        if all(c in coord for c in corners):  # not one of the outer virtual vertices
            tris.append([coord[c] for c in corners])
    tri = np.asarray(tris, np.int32).reshape(-1, 3)
    tri = tri[(tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])]
    while len(tri):
        sliver = boundary_edges(tri).any(1) & (triangle_angles(points, tri).min(1) < min_angle)
        if not sliver.any():
            break
        tri = tri[~sliver]
    return tri


@dataclass
class Measured:
    """What the pass measured on one photo (its refined crop); ``reason`` names the first filter it failed."""

    photo: Photo
    reason: str = ""
    matrix: np.ndarray | None = None
    mesh: np.ndarray | None = None
    presence: float = 0.0
    lab: np.ndarray | None = None
    gap: float = math.nan
    glasses: float = 0.0
    pose: np.ndarray | None = None


def _known(value: np.ndarray | None) -> np.ndarray:
    """A measurement the filters guarantee (the photo passed the step that makes it)."""
    if value is None:
        raise ValueError("a photo that passed the filters lacks a measurement")
    return value


#: The filters in the order they are applied; the card reports how many photos each one removed.
REASONS = (
    "unreadable",
    "no face",
    "several faces",
    "presence < 0.9",
    "mesh outside the crop or photo",
    f"not frontal (|yaw| or |pitch| > {MAX_YAW:g})",
    "mouth open",
)


def measure_all(
    photos: list[Photo], detections: list[tuple[int, np.ndarray, np.ndarray]], net: FaceMesh, size: int
) -> tuple[list[Measured], np.ndarray]:
    """Crop, mesh and measure every photo with one face; pose against the symmetric mean of the good meshes
    (:func:`symmetric_reference`, also returned)."""
    from tqdm import tqdm

    from ..media.image import load_image

    out: list[Measured] = []
    for p, (n, box, lm) in tqdm(list(zip(photos, detections, strict=True)), desc="meshing", unit="photo"):
        m = Measured(p)
        out.append(m)
        if n < 0:
            m.reason = "unreadable"
            continue
        if n == 0:
            m.reason = "no face"
            continue
        if n > 1:
            m.reason = "several faces"
            continue
        rgb = load_image(p.path).rgb
        crop, m.mesh, m.presence, m.matrix = crop_and_mesh(net, rgb, box, lm, size)
        m.lab = skin_lab(crop, m.mesh)
        m.gap = lip_gap(m.mesh)
        m.glasses = glasses_score(crop, m.mesh)
        if m.presence < MIN_PRESENCE:
            m.reason = "presence < 0.9"
        elif not (inside(m.mesh[:, :2], size, size) and inside(to_photo(m.mesh[:, :2], m.matrix), *rgb.shape[1::-1])):
            m.reason = "mesh outside the crop or photo"
    good = [m for m in out if m.mesh is not None and not m.reason]
    reference = symmetric_reference(np.stack([_known(m.mesh) for m in good]))
    for m in out:
        if m.mesh is not None:
            m.pose = head_pose(m.mesh, reference)
            if not m.reason and (abs(m.pose[0]) > MAX_YAW or abs(m.pose[1]) > MAX_PITCH):
                m.reason = REASONS[5]
            elif not m.reason and m.gap > MAX_LIP_GAP:
                m.reason = "mouth open"
    return out, reference


def l_bins(lightness: np.ndarray) -> np.ndarray:
    """Equal-width L* bins (0 .. L_BINS - 1) between the pool's 2nd and 98th percentiles (the extremes go
    into the end bins)."""
    lo, hi = np.percentile(lightness, [2, 98])
    return np.clip(((lightness - lo) / (hi - lo) * L_BINS).astype(int), 0, L_BINS - 1)


def stratum_group(p: Photo) -> str:
    return p.sex if p.collection == "generated-photos" else p.collection


def encode_jpeg(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90, optimize=True)
    return buf.getvalue()


def draw_sheet(
    crops: list[np.ndarray],
    meshes: np.ndarray,
    triangles: np.ndarray,
    dest: Path,
    *,
    columns: int = 8,
    tile: int = 112,
    overlay: tuple[int, ...] = (0, 9, 18, 27),
) -> int:
    """A contact sheet of ``crops`` (RGB uint8, same side) in ``columns``, the triangulation drawn faintly on
    the ``overlay`` ones; written as a 256-colour PNG. Returns its size in bytes."""
    from PIL import Image

    rows = math.ceil(len(crops) / columns)
    pad = 4
    sheet = np.full((rows * (tile + pad) + pad, columns * (tile + pad) + pad, 3), 255, np.uint8)
    for i, crop in enumerate(crops):
        img = crop
        if i in overlay:
            lines = crop.copy()
            pts = np.round(meshes[i, :, :2] * 4).astype(np.int32)
            cv2.polylines(lines, [p for p in pts[triangles]], True, (255, 255, 255), 1, cv2.LINE_AA, shift=2)
            img = cv2.addWeighted(crop, 0.7, lines, 0.3, 0)
        r, c = divmod(i, columns)
        y, x = pad + r * (tile + pad), pad + c * (tile + pad)
        sheet[y : y + tile, x : x + tile] = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
    buf = io.BytesIO()
    Image.fromarray(sheet).quantize(256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
    write_atomic(dest, buf.getvalue())
    return len(buf.getvalue())


def write_bank(
    out: Path, chosen: list[Measured], crops: list[np.ndarray], reference: np.ndarray, triangles: np.ndarray
) -> int:
    """Write the crops, bank.safetensors and index.csv into ``out`` (older dNNNN.jpg there are removed).
    Returns the bytes written."""
    from safetensors.numpy import save

    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("d*.jpg"):
        if re.fullmatch(r"d\d{4}\.jpg", old.name):
            old.unlink()
    total = 0
    rows = []
    for i, (m, crop) in enumerate(zip(chosen, crops, strict=True)):
        name = f"d{i:04d}.jpg"
        data = encode_jpeg(crop)
        (out / name).write_bytes(data)
        total += len(data)
        assert m.lab is not None and m.pose is not None
        rows.append(
            [
                name,
                m.photo.path.name,
                m.photo.collection,
                m.photo.sex,
                m.photo.group,
                *(f"{v:.2f}" for v in m.lab),
                *(f"{v:.2f}" for v in m.pose),
                f"{m.gap:.4f}",
                f"{m.glasses:.2f}",
            ]
        )
    tensors: dict[str, np.ndarray] = {
        "mesh": np.stack([_known(m.mesh) for m in chosen]).astype(np.float32),
        "pose": np.stack([_known(m.pose) for m in chosen]).astype(np.float32),
        "lab": np.stack([_known(m.lab) for m in chosen]).astype(np.float32),
        "presence": np.asarray([m.presence for m in chosen], np.float32),
        "sex": np.asarray([SEXES.index(m.photo.sex) for m in chosen], np.uint8),
        "group": np.asarray([GROUPS.index(m.photo.group) for m in chosen], np.uint8),
        "collection": np.asarray([COLLECTIONS.index(m.photo.collection) for m in chosen], np.uint8),
        "glasses": np.asarray([m.glasses > GLASSES_ABOVE for m in chosen], np.uint8),
        "reference": reference.astype(np.float32),
        "triangles": triangles.astype(np.int32),
    }
    # one metadata key only (safetensors may order several at random, changing the file's bytes)
    data = save(
        tensors,
        metadata={
            "codes": "sex: "
            + ",".join(SEXES)
            + "; group: "
            + ",".join(GROUPS)
            + "; collection: "
            + ",".join(COLLECTIONS)
        },
    )
    write_atomic(out / BANK_FILE, data)
    with open(out / INDEX_FILE, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(
            [
                "file",
                "source_file",
                "collection",
                "sex",
                "group",
                "L",
                "a",
                "b",
                "yaw",
                "pitch",
                "roll",
                "lip_gap",
                "glasses_score",
            ]
        )
        w.writerows(rows)
    return total + (out / BANK_FILE).stat().st_size + (out / INDEX_FILE).stat().st_size


def _counts(items: Iterable[Hashable]) -> str:
    return ", ".join(f"{k}: {n}" for k, n in sorted(Counter(items).items(), key=lambda kv: str(kv[0])))


def filter_report(measured: list[Measured]) -> list[str]:
    """Lines for the card: photos left after each filter of :data:`REASONS`, per collection."""
    removed = Counter(m.reason for m in measured if m.reason)
    left = len(measured)
    lines = [f"{left} photos ({_counts(m.photo.collection for m in measured)})"]
    for reason in REASONS:
        left -= removed[reason]
        per = _counts(m.photo.collection for m in measured if m.reason == reason)
        lines.append(f"  {reason:<40} -{removed[reason]:>5} -> {left:>5}  ({per})")
    lines.append(f"eligible: {left} ({_counts(m.photo.collection for m in measured if not m.reason)})")
    return lines


def selection_report(pool: list[Measured], bins: np.ndarray, picked: list[int]) -> list[str]:
    """Lines for the card: chosen / eligible per stratum, the chosen's groups, L*, glasses, lip gap and pose."""
    lightness = np.asarray([_known(m.lab)[0] for m in pool])
    lo, hi = np.percentile(lightness, [2, 98])
    edges = np.linspace(lo, hi, L_BINS + 1)
    groups = sorted({stratum_group(m.photo) for m in pool})
    lines = [
        f"L* bins (edges {', '.join(f'{e:.1f}' for e in edges)}; first and last open), chosen/eligible:",
        "  " + " ".join(f"{g:>10}" for g in ["bin", *groups]),
    ]
    strata = [(int(b), stratum_group(m.photo)) for m, b in zip(pool, bins, strict=True)]
    for b in range(L_BINS):
        cells = [f"{sum(strata[i] == (b, g) for i in picked)}/{strata.count((b, g))}" for g in groups]
        lines.append("  " + " ".join(f"{c:>10}" for c in [str(b), *cells]))
    chosen = [pool[i] for i in picked]
    lines.append("groups of the chosen: " + _counts((m.photo.collection, m.photo.sex, m.photo.group) for m in chosen))
    q = np.percentile(lightness[picked], [0, 25, 50, 75, 100])
    lines.append(f"chosen L*: min {q[0]:.1f}, quartiles {q[1]:.1f}, {q[2]:.1f}, {q[3]:.1f}, max {q[4]:.1f}")
    lines.append(
        f"chosen with glasses (score > {GLASSES_ABOVE}): {sum(m.glasses > GLASSES_ABOVE for m in chosen)}; "
        f"lip gap max {max(m.gap for m in chosen):.3f}"
    )
    poses = np.abs(np.stack([m.pose for m in chosen]))  # type: ignore[misc]
    lines.append(f"chosen |yaw|, |pitch|, |roll| means: {', '.join(f'{v:.1f}' for v in poses.mean(0))}")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the donors folder (generated-photos/, tpdne/)")
    ap.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the pool's folder (keep it out of the repository, e.g. /tmp/donor_pool)",
    )
    ap.add_argument("--size", type=int, default=256, help="crop side in pixels (default: %(default)s)")
    ap.add_argument("--count", type=int, default=None, help="donors to keep (default: every eligible photo)")
    ap.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    ap.add_argument("--sheet", type=Path, default=None, help="contact sheet PNG (default: <out>.png)")
    ap.add_argument("--cache", type=Path, default=None, help="cache the detections here (an .npz outside the repo)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    args = ap.parse_args(argv)

    from ..media.image import load_image
    from ..nn.facemesh import face_mesh
    from ..nn.runtime import configure_runtime

    configure_runtime(args.threads)
    started = time.time()
    photos = list_photos(args.data)
    measured, reference = measure_all(photos, detect_all(photos, args.cache), face_mesh(), args.size)
    pool = [m for m in measured if not m.reason]
    bins = l_bins(np.asarray([_known(m.lab)[0] for m in pool]))
    strata = [(stratum_group(m.photo), int(b)) for m, b in zip(pool, bins, strict=True)]
    picked = stratified_pick(strata, len(pool) if args.count is None else args.count, np.random.default_rng(args.seed))
    chosen = [pool[i] for i in picked]

    crops = [warp(load_image(m.photo.path).rgb, m.matrix, args.size) for m in chosen]  # type: ignore[arg-type]
    meshes = np.stack([m.mesh for m in chosen])  # type: ignore[misc]
    triangles = triangulate(meshes.mean(0)[:, :2])
    size = write_bank(args.out, chosen, crops, reference, triangles)
    sheet = args.sheet or args.out.with_suffix(".png")
    sheet_bytes = draw_sheet(crops[:48], meshes[:48], triangles, sheet)

    print("\n".join([*filter_report(measured), *selection_report(pool, bins, picked)]))
    print(
        f"{len(chosen)} donors, {len(triangles)} triangles; {args.out}: {size / 1e6:.2f} MB; "
        f"{sheet}: {sheet_bytes / 1e3:.0f} KB; {time.time() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
