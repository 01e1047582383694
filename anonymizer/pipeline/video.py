"""Videos: detect every K frames (and on scene cuts), track in between, cover, keep audio; with a key,
seal the original pixels of every covered region of every frame into a sidecar vault."""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import InputError, MediaError
from ..media.image import PRIVATE_MODE
from ..media.video import Frame, Transcoder
from ..types import Face
from ..vault.surrogate import SurrogateSeed
from .photo import DEFAULT_FEATHER, DEFAULT_MASK_SCALE, FaceFinder, cover_faces
from .tracking import FaceTracker, scene_cut

log = logging.getLogger(__name__)

from ..defaults import DEFAULT_DETECT_EVERY, DEFAULT_HOLD_SECONDS  # noqa: E402

_END = object()


class _Worker(threading.Thread):
    """Runs ``fn`` in a thread; an exception is kept and re-raised by :meth:`check`."""

    def __init__(self, fn: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.fn()
        except BaseException as exc:  # re-raised in the main thread
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise self.error


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
    regions: int = 0
    scene_cuts: int = 0
    rotation: int = 0
    per_frame: list[list[tuple[int, tuple[float, float, float, float]]]] = field(default_factory=list)


@dataclass(eq=False)
class _Pending:
    frame: Frame
    covers: dict[int, np.ndarray]
    detected: bool = False
    #: the five landmarks of each track detected on this frame (surrogates need them)
    landmarks: dict[int, np.ndarray] = field(default_factory=dict)


#: a new track's box on the frames held back before its first detection grows this much per frame back
BACKFILL_GROWTH = 0.15
#: between two detections of a track, the interpolated box is grown this much
INTERP_GROWTH = 1.1
#: before a track's first detection, once a second detection gives its velocity, its box moved back along it
#: grows this much per frame
EXTRAP_GROWTH = 0.1


def _union(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    if a is None:
        return b.astype(np.float32)
    return np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])]).astype(np.float32)


def _grown(box: np.ndarray, factor: float) -> np.ndarray:
    c = (box[:2] + box[2:]) / 2
    half = (box[2:] - box[:2]) / 2 * factor
    return np.concatenate([c - half, c + half]).astype(np.float32)


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=k)) if k else rgb


