"""Mesh-based face replacement: pose fitting, geometry blending and rendering on real photos."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from anonymizer.api import get_finder
from anonymizer.errors import InputError
from anonymizer.media import load_image
from anonymizer.nn import face_mesh
from anonymizer.nn.facemesh import mesh_in_image
from anonymizer.pipeline.donor_swap import (
    FACE_OVAL,
    RING_REACH,
    distinct_shape,
    face_region,
    outline_share,
    poisson_blend,
    posed_donor,
    radial_share,
    render_face,
)


def _mesh(net, rgb: np.ndarray) -> np.ndarray:
    (face,) = get_finder(threshold=0.5).find(rgb)
    return mesh_in_image(net, rgb, face.box, face.landmarks)


@pytest.fixture(scope="module")
def pair(samples: Path):
    """(astronaut photo, its mesh, Grace Hopper's photo as the donor, her mesh, triangles)."""
    net = face_mesh()
    target = load_image(samples / "astronaut.png").rgb
    donor = load_image(samples / "grace_hopper.jpg").rgb
    t, d = _mesh(net, target), _mesh(net, donor)
    sub = cv2.Subdiv2D((0, 0, donor.shape[1], donor.shape[0]))
    for x, y in d[:, :2]:
        sub.insert((float(x), float(y)))
    tris = []
    for tri in sub.getTriangleList().reshape(-1, 3, 2):
        idx = {int(np.argmin(((d[:, :2] - p) ** 2).sum(1))) for p in tri}
        if len(idx) == 3:
            tris.append(sorted(idx))
    return target, t, donor, d, np.array(tris, np.int32)


def test_the_donor_keeps_its_shape_in_the_targets_pose(pair) -> None:
    _, t, _, d, _ = pair
    posed = posed_donor(d, t)
    assert np.allclose(posed_donor(t, t), t, atol=1e-3)
    # posed like the target: same place and size ...
    assert np.abs(posed.mean(0)[:2] - t.mean(0)[:2]).max() < 2

    # ... but the donor's own proportions: eye spacing over face height as in the donor, not the target
    def ratio(m: np.ndarray) -> float:
        return float(np.linalg.norm(m[33, :2] - m[263, :2]) / np.linalg.norm(m[10, :2] - m[152, :2]))

    assert ratio(posed) == pytest.approx(ratio(d), rel=0.03)
    share = outline_share(d)
    assert share[list(FACE_OVAL)] == pytest.approx(1.0, abs=1e-3) and share[1] < 0.3  # the nose tip is central


def test_render_replaces_the_inner_face_and_nothing_beyond_the_ring(pair) -> None:
    target, t, donor, d, tris = pair
    out, alpha, changed = render_face(target, t, donor, d, tris)
    assert out.shape == target.shape and out.dtype == np.uint8
    assert not (out != target).any(-1)[~changed].any()  # every changed pixel is reported
    h, w = target.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    share = radial_share(np.stack([xs.ravel(), ys.ravel()], 1), t[list(FACE_OVAL)]).reshape(h, w)
    beyond = share > 1 + RING_REACH + 0.05  # (the field is interpolated from a grid of 4 px steps here)
    assert np.array_equal(out[beyond], target[beyond])  # not a pixel beyond the reshaped ring
    assert changed[share < 1 + RING_REACH - 0.1].mean() > 0.9
    for k in (33, 133, 362, 263, 1, 13, 14, 61, 291):  # eyes, nose tip, lips: fully the donor's
        x, y = np.round(t[k, :2]).astype(int)
        assert alpha[y, x] == 1.0
    inner = alpha == 1.0
    moved = np.abs(out[inner].astype(int) - target[inner].astype(int)).max(axis=1) > 8
    assert moved.mean() > 0.5


def test_the_outline_takes_the_donors_shape_and_the_photo_follows(pair, monkeypatch) -> None:
    import anonymizer.pipeline.donor_swap as ds

    target, t, donor, d, tris = pair
    posed = posed_donor(d, t)

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        return float((a & b).sum() / (a | b).sum())

    shape = target.shape[:2]
    theirs, ours = face_region(posed, shape), face_region(t, shape)
    apart = iou(theirs, ours)
    assert apart < 0.95  # the two faces' outlines differ enough to tell
    _, alpha, _ = render_face(target, t, donor, d, tris)
    assert iou(alpha > 0, theirs) > max(0.97, apart + 0.03), (iou(alpha > 0, theirs), iou(alpha > 0, ours))
    monkeypatch.setattr(ds, "OUTLINE_SHARE", 0.0)  # the target's own outline: as before this stage
    out, alpha, changed = render_face(target, t, donor, d, tris)
    assert iou(alpha > 0, ours) > max(0.97, apart + 0.03), (iou(alpha > 0, theirs), iou(alpha > 0, ours))
    assert np.array_equal(out[~ours], target[~ours]) and not changed[~ours].any()


def test_reshaping_keeps_still_what_it_is_told_to(pair) -> None:
    target, t, donor, d, tris = pair
    keep = np.ones(target.shape[:2], np.float32)
    x_left = int(t[list(FACE_OVAL), 0].min())
    keep[:, : x_left + 5] = 0.0  # e.g. another face just left of this one
    out, alpha, _ = render_face(target, t, donor, d, tris, keep=keep)
    still = (keep == 0) & (alpha == 0)
    assert still.sum() > 1000 and np.array_equal(out[still], target[still])
    free, *_ = render_face(target, t, donor, d, tris)
    assert not np.array_equal(free[still], target[still])  # without it, the ring there moves


def test_distinct_shape_scales_a_donors_difference_from_the_mean() -> None:
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(468, 3)).astype(np.float32)
    mesh = 2.0 * (mean + 0.05 * rng.normal(size=(468, 3))) + np.array([100.0, 50.0, 0.0])
    assert np.allclose(distinct_shape(mesh, mean, 1.0), mesh, atol=1e-4)
    same = distinct_shape(2.0 * mean + 7.0, mean, 3.0)
    assert np.allclose(same, 2.0 * mean + 7.0, atol=1e-3)  # the mean face has nothing to exaggerate
    fit = distinct_shape(mesh, mean, 1.0) - distinct_shape(mesh, mean, 0.0)  # the donor's own difference
    assert np.allclose(distinct_shape(mesh, mean, 1.6) - distinct_shape(mesh, mean, 0.0), 1.6 * fit, atol=1e-3)


