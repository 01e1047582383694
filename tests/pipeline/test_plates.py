"""Licence plates: covering (a grown box, kind "plate"), the shipped plate detector on drawn cars and on
photos without cars, photos and videos with faces and plates sealed and restored exactly, and (with the
research data) recall on the held-out street photos."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from videoclips import car_photo, decode, face_centre, make_clip  # noqa: E402

from anonymizer import Key, Plate  # noqa: E402
from anonymizer.api import anonymize_image, detect_plates, get_finder, get_plate_finder, restore_image  # noqa: E402
from anonymizer.defaults import PLATE_MASK_SCALE, PLATE_REDUCED  # noqa: E402
from anonymizer.errors import InputError  # noqa: E402
from anonymizer.ops.boxes import iou_matrix  # noqa: E402
from anonymizer.pipeline.options import AnonymizeOptions  # noqa: E402
from anonymizer.pipeline.plates import PlateFinder, cover_plates, reduced_scales  # noqa: E402
from anonymizer.pipeline.video import anonymize_video, restore_video  # noqa: E402
from anonymizer.vault import parse  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PLATES = ROOT.parent / "shared" / "data" / "plates-train"


def test_the_plate_detector_is_a_registered_builder_with_declared_weights() -> None:
    import torch

    from anonymizer.nn import build_model, list_models
    from anonymizer.weights import get_weights, is_ready

    assert "plate_detector" in list_models()
    model = build_model("plate_detector", weights=None)
    with torch.inference_mode():
        out = model(torch.rand(2, 3, 64, 96) * 255)
    assert out["heatmap"].shape == (2, 1, 16, 24) and out["scale"].shape == (2, 2, 16, 24)
    assert all(bool(torch.isfinite(v).all()) for v in out.values())
    spec = get_weights("plates")
    assert spec.model == "plate_detector" and "CC BY 4.0" in spec.licence and is_ready(spec)


def test_cover_plates_fills_a_grown_box() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)
    before = rgb.copy()
    plate = Plate(box=(50.0, 60.0, 150.0, 80.0), score=0.9)
    out, regions, changed = cover_plates(rgb, [plate], color=(1, 2, 3))
    np.testing.assert_array_equal(rgb, before)  # input untouched
    (region,) = regions
    assert region.kind == "plate" and region.shape == "box" and region.face.box == plate.box
    # the box grown PLATE_MASK_SCALE about its centre, to the pixel
    gw, gh = 100 * PLATE_MASK_SCALE / 2, 20 * PLATE_MASK_SCALE / 2
    x1, y1, x2, y2 = round(100 - gw), round(70 - gh), round(100 + gw), round(70 + gh)
    assert changed[y1:y2, x1:x2].all() and abs(int(changed.sum()) - (x2 - x1) * (y2 - y1)) <= x2 - x1 + y2 - y1
    assert (out[y1:y2, x1:x2] == (1, 2, 3)).all() and region.box[0] <= x1 and region.box[2] >= x2
    np.testing.assert_array_equal(out[~changed], rgb[~changed])
    for method in ("pixelate", "blur"):
        other, _, _ = cover_plates(rgb, [plate], method=method)
        assert np.abs(other[y1:y2, x1:x2].astype(int) - rgb[y1:y2, x1:x2]).mean() > 30
    assert cover_plates(rgb, [])[1] == ()
    with pytest.raises(InputError, match="unknown method"):
        cover_plates(rgb, [plate], method="surrogate")
    with pytest.raises(InputError, match="mask scale"):
        cover_plates(rgb, [plate], mask_scale=0)


@pytest.mark.parametrize("width", [40, 60, 80])
def test_the_detector_finds_a_drawn_plate(width: int) -> None:
    img, box = car_photo(width)
    plates = detect_plates(img)
    assert plates, "no plate found"
    x1, y1, x2, y2 = box
    _, _, changed = cover_plates(img, plates)
    assert changed[y1:y2, x1:x2].mean() >= 0.95  # the whole plate goes under the (grown) box
    assert changed.mean() < 0.05 and len(plates) <= 2  # the car's window and wheels are not plates


@pytest.mark.parametrize("fitted", [(0.5, 0.5, 0.5, 0.6), (0.0, 0.0, 0.05, 0.05)])
def test_a_fitted_box_that_is_empty_or_elsewhere_falls_back_to_the_detectors(
    fitted: tuple[float, float, float, float],
) -> None:
    import torch

    class Stub(torch.nn.Module):  # a refiner gone wrong: an empty box, or one in the window's corner
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[*fitted, 0.0]]).expand(len(x), 5)

    img, _ = car_photo(80)
    raw = PlateFinder(refine=False)
    raw.model = get_plate_finder().model
    stubbed = PlateFinder(refine=False)
    stubbed.model, stubbed.refiner = raw.model, Stub()  # type: ignore[assignment]
    assert raw.find(img) and stubbed.find(img) == raw.find(img)  # every plate kept, with the detector's box
    fine = get_plate_finder().find(img)
    assert [p.score for p in fine] == [p.score for p in raw.find(img)] and fine != raw.find(img)  # fitted


@pytest.mark.parametrize("width", [120, 200, 320])
def test_reduced_passes_add_near_plates_and_keep_the_others(width: int) -> None:
    img, box = car_photo(width)  # 200 and 320: a third to a half of the photo wide, too large for one pass
    assert PLATE_REDUCED == (0.5, 0.75)
    alone = PlateFinder(reduced=())
    alone.model = get_plate_finder().model
    before, after = alone.find(img), get_plate_finder().find(img)
    assert set(before) <= set(after)  # what the full-size passes found is kept as it was
    assert [p.score for p in after] == sorted((p.score for p in after), reverse=True)  # best first
    assert (len(before) == 0) == (width > 160) and after, "the reduced passes found no plate"
    x1, y1, x2, y2 = box
    _, _, changed = cover_plates(img, after)
    assert changed[y1:y2, x1:x2].mean() >= 0.95 and len(after) <= 2
    assert changed.sum() < 6 * (x2 - x1) * (y2 - y1)  # a box about the plate (grown 1.6x), not over the car


def test_large_images_are_also_searched_at_halvings_of_the_smallest_reduced_scale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from anonymizer.pipeline import plates

    assert reduced_scales((0.5, 0.75), 640) == (0.5, 0.75)  # a 640-px photo: as before
    assert reduced_scales((0.5, 0.75), 1920) == (0.5, 0.75, 0.25)
    assert reduced_scales((0.5, 0.75), 4000) == (0.5, 0.75, 0.25, 0.125)
    assert reduced_scales((), 4000) == ()
    img, box = car_photo(480, size=(1920, 1440))  # a quarter of the photo wide: 240 px even at 0.5x
    x1, y1, x2, y2 = box
    found = get_plate_finder().find(img)
    assert found and cover_plates(img, found)[2][y1:y2, x1:x2].mean() >= 0.95
    monkeypatch.setattr(plates, "PLATE_REDUCED_MIN_SIDE", 10_000)  # no halvings: the plate is missed
    assert not get_plate_finder().find(img)


@pytest.mark.parametrize(("width", "scale"), [(60, 1.0), (200, 0.5)])
def test_a_plate_is_found_again_in_a_crop_at_the_scale_of_the_pass_that_saw_it(width: int, scale: float) -> None:
    img, box = car_photo(width)  # 200 px: found only by the 0.5x pass
    video = PlateFinder(upscale=0.0, reduced=(0.5,))
    video.model = get_plate_finder().model
    plates, faint = video.find_watched(img)
    assert plates == video.find(img) and plates
    assert faint.shape[1] == 5 and set(faint[:, 4].tolist()) <= {1.0, 0.5}
    assert iou_matrix(faint[:, :4], np.array([p.box for p in plates], np.float32)).max(initial=0) <= 0
    again = video.probe(img, np.array([[*box, scale]], np.float32))
    # the crop alone finds the plate again, and its box covers the plate as the whole frame's did
    x1, y1, x2, y2 = box
    assert len(again) == 1 and cover_plates(img, again)[2][y1:y2, x1:x2].mean() >= 0.95
    if scale == 0.5:  # at the frame's own size the crop sees too little of a plate this large
        assert not video.probe(img, np.array([[*box, 1.0]], np.float32))


def test_photos_of_people_keep_their_pixels(samples: Path) -> None:
    for name in ("astronaut.png", "grace_hopper.jpg", "camera.png", "group_solvay_1927.jpg"):
        rgb = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(samples / name).convert("RGB"))
        plates = detect_plates(rgb)
        _, _, changed = cover_plates(rgb, plates)
        assert len(plates) <= 1 and changed.mean() < 0.002, name  # at most a stray speck, never a face


def test_bad_settings_and_images() -> None:
    with pytest.raises(InputError, match="threshold"):
        PlateFinder(weights=None, threshold=1.5)
    with pytest.raises(InputError, match="upscale"):
        PlateFinder(weights=None, upscale=0.5)
    with pytest.raises(InputError, match="reduced"):
        PlateFinder(weights=None, reduced=(0.5, 1.0))
    with pytest.raises(InputError, match="empty"):
        get_plate_finder().find(np.zeros((0, 10, 3), np.uint8))


def test_photo_faces_and_plates_seal_and_restore(samples: Path, tmp_path: Path) -> None:
    img, box = car_photo(80)
    face = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(samples / "astronaut.png").convert("RGB"))
    img[10:210, 20:220] = face[30:230, 150:350]  # a real face above the car
    key = Key.from_password("pw", kdf_params={"t": 2, "m": 19456, "p": 1})
    result = anonymize_image(img, targets="face,plate", key=key)
    kinds = sorted(r.kind for r in result.regions)
    assert kinds == ["face", "plate"] and result.extra["plates"]
    x1, y1, x2, y2 = box
    assert (result.image[y1:y2, x1:x2] == 0).all()  # the plate is black, every pixel of it
    result.save(tmp_path / "out.png")
    np.testing.assert_array_equal(restore_image(tmp_path / "out.png", key).image, img)
    # surrogates are for faces: the plate is covered solid all the same
    swapped = anonymize_image(img, targets=("face", "plate"), method="surrogate")
    plate_region = next(r for r in swapped.regions if r.kind == "plate")
    assert plate_region.shape == "box" and (swapped.image[y1:y2, x1:x2] == 0).all()


def _car(i: int) -> tuple[int, int, int]:
    return 150 + 3 * i, 170, 50  # a plate 50 px wide moving right under the face


def test_video_faces_and_plates_are_tracked_covered_and_restored(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "street.mp4", frames=18, car=_car)
    key = Key.from_password("pw", kdf_params={"t": 2, "m": 19456, "p": 1})
    out = tmp_path / "anon.mp4"
    finder, plates = get_finder(threshold=0.2, upscale=0.0), get_plate_finder(upscale=0.0)
    opts = AnonymizeOptions(targets=("face", "plate"), detect_every=3, lossless=True)
    report = anonymize_video(clip, out, opts, finder=finder, plate_finder=plates, key=key)
    assert report.tracks >= 1 and report.plate_tracks == 1
    frames, _, _, _ = decode(out)
    for i, frame in enumerate(frames):
        x, y, w = _car(i)
        inner = frame[y + 2 : y + round(w * 0.22) - 2, x + 2 : x + w - 2]
        assert inner.mean() < 20, f"plate shown on frame {i}"  # solid black between detections too
        fx, fy = face_centre(i)
        assert frame[fy - 10 : fy + 10, fx - 10 : fx + 10].mean() < 40, f"face shown on frame {i}"
    records = parse((tmp_path / "anon.mp4.vault").read_bytes()).records
    assert {meta.get("kind", "face") for meta, _, _ in records} == {"face", "plate"}
    restored = tmp_path / "back.mp4"
    assert restore_video(out, restored, Key.from_password("pw")) == report.regions
    src, _, _, _ = decode(clip)
    assert all(np.array_equal(a, b) for a, b in zip(src, decode(restored)[0], strict=True))


def test_video_plates_only_leave_faces_alone(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "street.mp4", frames=8, audio=False, car=_car)
    out = tmp_path / "anon.mp4"
    opts = AnonymizeOptions(targets=("plate",), detect_every=3)
    report = anonymize_video(clip, out, opts, finder=None, plate_finder=get_plate_finder(upscale=0.0))
    assert report.tracks == 0 and report.plate_tracks == 1
    frame = decode(out)[0][4]
    fx, fy = face_centre(4)
    assert frame[fy - 10 : fy + 10, fx - 10 : fx + 10].mean() > 60  # the face is still there
    with pytest.raises(InputError, match="no finder given for the target"):
        anonymize_video(clip, tmp_path / "x.mp4", AnonymizeOptions(targets=("face", "plate")), finder=None)


@pytest.mark.skipif(not (PLATES / "boxes.csv").is_file(), reason="research data (plates-train) not present")
def test_recall_on_held_out_street_photos() -> None:
    from anonymizer.train.plates import load_split

    images, boxes = load_split(PLATES, held_out=True)
    finder = get_plate_finder()
    hit = total = 0
    for rgb, labelled in list(zip(images, boxes, strict=True))[:20]:
        large = labelled[(labelled[:, 2] - labelled[:, 0]) >= 24]
        found = np.array([p.box for p in finder.find(rgb)], np.float32).reshape(-1, 4)
        total += len(large)
        if len(large) and len(found):
            hit += int((iou_matrix(large, found).max(1) >= 0.3).sum())
    assert total >= 10 and hit / total >= 0.8
