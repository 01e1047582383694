"""How much a video's surrogate faces swim: the face mesh's frame-to-frame jitter, raw and as the painter
smooths it for a track (anonymizer.pipeline.donor_painter.steady_mesh), and how far the smoothing lags.

    python benchmarks/mesh_steadiness.py [--clips 8] [--frames 90]

Clips: the sample clip of ../shared/data/videos and the first --clips talking-head clips of
../shared/data/videos-real (real people, real head motion), each from its first frame. On every frame our
detector finds the largest face (threshold 0.5) and the painter fits its mesh (skipped where it would
not trust it). Printed per clip, in % of the face's size: "jitter", the mean movement of the mesh's
points from one frame to the next that the head's own motion (a 3D similarity fitted between the two
frames' meshes) does not explain, for the raw meshes and the smoothed ones; "lag", the mean distance
between the smoothed mesh and the raw one (what smoothing costs in following the face).
"""

from __future__ import annotations

import argparse
import itertools
from itertools import islice

import numpy as np
from _data import DATA, require

from anonymizer.api import get_finder, get_painter
from anonymizer.media.video import read_frames
from anonymizer.nn.runtime import configure_runtime
from anonymizer.ops.align import similarity_onto
from anonymizer.pipeline.donor_painter import steady_mesh


def share(offset: np.ndarray, mesh: np.ndarray) -> float:
    """The mean 2D length of ``offset`` [468, 2+], in % of ``mesh``'s size."""
    return 100 * float(np.linalg.norm(offset[:, :2], axis=1).mean()) / float(np.ptp(mesh[:, :2], axis=0).max())


def unexplained(a: np.ndarray, b: np.ndarray) -> float:
    """Mean 2D movement from mesh ``a`` to ``b`` that a 3D similarity does not explain, in % of b's size."""
    return share(b.astype(np.float64) - similarity_onto(a.astype(np.float64), b), b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=90)
    args = ap.parse_args()
    configure_runtime(2)
    finder, painter = get_finder(threshold=0.5), get_painter()
    clips = [
        require(DATA / "videos") / "facenet-pytorch_video.mp4",
        *sorted(require(DATA / "videos-real").glob("*.mp4"))[: args.clips],
    ]
    print("| clip | frames with a mesh | jitter raw | jitter smoothed | lag |")
    print("|---|---:|---:|---:|---:|")
    totals = []
    for clip in clips:
        raw, smooth, prev = [], [], None
        for _, rgb, _ in islice(read_frames(clip), args.frames):
            faces = finder.find(rgb)
            if not faces:
                prev = None
                continue
            face = max(faces, key=lambda f: f.width * f.height)
            how, mesh = painter.plan(rgb, face)
            if mesh is None:
                prev = None
                continue
            prev = steady_mesh(prev, mesh)
            raw.append(mesh)
            smooth.append(prev)
        if len(raw) < 2:
            print(f"| {clip.name} | {len(raw)} | | | |")
            continue
        jr = np.mean([unexplained(a, b) for a, b in itertools.pairwise(raw)])
        js = np.mean([unexplained(a, b) for a, b in itertools.pairwise(smooth)])
        lag = np.mean([share(s - m, m) for s, m in zip(smooth, raw, strict=True)])
        totals.append((jr, js, lag))
        print(f"| {clip.name} | {len(raw)} | {jr:.2f}% | {js:.2f}% | {lag:.2f}% |")
    t = np.mean(totals, axis=0)
    print(f"| mean of {len(totals)} clips | | {t[0]:.2f}% | {t[1]:.2f}% | {t[2]:.2f}% |")


if __name__ == "__main__":
    main()
