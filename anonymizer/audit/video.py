"""Audit an anonymized video: faces still detected, followed over frames as tracks, each with a synthetic
score aggregated over its frames; container metadata that leaks; a vault beside it.

Every ``every``-th frame is searched (upright, as displayed); detections are linked into tracks by
:class:`~anonymizer.pipeline.tracking.FaceTracker`. Per track the report gives its first and last frame,
how many searched frames found it, its best detection score and, with the deepfake classifier, the mean
and maximum probability that it is synthetic over those frames (a surrogate painted by
``--method surrogate`` should score high all along; a real face that slipped through, low).

Identity distances need the original frames and are not computed for videos yet: a track detected with
score >= 0.5 fails the audit, as a photo's visible face does when no original is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .metadata import Leak
from .report import VISIBLE_SCORE, AuditResult

if TYPE_CHECKING:
    from ..pipeline.deepfake import DeepfakeScorer
    from ..pipeline.photo import FaceFinder

#: Container tags that identify a place, a device or a person.
LEAKY_TAGS = ("location", "gps", "xyz", "make", "model", "serial", "artist", "author", "copyright", "comment", "encoder_serial")


def video_leaks(path: Path) -> list[Leak]:
    from ..media.video import container_metadata

    leaks = []
    for key, value in sorted(container_metadata(path).items()):
        name = key.split(":", 1)[-1]
        if any(t in name for t in LEAKY_TAGS) and value.strip():
            kind = "gps" if any(t in name for t in ("location", "gps", "xyz")) else "text"
            leaks.append(Leak(kind, f"{key} = {value[:60]}"))
    return leaks


def audit_video(
    path: str | Path,
    *,
    finder: FaceFinder,
    deepfake: DeepfakeScorer | None = None,
    every: int = 5,
    keep_images: bool = False,
) -> AuditResult:
    """Audit one anonymized video (see the module docstring). Raises InputError for unreadable videos."""
    from ..media.video import read_frames
    from ..pipeline.tracking import FaceTracker
    from ..pipeline.video import _upright
    from ..vault.images import sidecar_path

    if every < 1:
        raise InputError(f"every must be >= 1, got {every}")
    path = Path(path)
    tracks: list[dict[str, Any]] = []
    res = AuditResult(path=path, tracks=tracks)
    tracker = FaceTracker(hold=2 * every)
    stats: dict[int, dict[str, Any]] = {}
    frames = 0
    for index, rgb, rotation in read_frames(path):
        frames += 1
        if index % every:
            continue
        up = _upright(rgb, rotation)
        found = finder.find(up)
        boxes = np.array([f.box for f in found], np.float32).reshape(-1, 4)
        tracker.update(index, boxes)
        probs: list[float | None] = [None] * len(found)
        if deepfake is not None and found:
            probs = [float(v) for v in deepfake.score_faces(up, found)]
        for tid, di in tracker.matches.items():
            st = stats.setdefault(tid, {"first": index, "hits": 0, "best": 0.0, "synthetic": []})
            st["last"] = index
            st["hits"] += 1
            if (p := probs[di]) is not None:
                st["synthetic"].append(p)
            if found[di].score >= st["best"]:
                st["best"] = found[di].score
                if keep_images:
                    x1, y1, x2, y2 = (int(round(v)) for v in found[di].box)
                    st["crop"] = np.ascontiguousarray(up[max(0, y1):y2, max(0, x1):x2])
    res.frames = frames
    for tid, st in sorted(stats.items()):
        row: dict[str, Any] = {"track": tid, "first_frame": st["first"], "last_frame": st["last"], "frames_found": st["hits"],
                               "score": round(st["best"], 4), "visible": st["best"] >= VISIBLE_SCORE}
        if st["synthetic"]:
            row["synthetic"] = round(float(np.mean(st["synthetic"])), 4)
            row["synthetic_max"] = round(float(np.max(st["synthetic"])), 4)
        tracks.append(row)
        if "crop" in st and st["crop"].size:
            res.track_crops[tid] = st["crop"]
        if row["visible"]:
            res.reasons.append(f"a face is visible in frames {st['first']}-{st['last']} (track {tid}, score {st['best']:.2f}); "
                               "identity checks against the original are not done for videos yet")
    res.leaks = video_leaks(path)
    for leak in res.leaks:
        res.reasons.append(f"metadata leaks: {leak.detail}")
    res.vault = {"present": sidecar_path(path).is_file(), "opens": None}
    return res
