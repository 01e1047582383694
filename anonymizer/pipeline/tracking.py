"""Face tracks across video frames: association, motion prediction, hold after the last detection,
size smoothing. Boxes are ndarray (x1, y1, x2, y2) in pixels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ops.boxes import iou_matrix

#: a track's predicted box grows this much per frame since its last detection (the face may turn or near)
UNSEEN_GROWTH = 0.03
#: a detection that does not overlap a track's predicted box may still continue it when its centre is within
#: this many face widths per frame since the track's last detection (at most MAX_JUMP), and its height
#: within MAX_SIZE_CHANGE of the track's: a face walking across a 720p frame moves about half its width a frame,
#: more than a box's width between two detection frames
JUMP_PER_FRAME, MAX_JUMP, MAX_SIZE_CHANGE = 0.5, 3.0, 1.5
#: mean absolute difference (grey levels) between two frames' 32x18 thumbnails above which the second starts
#: a new shot: consecutive frames of the sample clip and of 34 talking-head videos differ by at most 19
#: (7 in the clip), a jump cut between two shots of the same arcade by 38
CUT_THRESHOLD = 25.0


def affinity(predicted: np.ndarray, boxes: np.ndarray, unseen: np.ndarray, *, min_iou: float) -> np.ndarray:
    """How well each detection boxes[M, 4] continues each track (its predicted box predicted[N, 4], ``unseen``[N]
    frames since its last detection): the IoU where it is at least ``min_iou``; else, for a detection of a
    similar height whose centre is near enough (JUMP_PER_FRAME face widths a frame, at most MAX_JUMP), a value
    in (0, min_iou) that falls with the distance, so overlapping pairs are matched first; else 0."""
    ious = iou_matrix(predicted, boxes)
    if ious.size == 0:
        return ious
    pc, bc = (predicted[:, :2] + predicted[:, 2:]) / 2, (boxes[:, :2] + boxes[:, 2:]) / 2
    pw, ph, bh = predicted[:, 2] - predicted[:, 0], predicted[:, 3] - predicted[:, 1], boxes[:, 3] - boxes[:, 1]
    dist = np.linalg.norm(pc[:, None] - bc[None], axis=2) / np.maximum(pw[:, None], 1.0)
    reach = np.minimum(JUMP_PER_FRAME * np.maximum(unseen, 1.0), MAX_JUMP)[:, None]
    ratio = np.maximum(ph[:, None], 1.0) / np.maximum(bh[None], 1.0)
    near = (dist < reach) & (ratio < MAX_SIZE_CHANGE) & (ratio > 1 / MAX_SIZE_CHANGE)
    return np.where(ious >= min_iou, ious, np.where(near, min_iou * (1 - dist / reach), 0.0)).astype(np.float32)


@dataclass
class Track:
    id: int
    box: np.ndarray  # smoothed box at frame `frame`
    frame: int
    last_seen: int  # frame of the last detection
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # centre px / frame
    hits: int = 1
    last_det: np.ndarray | None = None  # the raw detection at `last_seen`

    def predict(self, frame: int) -> np.ndarray:
        """The box expected at ``frame``: moved by the velocity, grown a little per frame unseen."""
        dt = frame - self.frame
        c = (self.box[:2] + self.box[2:]) / 2 + self.velocity * dt
        half = (self.box[2:] - self.box[:2]) / 2 * (1.0 + UNSEEN_GROWTH * max(0, frame - self.last_seen))
        return np.concatenate([c - half, c + half]).astype(np.float32)


class FaceTracker:
    """Associates detections into tracks and says which boxes to cover on every frame.

    ``update(frame, boxes)`` with detections (ndarray[N, 4]) on detection frames, or ``None`` on frames
    without detection; returns ([(track id, box)] to cover on this frame, [new tracks]). A track is
    covered for ``hold`` frames after its last detection (at its predicted position), so a face missed
    for a frame or two stays covered; sizes are smoothed (exponential average, never smaller than the
    current detection) so masks do not jitter.
    """

    def __init__(self, *, hold: int = 12, min_iou: float = 0.15, smooth: float = 0.5) -> None:
        self.hold = hold
        self.min_iou = min_iou
        self.smooth = smooth
        self.tracks: list[Track] = []
        self._next = 0
        #: (track id, previous detection frame, its box, this frame, this box) for tracks matched by the
        #: last update: lets a caller that holds frames back fill the gap between two detections
        self.observations: list[tuple[int, int, np.ndarray, int, np.ndarray]] = []
        #: track id -> index of the detection it took in the last update (new tracks included)
        self.matches: dict[int, int] = {}

    def reset(self) -> None:
        self.tracks = []

    def update(self, frame: int, boxes: np.ndarray | None) -> tuple[list[tuple[int, np.ndarray]], list[Track]]:
        self.tracks = [t for t in self.tracks if frame - t.last_seen <= self.hold]
        self.observations = []
        self.matches = {}
        new: list[Track] = []
        if boxes is not None:
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
            predicted = np.array([t.predict(frame) for t in self.tracks], np.float32).reshape(-1, 4)
            unseen = np.array([frame - t.last_seen for t in self.tracks], np.float32)
            ious = affinity(predicted, boxes, unseen, min_iou=self.min_iou)
            matched_t: set[int] = set()
            matched_d: set[int] = set()
            for flat in np.argsort(-ious, axis=None):
                ti, di = divmod(int(flat), len(boxes))
                if ious[ti, di] <= 0:
                    break
                if ti in matched_t or di in matched_d:
                    continue
                matched_t.add(ti)
                matched_d.add(di)
                self.matches[self.tracks[ti].id] = di
                self._observe(self.tracks[ti], frame, boxes[di], predicted[ti])
            for di in range(len(boxes)):
                if di not in matched_d:
                    t = Track(
                        id=self._next, box=boxes[di].copy(), frame=frame, last_seen=frame, last_det=boxes[di].copy()
                    )
                    self._next += 1
                    self.matches[t.id] = di
                    self.tracks.append(t)
                    new.append(t)
        covers = [(t.id, t.box if t.frame == frame else t.predict(frame)) for t in self.tracks]
        return covers, new

    def _observe(self, t: Track, frame: int, det: np.ndarray, predicted: np.ndarray) -> None:
        dt = max(1, frame - t.frame)
        old_c = (t.box[:2] + t.box[2:]) / 2
        new_c = (det[:2] + det[2:]) / 2
        measured = (new_c - old_c) / dt
        t.velocity = measured if t.hits == 1 else 0.5 * t.velocity + 0.5 * measured
        if t.last_det is not None and frame > t.last_seen:
            self.observations.append((t.id, t.last_seen, t.last_det.copy(), frame, det.copy()))
        t.last_det = det.copy()
        # the size is smoothed and never smaller than what was just detected; the centre is the detection's
        # (a union with a lagging box would stretch along the motion)
        a = self.smooth
        size = np.maximum(a * (predicted[2:] - predicted[:2]) + (1 - a) * (det[2:] - det[:2]), det[2:] - det[:2])
        t.box = np.concatenate([new_c - size / 2, new_c + size / 2]).astype(np.float32)
        t.frame = frame
        t.last_seen = frame
        t.hits += 1


def scene_cut(prev: np.ndarray | None, cur: np.ndarray, *, threshold: float = CUT_THRESHOLD) -> bool:
    """True when two small grey thumbnails (uint8) differ by more than ``threshold`` on average."""
    if prev is None:
        return False
    return float(np.mean(np.abs(prev.astype(np.int16) - cur.astype(np.int16)))) > threshold
