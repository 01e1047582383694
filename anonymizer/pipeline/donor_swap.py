"""Mesh-based face replacement: a donor's face (someone who does not exist) rendered into a photo.

The donor keeps its own geometry inside the face (eye spacing, nose, mouth: stretching a donor onto the
target's features hands the target's identity back), turned to the target's head pose by a 3D similarity
fitted on the two 468-point meshes; towards the face outline the geometry blends into the target's, so
the new face fills the target's outline exactly and no original pixel of the face is left. Colour and
light are moved to the target's in CIELAB, the donor is re-lit to meet the photo at the outline without
a step (Poisson blending), and the result is blended with a narrow feathered edge.

Stages (each a pure function): :func:`distinct_shape` (the donor's proportions a little more its own),
:func:`posed_donor` (pose), :func:`outline_field` and :func:`reshaped_photo` (the face's outline moved
towards the donor's, the photo around it following), :func:`blend_geometry` (inner donor, outer target),
:func:`render_face` (warp, colour, Poisson blend, feather).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError
from ..nn.facemesh import MESH_LEFT_EYE, MESH_MOUTH_LEFT, MESH_MOUTH_RIGHT, MESH_NOSE_TIP, MESH_RIGHT_EYE
from ..ops.align import similarity_fit, similarity_onto
from ..ops.warp import warp_mesh
from ..types import Face
from ..vault.surrogate import SurrogateSeed
from .donors import DonorBank, bare_skin, skin_mask, skin_stats

#: MediaPipe's face-oval points, clockwise from the top of the forehead.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
#: Inside this share of the way from the face's centre to its outline the geometry is the donor's; from
#: there to OUTER_BLEND it turns into the target's.
INNER_BLEND, OUTER_BLEND = 0.85, 1.0
#: the replaced region's outline is drawn in by up to this share at the top of the forehead, starting
#: from this height (-1 chin, 1 top of the forehead)
FOREHEAD_SHRINK, FOREHEAD_FROM = 0.15, 0.0


def posed_donor(donor: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The donor's mesh [468, 3] turned, scaled and moved onto the target's [468, 3] by a 3D similarity:
    the donor's shape in the target's pose."""
    if donor.shape != target.shape or donor.ndim != 2 or donor.shape[1] != 3:
        raise InputError(f"expected two meshes [P, 3] of one shape, got {donor.shape} and {target.shape}")
    return similarity_onto(donor, target).astype(np.float32)


