"""The video cover planner alone: synthetic frames and a scripted finder, no video, no model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anonymizer.media.video import Frame
from anonymizer.pipeline.cover_plan import CoverPlanner, PlannedFrame
from anonymizer.types import Face

H, W = 90, 160


def _face(x: float, y: float, size: float = 20.0, score: float = 0.9) -> Face:
    lm = tuple(
        (x + size * fx, y + size * fy) for fx, fy in ((0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.8), (0.65, 0.8))
    )
    return Face(box=(x, y, x + size, y + size), score=score, landmarks=lm)


class Script:
    """A finder that reads the frame's index from its first pixel and answers from ``faces``."""

    def __init__(self, faces: dict[int, list[Face]]) -> None:
        self.faces = faces
        self.calls: list[int] = []

    def find(self, rgb: np.ndarray) -> list[Face]:
        index = int(rgb[0, 0, 0])
        self.calls.append(index)
        return self.faces.get(index, [])


def _frames(n: int, *, span: range | None = None, h: int = H, w: int = W) -> list[Frame]:
    out = []
    for i in range(n):
        rgb = np.full((h, w, 3), 128, np.uint8)
        rgb[0, 0, 0] = i
        out.append(Frame(index=i, rgb=rgb, pts=i, time=i / 25, in_span=span is None or i in span))
    return out


def _run(planner: CoverPlanner, frames: list[Frame]) -> list[PlannedFrame]:
    out: list[PlannedFrame] = []
    for f in frames:
        ready = planner.push(f)
        assert len(planner.pending) <= planner.delay  # never holds more than the gap between detections
        out.extend(ready)
    return out + planner.flush()


def test_every_frame_comes_out_once_in_order_and_detection_runs_every_k() -> None:
    finder = Script({})
    planner = CoverPlanner(finder, detect_every=4, hold=3)
    out = _run(planner, _frames(23))
    assert [p.frame.index for p in out] == list(range(23))
    assert finder.calls == [0, 4, 8, 12, 16, 20, 22]  # and the last frame: nothing after it catches a new face
    assert planner.detections == 0 and planner.tracks == 0 and not any(p.covers for p in out)


def test_a_face_appearing_between_detections_is_covered_on_the_frames_held_before() -> None:
    planner = CoverPlanner(Script({8: [_face(60, 30)]}), detect_every=4, hold=3)
    out = _run(planner, _frames(12))
    covered = [p.frame.index for p in out if p.covers]
    # backfilled at least to the previous detection (frame 4): every frame still held when it was found
    assert set(range(4, 12)) <= set(covered)
    assert planner.tracks == 1 and planner.detections == 1
    width = {p.frame.index: float(b[2] - b[0]) for p in out for b in p.covers.values()}
    assert width[5] > width[6] > width[7] > width[8] >= 20  # the further back, the less sure where it was


def test_between_two_detections_the_box_is_interpolated() -> None:
    planner = CoverPlanner(Script({0: [_face(20, 30)], 4: [_face(60, 30)]}), detect_every=4, hold=10)
    out = {p.frame.index: p for p in _run(planner, _frames(6))}
    (tid,) = out[2].covers
    cx = float(out[2].covers[tid][0] + out[2].covers[tid][2]) / 2
    assert abs(cx - 50) < 1  # halfway between the centres 30 and 70
    assert planner.tracks == 1  # the same track, not a new one


def test_frames_outside_the_span_pass_uncovered_and_the_span_end_is_detected() -> None:
    finder = Script({k: [_face(60, 30)] for k in range(20)})
    planner = CoverPlanner(finder, detect_every=4, hold=2)
    out = _run(planner, _frames(20, span=range(3, 10)))
    assert 9 in finder.calls  # the span's last frame
    assert not any(p.covers for p in out if not p.frame.in_span)
    assert all(p.covers for p in out if p.frame.in_span)


def test_landmarks_scores_and_shapes_are_kept_only_when_asked() -> None:
    script = {0: [_face(20, 30, score=0.6)], 4: [_face(24, 30, score=0.8)]}
    plain = CoverPlanner(Script(script), detect_every=4, hold=10)
    _run(plain, _frames(6))
    assert not plain.scores and not plain.shapes
    keen = CoverPlanner(Script(script), detect_every=4, hold=10, landmarks=True)
    out = {p.frame.index: p for p in _run(keen, _frames(6))}
    (tid,) = out[0].landmarks
    assert keen.scores[tid] == pytest.approx(0.8) and out[0].landmarks[tid].shape == (5, 2)
    assert not out[1].landmarks and keen.shapes[tid].shape == (5, 2)