def test_a_grey_photo_gets_a_grey_face(pair) -> None:
    target, t, donor, d, tris = pair
    grey = np.repeat(cv2.cvtColor(target, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    out, alpha, _ = render_face(grey, t, donor, d, tris)
    inner = alpha > 0
    assert np.abs(out[inner].astype(int) - out[inner].mean(axis=1, keepdims=True)).max() <= 3


def test_poisson_blend_relights_the_inside_to_meet_the_outside() -> None:
    yy, xx = np.mgrid[0:80, 0:100]
    dst = np.stack([xx * 2, yy * 2, xx + yy], axis=2).clip(0, 255).astype(np.uint8)
    src = (dst.astype(int) + 60).clip(0, 255).astype(np.uint8)  # same texture, much brighter
    inside = np.zeros((80, 100), bool)
    inside[20:60, 30:70] = True
    out = poisson_blend(src, dst, inside)
    assert np.array_equal(out[~inside], dst[~inside])
    step = np.abs(out[inside].astype(int) - dst[inside].astype(int)).mean()
    assert step < 6  # the 60-level step at the edge is gone, not pasted in


def test_bad_meshes(pair) -> None:
    target, t, donor, d, tris = pair
    with pytest.raises(InputError, match="two meshes"):
        render_face(target, t[:100], donor, d, tris)


def test_donors_with_glasses_or_hair_over_the_temples_are_never_drawn() -> None:
    from dataclasses import replace

    from anonymizer.pipeline.donor_swap import HAIR_SHARE, donor_weights
    from anonymizer.pipeline.donors import DonorBank

    bank = DonorBank.load()
    assert (donor_weights(bank) == 1).all()
    glasses = np.zeros(len(bank), np.uint8)
    glasses[:5] = 1
    hair = bank.traits["hair"].copy()
    hair[5:8] = HAIR_SHARE + 0.1
    marked = replace(bank, codes={**bank.codes, "glasses": glasses}, traits={**bank.traits, "hair": hair})
    weights = donor_weights(marked)
    assert not weights[:8].any() and weights[8:].all()


def test_blurred_donors_are_never_drawn() -> None:
    from dataclasses import replace

    from anonymizer.pipeline.donor_swap import SHARP_MIN, SHARP_MIN_CHILD, donor_weights, sharpness
    from anonymizer.pipeline.donors import DonorBank

    bank = DonorBank.load()
    image, mesh = bank.image(0), bank.mesh(0)
    # the stored trait is the measure of the crop; a blurred copy of the same face falls below the line
    assert sharpness(image, mesh) == pytest.approx(float(bank.traits["sharp"][0]), rel=1e-4)
    assert sharpness(image, mesh) >= SHARP_MIN > sharpness(cv2.GaussianBlur(image, (0, 0), 1.5), mesh)
    # a bank without the trait measures its crops; one with it is read as it is; a child's face may be
    # smoother than an adult's
    sharp, age = bank.traits["sharp"].copy(), bank.traits["age"].copy()
    sharp[3:6] = (SHARP_MIN - 0.1, SHARP_MIN - 0.1, SHARP_MIN_CHILD - 0.1)
    age[3:6] = (30.0, 8.0, 8.0)
    weights = donor_weights(replace(bank, traits={**bank.traits, "sharp": sharp, "age": age}))
    assert list(np.flatnonzero(weights == 0)) == [3, 5]
    plain = {k: v for k, v in bank.traits.items() if k != "sharp"}
    assert (donor_weights(replace(bank, traits=plain)) == 1).all()


def test_the_password_chooses_a_donor_that_suits_the_face() -> None:
    from anonymizer.pipeline.donor_swap import TONE_LIMIT, choose_donor, donor_weights, draw_weights
    from anonymizer.pipeline.donors import DonorBank
    from anonymizer.vault.surrogate import SurrogateSeed

    bank = DonorBank.load()
    weights = donor_weights(bank)
    female, age = bank.traits["female"], bank.traits["age"]
    # seeds straight from key material: from_password's scrypt would cost a second each
    seeds = [SurrogateSeed(hashlib.sha256(f"pw{k}".encode()).digest()) for k in range(300)]

    def picks(tone: float, looks: tuple[float, float] | None = None) -> list[int]:
        drawn = draw_weights(bank, weights, tone, looks)
        return [choose_donor(s, 0, drawn) for s in seeds]

    dark, light = picks(45.0), picks(75.0)
    assert dark == picks(45.0)  # the same password, the same donor
    assert len(set(light[:40])) > 30  # forty passwords, (almost) forty people
    assert bank.labs[dark, 0].mean() + 10 < bank.labs[light, 0].mean()  # nearer the face's skin tone
    # a light face (the astronaut of samples/, L* 71) almost never gets a donor far darker, nor a dark
    # face one far lighter, though the bank holds many
    for tone, chosen in ((71.0, picks(71.0, (0.9, 37.0))), (45.0, dark)):
        far = np.abs(bank.labs[:, 0] - tone) > TONE_LIMIT
        assert far.sum() > 20 and np.abs(bank.labs[chosen, 0] - tone).max() <= TONE_LIMIT
    old_man, young_woman = picks(65.0, (0.05, 70.0)), picks(65.0, (0.95, 25.0))
    assert (female[old_man] < 0.5).mean() > 0.9 and (female[young_woman] > 0.5).mean() > 0.9
    # (the bank's donors average 35 years; the draw spreads over donors dlib tells apart within the age
    # bands, so an old man's donors are older than most, not all old)
    assert age[old_man].mean() > age.mean() + 10 and (age[old_man] >= 50).mean() > 0.4
    assert age[young_woman].mean() < 35
    # a face the attributes read clearly never gets a donor clearly of the other sex: donors under DRAW_FLOOR
    # of the likeliest are set aside (they used to keep a few percent of the draw together, and the
    # astronaut, a woman of 36 to the attributes, got a man of 68 for one of the card picture's passwords)
    drawn = draw_weights(bank, weights, 71.0, (0.94, 36.0))
    assert (drawn[female < 0.1] == 0).all() and drawn[female < 0.5].sum() < 0.02 and (drawn > 0).sum() > 50
    assert len(set(old_man)) > 20  # still many people to draw from
    # a child gets a child or a teenager, hardly ever an adult (with the age in plain years a 6-year-old's
    # draw averaged a 27-year-old: bearded men on children)
    child, toddler = picks(65.0, (0.5, 6.0)), picks(65.0, (0.5, 2.0))
    assert (age[child] < 13).mean() > 0.6 and (age[child] >= 18).mean() < 0.06 and age[child].max() < 25
    assert (age[toddler] < 13).mean() > 0.9 and (age[toddler] >= 18).mean() < 0.03
    drawn = draw_weights(bank, weights, 60.0, (0.5, 30.0))
    tracks = [choose_donor(seeds[0], t, drawn) for t in range(20)]
    assert len(set(tracks)) == 20  # every face of one photo its own donor


def _clique_and_loners() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A made-up draw of nine donors: (distances [9, 9]: donors 0-5 alike, within NEAR of each other, the
    rest far from everyone; weights: 0-7 equally likely, 8 never; groups: 0-2 and 3-8)."""
    from anonymizer.pipeline.donor_swap import NEAR

    dist = np.full((9, 9), 1.0)
    dist[:6, :6] = NEAR / 2
    np.fill_diagonal(dist, 0.0)
    w = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0], np.float64) / 8
    return dist, w, np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])


def test_the_draw_spreads_over_donors_that_look_unalike() -> None:
    from dataclasses import replace

    from anonymizer.pipeline.donor_swap import (
        donor_groups,
        donor_weights,
        draw_weights,
        near_chance,
        spread_draw,
    )
    from anonymizer.pipeline.donors import DonorBank

    # six donors alike (a clique, all within NEAR of each other) and two loners, equally likely at first:
    # the chance that two draws land on look-alikes falls, the loners gain, donors of weight 0 stay 0
    dist, w, groups = _clique_and_loners()
    p = spread_draw(w, dist)
    near = near_chance(dist)
    assert near[0, 1] > 0.99 and near[0, 7] < 1e-3  # look-alikes render alike, strangers do not
    assert p.sum() == pytest.approx(1.0) and p[8] == 0.0
    assert p @ near @ p < 0.7 * (w @ near @ w)
    assert p[6] == p[7] > 2 * p[0] and np.allclose(p[:6], p[0])
    assert np.array_equal(p, spread_draw(w.copy(), dist.copy()))  # the same weights, the same draw
    # donors nobody resembles: nothing to spread
    assert np.allclose(spread_draw(w, np.ones((9, 9)) - np.eye(9)), w)
    # groups (apparent sex and age band) keep their shares: the clique's half of the draw stays with it
    p = spread_draw(w, dist, groups)
    assert p[:3].sum() == pytest.approx(3 / 8) and p[3:].sum() == pytest.approx(5 / 8)
    assert p[6] == p[7] > p[3]
    # the shipped bank carries the distances, and the draw still suits the face
    bank = DonorBank.load()
    assert bank.distances is not None and bank.distances.shape == (len(bank), len(bank))
    weights = donor_weights(bank)
    drawn = draw_weights(bank, weights, 60.0, (0.9, 30.0))
    plain = draw_weights(replace(bank, distances=None), weights, 60.0, (0.9, 30.0))
    near = near_chance(bank.distances)
    assert drawn @ near @ drawn < 0.8 * (plain @ near @ plain)
    groups = donor_groups(bank)
    assert groups is not None
    for g in np.unique(groups):  # each apparent sex and age band as likely as before
        assert drawn[groups == g].sum() == pytest.approx(plain[groups == g].sum())
    assert abs(drawn @ bank.labs[:, 0] - plain @ bank.labs[:, 0]) < 3.0  # L*: TONE_SPREAD is 15


def test_the_spread_draw_is_settled_at_its_fixed_point() -> None:
    from dataclasses import replace

    import anonymizer.pipeline.donor_swap as ds
    from anonymizer.pipeline.donors import DonorBank

    # the draw must be the spread's fixed point, not wherever the steps stopped: 750 steps left chances up
    # to 0.5 points away from it (3 points at a spread of 0.01), so the number of steps chose donors
    bank = DonorBank.load()
    assert bank.distances is not None
    weights, groups = ds.donor_weights(bank), ds.donor_groups(bank)
    assert groups is not None
    for tone, looks in ((64.0, (0.27, 17.5)), (45.0, (0.1, 60.0)), (75.0, (0.5, 40.0)), (55.0, (0.2, 8.0))):
        drawn = ds.draw_weights(bank, weights, tone, looks)
        plain = ds.draw_weights(replace(bank, distances=None), weights, tone, looks)  # before the spread
        fit = plain > 0
        assert (drawn[~fit] == 0).all()  # (a donor the spread leaves under 1e-12 rounds to 0 as well)
        base, p, kinds = plain[fit], drawn[fit], groups[fit]
        step = base * np.exp(-2.0 * (ds.near_chance(bank.distances[np.ix_(fit, fit)]) @ p) / ds.DRAW_SPREAD)
        for g in np.unique(kinds):
            step[kinds == g] *= base[kinds == g].sum() / step[kinds == g].sum()
        assert np.abs(step - p).max() < 1e-6, (tone, looks)


def test_equal_donors_keep_equal_chances_however_strong_the_spread(monkeypatch) -> None:
    import anonymizer.pipeline.donor_swap as ds

    # a clique of six look-alikes and two loners, in two groups: at a spread of 0.01 steps of one damping
    # for all swung the loners apart (0.317 against 0.308), a draw decided by rounding, not by the donors
    dist, w, groups = _clique_and_loners()
    for spread in (0.02, 0.01):
        monkeypatch.setattr(ds, "DRAW_SPREAD", spread)
        p = ds.spread_draw(w, dist, groups)
        assert p[6] == pytest.approx(p[7], abs=1e-9) and p[6] > p[3], spread
        assert np.allclose(p[:3], p[0]) and np.allclose(p[3:6], p[3])
        assert p[:3].sum() == pytest.approx(3 / 8, abs=1e-6) and p[8] == 0.0
