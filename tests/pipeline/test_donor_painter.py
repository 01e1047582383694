"""Surrogate faces from the donor bank through the painter `anonymize --method surrogate` uses: real photos,
real detector, the shipped bank and mesh network."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from anonymizer.api import anonymize_image, get_finder, get_painter
from anonymizer.errors import InputError
from anonymizer.media import load_image
from anonymizer.ops.masks import box_coverage
from anonymizer.pipeline.donor_painter import COVER_MIN, MESH_MIN, SMALL_SCORE, DonorPainter
from anonymizer.pipeline.donor_swap import SEAM_DEPTH, seam_fix, transfer_lab
from anonymizer.pipeline.donors import SKIN_REGIONS, bare_skin, skin_mask
from anonymizer.types import Face
from anonymizer.vault.surrogate import SurrogateSeed

SEED = SurrogateSeed(bytes(range(32)))


@pytest.fixture(scope="module")
def painter() -> DonorPainter:
    return get_painter()


@pytest.fixture(scope="module")
def group(samples: Path) -> tuple[np.ndarray, tuple[Face, ...]]:
    rgb = load_image(samples / "group_solvay_1927_closeup.jpg").rgb
    return rgb, get_finder().find(rgb)


def _centre(img: np.ndarray, face: Face) -> np.ndarray:
    x1, y1, x2, y2 = face.box
    w, h = x2 - x1, y2 - y1
    return img[int(y1 + 0.3 * h) : int(y2 - 0.3 * h), int(x1 + 0.3 * w) : int(x2 - 0.3 * w)].astype(np.int16)


def test_every_face_of_a_group_gets_another_face(painter, group) -> None:
    rgb, faces = group
    out, regions, changed = painter.paint(rgb, faces, SEED)
    assert len(faces) == 15  # all but one (turned 42 degrees away: covered solid) get a donor's face
    assert sorted(r.shape for r in regions) == ["ellipse"] + ["surrogate"] * 14
    assert rgb.tobytes() != out.tobytes() and not np.shares_memory(rgb, out)
    for face in faces:
        assert box_coverage(changed.astype(np.float32), face.box) >= COVER_MIN
        assert np.abs(_centre(out, face) - _centre(rgb, face)).mean() > 6  # other eyes, nose and mouth
    # a grey photo stays grey
    assert np.abs(out.astype(np.int16) - out.mean(2, keepdims=True)).max() <= 2
    # nothing outside the regions changes
    inside = np.zeros(rgb.shape[:2], bool)
    for r in regions:
        inside[r.box[1] : r.box[3], r.box[0] : r.box[2]] = True
    assert (out[~inside] == rgb[~inside]).all()


def test_prepared_ahead_paints_the_same_pixels(painter, group) -> None:
    """A video prepares a frame (meshes, windows, new tracks' candidates) in one thread and paints it in
    another: the pixels are those of painting in one go; a track already decided draws nothing."""
    rgb, faces = group
    tracks = list(range(len(faces)))
    whole, regions, _ = painter.paint(rgb, faces, SEED, tracks=tracks, choices={})
    decided: set[int] = set()
    plans = painter.prepare(rgb, faces, SEED, tracks, meshes={}, decided=decided)
    assert sum(p.drawn is not None for p in plans) == sum(p.win is not None for p in plans) == 14
    assert decided == {t for t, p in zip(tracks, plans, strict=True) if p.win is not None}
    ahead, regions2, _ = painter.paint(rgb, faces, SEED, tracks=tracks, choices={}, prepared=plans)
    assert ahead.tobytes() == whole.tobytes() and regions2 == regions
    # the next frame of the same tracks: nothing left to draw
    again = painter.prepare(rgb, faces, SEED, tracks, meshes={}, decided=decided)
    assert all(p.drawn is None for p in again)


def test_same_password_same_pixels_at_any_thread_count(samples: Path) -> None:
    rgb = load_image(samples / "group_solvay_1927_closeup.jpg").rgb  # 15 faces
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs.append(anonymize_image(rgb, method="surrogate", surrogate_seed=SEED).image)
    finally:
        torch.set_num_threads(before)
    assert outs[0].tobytes() == outs[1].tobytes()
    other = anonymize_image(rgb, method="surrogate", surrogate_seed=SurrogateSeed(bytes(32))).image
    assert other.tobytes() != outs[0].tobytes()


def test_a_face_reads_the_same_whatever_the_detectors_last_digits(painter, group) -> None:
    # at 1 and 2 threads the detector's landmarks differ in their last digits; the face's descriptor (and
    # so its looks, which weigh the donors) must not: one held-out face got another donor that way
    rgb, faces = group
    face = faces[0]

    def nudge(v: float) -> float:  # 3e-5 px towards the nearest whole pixel (never across a rounding edge)
        return v + 3e-5 * float(np.sign(round(v) - v))

    nudged = Face(box=face.box, score=face.score, landmarks=tuple((nudge(x), nudge(y)) for x, y in face.landmarks))
    assert nudged.landmarks != face.landmarks
    np.testing.assert_array_equal(painter.describe(rgb, face), painter.describe(rgb, nudged))


def test_the_pixels_do_not_depend_on_the_last_digits_of_the_boxes(painter, group) -> None:
    # a dev face of faces-utk (a second face cut by the border) got one pixel one level apart at 1 and 2
    # threads: its neighbour's box, 6e-5 px apart, set the width of the ramp the photo is reshaped within
    rgb, faces = group
    faces = faces[:6]

    def nudge(v: float) -> float:  # 0.01 px towards the nearest whole pixel (never across a rounding edge)
        return v + 0.01 * float(np.sign(round(v) - v))

    nudged = [Face(box=tuple(nudge(v) for v in f.box), score=f.score, landmarks=f.landmarks) for f in faces]
    assert all(a.box != b.box for a, b in zip(faces, nudged, strict=True))
    out, regions, _ = painter.paint(rgb, faces, SEED)
    out2, regions2, _ = painter.paint(rgb, nudged, SEED)
    assert [r.box for r in regions] == [r.box for r in regions2]
    assert out.tobytes() == out2.tobytes()


def test_small_faces_are_placed_by_their_five_points(painter, samples: Path) -> None:
    big = load_image(samples / "grace_hopper.jpg").rgb
    rgb = cv2.resize(big, None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA)
    (face,) = get_finder().find(rgb)
    assert face.height < MESH_MIN and painter.plan(rgb, face)[0] == "points"
    out, regions, changed = painter.paint(rgb, [face], SEED)
    assert [r.shape for r in regions] == ["surrogate"]
    assert box_coverage(changed.astype(np.float32), face.box) >= COVER_MIN
    assert np.abs(_centre(out, face) - _centre(rgb, face)).mean() > 4
    # too small for the mesh network to judge: the detector's score decides (a video passes its tracks')
    unsure = Face(box=face.box, score=SMALL_SCORE - 0.01, landmarks=face.landmarks)
    assert painter.plan(rgb, unsure) == ("solid", None)
    out, regions, _ = painter.paint(rgb, [unsure], SEED)
    assert [r.shape for r in regions] == ["ellipse"] and _centre(out, unsure).max() == 0


def test_a_face_the_mesh_cannot_trust_is_covered_solid(painter, samples: Path) -> None:
    rgb = load_image(samples / "grace_hopper.jpg").rgb
    (face,) = get_finder().find(rgb)
    # the detector's face moved onto the flag behind her: no face there for the mesh network
    dx = -float(face.box[0]) + 5
    wall = Face(
        box=(face.box[0] + dx, face.box[1], face.box[2] + dx, face.box[3]),
        score=face.score,
        landmarks=tuple((x + dx, y) for x, y in face.landmarks),
    )
    assert painter.plan(rgb, wall) == ("solid", None)
    out, regions, _ = painter.paint(rgb, [wall], SEED)
    assert [r.shape for r in regions] == ["ellipse"] and _centre(out, wall).max() == 0


def test_a_second_detection_inside_a_surrogate_is_covered_by_it(painter, samples: Path) -> None:
    rgb = load_image(samples / "grace_hopper.jpg").rgb
    (face,) = get_finder().find(rgb)
    x1, y1, x2, y2 = face.box
    w, h = x2 - x1, y2 - y1
    # the detector's face-in-face: a smaller box over her eyes and nose, unsure, its own landmarks off
    inner = Face(
        box=(x1 + 0.25 * w, y1 + 0.2 * h, x2 - 0.25 * w, y2 - 0.3 * h),
        score=0.3,
        landmarks=tuple((x + 0.1 * w, y + 0.15 * h) for x, y in face.landmarks),
    )
    assert painter.plan(rgb, inner)[0] == "solid"  # alone, it would be covered solid
    alone, regions_alone, _ = painter.paint(rgb, [face], SEED)
    out, regions, _ = painter.paint(rgb, [face, inner], SEED, tracks=[0, 1])
    # neither painted again nor blacked out over her surrogate (the mesh network, run on two crops at once,
    # gives her mesh's last bits a little differently: a level or two here and there)
    assert np.abs(out.astype(np.int16) - alone).max() <= 3
    assert [r.shape for r in regions] == [r.shape for r in regions_alone] == ["surrogate"]
    # a box beside the face (not inside it) is still covered solid
    beside = Face(box=(x2 + 0.1 * w, y1, x2 + 0.6 * w, y2 - 0.5 * h), score=0.3, landmarks=inner.landmarks)
    out, regions, _ = painter.paint(rgb, [face, beside], SEED, tracks=[0, 1])
    assert sorted(r.shape for r in regions) == ["ellipse", "surrogate"] and _centre(out, beside).max() == 0


def test_a_face_standing_out_of_its_mesh_is_covered_solid(painter, samples: Path, monkeypatch) -> None:
    import anonymizer.pipeline.donor_painter as dp

    rgb = load_image(samples / "grace_hopper.jpg").rgb
    (face,) = get_finder().find(rgb)
    how, mesh = painter.plan(rgb, face)
    assert how == "mesh" and mesh is not None
    # one mouth corner far out on the cheek (the others in place: the mesh still agrees on average)
    w = face.box[2] - face.box[0]
    points = list(face.landmarks)
    points[4] = (points[4][0] + 0.45 * w, points[4][1])
    wide = Face(box=face.box, score=face.score, landmarks=tuple(points))
    assert painter.plan(rgb, wide)[0] == "solid"
    monkeypatch.setattr(dp, "OUTSIDE", 10.0)
    assert painter.plan(rgb, wide)[0] == "mesh"  # it was the outline test that decided
    # on video, the mesh's own nose tip: inside its outline for her face, out of it when moved aside
    lm = np.array(face.landmarks)
    assert not dp._stands_out(mesh, lm, video=True)
    turned = mesh.copy()
    turned[list(dp.NOSE_TIPS), 0] -= 0.6 * w
    assert dp._stands_out(turned, lm, video=True)


def test_a_face_turned_too_far_is_covered_solid(painter, samples: Path, monkeypatch) -> None:
    import anonymizer.pipeline.donor_painter as dp

    rgb = load_image(samples / "grace_hopper.jpg").rgb
    (face,) = get_finder().find(rgb)
    assert painter.plan(rgb, face)[0] == "mesh"
    for yaw, plan in ((dp.MAX_YAW - 5, "mesh"), (dp.MAX_YAW + 5, "solid"), (-dp.MAX_YAW - 5, "solid")):
        monkeypatch.setattr(dp, "head_pose", lambda mesh, reference, yaw=yaw: np.array([yaw, 0.0, 0.0]))
        assert painter.plan(rgb, face)[0] == plan, yaw


def test_a_track_keeps_its_surrogate_a_little_past_the_turn_limit(painter, samples: Path, monkeypatch) -> None:
    import anonymizer.pipeline.donor_painter as dp

    rgb = load_image(samples / "grace_hopper.jpg").rgb
    (face,) = get_finder().find(rgb)
    trusted: set[int] = set()
    hows = []
    for yaw in (30.0, dp.MAX_YAW + 2, dp.MAX_YAW + dp.TURN_MARGIN + 1, dp.MAX_YAW + 2, 30.0):
        monkeypatch.setattr(dp, "head_pose", lambda mesh, reference, yaw=yaw: np.array([yaw, 0.0, 0.0]))
        (plan,) = painter.prepare(rgb, [face], SEED, [4], meshes={}, decided=set(), trusted=trusted)
        hows.append(plan.how)
    # trusted on the frame before: a little past the limit keeps the surrogate; once solid, the limit holds
    assert hows == ["mesh", "mesh", "solid", "solid", "mesh"]
    assert painter.plan(rgb, face)[0] == "mesh"  # a photo (no track): the plain limit
    monkeypatch.setattr(dp, "head_pose", lambda mesh, reference: np.array([dp.MAX_YAW + 2, 0.0, 0.0]))
    assert painter.plan(rgb, face)[0] == "solid"


def test_a_donor_turned_the_other_way_is_drawn_mirrored(painter, samples: Path, monkeypatch) -> None:
    import anonymizer.pipeline.donor_painter as dp

    rgb = load_image(samples / "grace_hopper.jpg").rgb
    (face,) = get_finder().find(rgb)
    (how, mesh), n = painter.plan(rgb, face), len(painter.bank)
    assert how == "mesh"
    index = int(np.argmax(painter.bank.poses[:, 0]))  # the donor turned farthest to one side
    turn = float(painter.bank.pose(index)[0])
    assert turn > 10
    # the face turned the same way, straight, a little or far the other way: mirrored only where that
    # brings the donor's turn at least MIRROR_GAIN degrees nearer the face's
    little = -(dp.MIRROR_GAIN / 2 - 1)  # gains 2 * |little| < MIRROR_GAIN
    for yaw, view in ((turn, index), (0.0, index), (little, index), (-turn, index + n), (-dp.MAX_YAW, index + n)):
        monkeypatch.setattr(dp, "head_pose", lambda mesh, reference, yaw=yaw: np.array([yaw, 0.0, 0.0]))
        assert painter.view(index, mesh) == view, yaw
        assert painter.donor_of(view) == index
    assert painter.view(index, None) == index  # placed by five points: as it is
    for outside in (-1, 2 * n):
        with pytest.raises(IndexError):
            painter._donor(outside)


def test_a_turned_face_of_the_group_keeps_a_mirrored_donor(painter, group) -> None:
    rgb, faces = group
    choices: dict[int, int] = {}
    first = painter.paint(rgb, faces, SEED, choices=choices)[0]
    n = len(painter.bank)
    mirrored = [t for t, view in choices.items() if view >= n]
    assert mirrored and all(0 <= view < 2 * n for view in choices.values())
    # the view is what a video's track keeps: painted again from the choices, the same pixels
    again = painter.paint(rgb, faces, SurrogateSeed(bytes(32)), choices=dict(choices))[0]
    assert again.tobytes() == first.tobytes()


def test_a_track_keeps_its_donor(painter, group) -> None:
    rgb, faces = group
    choices: dict[int, int] = {}
    first = painter.paint(rgb, faces[:2], SEED, tracks=[7, 9], choices=choices)[0]
    assert sorted(choices) == [7, 9] and choices[7] != choices[9]
    # later frames: another seed changes nothing once a track has its donor
    again = painter.paint(rgb, faces[:2], SurrogateSeed(bytes(32)), tracks=[7, 9], choices=choices)[0]
    assert again.tobytes() == first.tobytes()


def test_bad_requests_are_refused(painter, group) -> None:
    rgb, faces = group
    with pytest.raises(InputError, match="2 faces but 1 track numbers"):
        painter.paint(rgb, faces[:2], SEED, tracks=[0])
    bare = Face(box=faces[0].box, score=1.0, landmarks=())
    with pytest.raises(InputError, match="five landmarks"):
        painter.paint(rgb, [bare], SEED)
    assert painter.paint(rgb, [], SEED)[0].tobytes() == rgb.tobytes()


def test_bare_skin_leaves_out_a_beard(painter, samples: Path) -> None:
    rgb = load_image(samples / "astronaut.png").rgb
    (face,) = get_finder().find(rgb)
    mesh = painter.plan(rgb, face)[1]
    assert mesh is not None
    whole = skin_mask(mesh, rgb.shape[:2])
    assert bare_skin(rgb, mesh).sum() > 0.3 * whole.sum()
    # white stubble over the right cheek (the image's right): rough, so left out
    cheek = whole & (np.arange(rgb.shape[1]) > mesh[1, 0])[None]
    cheek &= (np.arange(rgb.shape[0]) > mesh[1, 1] - 0.1 * face.height)[:, None]
    rough = rgb.copy()
    noise = np.random.default_rng(0).integers(0, 2, rgb.shape[:2]).astype(bool) & cheek
    rough[noise] = 255
    kept = bare_skin(rough, mesh)
    assert not (kept & noise).any() and kept.sum() > 0.3 * whole.sum()


def _turned(mesh: np.ndarray, degrees: float) -> np.ndarray:
    """The mesh turned about the vertical axis through its centre and seen straight on (z is depth in
    the same unit as x and y)."""
    m = mesh.astype(np.float64) - mesh.mean(0)
    t = np.radians(degrees)
    x, z = m[:, 0].copy(), m[:, 2].copy()
    m[:, 0], m[:, 2] = x * np.cos(t) + z * np.sin(t), z * np.cos(t) - x * np.sin(t)
    return (m + mesh.mean(0)).astype(np.float32)


def _regions(mesh: np.ndarray, shape: tuple[int, int]) -> list[np.ndarray]:
    """bool [H, W] for each of the forehead and the two cheeks (SKIN_REGIONS) of a mesh in pixels."""
    masks = []
    for region in SKIN_REGIONS:
        m = np.zeros(shape, np.uint8)
        cv2.fillConvexPoly(m, cv2.convexHull(np.round(mesh[list(region), :2]).astype(np.int32)), 1)
        masks.append(m.astype(bool))
    return masks


@pytest.mark.parametrize("degrees", [30.0, -30.0])
def test_bare_skin_leaves_out_the_far_cheek_of_a_turned_head(painter, samples: Path, degrees: float) -> None:
    rgb = load_image(samples / "astronaut.png").rgb
    (face,) = get_finder().find(rgb)
    mesh = painter.plan(rgb, face)[1]
    assert mesh is not None
    # seen straight on, both cheeks count
    front = bare_skin(rgb, mesh)
    assert all((front & m).sum() > 0.8 * m.sum() for m in _regions(mesh, rgb.shape[:2])[1:])
    turned = _turned(mesh, degrees)
    near, far = sorted(_regions(turned, rgb.shape[:2])[1:], key=lambda m: -int(m.sum()))
    kept = bare_skin(rgb, turned)
    assert not (kept & far & ~near).any()
    assert (kept & near).sum() > 0.8 * near.sum()


def test_light_transfer_matches_skin_and_keeps_grey_photos_grey() -> None:
    rng = np.random.default_rng(0)
    src = np.clip(rng.normal([180, 120, 100], 10, (64, 64, 3)), 0, 255).astype(np.uint8)
    ref = np.clip(rng.normal([90, 70, 60], 6, (64, 64, 3)), 0, 255).astype(np.uint8)
    skin = np.zeros((64, 64), bool)
    skin[16:48, 16:48] = True
    out = transfer_lab(src, ref, skin, skin)
    assert np.abs(out[skin].mean(0) - ref[skin].mean(0)).max() < 4
    grey = np.repeat(ref[..., :1], 3, axis=2)
    out = transfer_lab(src, grey, skin, skin)
    assert np.abs(out.astype(np.int16) - out.mean(2, keepdims=True)).max() <= 1
    assert transfer_lab(src, ref, np.zeros_like(skin), skin).tobytes() == src.tobytes()  # no skin: unchanged


def test_light_transfer_keeps_neutral_pixels_neutral() -> None:
    """Whites of the eyes, teeth and grey beards of a warm donor stay neutral on a face of cooler skin
    (a shift by the skins' difference turned them cyan and blue on the sample clip)."""
    import cv2

    src = np.zeros((64, 64, 3), np.uint8)
    src[:] = (205, 140, 110)  # the donor's warm skin
    src[40:56, 8:24] = (128, 128, 128)  # a grey beard
    src[40:56, 40:56] = (235, 235, 235)  # teeth
    skin = np.zeros((64, 64), bool)
    skin[4:36] = True
    ref = np.zeros_like(src)
    ref[:] = (160, 142, 135)  # the photo's skin under a cool light
    out = transfer_lab(src, ref, skin, skin)
    lab = cv2.cvtColor(out.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    ref_lab = cv2.cvtColor(ref[:1, :1].astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[0, 0]
    assert np.abs(lab[skin].mean(0)[1:] - ref_lab[1:]).max() < 1.5  # the skin takes the photo's tint
    for patch in (lab[40:56, 8:24], lab[40:56, 40:56]):
        assert np.abs(patch[..., 1:]).max() < 1.0  # neutral stays neutral


def test_seam_fix_corrects_the_edge_only() -> None:
    region = np.zeros((100, 100), bool)
    region[10:90, 10:90] = True
    warped = np.full((100, 100, 3), 100, np.uint8)
    blended = np.full((100, 100, 3), 160, np.uint8)
    out = seam_fix(warped, blended, region, size=80.0)
    assert out[10, 50, 0] > 150  # at the edge: the Poisson blend's value
    deep = int(10 + SEAM_DEPTH * 80) + 2
    assert out[deep : 100 - deep, deep : 100 - deep].max() == 100  # deep inside: the donor's own, as transferred


def test_identity_check_takes_the_first_candidate_far_enough(painter, samples: Path, monkeypatch) -> None:
    import anonymizer.pipeline.donor_painter as dp

    rgb = load_image(samples / "astronaut.png").rgb
    (face,) = get_finder().find(rgb)
    mesh = painter.plan(rgb, face)[1]
    ref = painter.describe(rgb, face)
    candidates = painter.candidates(rgb, mesh, SEED, 0, ref, painter.describe(rgb, face, even_light=True))
    assert len(set(candidates)) == dp.ATTEMPTS  # a track's candidates are different donors
    far = []
    for k in candidates:
        choices = {0: k}
        far.append(
            float(np.linalg.norm(ref - painter.describe(painter.paint(rgb, [face], SEED, choices=choices)[0], face)))
        )
    for threshold, expected in (
        (-1.0, candidates[0]),
        (10.0, candidates[int(np.argmax(far))]),
        (sorted(far)[-2], candidates[int(np.argmax(far))]),
    ):
        monkeypatch.setattr(dp, "CHECK_DISTANCE", threshold)
        choices: dict[int, int] = {}
        painter.paint(rgb, [face], SEED, choices=choices)
        assert choices == {0: expected}, (threshold, far)
    unchecked = DonorPainter(bank=painter.bank, mesh=painter.mesh, identity_check=False)
    choices = {}
    unchecked.paint(rgb, [face], SEED, choices=choices)
    assert choices == {0: candidates[0]}


def test_reshaping_one_face_leaves_its_neighbours_in_place(painter, group) -> None:
    from anonymizer.pipeline.donor_painter import KEEP_MARGIN, _keep, _window

    rgb, faces = group
    plans = painter.plan_all(rgb, faces)
    k = next(
        k
        for k, f in enumerate(faces)  # a face with a neighbour within its rendered window
        if plans[k][1] is not None
        and _keep(_window(rgb.shape[:2], f, plans[k][1]), faces[:k] + faces[k + 1 :]) is not None
    )
    face, others = faces[k], faces[:k] + faces[k + 1 :]
    win = _window(rgb.shape[:2], face, plans[k][1])
    assert win is not None
    far = Face(box=(5000.0, 5000.0, 5050.0, 5050.0), score=0.9, landmarks=face.landmarks)
    assert _keep(win, [far]) is None  # nobody near: the whole ring may move
    keep = _keep(win, others)
    assert keep is not None and keep.min() == 0.0 and keep.max() == 1.0
    y0, x0 = win[0].start, win[1].start
    for f in others:  # every neighbour's box inside the window, grown by the margin, stays put
        x1, y1, x2, y2 = f.box
        m = KEEP_MARGIN * max(x2 - x1, y2 - y1)
        a, b = max(int(x1 - m) - x0 + 1, 0), max(int(y1 - m) - y0 + 1, 0)
        c, d = int(x2 + m) - x0, int(y2 + m) - y0
        if c > a and d > b:
            assert (keep[b:d, a:c] == 0).all()


def test_a_tracks_mesh_follows_the_head_and_smooths_the_rest(painter, samples: Path) -> None:
    from anonymizer.pipeline.donor_painter import STEADY, STEADY_RESET, steady_mesh

    rgb = load_image(samples / "astronaut.png").rgb
    (face,) = get_finder().find(rgb)
    mesh = painter.plan(rgb, face)[1]
    assert mesh is not None
    size = float(np.ptp(mesh[:, :2], axis=0).max())
    assert np.array_equal(steady_mesh(None, mesh), mesh)
    # the head turns, grows and moves: followed at once, no lag
    a = np.deg2rad(12)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    moved = (1.1 * (mesh - mesh.mean(0)) @ rot.T + mesh.mean(0) + np.array([15.0, -8.0, 0.0])).astype(np.float32)
    assert np.abs(steady_mesh(mesh, moved) - moved).max() < 1e-2
    # the mesh network's jitter: each frame's noise reaches the output at a fraction of its size
    rng = np.random.default_rng(0)
    raw = [mesh + rng.normal(0, 0.01 * size, mesh.shape).astype(np.float32) for _ in range(30)]
    smooth, prev = [], None
    for m in raw:
        prev = steady_mesh(prev, m)
        smooth.append(prev)

    def jitter(seq: list[np.ndarray]) -> float:
        return float(np.mean([np.linalg.norm((b - a)[:, :2], axis=1).mean() for a, b in itertools.pairwise(seq)]))

    assert jitter(smooth) < 0.5 * jitter(raw)
    assert (
        np.linalg.norm((smooth[-1] - mesh)[:, :2], axis=1).mean()
        < 0.6 * np.linalg.norm((raw[-1] - mesh)[:, :2], axis=1).mean()
    )
    # a small change of shape (the jaw dropping) is caught up with over a few frames, not at once
    opened = mesh.copy()
    opened[:, 1] += np.where(mesh[:, 1] > mesh[:, 1].mean(), 0.03 * size, 0.0)

    def error(m: np.ndarray) -> float:
        return float(np.linalg.norm((m - opened)[:, :2], axis=1).mean())

    prev = steady_mesh(mesh, opened)
    first = error(prev)
    assert 0.3 * error(mesh) < first
    for _ in range(10):
        prev = steady_mesh(prev, opened)
    assert error(prev) < 0.05 * first
    # another face under the same track: taken as it is
    other = (mesh + rng.normal(0, 2 * STEADY_RESET * size, mesh.shape)).astype(np.float32)
    assert np.array_equal(steady_mesh(mesh, other), other)
    assert 0 < STEADY < 1
