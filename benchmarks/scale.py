"""Throughput of `anonymize` by backend on the same folders: local, and Ray with 1 and 2 workers.

    python benchmarks/scale.py [--copies 2] [--loops 2] [--segment-seconds 2] [--workers 1 2]

Two folders, each run through every backend as a user would (the console script, start-up included,
with `--method solid`):
- photos: the public-domain photos of samples/ (5, with 47 faces), --copies times;
- video: the 720p clip of benchmarks/video.py (../shared/data/videos/facenet-pytorch_video.mp4, looped
  --loops times, 105 frames a loop, a keyframe every second), cut into pieces of --segment-seconds.
Local runs use --threads 1 and --threads 2 (this machine's cores); each Ray worker gets --threads 1, so
"ray x2" and "local, 2 threads" use the same CPUs. Ray is started by the command (`--backend ray`
without --address), which is included in its time; "one photo" is a run on one small photo (start-up and
model loading, mostly), and "after start-up" divides the work by the run's time less that.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _data import DATA, ROOT
from video import make_clip

BIN = Path(sys.executable).parent


def run(inputs: Path, out: Path, *extra: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = subprocess.run(
        [str(BIN / "anonymizer"), "anonymize", str(inputs), "-o", str(out), "--method", "solid", *extra],
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"anonymize {' '.join(extra)} failed:\n{res.stderr[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=2, help="copies of each sample photo (default: %(default)s)")
    ap.add_argument("--loops", type=int, default=2, help="loops of the video clip (default: %(default)s)")
    ap.add_argument("--segment-seconds", type=float, default=2.0, help="video pieces for Ray (default: %(default)s)")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="Ray workers to try (default: 1 2)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        photos, video, one = tmp / "photos", tmp / "video", tmp / "one"
        photos.mkdir(), video.mkdir(), one.mkdir()
        samples = sorted(p for p in (ROOT / "samples").iterdir() if p.suffix in (".png", ".jpg"))
        for k in range(args.copies):
            for p in samples:
                shutil.copy(p, photos / f"{k}_{p.name}")
        shutil.copy(ROOT / "samples" / "camera.png", one / "camera.png")
        have_video = (DATA / "videos" / "facenet-pytorch_video.mp4").is_file()
        if have_video:
            make_clip(video / "clip.mp4", args.loops, gop=25)
        n_photos, n_frames = len(samples) * args.copies, 105 * args.loops
        backends = [("local, 1 thread", ["--threads", "1"]), ("local, 2 threads", ["--threads", "2"])]
        backends += [
            (
                f"ray x{w}",
                [
                    "--backend",
                    "ray",
                    "--workers",
                    str(w),
                    "--threads",
                    "1",
                    "--segment-seconds",
                    str(args.segment_seconds),
                ],
            )
            for w in args.workers
        ]
        print(f"{n_photos} photos; video: {n_frames if have_video else 'none (no research data)'} frames at 1280x720")
        print(
            "| backend | one photo (start-up) s | photos s | photos/s | after start-up | video s | frames/s | after "
            "start-up |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name, extra in backends:
            t_one = run(one, tmp / "out1", *extra)
            t_photos = run(photos, tmp / "out", *extra)
            t_video = run(video, tmp / "outv", *extra) if have_video else float("nan")
            # "after start-up": the run less the one-photo run (start-up and model load; one small photo)
            print(
                f"| {name} | {t_one:.1f} | {t_photos:.1f} | {n_photos / t_photos:.2f} | "
                f"{(n_photos - 1) / max(t_photos - t_one, 1e-3):.2f} | "
                f"{t_video:.1f} | {n_frames / t_video:.1f} | {n_frames / max(t_video - t_one, 1e-3):.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
