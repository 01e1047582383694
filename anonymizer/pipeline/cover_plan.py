"""Which box covers which face on each frame of a video: detection every K frames (and on scene cuts, from which
the count starts again), tracking in between, and the gaps mended once a later detection shows where a face was.

:class:`CoverPlanner` takes decoded frames in order and gives each one back with its covers (track id ->
box) once no later detection can change them: at most ``2 * detect_every + 1`` frames later. It knows
nothing of painting, encoding or vaults, so it is tested on synthetic frames with a scripted finder.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import cv2
import numpy as np

from ..media.video import Frame
from ..ops.boxes import grow_box, inside_share, union_box
from ..ops.rotation import boxes_back, points_back, upright
from ..types import Face, Plate
from .tracking import FaceTracker, Track, scene_cut

if TYPE_CHECKING:
    from .persons import Person

#: a new track's box on the frames held back before its first detection grows this much per frame back
BACKFILL_GROWTH = 0.15
#: between two detections of a track, the interpolated box is grown this much
INTERP_GROWTH = 1.1
#: a detection a probe finds (see CoverPlanner's ``watch``) is applied unless this share of it lies inside a cover
PROBE_COVERED = 0.7
#: before a track's first detection, once a second detection gives its velocity, its box moved back along it
#: grows this much per frame
EXTRAP_GROWTH = 0.1


class Finder(Protocol):
    """Faces (five landmarks each), plates (none) or persons (a mask each): what a planner tracks."""

    def find(self, rgb: np.ndarray) -> Sequence[Face | Plate | Person]: ...


@runtime_checkable
class WatchingFinder(Protocol):
    """A finder that also names its faint candidates (``find_watched``: found, float32 [K, 5]: box and the
    scale of the pass that saw it) and can look for objects again in crops around them only (``probe``), as
    the face and plate finders can."""

    def find(self, rgb: np.ndarray) -> Sequence[Face | Plate | Person]: ...

    def find_watched(self, rgb: np.ndarray) -> tuple[Sequence[Face | Plate], np.ndarray]: ...

    def probe(self, rgb: np.ndarray, boxes: np.ndarray) -> Sequence[Face | Plate]: ...


@dataclass(frozen=True)
class TrackMask:
    """A track's segmentation mask where it was detected: on frame ``frame``, the bool mask ``mask`` of the
    integer box ``box`` (x1, y1, x2, y2) of the stored frame, whose ``det`` (float32 [4]) is the detection's box."""

    frame: int
    det: np.ndarray
    box: tuple[int, int, int, int]
    mask: np.ndarray


@dataclass(eq=False)
class PlannedFrame:
    """A frame and what covers it: ``covers`` (track id -> float32 box [4] in the stored frame's pixels);
    ``landmarks`` (track id -> float32 [5, 2]) for the tracks detected on this frame; ``matched``: the tracks
    detected on this frame."""

    frame: Frame
    covers: dict[int, np.ndarray]
    detected: bool = False
    landmarks: dict[int, np.ndarray] = field(default_factory=dict)
    matched: set[int] = field(default_factory=set)


