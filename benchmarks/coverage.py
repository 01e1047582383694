"""Face coverage and collateral of `anonymize` (and of deface at its defaults) on labelled photos.

    python benchmarks/coverage.py [--scales 1,0.5,0.35] [--threshold T] [--mask-scale S] [--no-deface]

The 9 labelled photos of ../shared/data/dlib-faces (43 faces, 37-109 px) are also run shrunk by the
factors in --scales, which gives faces down to about 13 px (WIDER FACE's small faces are the real
test). A face counts as *covered* when at least --cover of its labelled box is fully replaced (feathered edges excluded);
*collateral* is the share of pixels outside every labelled box that were changed. Only faces of at
least --min-size px (the shorter side) count toward coverage; smaller ones are ignored (neither
counted nor penalised). AP50 is the detector's average precision at IoU 0.5 over the same set.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from _data import dlib_faces

from anonymizer.ops.masks import union_mask
from anonymizer.pipeline.tracking import iou_matrix
from anonymizer.pipeline.photo import DEFAULT_FEATHER, DEFAULT_MASK_SCALE, DEFAULT_THRESHOLD, FaceFinder, cover_faces
from anonymizer.media import load_image


def average_precision(dets: list[tuple[np.ndarray, np.ndarray]], gts: list[np.ndarray], min_size: float) -> float:
    """VOC-style AP50; ground truth smaller than min_size is 'ignore' (matches to it are not false positives)."""
    records = []
    npos = 0
    for (boxes, scores), gt in zip(dets, gts):
        small = np.minimum(gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]) < min_size
        npos += int((~small).sum())
        used = np.zeros(len(gt), bool)
        order = np.argsort(-scores)
        ious = iou_matrix(boxes[order], gt) if len(gt) and len(boxes) else np.zeros((len(boxes), len(gt)))
        for k, i in enumerate(order):
            j = int(np.argmax(ious[k])) if len(gt) else -1
            if j >= 0 and ious[k, j] >= 0.5 and not used[j]:
                used[j] = True
                if small[j]:
                    continue
                records.append((scores[i], 1))
            elif j >= 0 and ious[k, j] >= 0.5 and small[j]:
                continue
            else:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="1,0.5,0.35")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--mask-scale", type=float, default=DEFAULT_MASK_SCALE)
    ap.add_argument("--feather", type=float, default=DEFAULT_FEATHER)
    ap.add_argument("--upscale", type=float, default=None)
    ap.add_argument("--shape", default="ellipse")
    ap.add_argument("--cover", type=float, default=0.9)
    ap.add_argument("--min-size", type=float, default=16)
    ap.add_argument("--no-deface", action="store_true")
    args = ap.parse_args()

    kw = {} if args.upscale is None else {"upscale": args.upscale}
    finder = FaceFinder(threshold=args.threshold, **kw)
    deface = None
    if not args.no_deface:
        from deface.centerface import CenterFace

        deface = CenterFace(backend="onnxrt")
    photos = dlib_faces()
    rows = {}
    for s in [float(v) for v in args.scales.split(",")]:
        for name in (["ours"] + (["deface"] if deface else [])):
            stats = {"faces": 0, "covered": 0, "changed_out": 0, "out": 0, "secs": 0.0}
            dets, gts = [], []
            for path, gt in photos:
                rgb = load_image(path).rgb
                if s != 1:
                    rgb = cv2.resize(rgb, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA)
                g = gt * s
                t = time.perf_counter()
                if name == "ours":
                    faces = finder.find(rgb)
                    boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
                    scores = np.array([f.score for f in faces], np.float32)
                    _, _, changed = cover_faces(rgb, faces, mask_scale=args.mask_scale, feather=args.feather, shape=args.shape)
                    # covered = fully replaced (alpha 1); the feather band counts as collateral only
                    full = union_mask(boxes, rgb.shape[:2], shape=args.shape, scale=args.mask_scale) >= 1.0
                else:
                    d, _ = deface(rgb, threshold=0.2)  # deface's default threshold
                    boxes, scores = d[:, :4], d[:, 4]
                    changed = np.zeros(rgb.shape[:2], bool)
                    for x1, y1, x2, y2 in boxes.astype(int):  # deface's scale_bb(mask_scale=1.3) + solid box
                        bw, bh = x2 - x1, y2 - y1
                        a, b = np.round([x1 - bw * 0.3, y1 - bh * 0.3, x2 + bw * 0.3, y2 + bh * 0.3]).astype(int)[[0, 1]], np.round([x1 - bw * 0.3, y1 - bh * 0.3, x2 + bw * 0.3, y2 + bh * 0.3]).astype(int)[[2, 3]]
                        changed[max(0, a[1]) : b[1] + 1, max(0, a[0]) : b[0] + 1] = True
                    full = changed
                stats["secs"] += time.perf_counter() - t
                dets.append((boxes, scores))
                gts.append(g)
                inside = union_mask(g, rgb.shape[:2], shape="box") > 0
                stats["changed_out"] += int((changed & ~inside).sum())
                stats["out"] += int((~inside).sum())
                for x1, y1, x2, y2 in g:
                    if min(x2 - x1, y2 - y1) < args.min_size:
                        continue
                    stats["faces"] += 1
                    box = full[int(round(y1)) : int(round(y2)), int(round(x1)) : int(round(x2))]
                    stats["covered"] += int(box.mean() >= args.cover)
            ap50 = average_precision(dets, gts, args.min_size)
            rows[(s, name)] = (stats, ap50)
            print(
                f"shrink {s:4.2f}  {name:6s}  faces {stats['faces']:3d}  covered {stats['covered'] / max(stats['faces'], 1):6.1%}  "
                f"collateral {stats['changed_out'] / stats['out']:6.2%}  AP50 {ap50:.3f}  time {stats['secs']:.2f}s",
                flush=True,
            )
    for name in ["ours"] + (["deface"] if deface else []):
        f = sum(rows[(s, name)][0]["faces"] for s, n in rows if n == name)
        c = sum(rows[(s, name)][0]["covered"] for s, n in rows if n == name)
        co = sum(rows[(s, name)][0]["changed_out"] for s, n in rows if n == name) / sum(rows[(s, name)][0]["out"] for s, n in rows if n == name)
        print(f"all       {name:6s}  faces {f:3d}  covered {c / max(f, 1):6.1%}  collateral {co:6.2%}")


if __name__ == "__main__":
    main()
