"""Photos: the multi-scale pass plan, face finding on real samples, and covering faces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anonymizer.errors import InputError
from anonymizer.media.image import load_image
from anonymizer.pipeline.photo import FaceFinder, cover_faces, plan_passes
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
    assert 29 <= len(faces) <= 31
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
    [({"threshold": 0.0}, "threshold"), ({"threshold": 1.0}, "threshold"), ({"nms_iou": 0.0}, "nms_iou"), ({"upscale": 0.5}, "upscale")],
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
def test_cover_faces_changes_faces_only(closeup_faces: tuple[np.ndarray, tuple[Face, ...]], method: str, shape: str) -> None:
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