def test_a_rotated_video_is_searched_upright_and_mapped_back() -> None:
    seen: list[tuple[int, int]] = []

    class Upright(Script):
        def find(self, rgb: np.ndarray) -> list[Face]:
            seen.append(rgb.shape[:2])
            return [_face(10, 100)] if not seen[1:] else []

    planner = CoverPlanner(Upright({}), detect_every=4, hold=2, rotation=90)
    out = _run(planner, _frames(1))
    assert seen[0] == (W, H)  # the finder saw the frame turned upright
    (box,) = out[0].covers.values()
    assert 0 <= box[0] < box[2] <= W and 0 <= box[1] < box[3] <= H  # back in the stored frame


def test_a_scene_cut_resets_the_tracks_and_is_counted() -> None:
    frames = _frames(10)
    for f in frames[5:]:
        f.rgb[1:] = 0  # another scene
    finder = Script({0: [_face(20, 30)], 5: [_face(100, 40)]})
    planner = CoverPlanner(finder, detect_every=4, hold=30)
    out = {p.frame.index: p for p in _run(planner, frames)}
    assert planner.scene_cuts == 1 and 5 in finder.calls
    # the cut's detection starts the count again: the next one detect_every frames later, then the last frame
    assert finder.calls == [0, 4, 5, 9]
    assert planner.tracks == 2
    assert all(float(b[0]) > 60 for b in out[6].covers.values())  # the old face is not carried over the cut


def test_planners_of_different_cadences_hold_back_the_same_frames() -> None:
    faces, persons = Script({}), Script({})
    slow = CoverPlanner(faces, detect_every=5, hold=3)
    fast = CoverPlanner(persons, detect_every=3, hold=3, delay=slow.delay)
    released = [(len(slow.push(f)), len(fast.push(f))) for f in _frames(20)]
    assert all(a == b for a, b in released)  # released in step, frame for frame
    assert persons.calls == [0, 3, 6, 9, 12, 15, 18] and faces.calls == [0, 5, 10, 15]
    with pytest.raises(ValueError, match="shorter than two detection gaps"):
        CoverPlanner(faces, detect_every=5, hold=3, delay=7)


def test_masks_are_kept_per_track_and_forgotten_once_passed() -> None:
    from dataclasses import dataclass

    @dataclass
    class Blob:
        box: tuple[float, float, float, float]
        mask: np.ndarray

    def blob(x: float) -> Blob:
        mask = np.zeros((H, W), bool)
        mask[20:60, int(x) : int(x) + 30] = True
        return Blob((x, 20.0, x + 30, 60.0), mask)

    finder = Script({i: [blob(10 + 2 * i)] for i in range(12)})  # type: ignore[misc]
    planner = CoverPlanner(finder, detect_every=4, hold=6, masks=True)
    out = _run(planner, _frames(12))
    assert [m.frame for m in planner.masks_near(0, 6)] == [4, 8]  # the detections around frame 6
    assert [m.frame for m in planner.masks_near(0, 8)] == [8]
    m = planner.masks_near(0, 8)[0]
    assert m.box == (26, 20, 56, 60) and m.mask.all()  # the mask cut to its detection's box
    planner.forget_masks(9)
    assert [m.frame for m in planner.masks[0]] == [8, 11]  # the last before frame 9 is kept
    assert len(out) == 12


def test_a_weak_detection_carries_a_track_on_but_starts_none() -> None:
    strong, weak = _face(20, 20, score=0.9), _face(22, 20, score=0.35)
    ghost = _face(100, 40, score=0.35)  # weak and alone: never a track
    finder = Script({0: [strong, ghost], 3: [weak, ghost], 6: [ghost]})
    planner = CoverPlanner(finder, detect_every=3, hold=4, new_score=0.5)
    out = _run(planner, _frames(9))
    assert planner.tracks == 1
    covered = [sorted(p.covers) for p in out]
    assert all(c == [0] for c in covered[:8])  # carried on by the weak detection at 3, held after it
    assert 0 in out[3].matched
    boxes = [p.covers[0] for p in out[:8]]
    assert all(b[0] < 60 for b in boxes)  # nothing over the ghost at x = 100


class Faint(Script):
    """A watching finder: on detection frames ``faint`` names the faint candidates; a probe finds what
    ``probed`` says is visible on that frame, only inside the crops around the candidates it is given."""

    def __init__(self, faces: dict[int, list[Face]], faint: np.ndarray, probed: dict[int, list[Face]]) -> None:
        super().__init__(faces)
        self.faint, self.probed = faint, probed
        self.probe_calls: list[int] = []

    def find_watched(self, rgb: np.ndarray) -> tuple[list[Face], np.ndarray]:
        return self.find(rgb), self.faint

    def probe(self, rgb: np.ndarray, boxes: np.ndarray) -> list[Face]:
        index = int(rgb[0, 0, 0])
        self.probe_calls.append(index)
        near = [f for f in self.probed.get(index, []) if any(b[0] - 30 <= f.box[0] <= b[2] + 30 for b in boxes)]
        return near


