"""Video streaming with PyAV (FFmpeg libraries shipped in the wheel): decode, re-encode, keep audio.

Every frame is kept with its own timestamp (variable frame rate too), the audio stream is copied
without re-encoding, and the display rotation is carried over. Memory stays flat: frames stream through.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MediaError
from .files import part_path

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
LOSSLESS_CODEC = "libx264rgb"  # qp 0: decoded frames equal the encoded RGB frames exactly
MAX_REORDER = 16  # H.264's largest frame reordering: a segment stops decoding this many frames past its end


def _av() -> Any:
    import av

    return av


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int
    duration: float
    codec: str
    has_audio: bool
    rotation: int

    def expected_frames(self, start: float | None = None, end: float | None = None, cut: bool = False) -> int | None:
        """Frames an anonymization will write (for progress bars): the stored count, or an estimate from
        duration x rate where the container stores none (MKV, WebM); with ``cut``, the span's share. None
        when unknown."""
        total = self.frames or int(round(self.duration * self.fps))
        if not total:
            return None
        if cut and (start or end is not None) and self.duration > 0:
            lo = max(0.0, start or 0.0)
            hi = self.duration if end is None else min(end, self.duration)
            return max(0, int(round((hi - lo) / self.duration * total)))
        return total


def _open_input(path: Path) -> Any:
    av = _av()
    if not path.exists():
        raise InputError("no such file", path=path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes); expected a video", path=path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise InputError(f"not a video FFmpeg can read ({exc})", path=path) from None
    if not container.streams.video:
        container.close()
        raise InputError("no video stream", path=path)
    return container


def is_video_file(path: str | Path) -> bool:
    """Whether FFmpeg opens ``path`` as a container with a video stream (a still image counts too: ask
    :func:`~anonymizer.media.image.is_image_file` first)."""
    try:
        _open_input(Path(path)).close()
    except InputError:
        return False
    return True


def probe(path: str | Path) -> VideoInfo:
    """Size, rate, frame count (as stored), duration, codec, audio and rotation of ``path``."""
    path = Path(path)
    container = _open_input(path)
    try:
        v = container.streams.video[0]
        rate = v.average_rate or v.guessed_rate or Fraction(25)
        duration = float(container.duration / 1_000_000) if container.duration else 0.0
        rotation = 0
        try:
            for frame in container.decode(video=0):
                rotation = int(getattr(frame, "rotation", 0) or 0)
                break
        except _av().FFmpegError:
            pass
        return VideoInfo(
            width=v.codec_context.width,
            height=v.codec_context.height,
            fps=float(rate),
            frames=int(v.frames or 0),
            duration=duration,
            codec=v.codec_context.name,
            has_audio=bool(container.streams.audio),
            rotation=rotation,
        )
    finally:
        container.close()


def _first_frame_rotation(path: Path) -> int:
    """The display rotation (degrees) of the first frame; 0 when unknown."""
    av = _av()
    container = _open_input(path)
    try:
        for frame in container.decode(video=0):
            return int(getattr(frame, "rotation", 0) or 0)
    except av.FFmpegError:
        pass  # a broken stream is reported when it is read for real
    finally:
        container.close()
    return 0


def read_frames(path: str | Path) -> Iterator[tuple[int, np.ndarray, int]]:
    """(index, RGB uint8 frame as stored, display rotation in degrees) for every frame of ``path``;
    read-only (the audit). Raises InputError for unreadable or truncated videos."""
    av = _av()
    path = Path(path)
    container = _open_input(path)
    index = 0
    try:
        for vf in container.decode(video=0):
            yield index, vf.to_ndarray(format="rgb24"), int(getattr(vf, "rotation", 0) or 0)
            index += 1
    except av.FFmpegError as exc:
        raise InputError(f"corrupt or truncated video at frame {index} ({exc})", path=path) from None
    finally:
        container.close()
    if index == 0:
        raise InputError("the video has no frames", path=path)


def container_metadata(path: str | Path) -> dict[str, str]:
    """The container's and its streams' metadata tags (lower-case keys; stream tags prefixed "stream N:")."""
    container = _open_input(Path(path))
    try:
        tags = {str(k).lower(): str(v) for k, v in (container.metadata or {}).items()}
        for i, st in enumerate(container.streams):
            tags.update({f"stream {i}:{str(k).lower()}": str(v) for k, v in (st.metadata or {}).items()})
        return tags
    finally:
        container.close()


@dataclass(eq=False)
class Frame:
    """A decoded frame: ``rgb`` uint8 (H, W, 3) as stored (not rotated), its pts and time in seconds."""

    index: int
    rgb: np.ndarray
    pts: int | None
    time: float
    in_span: bool


class Transcoder:
    """Decode ``src`` frame by frame and encode replacement frames into ``dest`` (via a temporary file).

    ``frames()`` yields every video frame while copying the audio packets across; call ``write(frame)``
    for each yielded frame, in order (a delay is fine), then ``finish()``; ``abort()`` removes the partial
    output. ``start``/``end`` (seconds) mark the span to process; with ``cut=True`` frames and audio outside
    it are dropped, otherwise they are passed through (``Frame.in_span`` is False for them).

    ``segment=True`` encodes one piece of a longer video that :func:`join_segments` puts back together
    (the Ray backend): decoding starts by seeking to ``start`` (a keyframe), frames keep the source's own
    timestamps, there is no audio (the join copies it from the source), no B-frames (so the joined
    timestamps stay in decoding order), and ``cut`` is implied.
    """

    def __init__(
        self,
        src: str | Path,
        dest: str | Path,
        *,
        codec: str = "libx264",
        crf: int = 18,
        preset: str = "veryfast",
        lossless: bool = False,
        start: float | None = None,
        end: float | None = None,
        cut: bool = False,
        threads: int = 0,
        mode: int = 0o666,
        segment: bool = False,
    ) -> None:
        av = _av()
        self.src = Path(src)
        self.dest = Path(dest)
        self.segment = segment
        self.start, self.end, self.cut = start, end, cut or segment
        if start is not None and end is not None and end <= start:
            raise InputError(f"the span's end ({end:g} s) must be after its start ({start:g} s)")
        self.rotation = _first_frame_rotation(self.src)
        self._in = _open_input(self.src)
        self._vin = self._in.streams.video[0]
        self._vin.thread_type = "AUTO"
        self._ain = self._in.streams.audio[0] if self._in.streams.audio and not segment else None
        if segment and start:
            try:  # to the keyframe the segment starts on (the frames before it in the same packet are cut)
                self._in.seek(int(round(start / self._vin.time_base)), stream=self._vin, backward=True)
            except av.FFmpegError as exc:
                self._in.close()
                raise InputError(f"cannot seek to {start:.3f} s ({exc})", path=self.src) from None
        self._tmp = part_path(self.dest)
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            # created here with the final permissions (0600 for restored videos) before FFmpeg writes it
            os.close(os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        except OSError as exc:
            self._in.close()
            raise MediaError(f"cannot create output: {exc.strerror or exc}", path=self.dest) from None
        codec = LOSSLESS_CODEC if lossless else codec
        self._codec = codec
        self._aout = None
        for with_audio in (True, False):
            try:
                self._open_output(codec, crf, preset, threads, with_audio=with_audio and self._ain is not None)
                break
            except (av.FFmpegError, ValueError) as exc:
                self._close_output()
                if with_audio and self._ain is not None and self._aout is not None:
                    log.warning("%s: audio cannot be copied into %s (%s); dropped", self.src, self.dest.suffix, exc)
                    continue
                self.abort()
                raise InputError(
                    f"cannot encode with codec {codec!r} into {self.dest.suffix} ({exc})", path=self.src
                ) from None
        self.frames_in = 0
        self.frames_out = 0
        self._lock = threading.Lock()  # audio is muxed by the decoding side, video by the encoding side
        self._last_pts: int | None = None
        self._any_in_span = False

    def _open_output(self, codec: str, crf: int, preset: str, threads: int, *, with_audio: bool) -> None:
        """Open the muxer and encoders and write the header now, so every error shows here, in one thread."""
        av = _av()
        self._out = av.open(str(self._tmp), "w")  # the format follows the output's suffix
        rate = self._vin.average_rate or self._vin.guessed_rate or Fraction(25)
        self._vout = self._out.add_stream(codec, rate=rate)
        cc = self._vout.codec_context
        w, h = self._vin.codec_context.width, self._vin.codec_context.height
        cc.width, cc.height = w, h
        self._vout.time_base = self._vin.time_base
        cc.time_base = self._vin.time_base
        odd = w % 2 or h % 2  # 4:2:0 needs even sizes
        if codec == LOSSLESS_CODEC:
            cc.pix_fmt = "rgb24"
            options = {"qp": "0", "preset": "ultrafast" if preset == "veryfast" else preset}
        elif codec in ("libx264", "libx265"):
            cc.pix_fmt = "yuv444p" if odd else "yuv420p"
            options = {"crf": str(crf), "preset": preset}
        elif codec == "libvpx-vp9":
            cc.pix_fmt = "yuv444p" if odd else "yuv420p"
            options = {"crf": str(crf), "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
        else:
            cc.pix_fmt = "yuv420p"
            options = {}
        if self.dest.suffix.lower() == ".avi" or self.segment:
            options["bf"] = "0"  # AVI cannot store B-frame timestamps; joined segments need dts = pts
        cc.options = options
        if threads:
            cc.thread_count = threads
        if self.rotation:
            self._vout.set_display_rotation(self.rotation)
        self._aout = self._out.add_stream_from_template(self._ain) if with_audio else None
        self._out.start_encoding()

    def _close_output(self) -> None:
        out = getattr(self, "_out", None)
        if out is not None:
            try:
                out.close()
            except Exception:  # a half-opened muxer may fail to close; the file is rewritten anyway
                pass
        self._out = None

    @property
    def fps(self) -> float:
        """The output's frame rate (the source's average; 25 when it names none)."""
        return float(self._vout.average_rate or 25)

    def _span(self, t: float) -> bool:
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)

    def _pass_audio(self, packet: Any) -> None:
        """Copy one audio packet to the output as it is (shifted to the cut's start), if it is in the span."""
        if packet.dts is None:
            return
        t = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
        if self.cut and not self._span(t):
            return
        if self.cut and self.start:  # (a segment has no audio stream)
            offset = int(round(self.start / packet.time_base))
            packet.pts -= offset
            packet.dts -= offset
            if packet.dts < 0:
                return
        packet.stream = self._aout
        with self._lock:
            self._out.mux(packet)

    def frames(self) -> Iterator[Frame]:
        av = _av()
        streams = [s for s in (self._vin, self._ain if self._aout is not None else None) if s is not None]
        past_end = 0  # segments: frames decoded past the end (reordering can still bring one before it)
        try:
            for packet in self._in.demux(*streams):
                if past_end > MAX_REORDER:
                    break
                if packet.stream.type == "audio":
                    self._pass_audio(packet)
                    continue
                for vf in packet.decode():
                    pts = vf.pts if vf.pts is not None else vf.best_effort_timestamp
                    if pts is not None and self._last_pts is not None and pts <= self._last_pts:
                        pts = self._last_pts + 1  # keep timestamps increasing (some AVI files)
                    if pts is not None:
                        self._last_pts = pts
                    t = (
                        float(pts * vf.time_base)
                        if pts is not None
                        else self.frames_in / float(self._vout.average_rate or 25)
                    )
                    in_span = self._span(t)
                    if self.segment and self.end is not None and t >= self.end:
                        past_end += 1
                        continue
                    index = self.frames_in
                    self.frames_in += 1
                    if self.cut and not in_span:
                        continue
                    self._any_in_span = True
                    yield Frame(index=index, rgb=vf.to_ndarray(format="rgb24"), pts=pts, time=t, in_span=in_span)
        except av.FFmpegError as exc:
            raise InputError(f"corrupt or truncated video at frame {self.frames_in} ({exc})", path=self.src) from None
        if self.frames_in == 0:
            raise InputError("the video has no frames", path=self.src)
        if self.cut and self.frames_out == 0 and not self._any_in_span:
            until = "the end" if self.end is None else f"{self.end:g} s"
            raise InputError(f"no frames between {self.start or 0:g} s and {until}", path=self.src)

    def write(self, frame: Frame) -> None:
        av = _av()
        vf = av.VideoFrame.from_ndarray(frame.rgb, format="rgb24")
        pts = frame.pts
        if pts is not None and self.cut and self.start and not self.segment:
            pts -= int(round(self.start / self._vin.time_base))  # the same shift as the audio
        vf.pts = pts
        vf.time_base = self._vin.time_base
        try:
            packets = self._vout.encode(vf)
        except av.FFmpegError as exc:
            raise MediaError(f"cannot encode frame {frame.index}: {exc}", path=self.dest) from None
        self._mux(packets)
        self.frames_out += 1

    def _mux(self, packets: Any) -> None:
        av = _av()
        try:
            with self._lock:
                self._out.mux(packets)
        except OSError as exc:
            raise MediaError(f"cannot write output: {exc.strerror or exc}", path=self.dest) from None
        except (av.FFmpegError, ValueError) as exc:
            raise MediaError(f"cannot write output: {exc}", path=self.dest) from None

    def finish(self) -> Path:
        """Flush, close and move the output into place."""
        av = _av()
        try:
            self._mux(self._vout.encode(None))
            self._out.close()
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise MediaError(f"cannot write output: {exc}", path=self.dest) from None
        self._in.close()
        os.replace(self._tmp, self.dest)
        return self.dest

    def abort(self) -> None:
        """Close everything and remove the partial output."""
        self._close_output()
        c = getattr(self, "_in", None)
        if c is not None:
            try:
                c.close()
            except Exception:  # closing a broken demuxer can fail again; nothing is kept from it
                pass
        if self._tmp.exists():
            self._tmp.unlink()


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


class Stage:
    """Calls ``fn`` on each item given to :meth:`put`, in order, in a thread of its own. A bounded queue keeps
    the caller at most ``depth`` items ahead; an error in the thread is raised in the caller's by the next
    :meth:`put` or by :meth:`close`. ``busy_s``: the seconds spent in ``fn``."""

    def __init__(self, fn: Callable[[Any], None], *, depth: int = 8) -> None:
        self.fn = fn
        self.busy_s = 0.0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._worker = _Worker(self._run)
        self._worker.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _END and not self._stop.is_set():
            t0 = time.perf_counter()
            self.fn(item)
            self.busy_s += time.perf_counter() - t0

    def put(self, item: object) -> None:
        """Queue ``item``; raises what the thread raised."""
        while True:
            self._worker.check()
            if not self._worker.is_alive():
                raise MediaError("the worker thread has stopped (aborted)")
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait until every queued item is done; raises what the thread raised."""
        self.put(_END)
        self._worker.join()
        self._worker.check()

    def abort(self) -> None:
        """Stop the thread (within seconds) without doing the items still queued."""
        self._stop.set()
        try:
            self._queue.put(_END, timeout=5)
        except queue.Full:
            pass
        if self._worker.is_alive():
            self._worker.join(timeout=5)


class FramePump:
    """A :class:`Transcoder` whose decoding and encoding run in two threads of their own, around the
    caller's loop: ``for frame in pump.frames(): ... pump.put(frame)``, then :meth:`close` (or
    :meth:`abort` on failure). Bounded queues keep either side from running more than ``depth`` frames
    ahead; an error in either thread is raised in the caller's."""

    def __init__(self, tc: Transcoder, *, depth: int = 8) -> None:
        self.tc = tc
        self._decoded: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        #: seconds the decoding thread spent decoding (audio copied along)
        self.decode_s = 0.0
        self._reader = _Worker(self._read)
        self._reader.start()
        self._encoder = Stage(tc.write, depth=depth)

    def _read(self) -> None:
        try:
            frames = self.tc.frames()
            while True:
                t0 = time.perf_counter()
                f = next(frames, None)
                self.decode_s += time.perf_counter() - t0
                if f is None:
                    break
                while not self._stop.is_set():
                    try:
                        self._decoded.put(f, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        finally:
            while True:  # never block for good: the caller may have stopped reading
                try:
                    self._decoded.put(_END, timeout=0.2)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        break

    @property
    def encode_s(self) -> float:
        """Seconds the encoding thread spent encoding."""
        return self._encoder.busy_s

    def frames(self) -> Iterator[Frame]:
        """The decoded frames in order; raises what the decoding thread raised."""
        while (item := self._decoded.get()) is not _END:
            yield item  # type: ignore[misc]
        self._reader.check()

    def put(self, frame: Frame) -> None:
        """Queue ``frame`` for encoding; raises what the encoding thread raised."""
        self._encoder.put(frame)

    def close(self) -> None:
        """Wait until every queued frame is encoded (the Transcoder is then ready to ``finish()``)."""
        self._encoder.close()

    def abort(self) -> None:
        """Stop both threads (within seconds) without finishing anything."""
        self._stop.set()
        self._encoder.abort()
        if self._reader.is_alive():
            self._reader.join(timeout=5)


@dataclass(frozen=True)
class Keyframe:
    """A keyframe: its time (seconds, as :class:`Transcoder` computes it) and how many frames come before it."""

    time: float
    index: int


def keyframes(path: str | Path) -> list[Keyframe]:
    """The keyframes of the first video stream, read from the packets without decoding (fast: a long
    video takes a moment). Places where :class:`Transcoder` ``segment=True`` can start."""
    import bisect

    av = _av()
    path = Path(path)
    container = _open_input(path)
    try:
        v = container.streams.video[0]
        pts, keys = [], []
        for packet in container.demux(v):
            if packet.pts is None or packet.size == 0:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
        tb = v.time_base
    except av.FFmpegError as exc:
        raise InputError(f"corrupt or truncated video ({exc})", path=path) from None
    finally:
        container.close()
    pts.sort()
    return [Keyframe(float(k * tb), bisect.bisect_left(pts, k)) for k in sorted(set(keys))]


def join_segments(src: str | Path, parts: list[Path], dest: str | Path) -> Path:
    """Copy the video packets of ``parts`` (consecutive pieces of ``src`` encoded with
    ``Transcoder(segment=True)``, in order) and the audio packets of ``src`` into ``dest`` without
    re-encoding, interleaved by time; written to a temporary file and moved into place."""
    import heapq

    av = _av()
    src, dest = Path(src), Path(dest)
    if not parts:
        raise MediaError("no segments to join", path=dest)
    tmp = part_path(dest)
    source = _open_input(src)
    rotation = _first_frame_rotation(src)
    out = None
    try:
        ain = source.streams.audio[0] if source.streams.audio else None
        with av.open(str(parts[0])) as first:
            out = av.open(str(tmp), "w")
            vout = out.add_stream_from_template(first.streams.video[0])
        if rotation:
            vout.set_display_rotation(rotation)
        aout = out.add_stream_from_template(ain) if ain is not None else None
        out.start_encoding()

        def video() -> Iterator[Any]:
            for part in parts:
                with av.open(str(part)) as c:
                    for packet in c.demux(c.streams.video[0]):
                        if packet.dts is not None:
                            packet.stream = vout
                            yield packet

        def audio() -> Iterator[Any]:
            if ain is None:
                return
            for packet in source.demux(ain):
                if packet.dts is not None:
                    packet.stream = aout
                    yield packet

        for packet in heapq.merge(video(), audio(), key=lambda p: float(p.dts * p.time_base)):
            out.mux(packet)
        out.close()
        out = None
        os.replace(tmp, dest)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"cannot join the video segments: {exc}", path=dest) from None
    finally:
        if out is not None:
            try:
                out.close()
            except Exception:  # a half-written muxer may fail to close; the file is removed below
                pass
        source.close()
        tmp.unlink(missing_ok=True)
    return dest
