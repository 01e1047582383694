"""Licence plates: how many the shipped pipeline covers, by plate width, on the held-out tenth of
../shared/data/plates-train (anonymizer.train.plates.is_held_out; never trained on).

    python benchmarks/plates.py [--weights-file W] [--threshold 0.3] [--upscale 2] [--reduced 0.5 0.75]
                                [--mask-scale S] [--no-refine | --refiner-file R]
                                [--video [--detect-every 1] [--no-watch]] [--closeups]

Photos: :class:`anonymizer.pipeline.plates.PlateFinder` (the image's own size, enlarged ``--upscale`` times
where small candidates are, NMS; then reduced by each of ``--reduced`` for plates found nowhere else; each
box fitted to its plate by the plate refiner unless ``--no-refine``) and
:func:`~anonymizer.pipeline.plates.cover_plates` (solid box, ``--mask-scale`` times the detection). A plate
counts as covered when at least 70% of its labelled box changed.
Printed: covered by width (< 16, 16-32, 32-64, > 64 px, all; all with 95% of the box changed)
and for the widest plate of each photo (the kind of plate a test set with one plate labelled per photo
holds), the share of the other pixels changed (outside every labelled plate grown 1.2x), how the detected
boxes' width and height compare with the labels, and photos/s (2 threads).

``--video``: each held-out photo becomes a pan (``--frames`` frames of 640x360 moving across the photo
enlarged 1.5x, 3 px a frame); the video path's finder (reduced by ``--video-reduced``) and planner
(:class:`~anonymizer.pipeline.cover_plan.CoverPlanner`, detection every ``--detect-every`` frames at the
frame's own size, by default every frame as the video path does; tracks between, watched when not every
frame) against the same finder run on every frame: every plate it finds on a frame must lie (70% of its
box) under that frame's covers. Printed: plates seen by the every-frame finder, how many were left
uncovered, how often the planner looked again at faint candidates on the frames between detections
(``--no-watch``: never), its finder's time per frame, and the share of the pixels outside the labelled
plates (grown 1.2x) under the covers.

``--closeups``: the same photo table on close-ups made from the held-out plates at least 32 px wide (the
photo enlarged so that the plate is 100-180 px wide, cut to 640x480 around it): near plates, as in photos
taken of one car, which the held-out tenth has few of (25 plates over 32 px).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from _data import DATA, require

from anonymizer.defaults import (
    DEFAULT_PLATE_THRESHOLD,
    PLATE_DETECT_EVERY,
    PLATE_MASK_SCALE,
    PLATE_REDUCED,
    PLATE_UPSCALE,
    PLATE_VIDEO_REDUCED,
)
from anonymizer.media.video import Frame
from anonymizer.nn.runtime import configure_runtime
from anonymizer.ops.boxes import grow_box, inside_share, iou_matrix
from anonymizer.pipeline.cover_plan import CoverPlanner
from anonymizer.pipeline.plates import PlateFinder, cover_plates
from anonymizer.train.plates import load_split

BINS = ((0, 16), (16, 32), (32, 64), (64, 10_000))


def covered(diff: np.ndarray, box: np.ndarray, share: float = 0.7) -> bool:
    x1, y1, x2, y2 = box
    region = diff[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))]
    return region.size > 0 and float(region.mean()) >= share


def photos(finder: PlateFinder, images: list[np.ndarray], labels: list[np.ndarray], mask_scale: float) -> None:
    by_bin: dict[tuple[int, int], list[bool]] = {b: [] for b in BINS}
    widest: list[bool] = []
    whole: list[bool] = []
    ratios: list[tuple[float, float]] = []
    changed_out = total_out = 0
    t = time.perf_counter()
    for rgb, plates in zip(images, labels, strict=True):
        found = finder.find(rgb)
        out, _, diff = cover_plates(rgb, found, mask_scale=mask_scale)
        hits = [covered(diff, b) for b in plates]
        whole += [covered(diff, b, 0.95) for b in plates]
        for b, hit in zip(plates, hits, strict=True):
            by_bin[next(k for k in BINS if k[0] <= b[2] - b[0] < k[1])].append(hit)
        if len(plates):
            widest.append(hits[int(np.argmax(plates[:, 2] - plates[:, 0]))])
        boxes = np.array([p.box for p in found], np.float32).reshape(-1, 4)
        if len(plates) and len(boxes):
            iou = iou_matrix(plates, boxes)
            for i, j in enumerate(iou.argmax(1)):
                if iou[i, j] >= 0.3:
                    lw, lh = plates[i, 2] - plates[i, 0], plates[i, 3] - plates[i, 1]
                    ratios.append(((boxes[j, 2] - boxes[j, 0]) / lw, (boxes[j, 3] - boxes[j, 1]) / lh))
        inside = _box_mask([grow_box(b, 1.2) for b in plates], diff.shape)
        changed_out += int((diff & ~inside).sum())
        total_out += int((~inside).sum())
    rate = len(images) / (time.perf_counter() - t)
    every = [c for v in by_bin.values() for c in v]
    print(f"plates-train held-out: {len(images)} photos, {len(every)} plates")
    print("| plate width | plates | covered |")
    print("|---|---:|---:|")
    for (lo, hi), v in by_bin.items():
        name = f"< {hi} px" if lo == 0 else (f"> {lo} px" if hi > 1000 else f"{lo}-{hi} px")
        print(f"| {name} | {len(v)} | {f'{np.mean(v):.1%}' if v else '-'} |")
    print(f"| all | {len(every)} | {np.mean(every):.1%} |")
    print(f"| widest plate of each photo | {len(widest)} | {np.mean(widest):.1%} |")
    print(f"| all, 95% of the box changed | {len(whole)} | {np.mean(whole):.1%} |")
    r = np.array(ratios).reshape(-1, 2)
    if len(r):
        q = np.percentile(r, [10, 50, 90], axis=0)
        print(
            f"detected / labelled (matched at IoU >= 0.3, {len(r)} plates): width 10/50/90th percentile "
            f"{q[0, 0]:.2f} / {q[1, 0]:.2f} / {q[2, 0]:.2f}, height {q[0, 1]:.2f} / {q[1, 1]:.2f} / {q[2, 1]:.2f}"
        )
    print(f"other pixels changed: {changed_out / max(total_out, 1):.2%}; {rate:.2f} photos/s")


def closeups(images: list[np.ndarray], labels: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each held-out plate at least 32 px wide as the main plate of a 640x480 photo: the photo enlarged so
    that the plate is 100-180 px wide (seeded), cut around it (the plate somewhere in the middle half),
    with every plate that keeps its whole box in the cut."""
    rng = np.random.default_rng(0)
    out_images, out_labels = [], []
    for rgb, plates in zip(images, labels, strict=True):
        for b in plates:
            if b[2] - b[0] < 32:
                continue
            f = float(rng.uniform(100, 180)) / float(b[2] - b[0])
            big = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
            cx, cy = (b[0] + b[2]) / 2 * f, (b[1] + b[3]) / 2 * f
            x0 = int(np.clip(cx - rng.uniform(160, 480), 0, max(0, big.shape[1] - 640)))
            y0 = int(np.clip(cy - rng.uniform(120, 360), 0, max(0, big.shape[0] - 480)))
            cut = np.ascontiguousarray(big[y0 : y0 + 480, x0 : x0 + 640])
            moved = plates * f - np.array([x0, y0, x0, y0], np.float32)
            inside = (
                (moved[:, 0] >= 0) & (moved[:, 1] >= 0) & (moved[:, 2] <= cut.shape[1]) & (moved[:, 3] <= cut.shape[0])
            )
            out_images.append(cut)
            out_labels.append(moved[inside])
    return out_images, out_labels


