"""Synthetic test clips with a real face (from samples/astronaut.png) moving across the frame."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SIZE = (320, 240)
FACE = 110


def face_patch() -> np.ndarray:
    im = np.asarray(Image.open(ROOT / "samples" / "astronaut.png").convert("RGB"))
    return cv2.resize(
        np.ascontiguousarray(im[20:250, 140:340]), (FACE, int(FACE * 230 / 200)), interpolation=cv2.INTER_AREA
    )


def face_centre(i: int, speed: int = 5) -> tuple[int, int]:
    """Where the face's centre is on frame i (stored orientation, no rotation)."""
    return 20 + speed * i + FACE // 2, 40 + int(FACE * 230 / 200) // 2


def make_clip(
    path: Path,
    *,
    frames: int = 24,
    fps: int = 12,
    audio: bool = True,
    vfr: bool = False,
    rotation: int = 0,
    speed: int = 5,
    visible: range | None = None,
    gop: int | None = None,
    crf: int = 12,
) -> Path:
    """A clip with the face moving ``speed`` px per frame, shown on the frames in ``visible`` (default: all);
    ``gop``: a keyframe every ``gop`` frames (default: the encoder's)."""
    patch = face_patch()
    rng = np.random.default_rng(0)
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=fps)
    vs.width, vs.height, vs.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
    vs.options = {
        "crf": str(crf),
        "preset": "ultrafast",
        **({"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"} if gop else {}),
    }
    tb = Fraction(1, 1000)
    vs.codec_context.time_base = tb
    if rotation:
        vs.set_display_rotation(rotation)
    aus = out.add_stream("aac", rate=22050) if audio else None
    if aus is not None:
        aus.layout = "mono"
    t_ms = 0
    for i in range(frames):
        canvas = np.full((SIZE[1], SIZE[0], 3), 150, np.uint8) + rng.integers(
            0, 20, (SIZE[1], SIZE[0], 3), dtype=np.uint8
        )
        x = 20 + speed * i
        if visible is None or i in visible:
            canvas[40 : 40 + patch.shape[0], x : x + FACE] = patch
        vf = av.VideoFrame.from_ndarray(canvas, format="rgb24")
        vf.pts = t_ms
        vf.time_base = tb
        out.mux(vs.encode(vf))
        t_ms += (1000 // fps) * (2 if vfr and i % 2 else 1)
    out.mux(vs.encode(None))
    if aus is not None:
        n = int(22050 * t_ms / 1000)
        wave = (0.2 * np.sin(np.arange(n) * 2 * np.pi * 440 / 22050)).astype(np.float32)
        for start in range(0, n, 1024):
            chunk = wave[start : start + 1024]
            af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            af.sample_rate = 22050
            af.pts = start
            out.mux(aus.encode(af))
        out.mux(aus.encode(None))
    out.close()
    return path


def decode(path: Path) -> tuple[list[np.ndarray], list[int], list[bytes], int]:
    """(RGB frames, video pts in ms, audio packet payloads, first frame's rotation)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames, pts, rotation = [], [], None
        for f in c.decode(v):
            frames.append(f.to_ndarray(format="rgb24"))
            pts.append(int(round(float(f.pts * f.time_base) * 1000)))
            if rotation is None:
                rotation = int(getattr(f, "rotation", 0) or 0)
    with av.open(str(path)) as c:
        audio = [bytes(p) for p in c.demux(audio=0) if p.size] if c.streams.audio else []
    return frames, pts, audio, rotation or 0
