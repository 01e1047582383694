"""Synthetic test clips with a real face (from samples/astronaut.png) moving across the frame, and drawn cars
with licence plates."""

from __future__ import annotations

from collections.abc import Callable
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
    car: Callable[[int], tuple[int, int, int]] | None = None,
) -> Path:
    """A clip with the face moving ``speed`` px per frame, shown on the frames in ``visible`` (default: all);
    ``gop``: a keyframe every ``gop`` frames (default: the encoder's); ``car``: frame index -> (x, y, plate
    width) of a drawn car's plate (:func:`draw_car`), or None for no car."""
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
        if car is not None:
            draw_car(canvas, *car(i))
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


def draw_car(canvas: np.ndarray, x: int, y: int, width: int) -> tuple[int, int, int, int]:
    """Draw (in place, RGB) the back of a car whose licence plate's top-left corner is (x, y) and which is
    ``width`` px wide: a white plate with a black rim and "AB 1234" on it, on a red body with a dark window
    and wheels. Returns the plate's box (x1, y1, x2, y2)."""
    h = round(width * 0.22)
    cx = x + width // 2
    body = ((cx - width * 3 // 2, y - width), (cx + width * 3 // 2, y + width * 2 // 3))
    cv2.rectangle(canvas, *body, (150, 40, 40), -1)
    cv2.rectangle(canvas, (cx - width, y - width * 5 // 6), (cx + width, y - width * 2 // 6), (40, 30, 30), -1)
    for side in (-1, 1):
        cv2.circle(canvas, (cx + side * width * 7 // 6, y + width * 2 // 3), width // 3, (20, 20, 20), -1)
    cv2.rectangle(canvas, (x, y), (x + width, y + h), (235, 235, 235), -1)
    cv2.rectangle(canvas, (x, y), (x + width, y + h), (10, 10, 10), max(1, width // 60))
    org = (x + round(width * 0.06), y + round(h * 0.8))
    cv2.putText(canvas, "AB 1234", org, cv2.FONT_HERSHEY_SIMPLEX, width / 160, (10, 10, 10), max(1, width // 60))
    return x, y, x + width, y + h


def car_photo(width: int = 120, size: tuple[int, int] = (640, 480)) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A drawn street scene (RGB uint8, ``size`` = (W, H)) with one car, its plate ``width`` px wide at the
    middle of the lower half; returns (image, plate box)."""
    w, h = size
    img = np.repeat(np.linspace(90, 160, h, dtype=np.float32)[:, None, None], w, 1).repeat(3, 2).astype(np.uint8)
    box = draw_car(img, w // 2 - width // 2, h * 2 // 3, width)
    return np.ascontiguousarray(img), box


def walker_clip(path: Path, frames: int = 10, speed: int = 8) -> Path:
    """A 480x360 clip of the astronaut (upper body, 300 px tall) moving right ``speed`` px a frame."""
    im = np.asarray(Image.open(ROOT / "samples" / "astronaut.png").convert("RGB"))
    person = cv2.resize(im, (300, 300), interpolation=cv2.INTER_AREA)
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=12)
    vs.width, vs.height, vs.pix_fmt = 480, 360, "yuv420p"
    vs.options = {"crf": "12", "preset": "ultrafast"}
    for i in range(frames):
        canvas = np.full((360, 480, 3), 200, np.uint8)
        x = 20 + speed * i
        canvas[60:360, x : x + 300] = person
        f = av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")
        f.pts, f.time_base = i, Fraction(1, 12)
        out.mux(vs.encode(f))
    out.mux(vs.encode(None))
    out.close()
    return path