def landmarks_in(box: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Landmarks (5, 2) for a cover box from a track's face shape (landmarks relative to its detection's
    centre, in units of its width): used on frames where the track was held or filled in, not detected."""
    centre = (box[:2] + box[2:]) / 2
    return (centre + shape * float(box[2] - box[0])).astype(np.float32)


class CoverPlanner:
    """Plans the covers of a video's frames (see the module's doc).

    ``finder`` runs on the upright frame (``rotation``: the video's display rotation); its boxes are mapped
    back to the stored frame. A track stays covered ``hold`` frames after its last detection. Frames outside
    the span (``Frame.in_span`` False) pass through uncovered. With ``landmarks=True`` the planner also keeps,
    per track, its five landmarks where detected, its face shape (:func:`landmarks_in`) and its best score.
    With ``masks=True`` (persons) it keeps each track's masks where detected (:meth:`masks_near`).
    With ``watch=True`` and a :class:`WatchingFinder`, each detection frame's faint candidates are looked
    at again on every frame up to the next detection, in crops around them; one found there that no cover
    holds starts a track on that frame (covered back to the held frames, as any new track): an object the
    detector sees on a frame between two detection frames, not on them, is not left showing.
    Counts: ``detections``, ``tracks`` (new ones), ``scene_cuts``, ``probes`` (faint candidates looked at
    again, once per frame) and ``probe_hits`` (tracks they started)."""

    def __init__(
        self,
        finder: Finder,
        *,
        detect_every: int,
        hold: int,
        rotation: int = 0,
        landmarks: bool = False,
        masks: bool = False,
        delay: int | None = None,
        new_score: float | None = None,
        watch: bool = False,
    ) -> None:
        self.finder, self.detect_every, self.rotation, self.keep_landmarks = finder, detect_every, rotation, landmarks
        self.keep_masks = masks
        self.new_score = new_score  # detections scoring less only carry on a track (hysteresis)
        self.masks: dict[int, list[TrackMask]] = {}  # track id -> its masks where detected, oldest first
        self.tracker = FaceTracker(hold=hold)
        # held back long enough to fill the gap between two detections; planners run in step hold back the
        # same number of frames (``delay``: that of the one detecting least often)
        self.delay = 2 * detect_every + 1 if delay is None else delay
        if self.delay < 2 * detect_every + 1:
            raise ValueError(f"delay {delay} is shorter than two detection gaps ({detect_every})")
        self.pending: deque[PlannedFrame] = deque()
        self.shapes: dict[int, np.ndarray] = {}  # track id -> face shape (see landmarks_in)
        # track id -> its best detection score (the painter trusts small faces by it)
        self.scores: dict[int, float] = {}
        self.born: dict[int, int] = {}  # track id -> the frame of its first detection
        self.watch = watch and isinstance(finder, WatchingFinder)
        # the last detection frame's faint candidates (box on the upright frame, scale of their pass)
        self.faint = np.zeros((0, 5), np.float32)
        self.detections = self.tracks = self.scene_cuts = self.probes = self.probe_hits = 0
        self.detect_s = 0.0  # seconds in the finder (probes included)
        self._thumb: np.ndarray | None = None
        self._span_index = 0
        self._next_detection = 0
        self._last_cut = 0
        self._last_in_span: PlannedFrame | None = None

    def push(self, frame: Frame) -> list[PlannedFrame]:
        """Take the next frame; returns the frames whose covers are now final, oldest first."""
        entry = PlannedFrame(frame, {})
        if frame.in_span:
            self._in_span(entry)
        else:
            self._close_span()
            self.pending.append(entry)
        ready = []
        while len(self.pending) > self.delay:
            ready.append(self.pending.popleft())
        return ready

    def flush(self) -> list[PlannedFrame]:
        """The frames still held, once the video has ended."""
        if self._last_in_span is not None and not self._last_in_span.detected and self._last_in_span in self.pending:
            self._detect(self._last_in_span)  # the video's last frame
        ready = list(self.pending)
        self.pending.clear()
        return ready

    def _in_span(self, entry: PlannedFrame) -> None:
        frame = entry.frame
        thumb = cv2.resize(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY), (32, 18), interpolation=cv2.INTER_AREA)
        is_cut = scene_cut(self._thumb, thumb)
        self._thumb = thumb
        if is_cut:
            self.scene_cuts += 1
            self.tracker.reset()
            self._last_cut = frame.index
        self.pending.append(entry)
        if is_cut or self._span_index >= self._next_detection:
            self._detect(entry)
            self._next_detection = self._span_index + self.detect_every  # counted from a scene cut's too
        else:
            current, _ = self.tracker.update(frame.index, None)
            entry.covers = {tid: b for tid, b in current}
            if len(self.faint):
                self._probe(entry)
        self._span_index += 1
        self._last_in_span = entry

    def _close_span(self) -> None:
        last = self._last_in_span
        if last is not None and not last.detected and last in self.pending:
            self._detect(last)  # the span's last frame: nothing after it would catch a new face
        self._last_in_span = None

    def _detect(self, p: PlannedFrame) -> None:
        """Detect on a held frame, update the tracks, and fix the covers of the frames held with it."""
        t0 = time.perf_counter()
        rgb = upright(p.frame.rgb, self.rotation)
        found: Sequence[Face | Plate | Person]
        if self.watch:
            assert isinstance(self.finder, WatchingFinder)
            found, self.faint = self.finder.find_watched(rgb)
        else:
            found = self.finder.find(rgb)
        self.detect_s += time.perf_counter() - t0
        self._apply(p, found)
        p.detected = True

    def _probe(self, p: PlannedFrame) -> None:
        """Look again around the faint candidates on a frame between detections; what is found there and
        lies less than PROBE_COVERED inside any cover is applied as this frame's detections (a new track,
        backfilled; or a track's box where its cover had drifted off)."""
        assert isinstance(self.finder, WatchingFinder)
        h, w = p.frame.rgb.shape[:2]
        t0 = time.perf_counter()
        found = self.finder.probe(upright(p.frame.rgb, self.rotation), self.faint)
        self.detect_s += time.perf_counter() - t0
        self.probes += len(self.faint)
        boxes = np.array([f.box for f in found], np.float32).reshape(-1, 4)
        if self.rotation:
            boxes = boxes_back(boxes, self.rotation, w, h)
        covers = np.array(list(p.covers.values()), np.float32).reshape(-1, 4)
        free = inside_share(boxes, covers).max(1, initial=0.0) < PROBE_COVERED
        if free.any():
            new = self._apply(p, [f for f, keep in zip(found, free.tolist(), strict=True) if keep])
            self.probe_hits += len(new)

    def _apply(self, p: PlannedFrame, found: Sequence[Face | Plate | Person]) -> list[Track]:
        """Detections ``found`` on the upright frame of ``p``: tracks updated, covers of the held frames fixed;
        returns the tracks they started."""
        h, w = p.frame.rgb.shape[:2]
        boxes = np.array([f.box for f in found], np.float32).reshape(-1, 4)
        # landmarks only where kept: a plate finder's detections have none
        lms = np.array(
            [f.landmarks for f in found] if self.keep_landmarks else [],  # type: ignore[union-attr]
            np.float32,
        ).reshape(-1, 5, 2)
        if self.rotation:
            boxes = boxes_back(boxes, self.rotation, w, h)
            lms = points_back(lms, self.rotation, w, h)
        self.detections += len(boxes)
        current, new = self.tracker.update(p.frame.index, boxes)
        if self.new_score is not None:
            current, new = self._drop_weak_starts(found, current, new)
        p.matched = set(self.tracker.matches)
        if self.keep_masks:
            self._keep_masks(p, found, boxes)
        if self.keep_landmarks:
            for tid, di in self.tracker.matches.items():  # the detection each track took on this frame
                p.landmarks[tid] = lms[di]
                self.scores[tid] = max(self.scores.get(tid, 0.0), float(found[di].score))
                width = max(float(boxes[di, 2] - boxes[di, 0]), 1.0)
                self.shapes[tid] = (lms[di] - (boxes[di, :2] + boxes[di, 2:]) / 2) / width
        for tid, b in current:
            p.covers[tid] = union_box(p.covers.get(tid), b)
        held = [q for q in self.pending if q.frame.in_span and self._last_cut <= q.frame.index < p.frame.index]
        self._backfill(p, new, held)
        self._mend(held)
        return new

    def _drop_weak_starts(
        self, found: Sequence[Face | Plate | Person], current: list[tuple[int, np.ndarray]], new: list[Track]
    ) -> tuple[list[tuple[int, np.ndarray]], list[Track]]:
        """With ``new_score``: a detection scoring less than it carries on a track but starts none."""
        weak = {t.id for t in new if found[self.tracker.matches[t.id]].score < (self.new_score or 0.0)}
        if not weak:
            return current, new
        self.tracker.tracks = [t for t in self.tracker.tracks if t.id not in weak]
        for tid in weak:
            del self.tracker.matches[tid]
        return [(tid, b) for tid, b in current if tid not in weak], [t for t in new if t.id not in weak]

    def _keep_masks(self, p: PlannedFrame, found: Sequence[Face | Plate | Person], boxes: np.ndarray) -> None:
        """Each matched track's mask on this frame, cut to its box and turned back to the stored frame."""
        h, w = p.frame.rgb.shape[:2]
        k = (self.rotation // 90) % 4
        for tid, di in self.tracker.matches.items():
            full = getattr(found[di], "mask", None)
            if full is None:
                continue
            full = np.rot90(full, k=-k) if k else full
            x1, y1 = max(0, int(np.floor(boxes[di, 0]))), max(0, int(np.floor(boxes[di, 1])))
            x2, y2 = min(w, int(np.ceil(boxes[di, 2]))), min(h, int(np.ceil(boxes[di, 3])))
            if x2 > x1 and y2 > y1:
                mask = np.ascontiguousarray(full[y1:y2, x1:x2])
                entry = TrackMask(p.frame.index, boxes[di].copy(), (x1, y1, x2, y2), mask)
                self.masks.setdefault(tid, []).append(entry)

    def masks_near(self, tid: int, frame: int) -> list[TrackMask]:
        """Track ``tid``'s masks to place on ``frame``: the one detected there; else the last before it and
        the first after it (once the frames are released, both are known when both exist)."""
        kept = self.masks.get(tid, [])
        exact = [m for m in kept if m.frame == frame]
        if exact:
            return exact
        before = [m for m in kept if m.frame < frame][-1:]
        after = [m for m in kept if m.frame > frame][:1]
        return before + after

    def forget_masks(self, frame: int) -> None:
        """Drop the masks no frame from ``frame`` on needs: each track keeps its last one before ``frame``, and
        a track not detected for longer than it can stay covered loses them all."""
        for tid in list(self.masks):
            kept = self.masks[tid]
            older = sum(m.frame < frame for m in kept)
            if older > 1:
                del kept[: older - 1]
            if kept[-1].frame < frame - self.tracker.hold - self.delay:
                del self.masks[tid]

    def _backfill(self, p: PlannedFrame, new: list[Track], held: list[PlannedFrame]) -> None:
        """A face that appeared between detections: cover it on the frames held back, growing with distance."""
        for t in new:
            self.tracks += 1
            self.born[t.id] = p.frame.index
            for q in held:
                box = grow_box(t.box, 1.0 + BACKFILL_GROWTH * (p.frame.index - q.frame.index))
                q.covers[t.id] = union_box(q.covers.get(t.id), box)

    def _mend(self, held: list[PlannedFrame]) -> None:
        """Between two detections of a track, its box interpolated (better than the tracker's prediction);
        before its first, the backfill replaced by its box moved back along its velocity."""
        for tid, f1, b1, f2, b2 in self.tracker.observations:
            c1, c2 = (b1[:2] + b1[2:]) / 2, (b2[:2] + b2[2:]) / 2
            v = (c2 - c1) / (f2 - f1)
            for q in held:
                if f1 < q.frame.index < f2:
                    a = (q.frame.index - f1) / (f2 - f1)
                    q.covers[tid] = grow_box(b1 + (b2 - b1) * a, INTERP_GROWTH)
                elif q.frame.index < self.born.get(tid, 0) and tid in q.covers:
                    d = f1 - q.frame.index
                    shift = np.concatenate([v * d, v * d]).astype(np.float32)
                    q.covers[tid] = grow_box(b1 - shift, 1.0 + EXTRAP_GROWTH * d)
