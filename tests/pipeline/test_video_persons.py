"""Whole people in videos: masks placed between detections (moved with the track, united, the box when there
is none), and a real person (samples/astronaut.png) walking across a clip, segmented by the shipped Mask
R-CNN, covered on every frame and restored exactly."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from videoclips import decode, walker_clip  # noqa: E402

from anonymizer import Key  # noqa: E402
from anonymizer.errors import InputError  # noqa: E402
from anonymizer.pipeline.cover_plan import TrackMask  # noqa: E402
from anonymizer.pipeline.models import get_finder, get_segmenter  # noqa: E402
from anonymizer.pipeline.options import AnonymizeOptions, check_method  # noqa: E402
from anonymizer.pipeline.video import anonymize_video, place_masks, restore_video  # noqa: E402


def _blob(frame: int, x: int, y: int) -> TrackMask:
    """A 20x40 detection at (x, y) whose mask is its left half."""
    mask = np.zeros((40, 20), bool)
    mask[:, :10] = True
    return TrackMask(frame, np.array([x, y, x + 20, y + 40], np.float32), (x, y, x + 20, y + 40), mask)


def test_a_detected_mask_is_placed_as_it_is() -> None:
    m = _blob(4, 30, 10)
    full = place_masks([m], np.array([25, 5, 55, 55], np.float32), 4, (80, 100))  # a grown cover box
    assert full.sum() == 400 and full[10:50, 30:40].all()


def test_between_detections_masks_move_with_the_box_and_unite() -> None:
    before, after = _blob(0, 10, 10), _blob(4, 50, 10)
    box = np.array([30, 10, 50, 50], np.float32)  # half way: the track's interpolated box
    full = place_masks([before, after], box, 2, (80, 100))
    assert full[10:50, 30:40].all() and not full[:, 40:].any() and not full[:, :30].any()
    # a held track (no later detection) moved by its predicted box
    held = place_masks([before], np.array([60, 20, 80, 60], np.float32), 3, (80, 100))
    assert held[20:60, 60:70].all() and held.sum() == 400


def test_between_detections_of_different_sizes_masks_also_stay_where_they_were() -> None:
    """A track that passed from a short detection to a tall one (two people, or a person the segmenter cut on
    one frame): the interpolated box fits neither, so each mask also covers where it was detected."""
    small = _blob(0, 10, 30)
    tall = TrackMask(3, np.array([40, 0, 60, 70], np.float32), (40, 0, 60, 70), np.ones((70, 20), bool))
    box = np.array([20, 20, 40, 70], np.float32)
    full = place_masks([small, tall], box, 1, (80, 100))
    assert full[0:70, 40:60].all() and full[30:70, 10:20].all()
    steady = place_masks([small, _blob(3, 40, 30)], box, 1, (80, 100))
    assert not steady[:, 40:].any() and not steady[:, :20].any()  # one person walking: only the moved masks


def test_no_mask_or_none_placed_covers_the_box() -> None:
    full = place_masks([], np.array([5.5, 6, 20, 30], np.float32), 7, (40, 40))
    assert full[6:30, 5:20].all() and full.sum() == 24 * 15
    off = place_masks([_blob(0, 10, 10)], np.array([200, 200, 220, 240], np.float32), 3, (40, 40))
    assert not off.any()  # a box wholly outside the frame places nothing and has nothing to cover


def test_a_walking_person_is_covered_on_every_frame_and_restored(tmp_path: Path) -> None:
    clip = walker_clip(tmp_path / "walk.mp4")
    key = Key.from_password("pw", kdf_params={"t": 2, "m": 19456, "p": 1})
    out = tmp_path / "anon.mp4"
    segmenter = get_segmenter(video=True)
    opts = AnonymizeOptions(targets=("face", "person"), detect_every=4, lossless=True)
    finder = get_finder(threshold=0.2, upscale=0.0)
    report = anonymize_video(clip, out, opts, finder=finder, person_finder=segmenter, key=key)
    # the network may see her as two people (models/person_maskrcnn.md: close-ups come out in pieces)
    assert 1 <= report.person_tracks <= 4 and report.person_detections >= 3
    src, anon = decode(clip)[0], decode(out)[0]
    for i, (a, b) in enumerate(zip(src, anon, strict=True)):
        persons = segmenter.segment(a)  # what the every-frame segmenter sees
        assert persons, f"frame {i}: the segmenter must find the astronaut"
        for p in persons:
            assert (b[p.mask].mean(axis=1) < 40).mean() > 0.95, f"person shown on frame {i}"  # the benchmark's rule
        assert (b[:, 450:] == a[:, 450:]).all(), "the background far from her is untouched"
    # so small a clip is sealed whole (smaller than its regions); the regions themselves, collected:
    regions: list = []
    anonymize_video(clip, tmp_path / "r.mp4", opts, finder=finder, person_finder=segmenter, regions_out=regions)
    assert {meta.get("kind", "face") for meta, _ in regions} == {"face", "person"}
    assert len(regions) == report.regions
    restored = tmp_path / "back.mp4"
    assert restore_video(out, restored, Key.from_password("pw")) == report.regions
    assert all(np.array_equal(a, b) for a, b in zip(src, decode(restored)[0], strict=True))


def test_persons_in_video_need_a_segmenter_and_a_cover(tmp_path: Path) -> None:
    clip = walker_clip(tmp_path / "walk.mp4", frames=3)
    with pytest.raises(InputError, match="no finder given for the target"):
        anonymize_video(clip, tmp_path / "x.mp4", AnonymizeOptions(targets=("person",)), finder=None)
    with pytest.raises(InputError, match="surrogate"):
        check_method("surrogate", ("face", "person"))