def _points_back(points: np.ndarray, rotation: int, w: int, h: int) -> np.ndarray:
    """Map points (..., 2) found on the upright frame back to the stored frame (see :func:`_boxes_back`)."""
    k = (rotation // 90) % 4
    out = points.astype(np.float32).copy()
    ch = h if k % 2 == 0 else w  # height of the rotated image the points live in
    for _ in range(k):
        out = np.stack([ch - out[..., 1], out[..., 0]], axis=-1)  # undo one CCW turn
        ch = w if ch == h else h
    return out


def _landmarks_in(box: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Landmarks (5, 2) for a cover box from a track's face shape (landmarks relative to its detection's
    centre, in units of its width): used on frames where the track was held or filled in, not detected."""
    centre = (box[:2] + box[2:]) / 2
    return (centre + shape * float(box[2] - box[0])).astype(np.float32)


def _boxes_back(boxes: np.ndarray, rotation: int, w: int, h: int) -> np.ndarray:
    """Map boxes found on ``np.rot90(frame, k)`` (k = rotation / 90, counter-clockwise turns) back to the
    stored frame of ``w`` x ``h``. One CCW turn sends stored (x, y) to (y, w - x)."""
    k = (rotation // 90) % 4
    out = boxes.copy()
    cw, ch = (w, h) if k % 2 == 0 else (h, w)  # size of the rotated image the boxes live in
    for _ in range(k):
        # undo one CCW turn of an image of size cw x ch: (x', y') came from (cw_prev - y', x')
        prev_w = ch
        x1, y1, x2, y2 = out[:, 0].copy(), out[:, 1].copy(), out[:, 2].copy(), out[:, 3].copy()
        out = np.stack([prev_w - y2, x1, prev_w - y1, x2], axis=1)
        cw, ch = ch, cw
    return out


def anonymize_video(
    src: str | Path,
    dest: str | Path,
    *,
    finder: FaceFinder,
    method: str = "solid",
    shape: str = "ellipse",
    mask_scale: float = DEFAULT_MASK_SCALE,
    feather: float = DEFAULT_FEATHER,
    detect_every: int = DEFAULT_DETECT_EVERY,
    hold_seconds: float = DEFAULT_HOLD_SECONDS,
    key: object | None = None,
    codec: str = "libx264",
    crf: int = 18,
    lossless: bool = False,
    start: float | None = None,
    end: float | None = None,
    cut: bool = False,
    progress: Callable[[int], None] | None = None,
    keep_boxes: bool = False,
    surrogate_seed: SurrogateSeed | None = None,
    segment: bool = False,
    regions_out: list[tuple[dict[str, Any], bytes]] | None = None,
) -> VideoReport:
    """Anonymize ``src`` into ``dest`` (same container). See the module docstring.

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

    ``segment=True`` anonymizes the piece [``start``, ``end``) of a longer video for
    :func:`anonymizer.media.video.join_segments` (see :class:`~anonymizer.media.video.Transcoder`); with
    ``regions_out`` the original regions go into that list as (meta, PNG bytes) instead of a vault, for the
    caller to seal once the pieces are joined ("frame" and "source_frame" then count from the piece's start).
    A piece's ``surrogate_seed`` is used as given: the caller mixes in the video and the piece.
    """
    if detect_every < 1:
        raise InputError(f"detect_every must be >= 1, got {detect_every}")
    painter = seed = None
    chosen: dict[int, int] = {}  # track -> its surrogate candidate, decided where the track first appears
    steady: dict[int, np.ndarray] = {}  # track -> its last (smoothed) face mesh, so surrogates do not swim
    if method == "surrogate":
        from ..api import get_painter
        from ..vault.surrogate import SurrogateSeed
        from ..weights import sha256_file

        painter = get_painter()
        seed = surrogate_seed or (key.surrogate_seed() if key is not None else None) or SurrogateSeed.random()  # type: ignore[attr-defined]
        if not segment:  # a piece's seed comes from its caller, who mixes in the file and the piece once
            seed = seed.for_context(sha256_file(Path(src)).encode())
    decoded: queue.Queue[object] = queue.Queue(maxsize=8)
    to_encode: queue.Queue[object] = queue.Queue(maxsize=8)
    stop = threading.Event()
    if regions_out is not None and key is not None:
        raise InputError("regions_out collects the original regions for the caller to seal: give no key")
    tc = Transcoder(src, dest, codec=codec, crf=crf, lossless=lossless, start=start, end=end, cut=cut, segment=segment)
    report = VideoReport()
    workers: list[_Worker] = []
    writer: Any = None
    if regions_out is not None:
        writer = _Collector(regions_out)
    elif key is not None:
        from ..vault.format import VaultWriter

        writer = VaultWriter(key)  # type: ignore[arg-type]
    try:
        fps = float(tc._vout.average_rate or 25)  # noqa: SLF001
        tracker = FaceTracker(hold=max(1, round(hold_seconds * fps)))
        # frames are held back long enough to fill the gap between two detections of a track
        delay = 2 * detect_every + 1
        pending: deque[_Pending] = deque()
        shapes: dict[int, np.ndarray] = {}  # track id -> face shape (see _landmarks_in)
        scores: dict[int, float] = {}  # track id -> its best detection score (the painter trusts small faces by it)
        born: dict[int, int] = {}  # track id -> the frame of its first detection
        prev_thumb: np.ndarray | None = None
        span_index = 0
        last_cut = 0


        def read() -> None:
            try:
                for f in tc.frames():
                    while not stop.is_set():
                        try:
                            decoded.put(f, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            finally:
                while True:  # never block for good: the main thread may have stopped reading
                    try:
                        decoded.put(_END, timeout=0.2)
                        break
                    except queue.Full:
                        if stop.is_set():
                            break

        def write() -> None:
            while (item := to_encode.get()) is not _END:
                tc.write(item)  # type: ignore[arg-type]

        reader, writer_thread = _Worker(read), _Worker(write)
        workers.extend((reader, writer_thread))

        def emit(p: _Pending) -> None:
            def landmarks(tid: int) -> tuple[tuple[float, float], ...]:
                if painter is None:
                    return ()
                lm = p.landmarks[tid] if tid in p.landmarks else _landmarks_in(p.covers[tid], shapes[tid])
                return tuple((float(x), float(y)) for x, y in lm)

            # every track starts from a detection, so a surrogate always has landmarks to go by; were one
            # ever without, it is covered solid rather than shown
            tids = [tid for tid in p.covers if painter is None or tid in p.landmarks or tid in shapes]
            bare = [tid for tid in p.covers if tid not in tids]
            faces = [Face(box=tuple(float(v) for v in p.covers[tid]), score=scores.get(tid, 1.0), landmarks=landmarks(tid))  # type: ignore[arg-type]
                     for tid in [*tids, *bare]]
            rgb = p.frame.rgb
            if faces:
                if painter is not None and seed is not None:
                    out, regions, _ = painter.paint(rgb, faces[: len(tids)], seed, tracks=tids, choices=chosen,
                                                    meshes=steady)
                    if bare:
                        out, more, _ = cover_faces(out, faces[len(tids):], method="solid", shape=shape, mask_scale=mask_scale, feather=feather)
                        regions = (*regions, *more)
                else:
                    out, regions, _ = cover_faces(rgb, faces, method=method, shape=shape, mask_scale=mask_scale, feather=feather)
                report.frames_covered += 1
                report.regions += len(regions)
                track_of = {id(f): tid for f, tid in zip(faces, [*tids, *bare], strict=True)}
                if writer is not None:
                    for region in regions:
                        x1, y1, x2, y2 = region.box
                        crop = np.ascontiguousarray(rgb[y1:y2, x1:x2])
                        writer.add(
                            {"frame": report.frames, "source_frame": p.frame.index, "pts": p.frame.pts,
                             "track": int(track_of[id(region.face)]), "box": [x1, y1, x2, y2], "shape": region.shape, "codec": "png"},
                            cv2.imencode(".png", crop[:, :, ::-1])[1].tobytes(),
                        )
                p.frame.rgb = out
            if keep_boxes:
                report.per_frame.append([(tid, tuple(float(v) for v in b)) for tid, b in p.covers.items()])  # type: ignore[misc]
            while True:
                writer_thread.check()
                try:
                    to_encode.put(p.frame, timeout=0.2)
                    break
                except queue.Full:
                    continue
            report.frames += 1
            if progress is not None:
                progress(1)

        reader.start()
        writer_thread.start()

        def frames_in() -> Iterator[Frame]:
            while (item := decoded.get()) is not _END:
                yield item  # type: ignore[misc]
            reader.check()

        def detect_on(p: _Pending) -> None:
            """Detect on a held frame, update the tracks, and fix the covers of the frames held with it."""
            h, w = p.frame.rgb.shape[:2]
            found = finder.find(_upright(p.frame.rgb, tc.rotation))
            boxes = np.array([f.box for f in found], np.float32).reshape(-1, 4)
            lms = np.array([f.landmarks for f in found], np.float32).reshape(-1, 5, 2)
            if tc.rotation:
                boxes = _boxes_back(boxes, tc.rotation, w, h)
                lms = _points_back(lms, tc.rotation, w, h)
            report.detections += len(boxes)
            current, new = tracker.update(p.frame.index, boxes)
            if painter is not None:
                for tid, di in tracker.matches.items():  # the detection each track took on this frame
                    p.landmarks[tid] = lms[di]
                    scores[tid] = max(scores.get(tid, 0.0), float(found[di].score))
                    shapes[tid] = (lms[di] - (boxes[di, :2] + boxes[di, 2:]) / 2) / max(float(boxes[di, 2] - boxes[di, 0]), 1.0)
            for tid, b in current:
                p.covers[tid] = _union(p.covers.get(tid), b)
            p.detected = True
            held = [q for q in pending if q.frame.in_span and last_cut <= q.frame.index < p.frame.index]
            for t in new:  # a face that appeared between detections: cover it on the frames held back
                report.tracks += 1
                born[t.id] = p.frame.index
                for q in held:
                    grown = _grown(t.box, 1.0 + BACKFILL_GROWTH * (p.frame.index - q.frame.index))
                    q.covers[t.id] = _union(q.covers.get(t.id), grown)
            for tid, f1, b1, f2, b2 in tracker.observations:
                c1, c2 = (b1[:2] + b1[2:]) / 2, (b2[:2] + b2[2:]) / 2
                v = (c2 - c1) / (f2 - f1)
                for q in held:
                    if f1 < q.frame.index < f2:  # between two detections: interpolate (better than the prediction)
                        a = (q.frame.index - f1) / (f2 - f1)
                        q.covers[tid] = _grown(b1 + (b2 - b1) * a, INTERP_GROWTH)
                    elif q.frame.index < born.get(tid, 0) and tid in q.covers:  # before the first detection
                        d = f1 - q.frame.index
                        shift = np.concatenate([v * d, v * d]).astype(np.float32)
                        # replaces the isotropic backfill now that the direction is known
                        q.covers[tid] = _grown(b1 - shift, 1.0 + EXTRAP_GROWTH * d)

        last_in_span: _Pending | None = None
        for frame in frames_in():
            entry = _Pending(frame, {})
            if frame.in_span:
                thumb = cv2.resize(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY), (32, 18), interpolation=cv2.INTER_AREA)
                is_cut = scene_cut(prev_thumb, thumb)
                prev_thumb = thumb
                if is_cut:
                    report.scene_cuts += 1
                    tracker.reset()
                    last_cut = frame.index
                pending.append(entry)
                if is_cut or span_index % detect_every == 0:
                    detect_on(entry)
                else:
                    current, _ = tracker.update(frame.index, None)
                    entry.covers = {tid: b for tid, b in current}
                span_index += 1
                last_in_span = entry
            else:
                if last_in_span is not None and not last_in_span.detected and last_in_span in pending:
                    detect_on(last_in_span)  # the span's last frame: nothing after it would catch a new face
                last_in_span = None
                pending.append(entry)
            while len(pending) > delay:
                emit(pending.popleft())
        if last_in_span is not None and not last_in_span.detected and last_in_span in pending:
            detect_on(last_in_span)  # the video's last frame
        while pending:
            emit(pending.popleft())
        to_encode.put(_END)
        writer_thread.join()
        writer_thread.check()
        report.rotation = tc.rotation
        tc.finish()
    except BaseException:
        stop.set()
        if workers:
            try:
                to_encode.put(_END, timeout=5)
            except queue.Full:
                pass
        for worker in workers:
            if worker.is_alive():
                worker.join(timeout=5)
        tc.abort()
        raise
    from ..vault.images import sidecar_path

    if isinstance(writer, _Collector):
        return report
    if writer is None:
        stale = sidecar_path(dest)
        if stale.is_file():
            stale.unlink()  # a vault from an earlier run would no longer match this video
    else:
        whole = not (cut and (start or end is not None))  # a cut output must not restore what was cut away
        write_video_vault(dest, writer, report.frames, original=Path(src) if whole else None)
    return report


def write_video_vault(dest: str | Path, writer: Any, frames: int, *, original: Path | None = None) -> Path:
    """Finish ``writer`` (a VaultWriter holding the regions of the video ``dest``) into ``dest``'s sidecar
    vault, bound to the video's digest; streamed to a temporary file and moved into place. On failure
    the video is removed too (a reversible output without its vault is no use). When the ``original``
    file is smaller than the sealed regions (it nearly always is: its frames are compressed together),
    the regions are dropped and the original file is sealed instead; restoring then gives it back."""
    from ..vault.images import sidecar_path
    from ..weights import sha256_file

    info = {"kind": "video", "frames": frames, "video_sha256": sha256_file(Path(dest)), "container": "sidecar"}
    side = sidecar_path(dest)
    tmp = side.with_name(f".{side.name}.part")
    try:
        if original is not None and original.stat().st_size < writer.size:
            regions = writer.records
            writer.discard()
            with open(original, "rb") as f:
                writer.add_stream({"codec": "file", "frame": 0, "regions": regions}, f.read, os.fstat(f.fileno()).st_size)
        with open(tmp, "wb") as f:  # streamed: the sealed regions may be larger than memory
            writer.finish(info, out=f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, side)
    except OSError as exc:
        Path(dest).unlink(missing_ok=True)
        raise MediaError(f"cannot write the vault: {exc.strerror or exc}", path=side) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return side


def restore_video(src: str | Path, dest: str | Path, key: object, *, progress: Callable[[int], None] | None = None) -> int:
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
            info, records = open_vault_stream(vf, key)  # type: ignore[arg-type]
        except VaultError as exc:
            raise type(exc)(exc.reason, path=src) from None
        if info.get("kind") != "video":
            raise VaultError(f"this vault holds a {info.get('kind')!r}, not a video", path=src)
        from ..weights import sha256_file

        if sha256_file(src) != info.get("video_sha256"):
            raise VaultIntegrityError("the video does not match its vault (modified or replaced)", path=src)
        first = next(records, None)
        if first is not None and first.meta.get("codec") == "file":
            return _restore_original(first, records, dest, src)
        tc = Transcoder(src, dest, lossless=True, mode=PRIVATE_MODE)  # it shows the original faces
        try:
            return _restore_frames(tc, itertools.chain([first] if first is not None else [], records), decode_crop, src, progress)
        except VaultError as exc:
            tc.abort()
            raise type(exc)(exc.reason, path=src) from None
        except BaseException:
            tc.abort()
            raise


def _restore_original(rec: Any, rest: Iterator[Any], dest: Path, src: Path) -> int:
    """Write the original file sealed in ``rec`` to ``dest`` (mode 0600: it shows the original faces),
    chunk by chunk; moved into place only once the whole vault is authenticated."""
    import secrets

    from ..errors import VaultError, VaultIntegrityError

    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part{dest.suffix}")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE), "wb") as f:
            for part in rec.parts():
                f.write(part)
            if next(rest, None) is not None:
                raise VaultIntegrityError("the vault holds more than the original file", path=src)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except VaultError as exc:
        raise type(exc)(exc.reason, path=src) from None
    except OSError as exc:
        raise MediaError(f"cannot write the restored video: {exc.strerror or exc}", path=dest) from exc
    finally:
        tmp.unlink(missing_ok=True)
    regions = rec.meta.get("regions")
    return regions if isinstance(regions, int) else 0


def _restore_frames(tc: Transcoder, records: Iterator[Any], decode_crop: Callable[..., Any], src: Path, progress: Callable[[int], None] | None) -> int:
    """Merge the vault's records (in frame order) into the decoded frames of ``src``."""
    from ..errors import VaultIntegrityError

    def geometry(rec: Any) -> tuple[int, list[int]]:
        frame, box = rec.meta.get("frame"), rec.meta.get("box")
        if not isinstance(frame, int) or not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box)):
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
                raise VaultIntegrityError(f"vault records out of frame order (frame {index} after {frame.index})", path=src)
            if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
                raise VaultIntegrityError(f"region box {[x1, y1, x2, y2]} lies outside the {w}x{h} frame", path=src)
            frame.rgb[y1:y2, x1:x2] = decode_crop(pending, (x2 - x1, y2 - y1))
            restored += 1
            pending = next(records, None)
        tc.write(frame)
        if progress is not None:
            progress(1)
    if pending is not None:
        raise VaultIntegrityError(f"the vault holds regions for frame {geometry(pending)[0]}, past the video's end", path=src)
    tc.finish()
    return restored
