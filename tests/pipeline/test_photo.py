"""Photos: the multi-scale pass plan, face finding on real samples, and covering faces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from anonymizer.errors import InputError
from anonymizer.media.image import load_image
from anonymizer.ops.boxes import iou_matrix
from anonymizer.pipeline.photo import (
    PROBE_MIN_MARGIN,
    PROBE_STEP,
    FaceFinder,
    cover_faces,
    faint_candidates,
    plan_passes,
    probe_passes,
    seeded_passes,
    size_threshold,
)
from anonymizer.types import Face, Region

# plan_passes ------------------------------------------------------------------------------------------


def _covered(passes: list, width: int, height: int) -> np.ndarray:
    seen = np.zeros((height, width), dtype=bool)
    for p in passes:
        assert 0 <= p.x and 0 <= p.y and p.w > 0 and p.h > 0
        assert p.x + p.w <= width and p.y + p.h <= height
        seen[p.y : p.y + p.h, p.x : p.x + p.w] = True
    return seen


def test_small_image_full_pass_and_one_upscaled_pass() -> None:
    passes = plan_passes(512, 512)
    assert [(p.x, p.y, p.w, p.h, p.scale) for p in passes] == [(0, 0, 512, 512, 1.0), (0, 0, 512, 512, 2.0)]
    assert [p.scale for p in plan_passes(512, 512, upscale=3.0)] == [1.0, 3.0]


@pytest.mark.parametrize("upscale", [0, 1.0])
def test_no_upscale_single_pass(upscale: float) -> None:
    passes = plan_passes(640, 480, upscale=upscale)
    assert [(p.x, p.y, p.w, p.h, p.scale) for p in passes] == [(0, 0, 640, 480, 1.0)]


@pytest.mark.parametrize(("width", "height"), [(1280, 881), (1000, 700), (500, 3000), (4000, 3000), (641, 1201)])
def test_big_image_tiles_cover_everything_with_overlap(width: int, height: int) -> None:
    tile, overlap = 640, 96
    passes = plan_passes(width, height, tile=tile, overlap=overlap)
    assert (passes[0].x, passes[0].y, passes[0].w, passes[0].h, passes[0].scale) == (0, 0, width, height, 1.0)
    tiles = [p for p in passes if p.scale == 2.0]
    assert len(tiles) > 1
    assert all(p.w <= tile and p.h <= tile for p in tiles)
    assert _covered(tiles, width, height).all()
    for starts, side in (({p.x for p in tiles}, width), ({p.y for p in tiles}, height)):
        s = sorted(starts)
        assert s[0] == 0
        assert all(b - a <= tile - overlap for a, b in zip(s, s[1:], strict=False))  # neighbours share >= overlap px
        assert s[-1] + min(tile, side) == side  # the last tile ends at the edge


def test_large_image_gets_a_downscaled_pass() -> None:
    passes = plan_passes(4000, 3000)
    low = [p for p in passes if p.scale < 1]
    assert len(low) == 1
    assert (low[0].x, low[0].y, low[0].w, low[0].h) == (0, 0, 4000, 3000)
    assert low[0].scale == pytest.approx(640 / 4000)
    assert passes[-1] is low[0]
    # Off with downscale_side=0, and not needed up to 2 x 640 on the long side (720p video, for one).
    assert all(p.scale >= 1 for p in plan_passes(4000, 3000, downscale_side=0))
    assert all(p.scale >= 1 for p in plan_passes(1280, 720))
    assert [p.scale for p in plan_passes(1281, 500, upscale=0)] == [1.0, pytest.approx(640 / 1281)]


def test_tiles_and_downscale_for_a_large_group_photo() -> None:
    passes = plan_passes(1986, 1545)
    scales = [p.scale for p in passes]
    assert scales[0] == 1.0 and scales[-1] == pytest.approx(640 / 1986) and set(scales[1:-1]) == {2.0}
    assert len(scales) > 3  # the 2x pass is tiled


def test_enlarged_passes_run_only_where_small_candidates_are() -> None:
    tiles = [p for p in plan_passes(1986, 1545) if p.scale > 1]
    seeds = torch.tensor([[700.0, 700, 710, 712], [1900, 100, 1910, 112], [100, 100, 300, 300]])  # two small, one large
    kept = seeded_passes(tiles, seeds)
    assert 0 < len(kept) < len(tiles)
    assert all(any(p.x <= x < p.x + p.w and p.y <= y < p.y + p.h for p in kept) for x, y in [(705, 706), (1905, 106)])
    assert (tiles[0].x, tiles[0].y) == (0, 0) and tiles[0] not in kept  # it holds only the large box: no seed
    assert seeded_passes(tiles, torch.zeros(0, 4)) == []


def test_size_threshold_is_lower_for_small_faces_higher_for_large() -> None:
    t = size_threshold(torch.tensor([8.0, 31.9, 32, 63.9, 64, 400]), 0.2)
    assert t.tolist() == pytest.approx([0.12, 0.12, 0.2, 0.2, 0.4, 0.4])
    assert size_threshold(torch.tensor([10.0, 100]), 0.3).tolist() == pytest.approx([0.18, 0.5])  # capped at 0.5
    assert size_threshold(torch.tensor([100.0]), 0.7).tolist() == pytest.approx([0.7])  # never below the threshold
    assert size_threshold(torch.zeros(0), 0.2).shape == (0,)


def test_low_score_large_candidates_are_rejected_small_ones_kept() -> None:
    finder = FaceFinder(weights=None, threshold=0.2, upscale=0)
    candidates = torch.tensor([[10.0, 10, 110, 130], [150, 10, 182, 50], [200, 200, 216, 220], [100, 200, 116, 220]])
    scores = torch.tensor([0.3, 0.25, 0.13, 0.1])  # large, mid-size, small, small

    def detect(batch: torch.Tensor, *, threshold: float, nms_iou: float) -> list:
        m = scores > threshold
        return [(candidates[m], scores[m], torch.zeros(int(m.sum()), 5, 2))] * batch.shape[0]

    finder.model.detect = detect  # type: ignore[method-assign]
    faces = finder.find(np.zeros((256, 256, 3), np.uint8))
    assert [f.score for f in faces] == pytest.approx([0.25, 0.13])  # the large 0.3 blob needs 0.4, the small 0.1 0.12


def test_a_small_face_only_the_enlarged_pass_finds(samples: Path) -> None:
    hopper = load_image(samples / "grace_hopper.jpg").rgb[100:370, 130:400]  # her face, about 205 px tall
    img = np.full((480, 640, 3), 120, np.uint8)
    small = cv2.resize(hopper, (11, 11), interpolation=cv2.INTER_AREA)  # a face about 8 px tall
    img[200:211, 300:311] = small
    assert FaceFinder(threshold=0.6, upscale=0).find(img) == ()
    (face,) = FaceFinder(threshold=0.6).find(img)
    x1, y1, x2, y2 = face.box
    assert 295 < (x1 + x2) / 2 < 316 and 195 < (y1 + y2) / 2 < 216


def test_a_large_face_is_one_face(samples: Path) -> None:
    # the 2x pass sees eyes and cheeks as faces inside a large face; they are dropped
    rgb = cv2.resize(load_image(samples / "astronaut.png").rgb, (760, 840), interpolation=cv2.INTER_LINEAR)
    assert len(FaceFinder().find(rgb)) == 1


def test_tom_cruise_is_one_face(finder: FaceFinder, data_dir: Path) -> None:
    assert len(finder.find(load_image(data_dir / "dlib-faces" / "Tom_Cruise_avp_2014_4.jpg").rgb)) == 1


# FaceFinder on real photos -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut_faces(finder: FaceFinder, samples: Path) -> tuple[np.ndarray, tuple[Face, ...]]:
    rgb = load_image(samples / "astronaut.png").rgb
    return rgb, finder.find(rgb)


@pytest.fixture(scope="module")
def closeup_faces(finder: FaceFinder, samples: Path) -> tuple[np.ndarray, tuple[Face, ...]]:
    rgb = load_image(samples / "group_solvay_1927_closeup.jpg").rgb
    return rgb, finder.find(rgb)


def test_astronaut_one_face(astronaut_faces: tuple[np.ndarray, tuple[Face, ...]]) -> None:
    rgb, faces = astronaut_faces
    assert isinstance(faces, tuple) and len(faces) == 1
    (face,) = faces
    assert face.score > 0.9
    x1, y1, x2, y2 = face.box
    h, w = rgb.shape[:2]
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert 40 < face.width < 250 and 40 < face.height < 300  # a face, not the whole frame
    assert len(face.landmarks) == 5
    (lex, ley), (rex, rey), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    assert lex < rex and mlx < mrx
    assert max(ley, rey) < ny < min(mly, mry)  # eyes above nose above mouth
    for x, y in face.landmarks:
        assert x1 <= x <= x2 and y1 <= y <= y2


def test_group_photo_finds_every_face(finder: FaceFinder, samples: Path) -> None:
    img = load_image(samples / "group_solvay_1927.jpg")
    faces = finder.find(img.rgb)
    confident = sum(f.score > 0.5 for f in faces)
    assert 29 <= confident <= 31
    assert len(faces) - confident <= 4  # a few weak small candidates (hands, the wall) at the small-face threshold
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)  # best first
    assert all(0 <= f.box[0] < f.box[2] <= img.width and 0 <= f.box[1] < f.box[3] <= img.height for f in faces)


def test_closeup_finds_its_faces(closeup_faces: tuple[np.ndarray, tuple[Face, ...]]) -> None:
    assert 15 <= len(closeup_faces[1]) <= 17


@pytest.mark.parametrize("shape", [(256, 256, 3), (1, 1, 3), (3, 5, 3), (40, 2000, 3)])
def test_no_faces_in_plain_images(finder: FaceFinder, shape: tuple[int, int, int]) -> None:
    faces = finder.find(np.full(shape, 128, np.uint8))
    assert faces == ()


@pytest.mark.parametrize(
    "arr",
    [np.zeros((32, 32, 3), np.float32), np.zeros((32, 32), np.uint8), np.zeros((32, 32, 4), np.uint8)],
    ids=["float", "grey", "rgba"],
)
def test_find_bad_input(finder: FaceFinder, arr: np.ndarray) -> None:
    with pytest.raises(InputError, match=r"RGB uint8 \(H, W, 3\)"):
        finder.find(arr)


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 0, 3)])
def test_find_empty_image(finder: FaceFinder, shape: tuple[int, int, int]) -> None:
    # Regression: an empty image used to reach cv2.resize and raise cv2.error.
    with pytest.raises(InputError, match="empty"):
        finder.find(np.zeros(shape, np.uint8))


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.0}, "threshold"),
        ({"nms_iou": 0.0}, "nms_iou"),
        ({"upscale": 0.5}, "upscale"),
    ],
)
def test_finder_bad_settings(kw: dict[str, Any], words: str) -> None:
    with pytest.raises(InputError, match=words):
        FaceFinder(weights=None, **kw)


def test_finder_bad_batch_size() -> None:
    # Regression: batch_size=0 used to fail later in find() with "range() arg 3 must not be zero".
    with pytest.raises(InputError, match="batch_size"):
        FaceFinder(weights=None, batch_size=0)


# cover_faces ------------------------------------------------------------------------------------------


def _windows_mask(regions: tuple[Region, ...], shape: tuple[int, ...]) -> np.ndarray:
    inside = np.zeros(shape[:2], dtype=bool)
    for r in regions:
        x1, y1, x2, y2 = r.box
        inside[y1:y2, x1:x2] = True
    return inside


def _box_pixels(img: np.ndarray, face: Face) -> np.ndarray:
    x1, y1, x2, y2 = (int(np.ceil(face.box[0])), int(np.ceil(face.box[1])), int(face.box[2]), int(face.box[3]))
    return img[y1:y2, x1:x2]


@pytest.mark.parametrize("method", ["solid", "pixelate", "blur"])
@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_cover_faces_changes_faces_only(
    closeup_faces: tuple[np.ndarray, tuple[Face, ...]], method: str, shape: str
) -> None:
    rgb, faces = closeup_faces
    before = rgb.copy()
    out, regions, mask = cover_faces(rgb, faces, method=method, shape=shape)
    np.testing.assert_array_equal(rgb, before)  # the input is not modified
    assert out.shape == rgb.shape and out.dtype == np.uint8 and out is not rgb
    assert mask.shape == rgb.shape[:2] and mask.dtype == bool
    assert len(regions) == len(faces)
    assert [r.face for r in regions] == list(faces) and all(r.shape == shape for r in regions)
    inside = _windows_mask(regions, rgb.shape)
    np.testing.assert_array_equal(out[~inside], rgb[~inside])  # nothing changes outside the windows
    assert not (mask & ~inside).any()
    changed = (out != rgb).any(axis=2)
    assert not (changed & ~mask).any()  # the mask covers every changed pixel
    for face in faces:
        assert _box_pixels(mask, face).all()
        frac = _box_pixels(changed, face).mean()
        assert frac > (0.99 if method == "solid" else 0.6), (face, frac)


def test_small_faces_get_a_larger_mask_covering_a_box_a_few_pixels_off() -> None:
    rgb = np.full((200, 300, 3), 200, np.uint8)
    small = Face(box=(100.0, 100.0, 120.0, 120.0), score=0.9, landmarks=((105.0, 106.0),) * 5)
    large = Face(box=(150.0, 20.0, 250.0, 120.0), score=0.9, landmarks=((170.0, 50.0),) * 5)
    out, regions, _ = cover_faces(rgb, [small, large], feather=0.0)
    black = (out == 0).all(axis=2)
    assert black[98:122, 98:122].all()  # the face as labelled 2 px wider on every side: all covered
    assert not black[:, :92].any()  # and not much more (the 1.7x ellipse reaches x = 93)
    (sx1, _, sx2, _), (lx1, _, lx2, _) = (r.box for r in regions)
    assert sx2 - sx1 == pytest.approx(20 * 1.7, abs=2) and lx2 - lx1 == pytest.approx(100 * 1.5, abs=2)


def test_solid_fill_is_exactly_the_colour(closeup_faces: tuple[np.ndarray, tuple[Face, ...]]) -> None:
    rgb, faces = closeup_faces
    color = (12, 200, 34)
    out, _, mask = cover_faces(rgb, faces, method="solid", feather=0.0, color=color)
    assert mask.any()
    assert (out[mask] == np.array(color, np.uint8)).all()
    # With the default feathered edge the mask also holds the soft band, but every face box is solid.
    out, _, _ = cover_faces(rgb, faces, method="solid", color=color)
    for face in faces:
        assert (_box_pixels(out, face) == np.array(color, np.uint8)).all()


def _synthetic_face(x1: float, y1: float, x2: float, y2: float) -> Face:
    return Face(box=(x1, y1, x2, y2), score=0.9, landmarks=((0.0, 0.0),) * 5)


def test_cover_faces_clips_at_the_border_and_handles_no_faces() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    out, regions, mask = cover_faces(rgb, ())
    np.testing.assert_array_equal(out, rgb)
    assert out is not rgb and regions == () and not mask.any()
    out, regions, mask = cover_faces(rgb, [_synthetic_face(-10, -10, 20, 15), _synthetic_face(70, 50, 90, 70)])
    assert len(regions) == 2
    for r in regions:
        x1, y1, x2, y2 = r.box
        assert 0 <= x1 < x2 <= 80 and 0 <= y1 < y2 <= 60
    assert (out[0:15, 0:20] == 0).all() and (out[50:60, 70:80] == 0).all()
    out, regions, _ = cover_faces(rgb, [_synthetic_face(200, 200, 220, 220)])  # entirely outside: skipped
    assert regions == () and np.array_equal(out, rgb)


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"method": "smudge"}, "unknown method 'smudge'; expected one of solid, pixelate, blur"),
        ({"shape": "star"}, "unknown mask shape 'star'; expected one of ellipse, box"),
        ({"mask_scale": 0.0}, "mask scale must be > 0"),
        ({"mask_scale": -1.5}, "mask scale must be > 0"),
        ({"feather": -0.1}, "feather must be >= 0"),
    ],
)
def test_cover_faces_bad_options(kw: dict[str, object], words: str) -> None:
    rgb = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(InputError) as info:
        cover_faces(rgb, [_synthetic_face(10, 10, 30, 30)], **kw)  # type: ignore[arg-type]
    assert words in str(info.value)


def test_cover_faces_bad_image() -> None:
    with pytest.raises(InputError, match="RGB uint8"):
        cover_faces(np.zeros((40, 40), np.uint8), [_synthetic_face(10, 10, 30, 30)])
    with pytest.raises(InputError, match="RGB uint8"):
        cover_faces(np.zeros((40, 40, 3), np.float32), [_synthetic_face(10, 10, 30, 30)])


# watching a video's faint candidates ------------------------------------------------------------------


def test_probe_crops_hold_the_candidate_share_one_size_and_stay_inside() -> None:
    faint = np.array([[300, 150, 320, 160, 1.0], [0, 0, 20, 10, 1.0], [630, 350, 640, 360, 1.0]], np.float32)
    passes = probe_passes(faint, 640, 360)
    assert len({(p.w, p.h) for p in passes}) == 1 and passes[0].w % PROBE_STEP == 0  # one batch
    for p, (x1, y1, x2, y2, _) in zip(passes, faint, strict=True):
        assert 0 <= p.x <= x1 and x2 <= p.x + p.w <= 640 and 0 <= p.y <= y1 and y2 <= p.y + p.h <= 360
    (mid,) = probe_passes(faint[:1], 640, 360)
    assert mid.x <= 300 - PROBE_MIN_MARGIN and mid.x + mid.w >= 320 + PROBE_MIN_MARGIN  # room to move
    (half,) = probe_passes(np.array([[800, 500, 1000, 550, 0.5]], np.float32), 2000, 1000)
    assert half.scale == 0.5 and (half.w * 0.5) % PROBE_STEP == 0 and half.x <= 800 - 1.5 * 200
    assert probe_passes(np.zeros((0, 5), np.float32), 640, 360) == []


def test_faint_candidates_are_under_their_threshold_over_its_share_and_apart_from_the_found() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [50, 0, 60, 10], [51, 0, 61, 10], [100, 0, 110, 10], [5, 0, 15, 10.0]])
    scores = torch.tensor([0.1, 0.15, 0.12, 0.05, 0.3])
    found = torch.tensor([[0, 0, 10, 10.0]])
    faint = faint_candidates(boxes, scores, torch.full((5,), 0.2), found, nms_iou=0.4, scale=0.5)
    # [0]: overlaps a found face; [2]: suppressed by [1]; [3]: under half the threshold; [4]: above it
    np.testing.assert_array_equal(faint, [[50, 0, 60, 10, 0.5]])


def test_a_video_finder_names_faint_candidates_and_finds_faces_again_in_crops(samples: Path) -> None:
    from anonymizer.api import get_finder

    video = get_finder(threshold=0.2, upscale=0.0)  # the video path's face finder settings (one pass)
    rgb = load_image(samples / "group_solvay_1927.jpg").rgb
    faces, faint = video.find_watched(rgb)
    assert faces == video.find(rgb) and len(faces) >= 25
    assert faint.shape[1] == 5 and len(faint) and (faint[:, 4] == 1).all()
    found = np.array([f.box for f in faces], np.float32)
    assert iou_matrix(faint[:, :4], found).max() <= 0
    # every face looked for again in a crop around it alone is found there, in about the same place
    again = video.probe(rgb, np.concatenate([found, np.ones((len(found), 1), np.float32)], axis=1))
    matched = iou_matrix(found, np.array([f.box for f in again], np.float32).reshape(-1, 4)).max(1)
    assert np.mean(matched > 0.7) >= 0.9, matched
