"""Video streaming with PyAV (FFmpeg libraries shipped in the wheel): decode, re-encode, keep audio.

Every frame is kept with its own timestamp (variable frame rate too), the audio stream is copied
without re-encoding, and the display rotation is carried over. Memory stays flat: frames stream through.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MediaError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
LOSSLESS_CODEC = "libx264rgb"  # qp 0: decoded frames equal the encoded RGB frames exactly


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


@dataclass
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
    ) -> None:
        av = _av()
        self.src = Path(src)
        self.dest = Path(dest)
        self.start, self.end, self.cut = start, end, cut
        if start is not None and end is not None and end <= start:
            raise InputError(f"--end ({end}) must be after --start ({start})")
        self._in = _open_input(self.src)
        self._vin = self._in.streams.video[0]
        self._vin.thread_type = "AUTO"
        self._ain = self._in.streams.audio[0] if self._in.streams.audio else None
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.dest.with_name(f".{self.dest.name}.{secrets.token_hex(4)}.part{self.dest.suffix}")
        fmt = self._in.format.name.split(",")[0] if self.dest.suffix.lower() == self.src.suffix.lower() else None
        try:
            self._out = av.open(str(self._tmp), "w", format=fmt)
        except (av.FFmpegError, OSError) as exc:
            self._in.close()
            raise MediaError(f"cannot create output: {exc}", path=self.dest) from None
        codec = LOSSLESS_CODEC if lossless else codec
        rate = self._vin.average_rate or self._vin.guessed_rate or Fraction(25)
        try:
            self._vout = self._out.add_stream(codec, rate=rate)
        except (av.FFmpegError, ValueError) as exc:
            self.abort()
            raise InputError(f"unknown or unavailable codec {codec!r} ({exc})") from None
        cc = self._vout.codec_context
        cc.width, cc.height = self._vin.codec_context.width, self._vin.codec_context.height
        self._vout.time_base = self._vin.time_base
        cc.time_base = self._vin.time_base
        if codec == LOSSLESS_CODEC:
            cc.pix_fmt = "rgb24"
            cc.options = {"qp": "0", "preset": "ultrafast" if preset == "veryfast" else preset}
        elif codec in ("libx264", "libx265"):
            cc.pix_fmt = "yuv420p"
            cc.options = {"crf": str(crf), "preset": preset}
        elif codec == "libvpx-vp9":
            cc.pix_fmt = "yuv420p"
            cc.options = {"crf": str(crf), "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
        else:
            cc.pix_fmt = "yuv420p"
        if threads:
            cc.thread_count = threads
        self._aout = None
        if self._ain is not None:
            try:
                self._aout = self._out.add_stream_from_template(self._ain)
            except (av.FFmpegError, ValueError) as exc:
                log.warning("%s: audio cannot be copied into this container (%s); dropped", self.src, exc)
        self.rotation = 0
        self._rotation_set = False
        self.frames_in = 0
        self.frames_out = 0
        self._lock = threading.Lock()  # audio is muxed by the decoding side, video by the encoding side
        self._shift: int | None = None

    def _span(self, t: float) -> bool:
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)

    def frames(self) -> Iterator[Frame]:
        av = _av()
        streams = [s for s in (self._vin, self._ain if self._aout is not None else None) if s is not None]
        try:
            for packet in self._in.demux(*streams):
                if packet.stream.type == "audio":
                    if packet.dts is None:
                        continue
                    t = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
                    if self.cut and not self._span(t):
                        continue
                    if self.cut and self.start:
                        offset = int(self.start / packet.time_base)
                        packet.pts -= offset
                        packet.dts -= offset
                    packet.stream = self._aout
                    with self._lock:
                        self._out.mux(packet)
                    continue
                for vf in packet.decode():
                    if not self._rotation_set:
                        self.rotation = int(getattr(vf, "rotation", 0) or 0)
                        if self.rotation:
                            self._vout.set_display_rotation(self.rotation)
                        self._rotation_set = True
                    t = float(vf.pts * vf.time_base) if vf.pts is not None else self.frames_in / float(self._vout.average_rate or 25)
                    in_span = self._span(t)
                    index = self.frames_in
                    self.frames_in += 1
                    if self.cut and not in_span:
                        continue
                    yield Frame(index=index, rgb=vf.to_ndarray(format="rgb24"), pts=vf.pts, time=t, in_span=in_span)
        except av.FFmpegError as exc:
            raise InputError(f"corrupt or truncated video at frame {self.frames_in} ({exc})", path=self.src) from None
        if self.frames_in == 0:
            raise InputError("the video has no frames", path=self.src)

    def write(self, frame: Frame) -> None:
        av = _av()
        vf = av.VideoFrame.from_ndarray(frame.rgb, format="rgb24")
        pts = frame.pts
        if pts is not None and self.cut and self.start:
            if self._shift is None:
                self._shift = pts
            pts -= self._shift
        vf.pts = pts
        vf.time_base = self._vin.time_base
        self._mux(self._vout.encode(vf))
        self.frames_out += 1

    def _mux(self, packets: Any) -> None:
        try:
            with self._lock:
                self._out.mux(packets)
        except OSError as exc:
            raise MediaError(f"cannot write output: {exc.strerror or exc}", path=self.dest) from None

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
        for c in (getattr(self, "_out", None), getattr(self, "_in", None)):
            if c is not None:
                try:
                    c.close()
                except Exception:  # closing a broken muxer can fail again; the file goes anyway
                    pass
        if self._tmp.exists():
            self._tmp.unlink()
