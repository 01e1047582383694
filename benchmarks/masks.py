"""Person masks: mask AP50 / AP75 and box AP50 on the Penn-Fudan dev split, through the real pipeline.

    python benchmarks/masks.py [--weights-file W.safetensors] [--picture models/person_maskrcnn.png]

Dev split: the fixed fifth of ../shared/data/pennfudan by file name (anonymizer.train.masks.is_dev), never
trained on. Every photo goes through ``PersonSegmenter`` as `anonymize --targets person` runs it (shorter
side resized to 384, masks enlarged to the photo and cut at 0.5), keeping detections down to score 0.05
for the AP curves. AP is COCO-style (101 recall points, greedy matching by score), one class. Also printed:
recall and precision at the pipeline's score threshold (0.5), IoU >= 0.5: privacy is recall.

``--picture`` draws the masks found at the pipeline's threshold on the public-domain photos in samples/
(no research data goes into the repository).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _data import DATA, ROOT, require
from PIL import Image

from anonymizer.nn.runtime import configure_runtime
from anonymizer.ops.boxes import iou_matrix
from anonymizer.ops.metrics import average_precision, mask_iou
from anonymizer.pipeline.persons import DEFAULT_PERSON_THRESHOLD, PersonSegmenter, instance_image
from anonymizer.train.masks import load_pennfudan

PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
    ],
    np.float32,
)


def overlay(rgb: np.ndarray, ids: np.ndarray) -> np.ndarray:
    out = rgb.astype(np.float32)
    for k in range(1, int(ids.max()) + 1):
        m = ids == k
        out[m] = 0.45 * out[m] + 0.55 * PALETTE[(k - 1) % len(PALETTE)]
    return out.astype(np.uint8)


def picture(seg: PersonSegmenter, path: Path) -> None:
    tiles = []
    for name in ("group_solvay_1927.jpg", "astronaut.png", "grace_hopper.jpg"):
        from anonymizer.media.image import load_image

        rgb = load_image(ROOT / "samples" / name).rgb
        persons = [p for p in seg.segment(rgb) if p.score >= DEFAULT_PERSON_THRESHOLD]
        tile = overlay(rgb, instance_image(persons, rgb.shape[:2]))
        h = 360
        tiles.append(
            np.asarray(
                Image.fromarray(tile).resize((round(tile.shape[1] * h / tile.shape[0]), h), Image.Resampling.LANCZOS)
            )
        )
        print(f"  {name}: {len(persons)} person(s)")
    Image.fromarray(np.concatenate(tiles, axis=1)).save(path)
    print(f"picture: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--weights-file", type=Path, default=None, help="evaluate these weights (default: the shipped ones)"
    )
    ap.add_argument("--picture", type=Path, default=None, help="write the masks found on samples/ photos here (PNG)")
    args = ap.parse_args()
    configure_runtime(2)
    seg = PersonSegmenter(threshold=0.05)
    if args.weights_file is not None:
        from safetensors.torch import load_file

        seg.model.load_state_dict({k: v.float() for k, v in load_file(str(args.weights_file)).items()})
    dev = load_pennfudan(require(DATA / "pennfudan"), dev=True)
    per_mask, per_box = [], []
    hits = found = total = 0
    t0 = time.perf_counter()
    for s in dev:
        persons = seg.segment(s.rgb)
        scores = np.array([p.score for p in persons], np.float32)
        masks = np.stack([p.mask for p in persons]) if persons else np.zeros((0, *s.rgb.shape[:2]), bool)
        miou = mask_iou(masks, s.masks) if persons else np.zeros((0, len(s.masks)))
        per_mask.append((scores, miou))
        boxes = np.array([p.box for p in persons], np.float32).reshape(-1, 4)
        per_box.append((scores, iou_matrix(boxes, s.boxes)))
        keep = scores >= DEFAULT_PERSON_THRESHOLD
        total += len(s.masks)
        found += int(keep.sum())
        if keep.any():
            hits += int((miou[keep].max(axis=0) >= 0.5).sum())
    took = time.perf_counter() - t0
    n_people = sum(len(s.masks) for s in dev)
    print(f"Penn-Fudan dev: {len(dev)} photos, {n_people} people; {took / len(dev):.2f} s per photo on this CPU")
    print("| mask AP50 | mask AP75 | box AP50 | recall at 0.5 (mask IoU >= 0.5) | precision at 0.5 |")
    print("|---|---|---|---|---|")
    ap50, ap75, box50 = (
        average_precision(per_mask, 0.5),
        average_precision(per_mask, 0.75),
        average_precision(per_box, 0.5),
    )
    matched = sum(
        int((miou[scores >= DEFAULT_PERSON_THRESHOLD].max(axis=1) >= 0.5).sum())
        if (scores >= DEFAULT_PERSON_THRESHOLD).any() and miou.shape[1]
        else 0
        for scores, miou in per_mask
    )
    print(
        f"| {ap50:.3f} | {ap75:.3f} | {box50:.3f} | {hits / max(total, 1):.1%} ({hits}/{total}) | "
        f"{matched / max(found, 1):.1%} ({matched}/{found}) |"
    )
    if args.picture is not None:
        seg.threshold = DEFAULT_PERSON_THRESHOLD
        picture(seg, args.picture)


if __name__ == "__main__":
    main()
