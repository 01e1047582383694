"""Videos: detect every K frames (and on scene cuts), track in between, cover, keep audio; with a key,
seal the original pixels of every covered region of every frame into a sidecar vault."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from ..defaults import (
    DEFAULT_HOLD_SECONDS,
    DEFAULT_PERSON_THRESHOLD,
    PERSON_DETECT_EVERY,
    PLATE_DETECT_EVERY,
    VIDEO_WATCH,
)
from ..errors import InputError, MediaError
from ..media.files import PRIVATE_MODE, atomic_file
from ..media.video import Frame, FramePump, Stage, Transcoder
from ..ops.boxes import union_box
from ..types import Face, Plate, Region
from ..vault.keys import Identity, Key, surrogate_seed_for
from ..vault.surrogate import SurrogateSeed
from .cover_plan import CoverPlanner, Finder, PlannedFrame, TrackMask, landmarks_in
from .options import AnonymizeOptions
from .persons import PERSON_MASK_GROW, Person, cover_persons
from .photo import FaceFinder, cover_faces
from .plates import cover_plates

if TYPE_CHECKING:
    from .donor_painter import DonorPainter, FacePlan

log = logging.getLogger(__name__)


class RegionSink(Protocol):
    """Takes the original pixels of each covered region: a VaultWriter (sealed into the video's vault) or
    a collector (a Ray piece's regions, sealed by the driver once the pieces are joined)."""

    def add(self, meta: dict[str, Any], payload: bytes) -> None: ...


class _Collector:
    """Takes the original regions in place of a VaultWriter (``regions_out``)."""

    def __init__(self, out: list[tuple[dict[str, Any], bytes]]) -> None:
        self.out = out

    def add(self, meta: dict[str, Any], payload: bytes) -> None:
        self.out.append((meta, payload))


@dataclass
class VideoReport:
    frames: int = 0
    frames_covered: int = 0
    detections: int = 0
    tracks: int = 0
    plate_detections: int = 0
    plate_tracks: int = 0
    person_detections: int = 0
    person_tracks: int = 0
    regions: int = 0
    scene_cuts: int = 0
    rotation: int = 0
    per_frame: list[list[tuple[int, tuple[float, float, float, float]]]] = field(default_factory=list)
    #: seconds per stage, in five threads: decode; planning (detect: the finder; track: the rest of it);
    #: fitting (mesh: a surrogate's meshes and new tracks' donor candidates); painting (cover, and seal:
    #: the originals' PNGs); encode. wait: planning waiting for the decoder or the fitting thread, and
    #: painting for the encoder; total: the whole call
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _FaceJob:
    """A frame's faces to paint (``faces``, of tracks ``tids``) and to cover solid (``solid``, of ``bare``)."""

    tids: list[int]
    faces: list[Face]
    bare: list[int]
    solid: list[Face]
    plans: list[FacePlan] | None = None  # the donor painter's, once prepared


class _FacePainter:
    """Paints the covers of a planned frame: ``cover_faces`` with ``method``, or for surrogates the donor
    painter with ``seed``, each track keeping its donor (``chosen``) and a steady mesh (``steady``)."""

    def __init__(
        self,
        method: str,
        shape: str,
        mask_scale: float,
        feather: float,
        donor: DonorPainter | None = None,
        seed: SurrogateSeed | None = None,
    ) -> None:
        self.method, self.shape, self.mask_scale, self.feather = method, shape, mask_scale, feather
        self.donor, self.seed = donor, seed
        self.chosen: dict[int, int] = {}  # track -> its surrogate candidate, decided where the track first appears
        # read and written by the fitting thread only: each track's last (smoothed) face mesh, so surrogates
        # do not swim, the tracks whose donor candidates were drawn, and those whose mesh was last trusted
        self.steady: dict[int, np.ndarray] = {}
        self.drawn: set[int] = set()
        self.trusted: set[int] = set()  # tracks whose mesh was trusted on their last frame

    def prepare(self, p: PlannedFrame, planner: CoverPlanner) -> _FaceJob:
        """The faces to paint on ``p`` as the planner sees them now (its face shapes and scores change as it
        goes on, so they are read when the frame is released, not when it is painted)."""
        if self.donor is None or self.seed is None:
            tids = list(p.covers)
            return _FaceJob(tids, [self._face(p, tid, planner, points=False) for tid in tids], [], [])
        # every track starts from a detection, so a surrogate always has landmarks to go by; were one ever
        # without, it is covered solid rather than shown
        tids = [tid for tid in p.covers if tid in p.landmarks or tid in planner.shapes]
        bare = [tid for tid in p.covers if tid not in tids]
        faces = [self._face(p, tid, planner, points=True) for tid in tids]
        return _FaceJob(tids, faces, bare, [self._face(p, tid, planner, points=False) for tid in bare])

    def fit(self, rgb: np.ndarray, job: _FaceJob) -> None:
        """What ``job``'s surrogates read from the original frame: meshes (steadied), windows, and the donor
        candidates of tracks new to the painter (a thread of its own runs this frames ahead of paint)."""
        if self.donor is not None and self.seed is not None:
            job.plans = self.donor.prepare(
                rgb, job.faces, self.seed, job.tids, meshes=self.steady, decided=self.drawn, trusted=self.trusted
            )

    def paint(self, rgb: np.ndarray, job: _FaceJob) -> tuple[np.ndarray, tuple[Region, ...], list[int]]:
        """(the painted frame, its regions, the track of each region in order); ``rgb`` is untouched."""
        if self.donor is None or self.seed is None:
            out, regions, _ = self._cover(rgb, job.faces, self.method)
            return out, regions, self._tracks(job.faces, job.tids, regions)
        # prepared by fit (in the fitting thread, which alone keeps the steady meshes)
        out, regions, _ = self.donor.paint(
            rgb, job.faces, self.seed, tracks=job.tids, choices=self.chosen, prepared=job.plans
        )
        if job.solid:
            out, more, _ = self._cover(out, job.solid, "solid")
            regions = (*regions, *more)
        return out, regions, self._tracks([*job.faces, *job.solid], [*job.tids, *job.bare], regions)

    def _cover(self, rgb: np.ndarray, faces: list[Face], method: str) -> tuple[np.ndarray, tuple[Region, ...], Any]:
        return cover_faces(
            rgb, faces, method=method, shape=self.shape, mask_scale=self.mask_scale, feather=self.feather
        )

    @staticmethod
    def _face(p: PlannedFrame, tid: int, planner: CoverPlanner, *, points: bool) -> Face:
        landmarks: tuple[tuple[float, float], ...] = ()
        if points:
            lm = p.landmarks[tid] if tid in p.landmarks else landmarks_in(p.covers[tid], planner.shapes[tid])
            landmarks = tuple((float(x), float(y)) for x, y in lm)
        return Face(box=_box4(p.covers[tid]), score=planner.scores.get(tid, 1.0), landmarks=landmarks)

    @staticmethod
    def _tracks(faces: list[Face], tids: list[int], regions: tuple[Region, ...]) -> list[int]:
        track_of = {id(f): tid for f, tid in zip(faces, tids, strict=True)}
        return [int(track_of[id(r.face)]) for r in regions]


@dataclass
class _Job:
    """A released frame and what covers it: faces, plates (track, box) and persons (track, mask, growth)."""

    frame: Frame
    faces: _FaceJob | None = None
    plates: list[tuple[int, np.ndarray]] = field(default_factory=list)
    persons: list[tuple[int, Person, float]] = field(default_factory=list)


@dataclass
class _Output:
    """Where planned frames go: painted (faces by ``painter``, then plates and persons covered with
    ``cover_method``), their original regions to ``sink``, then to the encoder. ``planners``: target
    ("face", "plate", "person") -> its planner; each frame comes with one planned frame per target."""

    painter: _FacePainter
    planners: dict[str, CoverPlanner]
    pump: FramePump
    report: VideoReport
    sink: RegionSink | None = None
    progress: Callable[[int], None] | None = None
    keep_boxes: bool = False
    cover_method: str = "solid"

    def prepare(self, planned: dict[str, PlannedFrame]) -> _Job:
        """What to paint on a released frame, read from the planners (in the planning thread: they go on
        changing as later frames come)."""
        frame = next(iter(planned.values())).frame
        job = _Job(frame)
        if "face" in planned and planned["face"].covers:
            job.faces = self.painter.prepare(planned["face"], self.planners["face"])
        if "plate" in planned:
            job.plates = list(planned["plate"].covers.items())
        if "person" in planned:
            job.persons = self._person_masks(planned["person"], self.planners["person"])
        if self.keep_boxes:
            covers = planned["face"].covers if "face" in planned else {}
            self.report.per_frame.append([(tid, _box4(b)) for tid, b in covers.items()])
        return job

    def fit(self, job: _Job) -> _Job:
        """Fit the face meshes and draw the donor candidates ``job``'s surrogates need (before :meth:`emit`,
        in a thread of its own)."""
        if job.faces is not None and self.painter.donor is not None:
            t = time.perf_counter()
            self.painter.fit(job.frame.rgb, job.faces)
            _lap(self.report, "mesh", t)
        return job

    def emit(self, job: _Job) -> None:
        """Paint ``job``'s frame, seal its original regions and queue it for encoding (in order)."""
        report, t = self.report, time.perf_counter()
        frame = job.frame
        out, painted = frame.rgb, []
        if job.faces is not None:
            out, regions, tracks = self.painter.paint(out, job.faces)
            painted += list(zip(regions, tracks, strict=True))
        for tid, box in job.plates:
            out, regions, _ = cover_plates(out, [Plate(box=_box4(box), score=1.0)], method=self.cover_method)
            painted += [(r, tid) for r in regions]
        for tid, person, grow in job.persons:
            out, regions, _ = cover_persons(out, [person], method=self.cover_method, grow=grow)
            painted += [(r, tid) for r in regions]
        if painted:
            report.frames_covered += 1
            report.regions += len(painted)
            t = _lap(report, "cover", t)
            if self.sink is not None:
                for region, track in painted:
                    self._seal(frame, region, track)
                t = _lap(report, "seal", t)
            frame.rgb = out
        self.pump.put(frame)
        _lap(report, "wait_encoder", t)
        report.frames += 1
        if self.progress is not None:
            self.progress(1)

    def _person_masks(self, p: PlannedFrame, planner: CoverPlanner) -> list[tuple[int, Person, float]]:
        """Every person track's mask placed on this frame (:func:`place_masks`), with how far to grow it."""
        persons = []
        for tid, box in p.covers.items():
            near = planner.masks_near(tid, p.frame.index)
            mask = place_masks(near, box, p.frame.index, p.frame.rgb.shape[:2])
            if not mask.any():  # a box wholly outside the frame
                continue
            gap = min((abs(m.frame - p.frame.index) for m in near), default=0)
            grow = PERSON_MASK_GROW + min(PERSON_GROW_PER_FRAME * gap, PERSON_GROW_MAX)
            persons.append((tid, Person(box=_box4(box), score=1.0, mask=mask), grow))
        planner.forget_masks(p.frame.index)
        return persons

    def _seal(self, frame: Frame, region: Region, track: int) -> None:
        """The original pixels of ``region`` (``frame.rgb`` is still the original) to the sink."""
        x1, y1, x2, y2 = region.box
        crop = np.ascontiguousarray(frame.rgb[y1:y2, x1:x2])
        meta = {
            "frame": self.report.frames,
            "source_frame": frame.index,
            "pts": frame.pts,
            "track": track,
            "box": [x1, y1, x2, y2],
            "shape": region.shape,
            "codec": "png",
            **({"kind": region.kind} if region.kind != "face" else {}),
        }
        assert self.sink is not None
        self.sink.add(meta, cv2.imencode(".png", crop[:, :, ::-1])[1].tobytes())


#: between detections a person's mask grows by this share of its height per frame from the detection it
#: was taken from, at most PERSON_GROW_MAX, on top of PERSON_MASK_GROW: limbs move within the box, a
#: person who entered between two detections walked, and the segmenter's outline of a person changes from
#: frame to frame (benchmarks/video.py --persons: at 0.03 an arm or a coat's edge 9-27 px outside the
#: carried mask showed on 6 person-frames of 3,068, at 0.045 on 2, at 0.06 on none)
PERSON_GROW_PER_FRAME, PERSON_GROW_MAX = 0.06, 0.1

#: two detections of a track whose heights differ by more than this factor are not one person's steady
#: motion (the segmenter merged, split or cut a person on one of them, or the track passed from one person
#: to another): between them each mask is also kept where it was detected, since the box interpolated
#: between the two fits neither (benchmarks/video.py --persons: a photographer's head showed for a frame)
PERSON_SIZE_JUMP = 1.25


def place_masks(masks: list[TrackMask], box: np.ndarray, frame: int, size: tuple[int, int]) -> np.ndarray:
    """A bool mask of a frame of ``size`` (H, W) for one person track on ``frame``: its mask detected there as
    it is; else each of its ``masks`` (the last before, the first after) moved so that its detection's
    centre lies on the centre of ``box`` (the track's cover: interpolated between the two, or predicted),
    scaled to the detections' size interpolated to ``frame``, and united; where the two sizes differ by
    more than :data:`PERSON_SIZE_JUMP`, each also as it was detected. The whole box (within the frame)
    when there is none or they place nothing."""
    h, w = size
    full = np.zeros((h, w), bool)
    scale = [1.0] * len(masks)
    if len(masks) == 2:
        m1, m2 = masks
        a = (frame - m1.frame) / max(m2.frame - m1.frame, 1)
        sizes = [max(float(m.det[3] - m.det[1]), 1e-3) for m in masks]
        want = sizes[0] + (sizes[1] - sizes[0]) * a
        scale = [want / v for v in sizes]
        if max(sizes) > PERSON_SIZE_JUMP * min(sizes):
            for m in masks:
                _paste(full, m.mask, *m.box)
    centre = (box[:2] + box[2:]) / 2
    for m, k in zip(masks, scale, strict=True):
        if m.frame == frame:
            x1, y1, x2, y2 = m.box
            full[y1:y2, x1:x2] |= m.mask
            continue
        dc = (m.det[:2] + m.det[2:]) / 2
        tx1, tx2 = (round(float(centre[0] + (v - dc[0]) * k)) for v in (m.box[0], m.box[2]))
        ty1, ty2 = (round(float(centre[1] + (v - dc[1]) * k)) for v in (m.box[1], m.box[3]))
        _paste(full, m.mask, tx1, ty1, tx2, ty2)
    if not full.any():
        x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
        full[y1 : max(y1, int(np.ceil(box[3]))), x1 : max(x1, int(np.ceil(box[2])))] = True
    return full


def _paste(full: np.ndarray, mask: np.ndarray, tx1: int, ty1: int, tx2: int, ty2: int) -> None:
    """OR ``mask`` resized to the box (tx1, ty1, tx2, ty2) into ``full``, clipped to it."""
    if tx2 <= tx1 or ty2 <= ty1:
        return
    if (tx2 - tx1, ty2 - ty1) != (mask.shape[1], mask.shape[0]):
        mask = cv2.resize(mask.astype(np.uint8), (tx2 - tx1, ty2 - ty1), interpolation=cv2.INTER_NEAREST) > 0
    h, w = full.shape
    cx1, cy1, cx2, cy2 = max(tx1, 0), max(ty1, 0), min(tx2, w), min(ty2, h)
    if cx2 > cx1 and cy2 > cy1:
        full[cy1:cy2, cx1:cx2] |= mask[cy1 - ty1 : cy2 - ty1, cx1 - tx1 : cx2 - tx1]


def _lap(report: VideoReport, stage: str, since: float) -> float:
    """Add the time since ``since`` to ``stage``; returns now."""
    now = time.perf_counter()
    report.timings[stage] = report.timings.get(stage, 0.0) + now - since
    return now


def _box4(box: np.ndarray) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1, y1, x2, y2


def _donor_setup(
    src: str | Path, key: Key | None, surrogate_seed: SurrogateSeed | None, segment: bool
) -> tuple[DonorPainter, SurrogateSeed]:
    """The donor painter and the video's surrogate seed: ``surrogate_seed``, else the key's password's,
    else random; mixed with the file's digest unless ``segment`` (a piece's caller mixes it in once)."""
    from ..media.files import sha256_file
    from .models import get_painter

    seed = surrogate_seed_for(key, surrogate_seed)
    if not segment:
        seed = seed.for_context(sha256_file(Path(src)).encode())
    return get_painter(), seed


def anonymize_video(
    src: str | Path,
    dest: str | Path,
    opts: AnonymizeOptions | None = None,
    *,
    finder: FaceFinder | None,
    plate_finder: Finder | None = None,
    person_finder: Finder | None = None,
    key: Key | None = None,
    hold_seconds: float = DEFAULT_HOLD_SECONDS,
    progress: Callable[[int], None] | None = None,
    keep_boxes: bool = False,
    surrogate_seed: SurrogateSeed | None = None,
    segment: bool = False,
    regions_out: list[tuple[dict[str, Any], bytes]] | None = None,
) -> VideoReport:
    """Anonymize ``src`` into ``dest`` (same container) with ``opts`` (method, mask shape, scale and feather,
    ``detect_every``, codec, crf, lossless, the span ``start``/``end`` and ``cut``; their threshold and
    upscale are ``finder``'s business). See the module docstring. ``opts.targets`` says what is covered:
    faces (found by ``finder``), licence plates (by ``plate_finder``: detected on every
    ``opts.plate_every``-th frame, tracked and held as faces, covered by a box with the method, solid for
    surrogates) and persons (by ``person_finder``, the person segmenter: tracked by their boxes like faces;
    on the frames between two detections each track's masks from both are moved and scaled with its box,
    united and grown with the distance, :func:`place_masks`, :data:`PERSON_GROW_PER_FRAME`; covered with
    the method, which must not be surrogate).

    Faces are detected on every ``detect_every``-th frame of the span and on scene cuts, and tracked in
    between; each track stays covered ``hold_seconds`` after its last detection, and a new track is also
    covered on the frames before its first detection back to the previous detection frame, so a face
    entering between two detections is never shown. With ``key``, a sidecar ``dest.vault`` is written.

    ``method="surrogate"`` replaces every track's face by a donor's (models/donors.md,
    :class:`~anonymizer.pipeline.donor_painter.DonorPainter`), the same donor for a track through the video:
    chosen by ``surrogate_seed`` (else the key's password, else random) mixed with the video file's digest
    and the track number, where the track first appears. The face mesh is fitted on every frame; between
    detections it starts from the track's last landmarks, moved with its box; each track's mesh follows the
    head's motion at once and smooths the rest (:func:`~anonymizer.pipeline.donor_painter.steady_mesh`).

    Planning (detection and tracking), fitting (a surrogate's meshes and new tracks' donor candidates) and
    painting (covers, surrogates, sealing) run in three threads, each up to :data:`PAINT_AHEAD` frames
    ahead of the next, beside the decoder's and the encoder's; each keeps the frames' order, so the output
    is what one thread would make.

    ``segment=True`` anonymizes the piece [``start``, ``end``) of a longer video for
    :func:`anonymizer.media.video.join_segments` (see :class:`~anonymizer.media.video.Transcoder`); with
    ``regions_out`` the original regions go into that list as (meta, PNG bytes) instead of a vault, for the
    caller to seal once the pieces are joined ("frame" and "source_frame" then count from the piece's start).
    A piece's ``surrogate_seed`` is used as given: the caller mixes in the video and the piece.
    """
    o = opts or AnonymizeOptions()
    if o.detect_every < 1 or o.plate_every < 1:
        raise InputError(f"detect_every and plate_every must be >= 1, got {o.detect_every} and {o.plate_every}")
    finders = {"face": finder, "plate": plate_finder, "person": person_finder}
    missing = [t for t in o.targets if finders.get(t) is None]
    if missing:
        raise InputError(f"no finder given for the target(s) {', '.join(missing)}")
    if regions_out is not None and key is not None:
        raise InputError("regions_out collects the original regions for the caller to seal: give no key")
    donor, seed = _donor_setup(src, key, surrogate_seed, segment) if o.method == "surrogate" else (None, None)
    painter = _FacePainter(o.method, o.shape, o.mask_scale, o.feather, donor, seed)
    tc = Transcoder(
        src, dest, codec=o.codec, crf=o.crf, lossless=o.lossless, start=o.start, end=o.end, cut=o.cut, segment=segment
    )
    report = VideoReport()
    sink: RegionSink | None = None
    if regions_out is not None:
        sink = _Collector(regions_out)
    elif key is not None:
        from ..vault.format import VaultWriter

        sink = VaultWriter(key)
    pump: FramePump | None = None
    stages: list[Stage] = []  # the fitting and painting threads, stopped on failure
    try:
        hold = max(1, round(hold_seconds * tc.fps))
        found = {t: f for t in o.targets if (f := finders[t]) is not None}
        planners = _planners(
            found,
            o.detect_every,
            hold,
            tc.rotation,
            landmarks=donor is not None,
            watch=o.watch,
            plate_every=o.plate_every,
        )
        pump = FramePump(tc)
        cover_method = "solid" if o.method == "surrogate" else o.method
        output = _Output(painter, planners, pump, report, sink, progress, keep_boxes, cover_method)
        # three threads beside the decoder's and the encoder's: planning (this one), fitting face meshes
        # for surrogates, and painting, each a few frames ahead of the next
        paint = Stage(output.emit, depth=PAINT_AHEAD)
        fit = Stage(lambda job: paint.put(output.fit(job)), depth=PAINT_AHEAD)
        stages += [fit, paint]
        t = started = time.perf_counter()
        for frame in pump.frames():
            t = _lap(report, "wait", t)
            ready = _in_step({k: p.push(frame) for k, p in planners.items()})
            t = _lap(report, "plan", t)
            for planned in ready:
                fit.put(output.prepare(planned))
            t = _lap(report, "wait", t)
        ready = _in_step({k: p.flush() for k, p in planners.items()})
        _lap(report, "plan", t)
        for planned in ready:
            fit.put(output.prepare(planned))
        fit.close()
        paint.close()
        pump.close()
        tc.finish()
        _count(report, planners)
        report.rotation = tc.rotation
        _stage_times(report, pump, planners, time.perf_counter() - started)
    except BaseException:
        for stage in stages:
            stage.abort()
        if pump is not None:
            pump.abort()
        tc.abort()
        raise
    if not isinstance(sink, _Collector):
        _write_or_clear_vault(src, dest, sink, report.frames, whole=not (o.cut and (o.start or o.end is not None)))
    return report


#: frames planned ahead of the one being painted (each holds a decoded frame)
PAINT_AHEAD = 4


def _planners(
    finders: dict[str, Finder],
    detect_every: int,
    hold: int,
    rotation: int,
    *,
    landmarks: bool = False,
    watch: tuple[str, ...] = VIDEO_WATCH,
    plate_every: int = PLATE_DETECT_EVERY,
) -> dict[str, CoverPlanner]:
    """One planner per target ("face", "plate", "person") -> its finder, run in step: faces are detected every
    ``detect_every`` frames, plates every ``plate_every``, persons every ``detect_every`` but at least every
    :data:`~anonymizer.defaults.PERSON_DETECT_EVERY`; all hold back as many frames as the slowest needs; faces
    keep their landmarks when ``landmarks``, persons their masks, and a person track starts only from
    :data:`~anonymizer.defaults.DEFAULT_PERSON_THRESHOLD`. The targets in ``watch`` (faces, plates) that are
    not detected on every frame are watched (:class:`~anonymizer.pipeline.cover_plan.CoverPlanner`'s
    ``watch``): the frames between detections look again at each detection's faint candidates."""
    cadence = {"person": min(detect_every, PERSON_DETECT_EVERY), "plate": plate_every}
    every = {t: cadence.get(t, detect_every) for t in finders}
    delay = 2 * max(every.values(), default=detect_every) + 1
    return {
        t: CoverPlanner(
            f,
            detect_every=every[t],
            delay=delay,
            hold=hold,
            rotation=rotation,
            landmarks=landmarks and t == "face",
            masks=t == "person",
            new_score=DEFAULT_PERSON_THRESHOLD if t == "person" else None,
            watch=t in watch and every[t] > 1,
        )
        for t, f in finders.items()
    }


def _in_step(ready: dict[str, list[PlannedFrame]]) -> list[dict[str, PlannedFrame]]:
    """The frames the planners released, each with its plan per target. The planners see the same frames
    and hold the same number back, so they release the same frames at the same time."""
    lists = list(ready.values())
    out = [dict(zip(ready, planned, strict=True)) for planned in zip(*lists, strict=True)]
    assert all(len({id(p.frame) for p in step.values()}) == 1 for step in out)
    return out


def _count(report: VideoReport, planners: dict[str, CoverPlanner]) -> None:
    """The report's counts: face detections, tracks and scene cuts (plates' apart)."""
    if "face" in planners:
        p = planners["face"]
        report.detections, report.tracks = p.detections, p.tracks
    if "plate" in planners:
        report.plate_detections, report.plate_tracks = planners["plate"].detections, planners["plate"].tracks
    if "person" in planners:
        report.person_detections, report.person_tracks = planners["person"].detections, planners["person"].tracks
    report.scene_cuts = next(iter(planners.values())).scene_cuts


def _stage_times(report: VideoReport, pump: FramePump, planners: dict[str, CoverPlanner], total: float) -> None:
    tm = report.timings
    plan = tm.pop("plan", 0.0)
    detect = sum(p.detect_s for p in planners.values())
    tm.update(decode=pump.decode_s, detect=detect, track=max(0.0, plan - detect))
    tm.update(encode=pump.encode_s, total=total)
    tm["wait"] = tm.get("wait", 0.0) + tm.pop("wait_encoder", 0.0)
    for stage in ("mesh", "cover", "seal"):
        tm.setdefault(stage, 0.0)


def _write_or_clear_vault(src: str | Path, dest: str | Path, sink: Any, frames: int, *, whole: bool) -> None:
    """With a VaultWriter, the sidecar vault of ``dest`` (the original file sealed instead when ``whole`` and
    smaller); without, remove a vault an earlier run left (it would no longer match the video)."""
    from ..vault.images import sidecar_path

    if sink is None:
        stale = sidecar_path(dest)
        if stale.is_file():
            stale.unlink()
    else:  # a cut output must not restore what was cut away
        write_video_vault(dest, sink, frames, original=Path(src) if whole else None)


def write_video_vault(dest: str | Path, writer: Any, frames: int, *, original: Path | None = None) -> Path:
    """Finish ``writer`` (a VaultWriter holding the regions of the video ``dest``) into ``dest``'s sidecar
    vault, bound to the video's digest; streamed to a temporary file and moved into place. On failure
    the video is removed too (a reversible output without its vault is no use). When the ``original``
    file is smaller than the sealed regions (it nearly always is: its frames are compressed together),
    the regions are dropped and the original file is sealed instead; restoring then gives it back."""
    from ..media.files import sha256_file
    from ..vault.images import sidecar_path

    info = {"kind": "video", "frames": frames, "video_sha256": sha256_file(Path(dest)), "container": "sidecar"}
    side = sidecar_path(dest)
    try:
        if original is not None and original.stat().st_size < writer.size:
            regions = writer.records
            writer.discard()
            with open(original, "rb") as f:
                writer.add_stream(
                    {"codec": "file", "frame": 0, "regions": regions}, f.read, os.fstat(f.fileno()).st_size
                )
        with atomic_file(side) as f:  # streamed: the sealed regions may be larger than memory
            writer.finish(info, out=f)
    except (OSError, MediaError) as exc:
        Path(dest).unlink(missing_ok=True)
        why = exc.reason if isinstance(exc, MediaError) else (exc.strerror or str(exc))
        raise MediaError(f"cannot write the vault: {why}", path=side) from exc
    return side


def restore_video(
    src: str | Path, dest: str | Path, key: Key | Identity, *, progress: Callable[[int], None] | None = None
) -> int:
    """Rebuild ``src`` (anonymized with a key; vault in ``src.vault``) with the original regions put back.

    When the vault holds the original file (sealed in place of the regions when smaller), that file is
    written back byte for byte. Otherwise the output is lossless (libx264rgb, qp 0) in the same container,
    audio copied: when ``src`` was made with ``--lossless``, every restored frame equals the decoded
    original exactly; otherwise the face regions are exact and the rest is as decoded from ``src``.
    Returns the number of regions restored.
    The vault is read as a stream (memory stays flat however long the video). A wrong key, a changed
    header or a replaced video raise before anything is written; a record damaged further in raises
    VaultIntegrityError mid-way, and the partial output is removed.
    """
    from ..errors import VaultError, VaultIntegrityError
    from ..vault.format import open_vault_stream
    from ..vault.images import decode_crop, sidecar_path

    src, dest = Path(src), Path(dest)
    side = sidecar_path(src)
    if not side.is_file():
        raise VaultError(f"no vault found beside this video ({side.name}); was it anonymized with a key?", path=src)
    with open(side, "rb") as vf:
        try:
            info, records = open_vault_stream(vf, key)
        except VaultError as exc:
            raise type(exc)(exc.reason, path=src) from None
        if info.get("kind") != "video":
            raise VaultError(f"this vault holds a {info.get('kind')!r}, not a video", path=src)
        from ..media.files import sha256_file

        if sha256_file(src) != info.get("video_sha256"):
            raise VaultIntegrityError("the video does not match its vault (modified or replaced)", path=src)
        first = next(records, None)
        if first is not None and first.meta.get("codec") == "file":
            return _restore_original(first, records, dest, src)
        tc = Transcoder(src, dest, lossless=True, mode=PRIVATE_MODE)  # it shows the original faces
        try:
            return _restore_frames(
                tc, itertools.chain([first] if first is not None else [], records), decode_crop, src, progress
            )
        except VaultError as exc:
            tc.abort()
            raise type(exc)(exc.reason, path=src) from None
        except BaseException:
            tc.abort()
            raise


def _restore_original(rec: Any, rest: Iterator[Any], dest: Path, src: Path) -> int:
    """Write the original file sealed in ``rec`` to ``dest`` (mode 0600: it shows the original faces),
    chunk by chunk; moved into place only once the whole vault is authenticated."""
    from ..errors import VaultError, VaultIntegrityError

    try:
        with atomic_file(dest, mode=PRIVATE_MODE) as f:
            for part in rec.parts():
                f.write(part)
            if next(rest, None) is not None:
                raise VaultIntegrityError("the vault holds more than the original file", path=src)
    except VaultError as exc:
        raise type(exc)(exc.reason, path=src) from None
    except MediaError as exc:
        raise MediaError(f"cannot write the restored video: {exc.reason}", path=dest) from exc
    regions = rec.meta.get("regions")
    return regions if isinstance(regions, int) else 0


def _restore_frames(
    tc: Transcoder,
    records: Iterator[Any],
    decode_crop: Callable[..., Any],
    src: Path,
    progress: Callable[[int], None] | None,
) -> int:
    """Merge the vault's records (in frame order) into the decoded frames of ``src``."""
    from ..errors import VaultIntegrityError

    def geometry(rec: Any) -> tuple[int, list[int]]:
        frame, box = rec.meta.get("frame"), rec.meta.get("box")
        if not isinstance(frame, int) or not (
            isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box)
        ):
            raise VaultIntegrityError("malformed region geometry in vault", path=src)
        return frame, box

    pending = next(records, None)
    restored = 0
    for frame in tc.frames():
        h, w = frame.rgb.shape[:2]
        while pending is not None:
            index, (x1, y1, x2, y2) = geometry(pending)  # "frame" is the position in the anonymized video
            if index > frame.index:
                break
            if index < frame.index:
                raise VaultIntegrityError(
                    f"vault records out of frame order (frame {index} after {frame.index})", path=src
                )
            if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
                raise VaultIntegrityError(f"region box {[x1, y1, x2, y2]} lies outside the {w}x{h} frame", path=src)
            frame.rgb[y1:y2, x1:x2] = decode_crop(pending, (x2 - x1, y2 - y1))
            restored += 1
            pending = next(records, None)
        tc.write(frame)
        if progress is not None:
            progress(1)
    if pending is not None:
        raise VaultIntegrityError(
            f"the vault holds regions for frame {geometry(pending)[0]}, past the video's end", path=src
        )
    tc.finish()
    return restored


def detect_video(
    src: str | Path,
    *,
    finders: dict[str, Finder],
    detect_every: int,
    hold_seconds: float = DEFAULT_HOLD_SECONDS,
    masks_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """What ``finders`` (target -> finder: "face", "plate", "person") find in the video ``src``, tracked as
    :func:`anonymize_video` tracks them: its row (path, width, height, frames, and per target its tracks:
    ``{"track", "first", "last", "detections", "box"}``, box the union over the track's frames in stored
    pixels). With ``masks_dir`` and persons, one 8-bit PNG (255 = the person) per frame and person track,
    ``<masks_dir>/<frame:06d>_<track:04d>.png``, the masks placed as covering places them; nothing is
    written for a video that fails part way (the folder is filled in a temporary one and moved in place)."""
    from ..media.video import probe, read_frames

    info = probe(src)
    hold = max(1, round(hold_seconds * (info.fps or 25.0)))
    planners = _planners(finders, detect_every, hold, info.rotation)
    tracks: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in planners}
    staging = _staging(masks_dir) if masks_dir is not None and "person" in planners else None
    frames = 0
    try:
        for index, rgb, _ in read_frames(src):
            frame = Frame(index, rgb, None, 0.0, True)
            for step in _in_step({t: p.push(frame) for t, p in planners.items()}):
                _note(step, planners, tracks, staging)
            frames += 1
            if progress is not None:
                progress(1)
        for step in _in_step({t: p.flush() for t, p in planners.items()}):
            _note(step, planners, tracks, staging)
    except BaseException:
        if staging is not None:
            _discard(staging)
        raise
    if staging is not None and masks_dir is not None:
        _discard(masks_dir)
        os.replace(staging, masks_dir)
    row: dict[str, Any] = {"path": str(src), "width": info.width, "height": info.height, "frames": frames}
    frame_box = np.array([info.width, info.height] * 2, np.float32)  # the boxes are in stored pixels
    for t, found in tracks.items():
        row[t + "s"] = [
            {"track": tid, **v, "box": [round(float(x), 1) for x in np.clip(v["box"], 0, frame_box)]}
            for tid, v in found.items()
        ]
    if staging is not None:
        row["masks"] = str(masks_dir)
    return row


def _note(
    step: dict[str, PlannedFrame],
    planners: dict[str, CoverPlanner],
    tracks: dict[str, dict[int, dict[str, Any]]],
    staging: Path | None,
) -> None:
    """One released frame's tracks into ``tracks`` (and its person masks into ``staging``)."""
    for target, p in step.items():
        index = p.frame.index
        for tid, box in p.covers.items():
            t = tracks[target].setdefault(tid, {"first": index, "last": index, "detections": 0, "box": box.copy()})
            t["last"], t["box"] = index, union_box(t["box"], box)
            t["detections"] += int(tid in p.matched)
        if target == "person":
            planner = planners["person"]
            if staging is not None:
                for tid, box in p.covers.items():
                    mask = place_masks(planner.masks_near(tid, index), box, index, p.frame.rgb.shape[:2])
                    png = cv2.imencode(".png", mask.astype(np.uint8) * 255)[1]
                    (staging / f"{index:06d}_{tid:04d}.png").write_bytes(png.tobytes())
            planner.forget_masks(index)


def _staging(masks_dir: Path) -> Path:
    staging = masks_dir.with_name(f".{masks_dir.name}.partial")
    _discard(staging)
    staging.mkdir(parents=True)
    return staging


def _discard(folder: Path) -> None:
    import shutil

    if folder.is_dir():
        shutil.rmtree(folder)
