"""Audit an anonymized video: faces still detected, followed over frames as tracks, each with a synthetic
score aggregated over its frames; container metadata that leaks; a vault beside it.

Every ``every``-th frame is searched (upright, as displayed); detections are linked into tracks by
:class:`~anonymizer.pipeline.tracking.FaceTracker`. Per track the report gives its first and last frame,
how many searched frames found it, its best detection score and, with the deepfake classifier, the mean
and maximum probability that it is synthetic over those frames (a surrogate painted by
``--method surrogate`` should score high all along; a real face that slipped through, low).

With the original video (``original``, or restored through ``key`` from the vault beside the output),
every searched frame of the original is searched for faces too; each face is followed as a track of the
original, and its identity distance to the same place in the output's frame is measured: a track fails
when on any frame the recognizer still takes the two for one person (its worst frame and box are
reported). Without an original, a track detected in the output with score >= 0.5 fails the audit, as a
photo's visible face does.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .metadata import Leak
from .report import VISIBLE_SCORE, AuditResult, box_text

if TYPE_CHECKING:
    from ..pipeline.deepfake import DeepfakeScorer
    from ..pipeline.photo import FaceFinder
    from ..types import Face
    from ..vault.keys import Identity, Key
    from .recognizers import Recognizer

#: Container tags that identify a place, a device or a person.
LEAKY_TAGS = (
    "location",
    "gps",
    "xyz",
    "make",
    "model",
    "serial",
    "artist",
    "author",
    "copyright",
    "comment",
    "encoder_serial",
)


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
    original: str | Path | None = None,
    recognizer: Recognizer | None = None,
    key: Key | Identity | None = None,
) -> AuditResult:
    """Audit one anonymized video (see the module docstring). Raises InputError for unreadable videos."""
    from ..vault.images import sidecar_path

    if every < 1:
        raise InputError(f"every must be >= 1, got {every}")
    path = Path(path)
    res = AuditResult(path=path, tracks=[])
    shown = _output_tracks(path, res, finder, deepfake, every, keep_images)
    res.leaks = video_leaks(path)
    for leak in res.leaks:
        res.reasons.append(f"metadata leaks: {leak.detail}")
    res.vault = {"present": sidecar_path(path).is_file(), "opens": None}
    if original is None and key is not None and res.vault["present"]:
        with tempfile.TemporaryDirectory(prefix="anonymizer-audit-") as tmp:  # private: it holds original faces
            restored = _restore(path, key, Path(tmp), res)
            if restored is not None:
                _identity_tracks(restored, path, res, finder, recognizer, shown, every, keep_images)
    elif original is not None:
        res.original = str(original)
        _identity_tracks(Path(original), path, res, finder, recognizer, shown, every, keep_images)
    if res.original is None:
        for row in res.tracks or ():
            if row["visible"]:
                res.reasons.append(
                    f"a face is visible in frames {row['first_frame']}-{row['last_frame']} (track "
                    f"{row['track']}, at {box_text(row['box'])} on frame {row['best_frame']}, score "
                    f"{row['score']:.2f}) and no original is given to check its identity"
                )
    return res


def _output_tracks(
    path: Path, res: AuditResult, finder: FaceFinder, deepfake: DeepfakeScorer | None, every: int, keep_images: bool
) -> dict[int, list[Face]]:
    """Faces still detected in the output, followed as tracks (``res.tracks``), with synthetic scores.
    Returns the faces found on each searched frame (for :func:`_identity_tracks`)."""
    from ..media.video import read_frames
    from ..ops.rotation import upright as _upright
    from ..pipeline.tracking import FaceTracker

    tracker = FaceTracker(hold=2 * every)
    stats: dict[int, dict[str, Any]] = {}
    searched: dict[int, list[Face]] = {}
    frames = 0
    for index, rgb, rotation in read_frames(path):
        frames += 1
        if index % every:
            continue
        up = _upright(rgb, rotation)
        found = searched[index] = list(finder.find(up))
        tracker.update(index, np.array([f.box for f in found], np.float32).reshape(-1, 4))
        probs: list[float | None] = [None] * len(found)
        if deepfake is not None and found:
            probs = [float(v) for v in deepfake.score_faces(up, found)]
        for tid, di in tracker.matches.items():
            st = stats.setdefault(tid, {"first": index, "hits": 0, "best": -1.0, "synthetic": []})
            st["last"] = index
            st["hits"] += 1
            if (p := probs[di]) is not None:
                st["synthetic"].append(p)
            if found[di].score > st["best"]:
                st.update(best=found[di].score, frame=index, box=[round(float(v), 1) for v in found[di].box])
                if keep_images:
                    st["crop"] = _crop(up, found[di].box)
    res.frames = frames
    if deepfake is not None:
        res.synthetic_threshold = deepfake.threshold
    assert res.tracks is not None
    for tid, st in sorted(stats.items()):
        row: dict[str, Any] = {
            "track": tid,
            "first_frame": st["first"],
            "last_frame": st["last"],
            "frames_found": st["hits"],
            "score": round(st["best"], 4),
            "visible": st["best"] >= VISIBLE_SCORE,
            "best_frame": st["frame"],
            "box": st["box"],
        }
        if st["synthetic"]:
            mean = float(np.mean(st["synthetic"]))
            row["synthetic"] = round(mean, 4)
            row["synthetic_max"] = round(float(np.max(st["synthetic"])), 4)
            if deepfake is not None:  # a track is judged by its mean over the frames searched
                row["synthetic_flagged"] = deepfake.flagged(mean)
        res.tracks.append(row)
        if "crop" in st and st["crop"].size:
            res.track_crops[tid] = st["crop"]
    return searched


def _crop(rgb: np.ndarray, box: Any) -> np.ndarray:
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    return np.ascontiguousarray(rgb[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)])


def _restore(path: Path, key: Key | Identity, folder: Path, res: AuditResult) -> Path | None:
    """The original video restored from the vault beside ``path`` into ``folder``; None (and the reason in
    ``res``) when the vault does not open."""
    from ..errors import VaultError
    from ..pipeline.video import restore_video

    dest = folder / f"original{path.suffix}"
    try:
        restore_video(path, dest, key)
    except VaultError as exc:
        res.vault.update(opens=False, error=exc.reason)
        res.reasons.append(f"the vault does not open: {exc.reason}")
        return None
    res.vault["opens"] = True
    res.original = "restored through the key"
    return dest


def _identity_tracks(
    original: Path,
    output: Path,
    res: AuditResult,
    finder: FaceFinder,
    recognizer: Recognizer | None,
    shown: dict[int, list[Face]],
    every: int,
    keep_images: bool,
) -> None:
    """Follow the original's faces over the searched frames (those of ``shown``: the faces found there in
    the output) and measure each one's identity distance to the same place in the output's frame
    (``res.identity``: one row per track, at its worst frame: the closest one where it is recognisable, else
    the closest)."""
    from ..media.video import read_frames
    from ..ops.rotation import upright as _upright
    from ..pipeline.tracking import FaceTracker
    from .recognizers import get_recognizer
    from .report import identity_rows

    recognizer = recognizer if recognizer is not None else get_recognizer()
    res.recognizer = recognizer.name
    tracker = FaceTracker(hold=2 * every)
    worst: dict[int, dict[str, Any]] = {}
    for a, b in itertools.zip_longest(read_frames(original), read_frames(output)):
        if a is None or b is None:
            raise InputError(
                f"it does not have as many frames as its original {original} (cut with --cut?)", path=output
            )
        (index, orig, rot_a), (_, out, rot_b) = a, b
        if index not in shown:
            continue
        orig, out = _upright(orig, rot_a), _upright(out, rot_b)
        rows = identity_rows(orig, out, finder, recognizer, shown=shown[index])
        tracker.update(index, np.array([r["box"] for r in rows], np.float32).reshape(-1, 4))
        for tid, di in tracker.matches.items():
            row = rows[di]
            st = worst.setdefault(
                tid,
                {
                    "track": tid,
                    "first_frame": index,
                    "distance": np.inf,
                    "recognisable": False,
                    "frames_recognisable": 0,
                },
            )
            st["last_frame"] = index
            st["frames_recognisable"] += int(row["recognisable"])
            # the frame reported: the closest recognisable one, else the closest
            if (not row["recognisable"], row["distance"]) < (not st["recognisable"], st["distance"]):
                st.update(
                    distance=row["distance"],
                    frame=index,
                    box=row["box"],
                    recognisable=row["recognisable"],
                    output_face=row["output_face"],
                )
                if keep_images:
                    res.identity_crops[tid] = (_crop(orig, row["box"]), _crop(out, row["box"]))
    res.identity = [worst[t] for t in sorted(worst)]
    for row in res.identity:
        if row["recognisable"]:
            res.reasons.append(
                f"the face of track {row['track']} (frames {row['first_frame']}-{row['last_frame']}) is still "
                f"recognisable on {row['frames_recognisable']} searched frame(s): {recognizer.name} distance "
                f"{row['distance']:.3f} <= {recognizer.threshold:.3g} at {box_text(row['box'])} on frame {row['frame']}"
            )