def test_a_face_seen_only_between_detections_is_found_by_looking_again_at_faint_candidates() -> None:
    faint = np.array([[60, 30, 80, 50, 1.0]], np.float32)
    finder = Faint({}, faint, {5: [_face(61, 30)]})  # above the threshold on frame 5 only
    planner = CoverPlanner(finder, detect_every=4, hold=3, watch=True)
    out = {p.frame.index: p for p in _run(planner, _frames(12))}
    assert finder.probe_calls == [1, 2, 3, 5, 6, 7, 9, 10, 11]  # every frame between detections
    assert out[5].covers and planner.probe_hits == 1 and planner.probes == 9
    assert {4, 5, 6, 7, 8} <= {i for i, p in out.items() if p.covers}  # backfilled like a new track
    # the same frames without watching: the finder never sees the face
    blind = CoverPlanner(Faint({}, faint, {5: [_face(61, 30)]}), detect_every=4, hold=3)
    assert not any(p.covers for p in _run(blind, _frames(12)))


def test_looking_again_adds_nothing_a_cover_already_holds_and_needs_a_watching_finder() -> None:
    faint = np.array([[60, 30, 80, 50, 1.0]], np.float32)
    tracked = {i: [_face(60, 30)] for i in (0, 4, 8)}
    finder = Faint(tracked, faint, {i: [_face(61, 30)] for i in range(12)})
    planner = CoverPlanner(finder, detect_every=4, hold=6, watch=True)
    _run(planner, _frames(12))
    assert planner.probes > 0 and planner.probe_hits == 0 and planner.tracks == 1
    plain = CoverPlanner(Script(tracked), detect_every=4, hold=6, watch=True)  # no find_watched: not watched
    assert not plain.watch
    _run(plain, _frames(12))
    assert plain.probes == 0


def test_the_options_name_the_watched_targets_and_the_video_planners_follow_them() -> None:
    from anonymizer.defaults import VIDEO_WATCH
    from anonymizer.errors import InputError
    from anonymizer.pipeline.options import AnonymizeOptions
    from anonymizer.pipeline.video import _planners

    assert AnonymizeOptions().watch == VIDEO_WATCH == ("plate",)
    assert AnonymizeOptions(watch="plate, face").watch == ("face", "plate")
    assert AnonymizeOptions(watch="none").watch == () == AnonymizeOptions(watch=()).watch
    for bad in ("person", "faces", "face,person", "face,none"):
        with pytest.raises(InputError, match="watch takes face, plate"):
            AnonymizeOptions(watch=bad)
    faint = np.zeros((0, 5), np.float32)
    finders = {"face": Faint({}, faint, {}), "plate": Faint({}, faint, {}), "person": Script({})}
    planners = _planners(finders, 3, 12, 0, watch=("plate",), plate_every=3)  # type: ignore[arg-type]
    assert {t: p.watch for t, p in planners.items()} == {"face": False, "plate": True, "person": False}
    assert _planners(finders, 3, 12, 0, watch=("face", "plate"))["face"].watch  # type: ignore[arg-type]


def test_video_plates_are_detected_on_every_frame_unless_told_and_only_then_watched() -> None:
    from anonymizer.defaults import PLATE_DETECT_EVERY
    from anonymizer.pipeline.options import AnonymizeOptions
    from anonymizer.pipeline.video import _planners

    assert AnonymizeOptions().plate_every == PLATE_DETECT_EVERY == 1
    faint = np.zeros((0, 5), np.float32)
    finders = {"face": Faint({}, faint, {}), "plate": Faint({}, faint, {}), "person": Script({})}
    planners = _planners(finders, 5, 12, 0, watch=("face", "plate"))  # type: ignore[arg-type]
    assert {t: p.detect_every for t, p in planners.items()} == {"face": 5, "plate": 1, "person": 3}
    assert {t: p.watch for t, p in planners.items()} == {"face": True, "plate": False, "person": False}
    slower = _planners(finders, 2, 12, 0, watch=("plate",), plate_every=4)  # type: ignore[arg-type]
    assert {t: p.detect_every for t, p in slower.items()} == {"face": 2, "plate": 4, "person": 2}
    assert slower["plate"].watch and not slower["face"].watch


def test_a_video_refuses_plates_detected_less_than_once(tmp_path: Path) -> None:
    from anonymizer.errors import InputError
    from anonymizer.pipeline.options import AnonymizeOptions
    from anonymizer.pipeline.video import anonymize_video

    opts = AnonymizeOptions(targets=("plate",), plate_every=0)
    with pytest.raises(InputError, match="detect_every and plate_every must be >= 1"):
        anonymize_video(tmp_path / "in.mp4", tmp_path / "out.mp4", opts, finder=None, plate_finder=Script({}))
    assert not (tmp_path / "out.mp4").exists()