def radial_share(points: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """For each point [K, 2], how far it lies from the centre of the closed ``outline`` [M, 2] towards it
    (0 centre, 1 on the outline), measured along the point's own direction."""
    return around(points, outline)[0]


def around(points: np.ndarray, outline: np.ndarray, values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each point [K, 2]: its :func:`radial_share` of the closed ``outline`` [M, 2], and ``values``
    [M, C] (one row per outline point) interpolated by direction from the outline's centre ([K, C]; empty
    without ``values``)."""
    pts, ring_pts = points[:, :2].astype(np.float64), outline[:, :2].astype(np.float64)
    c = ring_pts.mean(0)
    ang = np.arctan2(*(ring_pts - c).T[::-1])
    order = np.argsort(ang)
    ang = np.concatenate([ang[order] - 2 * np.pi, ang[order], ang[order] + 2 * np.pi])
    rad = np.tile(np.linalg.norm(ring_pts - c, axis=1)[order], 3)
    a = np.arctan2(*(pts - c).T[::-1])
    share = (np.linalg.norm(pts - c, axis=1) / np.maximum(np.interp(a, ang, rad), 1e-6)).astype(np.float32)
    if values is None:
        return share, np.zeros((len(pts), 0), np.float32)
    vals = np.tile(np.asarray(values, np.float64)[order], (3, 1))
    return share, np.stack([np.interp(a, ang, v) for v in vals.T], axis=1).astype(np.float32)


#: the face's outline moves this share of the way to the posed donor's: the donor's jaw, chin and cheeks
#: (the outline carries much of a face's identity: two donors inside one target outline were too often
#: one person); the photo around it is warped to meet it, the shift fading to nothing RING_REACH of the
#: way beyond the outline
OUTLINE_SHARE, RING_REACH = 1.0, 0.3


def outline_field(
    points: np.ndarray, outline: np.ndarray, shift: np.ndarray, keep: np.ndarray | None = None
) -> np.ndarray:
    """float32 [K, 2]: the shift of each point [K, 2] when the closed ``outline`` [M, 2] moves by ``shift``
    [M, 2]: the outline's shift in the point's direction, in full inside the outline, fading smoothly to
    nothing at RING_REACH beyond it; times ``keep`` (float [H, W] 0..1) at the point, where given."""
    share, moved = around(points, outline, shift)
    t = np.clip((1 + RING_REACH - share) / RING_REACH, 0.0, 1.0)
    field = (moved * (t * t * (3 - 2 * t))[:, None]).astype(np.float32)
    return field if keep is None else field * sample(keep, points)[:, None]


def reshaped_photo(
    rgb: np.ndarray, outline: np.ndarray, shift: np.ndarray, keep: np.ndarray | None = None
) -> np.ndarray:
    """``rgb`` warped so that the closed ``outline`` [M, 2] (pixels) lands on ``outline + shift`` and the
    photo around it follows (:func:`outline_field`, times ``keep``, float [H, W] 0..1, where given; nothing
    moves where it is 0), unchanged beyond. Backward mapping, the forward shift inverted by two fixed-point
    steps; the smooth field is computed on a grid of at most 128 points a side and interpolated (so "beyond"
    is within one step of that grid)."""
    h, w = rgb.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / 128)))
    nh, nw = max(2, -(-h // step)), max(2, -(-w // step))
    # where cv2.resize's bilinear samples fall, so that the coarse field is interpolated in place
    gx, gy = ((np.arange(n) + 0.5) * (m / n) - 0.5 for n, m in ((nw, w), (nh, h)))
    grid = np.stack([c.ravel() for c in np.meshgrid(gx, gy)], 1).astype(np.float32)

    back = outline_field(
        grid - outline_field(grid, outline, shift, keep), outline, shift, keep
    )  # x - back(x): where x comes from
    dx, dy = (cv2.resize(back[:, k].reshape(nh, nw), (w, h), interpolation=cv2.INTER_LINEAR) for k in (0, 1))
    if keep is not None:  # exactly still where told, whatever the coarse grid's interpolation
        dx, dy = dx * (keep > 0), dy * (keep > 0)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(rgb, xs - dx, ys - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def sample(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """float32 [K]: ``image`` (float [H, W]) at the pixels nearest ``points`` [K, 2], clipped to its edge."""
    h, w = image.shape
    x = np.clip(np.round(points[:, 0]).astype(np.int64), 0, w - 1)
    y = np.clip(np.round(points[:, 1]).astype(np.int64), 0, h - 1)
    return image[y, x].astype(np.float32)


#: the donor's face shape is drawn this far from the donors' mean face (1: as it is): a mild caricature
#: that keeps two donors apart once both have the target's pose, light and hair around them
DISTINCTNESS = 1.6


def distinct_shape(mesh: np.ndarray, reference: np.ndarray, strength: float = DISTINCTNESS) -> np.ndarray:
    """A donor's mesh [468, 3] (its pixels) with its difference from the mean face ``reference`` [468, 3]
    (fitted onto it by a 3D similarity) scaled by ``strength``: the same face, its proportions more its own."""
    mean = similarity_onto(np.asarray(reference, np.float64), mesh)
    return (mean + strength * (np.asarray(mesh, np.float64) - mean)).astype(np.float32)


def outline_share(mesh: np.ndarray) -> np.ndarray:
    """For each point of a frontal mesh [P, 2+], how far it lies from the face's centre towards the outline
    (0 centre, 1 on the outline), measured along its own direction."""
    return radial_share(mesh, mesh[list(FACE_OVAL)])


def blend_geometry(posed: np.ndarray, target: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Mesh [P, 3]: the posed donor's points inside INNER_BLEND of the way to the outline, the target's from
    OUTER_BLEND out (the outline itself is the target's), smoothly in between."""
    w = np.clip((OUTER_BLEND - share) / (OUTER_BLEND - INNER_BLEND), 0.0, 1.0)[:, None]
    w = w * w * (3 - 2 * w)
    return (w * posed + (1 - w) * target).astype(np.float32)


def replaced_outline(mesh: np.ndarray) -> np.ndarray:
    """[len(FACE_OVAL), 2] polygon of the region that is replaced: the face outline, its upper part drawn
    towards the face's centre (up to FOREHEAD_SHRINK at the top) so that a donor's hairline and fringe,
    which the mesh's forehead reaches, stay out."""
    oval = mesh[list(FACE_OVAL), :2].astype(np.float64)
    c = oval.mean(0)
    up = mesh[10, :2] - mesh[152, :2]  # chin to the top of the forehead
    up = up / max(float(np.linalg.norm(up)), 1e-6)
    v = (oval - c) @ up / max(float(np.abs((oval - c) @ up).max()), 1e-6)  # -1 chin .. 1 forehead top
    t = np.clip((v - FOREHEAD_FROM) / (1 - FOREHEAD_FROM), 0, 1)
    k = 1 - FOREHEAD_SHRINK * t * t * (3 - 2 * t)
    return (c + (oval - c) * k[:, None]).astype(np.float32)


def face_region(mesh: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool [H, W]: inside the replaced outline of a mesh in image pixels (see :func:`replaced_outline`)."""
    region = np.zeros(shape, np.uint8)
    cv2.fillPoly(region, [np.round(replaced_outline(mesh) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return region.astype(bool)


#: the light transfer's spread ratio (the face's skin over the donor's, per CIELAB channel) is kept within
#: these: a smooth donor's shading scaled up to a wrinkled face's spread looked too contrasted (x2: dark,
#: hard features on a light face)
SPREAD_MIN, SPREAD_MAX = 0.67, 1.5
#: the skin's tint (CIELAB a*, b*) is carried over as a gain about neutral, within 0..CHROMA_GAIN_MAX, where
#: the donor's skin has at least CHROMA_MIN of it (else shifted as it is)
CHROMA_GAIN_MAX, CHROMA_MIN = 1.5, 2.0


def transfer_lab(src: np.ndarray, ref: np.ndarray, src_skin: np.ndarray, ref_skin: np.ndarray) -> np.ndarray:
    """``src`` (uint8 RGB) with its skin's (``src_skin``, bool [H, W]) CIELAB lightness moved to the mean and
    spread of ``ref``'s skin (``ref_skin``), trimmed of highlights and shadows
    (:func:`~anonymizer.pipeline.donors.skin_stats`; spread ratio within SPREAD_MIN..SPREAD_MAX), and its
    tint (a*, b*) scaled about neutral to the mean of ``ref``'s skin: the scene's light, white balance and
    the person's skin tone band, no identity; neutral pixels (eyes, teeth, grey hair) stay neutral. Skin
    rather than the whole face, so that a white beard, glasses or a moustache do not wash out or darken the
    new face. A grey photo gives a grey face."""
    if src_skin.sum() < 16 or ref_skin.sum() < 16:
        return src
    ma, sa = skin_stats(src, src_skin)
    mb, sb = skin_stats(ref, ref_skin)
    a = cv2.cvtColor(src.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    ys, xs = np.nonzero(ref_skin)
    pixels = ref[ys, xs].astype(np.int16)
    if np.abs(pixels - pixels.mean(1, keepdims=True)).max() < 6:  # a grey photo
        a[..., 1:], ma[1:], mb[1:] = 0.0, 0.0, 0.0
    out = a.copy()
    out[..., 0] = (a[..., 0] - ma[0]) * np.clip((sb[0] + 1.0) / (sa[0] + 1.0), SPREAD_MIN, SPREAD_MAX) + mb[0]
    for c in (1, 2):
        # chroma scaled about neutral, not shifted: the donor's skin tint becomes the face's while whites
        # of the eyes, teeth, grey hair and beards stay neutral (shifted by the difference of the skins'
        # tints, they turned cyan and blue where the photo's skin is less warm than the donor's)
        gain = float(np.clip(mb[c] / ma[c], 0.0, CHROMA_GAIN_MAX)) if ma[c] > CHROMA_MIN else 1.0
        out[..., c] = a[..., c] * gain + (mb[c] - gain * ma[c])
    return (cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB) * 255).round().clip(0, 255).astype(np.uint8)


def poisson_blend(src: np.ndarray, dst: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``src`` (uint8 RGB) inside ``inside`` re-lit so that it meets ``dst`` at the region's edge without a
    step (Poisson image editing, ``cv2.seamlessClone``): the donor's texture, the photo's light at the seam.
    Outside ``inside`` the result is ``dst``."""
    if inside.sum() < 16:
        return src
    pad = 8  # seamlessClone needs the region clear of the image border
    ys, xs = np.nonzero(inside)
    s = cv2.copyMakeBorder(src, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    d = cv2.copyMakeBorder(dst, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    m = cv2.copyMakeBorder(inside.astype(np.uint8) * 255, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    x0, x1, y0, y1 = xs.min() + pad, xs.max() + pad, ys.min() + pad, ys.max() + pad
    # seamlessClone centres the mask's bounding box on ``centre``: the box's own centre keeps it in place
    centre = ((x0 + x1 + 1) // 2, (y0 + y1 + 1) // 2)
    out = cv2.seamlessClone(s, d, m, centre, cv2.NORMAL_CLONE)
    return out[pad:-pad, pad:-pad]


#: the Poisson blend's correction fades from full at the region's edge to none this share of the face's
#: size inside it: it removes the seam, while the light transfer sets the face's tone (a white beard or
#: hair around the face would otherwise brighten the whole new face)
SEAM_DEPTH = 0.15


def seam_fix(warped: np.ndarray, blended: np.ndarray, region: np.ndarray, size: float) -> np.ndarray:
    """``warped`` plus the Poisson blend's correction (``blended`` - ``warped``, uint8 RGB both) faded from the
    edge of ``region`` (bool [H, W]) to nothing :data:`SEAM_DEPTH` of ``size`` (pixels) inside it."""
    depth = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 3)
    t = np.clip(depth / max(SEAM_DEPTH * size, 1.0), 0.0, 1.0)
    fade = (1 - t * t * (3 - 2 * t))[..., None]
    out = warped.astype(np.float32) + fade * (blended.astype(np.float32) - warped.astype(np.float32))
    return out.round().clip(0, 255).astype(np.uint8)


def render_face(
    rgb: np.ndarray,
    target: np.ndarray,
    donor_image: np.ndarray,
    donor_mesh: np.ndarray,
    triangles: np.ndarray,
    *,
    shape: np.ndarray | None = None,
    keep: np.ndarray | None = None,
    feather: float = 0.02,
    poisson: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photo ``rgb`` (uint8 RGB) with the face whose mesh is ``target`` ([468, 3] in its pixels)
    replaced by the donor's (``donor_image`` uint8 RGB, its mesh ``donor_mesh`` [468, 3] in its pixels,
    ``triangles`` [T, 3]), drawn in the shape of ``shape`` (a mesh of the donor's, e.g.
    :func:`distinct_shape`; default ``donor_mesh``). The face's outline moves :data:`OUTLINE_SHARE` of the
    way to the donor's and the photo around it follows, except where ``keep`` (float [H, W] 0..1) is 0.

    Returns (the new photo; the float32 [H, W] alpha the donor was blended with: 1 inside the new outline
    shrunk by ``feather`` of the face's size, fading to 0 at it; bool [H, W], every pixel that changed)."""
    h, w = rgb.shape[:2]
    posed = posed_donor(donor_mesh if shape is None else shape, target)
    oval = target[list(FACE_OVAL), :2]
    shift = OUTLINE_SHARE * (posed[list(FACE_OVAL), :2] - oval)
    moved = target.copy()
    moved[:, :2] += outline_field(target, oval, shift, keep)
    photo = reshaped_photo(rgb, oval, shift, keep) if OUTLINE_SHARE > 0 else rgb
    geometry = blend_geometry(posed, moved, outline_share(donor_mesh))
    warped, covered = warp_mesh(donor_image, donor_mesh, geometry, triangles, (h, w), depth=geometry[:, 2])
    size = float(np.ptp(target[:, :2], axis=0).max())
    region = face_region(moved, (h, w)) & covered
    skins = skin_mask(geometry, (h, w)) & covered, bare_skin(rgb, target)
    new, alpha = blend_in(photo, warped, region, skins, size=size, feather=feather, poisson=poisson)
    return new, alpha, (new != rgb).any(-1) | (alpha > 0)


def render_points(
    rgb: np.ndarray,
    points: np.ndarray,
    donor_image: np.ndarray,
    donor_mesh: np.ndarray,
    *,
    feather: float = 0.02,
    poisson: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`render_face` for a face too small for its mesh to place a donor: the donor placed by a
    similarity fit of its five points (:func:`five_points`) onto the face's ``points`` [5, 2], over its own
    replaced outline (:func:`face_region`; the caller checks that it covers the face)."""
    h, w = rgb.shape[:2]
    s, r, t = similarity_fit(five_points(donor_mesh), np.asarray(points, np.float64))
    m = np.hstack([s * r, t[:, None]])
    warped = cv2.warpAffine(
        donor_image, m, (w, h), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    placed = donor_mesh[:, :2] @ m[:, :2].T + m[:, 2]
    size = float(np.ptp(placed, axis=0).max())
    skin = skin_mask(placed, (h, w))  # the donor's skin, and where the face's lies (by its five points)
    new, alpha = blend_in(
        rgb, warped, face_region(placed, (h, w)), (skin, skin), size=size, feather=feather, poisson=poisson
    )
    return new, alpha, (new != rgb).any(-1) | (alpha > 0)


def five_points(mesh: np.ndarray) -> np.ndarray:
    """float64 [5, 2]: a mesh's eye centres, nose tip and mouth corners in
    :data:`anonymizer.types.LANDMARK_NAMES` order (as our detector gives them)."""
    m = np.asarray(mesh, np.float64)[:, :2]
    return np.stack(
        [
            m[list(MESH_LEFT_EYE)].mean(0),
            m[list(MESH_RIGHT_EYE)].mean(0),
            m[MESH_NOSE_TIP],
            m[MESH_MOUTH_LEFT],
            m[MESH_MOUTH_RIGHT],
        ]
    )


def mesh_face(mesh: np.ndarray) -> Face:
    """A face as the detector would give it for a donor crop (or any face) whose mesh [468, 2+] is known: the
    mesh's bounding box and its :func:`five_points`, for the recognisers that align by five landmarks."""
    m = np.asarray(mesh, np.float64)[:, :2]
    (x1, y1), (x2, y2) = m.min(0), m.max(0)
    return Face(
        box=(float(x1), float(y1), float(x2), float(y2)),
        score=1.0,
        landmarks=tuple((float(x), float(y)) for x, y in five_points(m)),
    )


def blend_in(
    rgb: np.ndarray,
    warped: np.ndarray,
    region: np.ndarray,
    skins: tuple[np.ndarray, np.ndarray],
    *,
    size: float,
    feather: float = 0.02,
    poisson: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``warped`` (uint8 RGB, the donor placed in the photo's frame) blended into ``rgb`` over ``region``
    (bool [H, W]): colour and light of its skin moved to the photo's (``skins``: the donor's skin in
    ``warped``, the face's in ``rgb``; :func:`transfer_lab`), re-lit to meet it at the
    edge (:func:`poisson_blend`), and feathered over ``feather`` of the face's ``size`` (pixels) inside
    the edge. Returns (the new photo, the float32 alpha [H, W] it was blended with)."""
    warped = transfer_lab(warped, rgb, *skins)
    grow = max(1, int(round(feather * size)))
    # 1 inside the region shrunk by the feather, fading to 0 at its edge (where the geometry is the
    # target's own, so only its skin tone shows through)
    inner = cv2.erode(region.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)).astype(np.float32)
    alpha = cv2.GaussianBlur(inner, (0, 0), grow / 2) * region
    alpha = np.maximum(alpha, inner)
    if poisson:
        warped = seam_fix(warped, poisson_blend(warped, rgb, region), region, size)
    out = rgb.astype(np.float32) * (1 - alpha[..., None]) + warped.astype(np.float32) * alpha[..., None]
    return out.round().clip(0, 255).astype(np.uint8), alpha.astype(np.float32)


#: a donor is unsuitable when more than HAIR_SHARE of the outer ring of its face above the eyes (beyond
#: HAIR_RING of the way to the outline) is darker than its cheeks by HAIR_DARKER L* levels: hair over the
#: temples or forehead, which would be painted into the photo
HAIR_RING, HAIR_DARKER, HAIR_SHARE = 0.7, 25.0, 0.2
#: how much a donor's skin lightness (L*) may differ from the face's before its chance falls by e^-0.5
#: (the light transfer matches the tone, but a donor's features and shading still read as its own skin
#: tone band: a dark donor on a pale old woman looked wrong)
TONE_SPREAD = 15.0
#: ... and beyond this difference (L*) its chance falls a thousandfold more: the Gaussian's tail alone
#: still gave the light-skinned astronaut of samples/ a donor 24 L* darker for one password in three,
#: whose features read as another complexion on a light neck
TONE_LIMIT = 20.0
#: how much a donor's apparent age may differ from the face's before its chance falls by e^-0.5: 16 years
#: or 0.25 in ln(age + AGE_OFFSET), whichever is stricter, so that a few years matter for a child (2 and
#: 10 years: 0.005; 6 and 15: 0.07; 30 and 46: 0.32, was 0.61; 55 and 75: 0.46 as before). With years
#: alone (and a floor of 1e-3) a held-out toddler's draw averaged a 27-year-old donor: bearded men on
#: babies (2026-12-05; models/donors.md, "400 donors, a soft near, and children matched by age")
AGE_SPREAD, AGE_LOG_SPREAD, AGE_OFFSET = 16.0, 0.25, 5.0
#: the chance of a donor is multiplied by P(it has the face's apparent sex) ** SEX_SHARPNESS
SEX_SHARPNESS = 2.0
#: two donors nearer than this for dlib render into one face as the same person to it (rendered distance
#: = 0.85 x the donors' + 0.04, benchmarks/donor_pairs.py: 0.6 at 0.66)
NEAR = 0.66
#: the chance that two donors render into one face as the same person to dlib, by their distance d:
#: 1 / (1 + exp((d - NEAR_MID) / NEAR_WIDTH)) (fit on 853 pairs of dev faces; 0.95 below 0.55, 0.31 at
#: 0.66-0.7, 0.13 at 0.7-0.75, 0.02 at 0.75-0.8). The draw spreads by it (:func:`spread_draw`)
NEAR_MID, NEAR_WIDTH = 0.645, 0.035
#: how far the draw may move from the looks-matched weights to spread over unalike donors (smaller: further).
#: 0.05 with a floor of 0.1 and a hard NEAR: passwords differ 88.1% of 890 held-out faces; 0.02, floor 0.03,
#: near_chance and the 400-donor bank: 86.3% -> 91.5% of 893 dev faces (models/donors.md, "Spread"). 0.01
#: (2026-12-06): from 13 up 85.1% -> 87.0% of the dev faces of benchmarks/deidentification.py --dev, but 88.3%
#: -> 86.8% of the held-out ones: within the noise both ways, as a model of the draw predicted (models/donors.md,
#: "The spread settled at its fixed point")
DRAW_SPREAD = 0.02
#: fixed-point steps of :func:`spread_draw`. Each moves a donor's chance the share 1 / (1 + 2 (A p) / DRAW_SPREAD)
#: of the way to its new value (A p: its chance of meeting a look-alike), so that a donor's own weight cannot
#: push it back and forth: with one damping of 0.04 for all, two equally likely loners of a small draw
#: settled at unequal chances at a spread of 0.01, and 750 steps left the bank's draws up to 0.5 points from
#: their fixed point. After 1,500 steps every chance is within 1e-6 of it (60 random looks of all ages
#: against 20,000 steps; about 0.04 s a face)
DRAW_STEPS = 1500
#: only donors with at least this share of the likeliest one's weight are drawn and spread over: the draw
#: may favour an unusual donor that suits the face, never one it set aside. Until 2026-12-06 the others kept
#: their small chance, which summed to a few percent: the astronaut of samples/ (a woman of 36 to the
#: attribute model) got a man of 68 for one of the picture's three passwords (chance 3e-5, drawn among
#: some 300 such donors worth 3% of her draw together)
DRAW_FLOOR = 0.03
#: the spread keeps the chance of each apparent sex and of each age band (years: under 13, 13-29, 30-49, 50
#: and up) as the looks gave it: unstratified, the spread moved chances between the sexes (sex right from 13:
#: 92.7% -> 89.6%) and towards younger donors for old faces (a 70-year-old man's averaged 46 years, 52 before)
AGE_BANDS = (13.0, 30.0, 50.0)


def hair_share(image: np.ndarray, mesh: np.ndarray) -> float:
    """The share of the outer ring of a donor's face above its eyes (``image`` uint8 RGB, ``mesh`` [468, 3]
    in its pixels) much darker than its cheeks (see HAIR_RING, HAIR_DARKER)."""
    h, w = image.shape[:2]
    inside = face_region(mesh, (h, w))
    ys, xs = np.nonzero(inside)
    if len(xs) == 0:
        return 1.0
    grid = np.stack([xs, ys], axis=1).astype(np.float32)
    share = radial_share(grid, replaced_outline(mesh))
    lightness = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32) * (100 / 255)
    patches = []
    for k in (50, 280):  # the cheeks' centres, 5x5 pixels each
        x, y = (int(np.clip(round(float(v)), 2, lim - 3)) for v, lim in zip(mesh[k, :2], (w, h), strict=True))
        patches.append(lightness[y - 2 : y + 3, x - 2 : x + 3].ravel())
    ref = float(np.median(np.concatenate(patches)))
    up = mesh[10, :2] - mesh[152, :2]
    eyes = (mesh[33, :2] + mesh[263, :2]) / 2
    outer = (share > HAIR_RING) & ((grid - eyes) @ up > 0)  # above the eyes: fringe and temples, not beards
    dark = lightness[ys, xs] < ref - HAIR_DARKER
    return float((dark & outer).sum() / max(int(outer.sum()), 1))


#: a donor is unsuitable when its face is this blurred (:func:`sharpness` below this): rendered into a
#: photo it came out as a soft, washed-out face. On Grace Hopper (samples/), 8 of the 9 foggy renders
#: among the 30 donors of the most uneven light had sharpness in the bottom 8% of the bank (at most 5.4;
#: the bank's median 6.7), none of the 14 clean ones below its 20th percentile (2026-12-05). A child's
#: face is smoother: children (apparent age under 13) need SHARP_MIN_CHILD (rendered into the astronaut,
#: children at 5.1 and 5.3 looked clean, those at 4.2 and 3.6 soft)
SHARP_MIN, SHARP_MIN_CHILD = 5.5, 4.5


def sharpness(image: np.ndarray, mesh: np.ndarray) -> float:
    """How much fine detail a donor's face has (``image`` uint8 RGB, ``mesh`` [468, 3] in its pixels): the
    root mean square of the Laplacian of its CIELAB lightness (0..255 scale, after a Gaussian of 0.8
    pixels against JPEG noise) inside its face region eroded by 4 pixels."""
    lightness = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32)
    inside = cv2.erode(face_region(mesh, image.shape[:2]).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    if not inside.any():
        return 0.0
    lap = cv2.Laplacian(cv2.GaussianBlur(lightness, (0, 0), 0.8), cv2.CV_32F)
    return float(np.sqrt(np.mean(lap[inside].astype(np.float64) ** 2)))


def donor_weights(bank: DonorBank) -> np.ndarray:
    """float64 [N]: 1 for a donor that can be painted into any face, 0 for one that cannot (glasses, which
    leave ghosts of frames; hair over the temples or forehead, see :func:`hair_share`; a blurred face, see
    :func:`sharpness`, :data:`SHARP_MIN_CHILD` for a donor whose ``age`` trait is under 13; each read from
    the bank's ``hair`` and ``sharp`` traits when it has them). The shipped bank holds only donors with 1
    (:mod:`anonymizer.train.donor_spread`)."""
    glasses = bank.codes.get("glasses", np.zeros(len(bank), np.uint8))
    hair, sharp = bank.traits.get("hair"), bank.traits.get("sharp")
    if hair is None:
        hair = np.array([hair_share(bank.image(i), bank.mesh(i)) for i in range(len(bank))])
    if sharp is None:
        sharp = np.array([sharpness(bank.image(i), bank.mesh(i)) for i in range(len(bank))])
    age = bank.traits.get("age")
    least = np.where(age < 13, SHARP_MIN_CHILD, SHARP_MIN) if age is not None else SHARP_MIN
    return ((glasses == 0) & (hair <= HAIR_SHARE) & (sharp >= least)).astype(np.float64)


def suits(bank: DonorBank, lightness: float, looks: tuple[float, float] | None) -> np.ndarray:
    """float64 [N] > 0: how well each donor suits a face of skin lightness ``lightness`` (L* 0..100) and,
    when given and the bank records its donors' traits, ``looks`` (the probability that the face is
    female, its apparent age in years; :class:`anonymizer.nn.attributes.FaceAttributes`): Gaussian in
    the differences of lightness (:data:`TONE_SPREAD`, a thousandfold less beyond :data:`TONE_LIMIT`) and
    age (:data:`AGE_SPREAD` years or :data:`AGE_LOG_SPREAD` in log age, the stricter), times the chance
    that the donor has the face's sex to the power :data:`SEX_SHARPNESS`. Never 0: with no donor alike, the
    likeliest still win."""
    d = bank.labs[:, 0].astype(np.float64) - lightness
    w = np.exp(-0.5 * (d / TONE_SPREAD) ** 2) * np.where(np.abs(d) <= TONE_LIMIT, 1.0, 1e-3) + 1e-6
    if looks is not None and "female" in bank.traits and "age" in bank.traits:
        female, age = looks
        f = bank.traits["female"].astype(np.float64)
        same = female * f + (1 - female) * (1 - f)
        a = bank.traits["age"].astype(np.float64)
        gap = np.log((a + AGE_OFFSET) / (max(age, 0.0) + AGE_OFFSET))
        z = np.maximum(np.abs(gap) / AGE_LOG_SPREAD, np.abs(a - age) / AGE_SPREAD)
        w = w * (same**SEX_SHARPNESS + 1e-3) * (np.exp(-0.5 * z**2) + 1e-6)
    return w


def draw_weights(
    bank: DonorBank, weights: np.ndarray, lightness: float, looks: tuple[float, float] | None = None
) -> np.ndarray:
    """float64 [N], summing to 1: how likely each donor is to be drawn for a face of skin lightness
    ``lightness`` and apparent sex and age ``looks``: each suitable donor (``weights`` > 0) as it suits
    the face (:func:`suits`): features painted far from their own skin tone, sex or age look wrong even
    after the light transfer; a donor under :data:`DRAW_FLOOR` of the likeliest one's weight is never
    drawn. Raises InputError when no donor is suitable."""
    w = weights * suits(bank, lightness, looks)
    if not (w > 0).any():
        raise InputError("no suitable donor in the bank")
    w = np.where(w >= w.max() * DRAW_FLOOR, w, 0.0)  # set aside: never drawn (see DRAW_FLOOR)
    w = w / w.sum()
    return spread_draw(w, bank.distances, donor_groups(bank)) if bank.distances is not None else w


def donor_groups(bank: DonorBank) -> np.ndarray | None:
    """int [N]: each donor's apparent sex and age band (:data:`AGE_BANDS`) as one number, or None for a bank
    that does not record its donors' looks."""
    if "female" not in bank.traits or "age" not in bank.traits:
        return None
    female = (bank.traits["female"] > 0.5).astype(np.int64)
    return female * (len(AGE_BANDS) + 1) + np.digitize(bank.traits["age"], AGE_BANDS)


def near_chance(distances: np.ndarray) -> np.ndarray:
    """float64, shaped like ``distances``: the chance that two donors this far apart (dlib) render into
    one face as the same person (:data:`NEAR_MID`, :data:`NEAR_WIDTH`)."""
    z = (np.asarray(distances, np.float64) - NEAR_MID) / NEAR_WIDTH
    return 1.0 / (1.0 + np.exp(np.clip(z, -50.0, 50.0)))


def spread_draw(w: np.ndarray, distances: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """float64 [N] summing to 1: the draw ``w`` (float64 [N], summing to 1) moved towards donors that few
    likely others look like, so that two independent draws rarely give two donors dlib calls the same
    person (:func:`near_chance` of ``distances`` [N, N]). Among the donors it may draw (weight > 0:
    :func:`draw_weights` has set aside those under :data:`DRAW_FLOOR` of the best one) it minimises the
    chance of such a pair, p' A p, plus :data:`DRAW_SPREAD` x KL(p || w): the fixed point
    p ~ w exp(-2 A p / DRAW_SPREAD), reached by :data:`DRAW_STEPS` damped steps, with each of ``groups`` (int [N],
    :func:`donor_groups`) keeping its share of the draw; donors of weight 0 stay 0. Rounded to 12 decimals,
    so the draw does not depend on the order of sums."""
    fit = np.flatnonzero(w > 0)
    near = near_chance(np.asarray(distances)[np.ix_(fit, fit)])
    mass = float(w[fit].sum())
    base = w[fit] / mass
    _, kinds = np.unique(groups[fit] if groups is not None else np.zeros(len(fit), np.int64), return_inverse=True)
    shares = np.bincount(kinds, weights=base)
    p = base.copy()
    for _ in range(DRAW_STEPS):
        pressure = 2.0 * (near @ p) / DRAW_SPREAD
        q = base * np.exp(-pressure)
        q *= (shares / np.bincount(kinds, weights=q))[kinds]
        step = 1.0 / (1.0 + pressure)  # see DRAW_STEPS
        p = (1 - step) * p + step * q
    out = w.astype(np.float64).copy()
    out[fit] = p * mass
    out = np.round(out, 12)
    return out / out.sum()


def choose_donor(seed: SurrogateSeed, track: int, drawn: np.ndarray) -> int:
    """The donor for face ``track`` of a photo or video: the seed's weighted draw over the bank with the
    face's :func:`draw_weights` ``drawn`` (the same seed and track always give the same donor, two seeds
    almost never). Tracks beyond the number of donors that can be drawn start again."""
    n = int((drawn > 0).sum())
    index = seed.palette_index(track % n, len(drawn), weights=drawn)
    assert index is not None  # track % n < n <= size
    return index