def pan(rgb: np.ndarray, frames: int) -> list[np.ndarray]:
    """``frames`` 640x360 views moving 3 px a frame across ``rgb`` enlarged 1.5x (grey where it runs out)."""
    big = cv2.resize(rgb, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_LINEAR)
    canvas = np.full((max(360, big.shape[0]), max(640 + 3 * frames, big.shape[1]), 3), 114, np.uint8)
    canvas[: big.shape[0], : big.shape[1]] = big
    y = max(0, (big.shape[0] - 360) // 2)
    return [np.ascontiguousarray(canvas[y : y + 360, 3 * i : 3 * i + 640]) for i in range(frames)]


def video(
    finder: PlateFinder,
    images: list[np.ndarray],
    labels: list[np.ndarray],
    frames: int,
    every: int,
    mask_scale: float,
    watch: bool,
) -> None:
    seen = missed = probes = hits = other = outside = 0
    detect_s = 0.0
    t = time.perf_counter()
    for rgb, plates in zip(images, labels, strict=True):
        views = pan(rgb, frames)
        y0 = max(0, (round(rgb.shape[0] * 1.5) - 360) // 2)
        planner = CoverPlanner(finder, detect_every=every, hold=12, watch=watch and every > 1)
        planned = []
        for i, v in enumerate(views):
            planned += planner.push(Frame(index=i, rgb=v, pts=i, time=i / 25, in_span=True))
        planned += planner.flush()
        probes, hits, detect_s = probes + planner.probes, hits + planner.probe_hits, detect_s + planner.detect_s
        for p in planned:
            truth = finder.find(p.frame.rgb)
            covers = [grow_box(b, mask_scale) for b in p.covers.values()]
            i = p.frame.index
            moved = plates * 1.5 - np.array([3 * i, y0, 3 * i, y0], np.float32)
            o, n = _other_pixels(covers, [grow_box(b, 1.2) for b in moved], p.frame.rgb.shape[:2])
            other, outside = other + o, outside + n
            for plate in truth:
                seen += 1
                box = np.array([plate.box], np.float32)
                missed += inside_share(box, np.array(covers, np.float32).reshape(-1, 4)).max(initial=0.0) < 0.7
    print(
        f"video (pans over {len(images)} photos, {frames} frames each, detection every {every}): every-frame "
        f"finder's plates {seen}, left uncovered {missed} ({missed / max(seen, 1):.2%}); faint candidates looked "
        f"at again {probes} times, {hits} tracks started there; the planner's finder "
        f"{1000 * detect_s / (len(images) * frames):.1f} ms a frame; other pixels covered "
        f"{other / max(outside, 1):.2%}; "
        f"{len(images) * frames / (time.perf_counter() - t):.1f} frames/s (planner + every-frame reference)"
    )


def _other_pixels(covers: list[np.ndarray], plates: list[np.ndarray], shape: tuple[int, int]) -> tuple[int, int]:
    """Pixels under ``covers`` outside every box of ``plates``, and all pixels outside them, on a frame."""
    covered, inside = _box_mask(covers, shape), _box_mask(plates, shape)
    return int((covered & ~inside).sum()), int((~inside).sum())


def _box_mask(boxes: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """A bool mask of ``shape`` (H, W), True inside any of ``boxes`` (x1, y1, x2, y2; clipped to it)."""
    mask = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in boxes:
        mask[max(0, int(y1)) : max(0, int(np.ceil(y2))), max(0, int(x1)) : max(0, int(np.ceil(x2)))] = True
    return mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights-file", type=Path, default=None, help="plate weights to try (default: the shipped)")
    ap.add_argument("--threshold", type=float, default=DEFAULT_PLATE_THRESHOLD)
    ap.add_argument("--upscale", type=float, default=PLATE_UPSCALE)
    ap.add_argument("--reduced", type=float, nargs="*", default=list(PLATE_REDUCED), help="reduced passes' scales")
    ap.add_argument("--mask-scale", type=float, default=PLATE_MASK_SCALE)
    ap.add_argument("--video-reduced", type=float, nargs="*", default=list(PLATE_VIDEO_REDUCED))
    ap.add_argument("--video", action="store_true", help="also the video check (pans over the photos)")
    ap.add_argument("--closeups", action="store_true", help="also the plates >= 32 px as close-ups (100-180 px)")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--no-watch", action="store_true", help="video: do not look again at faint candidates")
    ap.add_argument("--detect-every", type=int, default=PLATE_DETECT_EVERY, help="video (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N held-out photos")
    ap.add_argument("--no-refine", action="store_true", help="the detector's boxes as they are (no refiner)")
    ap.add_argument("--refiner-file", type=Path, default=None, help="refiner weights to try (default: the shipped)")
    args = ap.parse_args()
    configure_runtime(2)
    finder = PlateFinder(
        threshold=args.threshold, upscale=args.upscale, reduced=tuple(args.reduced), refine=not args.no_refine
    )
    from safetensors.torch import load_file

    if args.weights_file is not None:
        finder.model.load_state_dict(load_file(str(args.weights_file)))
    if args.refiner_file is not None and finder.refiner is not None:
        finder.refiner.load_state_dict(load_file(str(args.refiner_file)))
    images, labels = load_split(require(DATA / "plates-train"), held_out=True)
    images, labels = images[: args.limit], labels[: args.limit]
    print(
        f"threshold {args.threshold}, upscale {args.upscale}, reduced {args.reduced}, mask scale {args.mask_scale}, "
        f"refined: {not args.no_refine}"
    )
    photos(finder, images, labels, args.mask_scale)
    if args.closeups:
        print("close-ups: ", end="")
        photos(finder, *closeups(images, labels), args.mask_scale)
    if args.video:
        video_finder = PlateFinder(
            threshold=args.threshold, upscale=0.0, reduced=tuple(args.video_reduced), refine=not args.no_refine
        )
        video_finder.model, video_finder.refiner = finder.model, finder.refiner
        video(video_finder, images, labels, args.frames, args.detect_every, args.mask_scale, not args.no_watch)


if __name__ == "__main__":
    main()
