"""Video throughput and face coverage: deface and ours back to back on the same 720p clip.

    python benchmarks/video.py [--clip PATH] [--loops 3] [--detect-every K ...]

Without --clip, a 1280x720 H.264 clip (with the source's audio) is made with PyAV from
../shared/data/videos/facenet-pytorch_video.mp4, looped --loops times. Both tools run as their console
scripts (start-up included) with a solid black fill (ours: `--method solid`; `--extra '--method surrogate'`
times the default surrogates instead, whose coverage this black-pixel test cannot see) on 2 threads.
Coverage: reference faces are the default photo detector's faces (multi-scale, threshold 0.5) on every
frame of the clip; a face counts as covered in an output when at least 90% of the inner 60% of its box
is black (luma < 40).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from _data import DATA, require

from anonymizer.pipeline.photo import FaceFinder, configure_runtime

BIN = Path(sys.executable).parent


def make_clip(dest: Path, loops: int, gop: int | None = None) -> Path:
    """The 720p clip (``gop``: a keyframe every ``gop`` frames; default: the encoder's)."""
    src = require(DATA / "videos" / "facenet-pytorch_video.mp4")
    out = av.open(str(dest), "w")
    vs = out.add_stream("libx264", rate=Fraction(25))
    vs.width, vs.height, vs.pix_fmt = 1280, 720, "yuv420p"
    vs.options = {"crf": "18", "preset": "veryfast", **({"g": str(gop), "keyint_min": str(gop)} if gop else {})}
    n = 0
    for _ in range(loops):
        with av.open(str(src)) as inp:
            for frame in inp.decode(video=0):
                f = frame.reformat(width=1280, height=720, format="yuv420p")
                f.pts = n
                f.time_base = Fraction(1, 25)
                out.mux(vs.encode(f))
                n += 1
    out.mux(vs.encode(None))
    out.close()
    return dest


def frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def coverage(ref: list[np.ndarray], output: Path) -> float:
    outs = frames(output)
    if len(outs) != len(ref):
        return float("nan")
    total = covered = 0
    for boxes, out in zip(ref, outs, strict=True):
        luma = out.mean(axis=2)
        for x1, y1, x2, y2 in boxes:
            w, h = x2 - x1, y2 - y1
            a, b = int(x1 + 0.2 * w), int(y1 + 0.2 * h)
            c, d = int(x2 - 0.2 * w), int(y2 - 0.2 * h)
            if c <= a or d <= b:
                continue
            total += 1
            covered += float((luma[b:d, a:c] < 40).mean()) >= 0.9
    return covered / max(total, 1)


def run(cmd: list[str]) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="2")
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path)
    ap.add_argument("--loops", type=int, default=3)
    ap.add_argument("--detect-every", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--extra", default="", help="extra options for our anonymize, e.g. '--threshold 0.2'")
    ap.add_argument("--no-deface", action="store_true")
    args = ap.parse_args()
    configure_runtime(2)
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        clip = args.clip or make_clip(tmpd / "clip720.mp4", args.loops)
        src_frames = frames(clip)
        finder = FaceFinder(threshold=0.5)
        ref = [np.array([f.box for f in finder.find(fr)], np.float32).reshape(-1, 4) for fr in src_frames]
        n = len(src_frames)
        print(f"clip: {clip.name}, {n} frames, {src_frames[0].shape[1]}x{src_frames[0].shape[0]}, "
              f"{sum(len(r) for r in ref)} reference faces")
        base = float("nan")
        if not args.no_deface:
            out = tmpd / "deface.mp4"
            secs = run([str(BIN / "deface"), str(clip), "-o", str(out), "--replacewith", "solid", "--keep-audio"])
            base = n / secs
            print(f"deface 1.5.0        {base:6.2f} frames/s  coverage {coverage(ref, out):6.1%}")
        for k in args.detect_every:
            out = tmpd / f"ours{k}.mp4"
            secs = run([str(BIN / "anonymizer"), "anonymize", str(clip), "-o", str(tmpd / f"o{k}"), "--detect-every", str(k), "--threads", "2",
                        "--method", "solid", *args.extra.split()])
            produced = tmpd / f"o{k}" / clip.name
            fps = n / secs
            print(f"ours --detect-every {k}  {fps:6.2f} frames/s  coverage {coverage(ref, produced):6.1%}  speed vs deface {fps / base:4.2f}x")


if __name__ == "__main__":
    main()
