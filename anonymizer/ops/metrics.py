"""Detection metrics: mask IoU and COCO-style average precision for one class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of every predicted mask with every ground-truth mask: (P, H, W) and (G, H, W) bool -> (P, G)."""
    if pred.ndim != 3 or gt.ndim != 3 or pred.shape[1:] != gt.shape[1:]:
        raise InputError(f"masks must be (N, H, W) of one size, got {pred.shape} and {gt.shape}")
    p = pred.reshape(len(pred), -1).astype(np.float32)
    g = gt.reshape(len(gt), -1).astype(np.float32)
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def average_precision(images: Sequence[tuple[np.ndarray, np.ndarray]], threshold: float) -> float:
    """COCO-style AP at one IoU threshold over a set of images.

    ``images``: per image, (scores (P,), iou (P, G)) with G ground-truth objects. Predictions are matched
    greedily in descending score order, each to the unmatched ground truth it overlaps most (IoU >=
    ``threshold``); AP is the area under the precision envelope sampled at 101 recall points. NaN when
    there is no ground truth at all.
    """
    flags: list[tuple[float, bool]] = []
    n_gt = 0
    for scores, iou in images:
        n_gt += iou.shape[1]
        taken = np.zeros(iou.shape[1], bool)
        for i in np.argsort(-scores, kind="stable"):
            cand = np.where(taken, -1.0, iou[i]) if iou.shape[1] else np.zeros(0)
            j = int(np.argmax(cand)) if cand.size else -1
            hit = j >= 0 and cand[j] >= threshold
            if hit:
                taken[j] = True
            flags.append((float(scores[i]), hit))
    if n_gt == 0:
        return float("nan")
    if not flags:
        return 0.0
    flags.sort(key=lambda f: -f[0])
    tp = np.cumsum([f[1] for f in flags])
    fp = np.cumsum([not f[1] for f in flags])
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    return float(np.mean([envelope[i] if i < len(envelope) else 0.0 for i in idx]))


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """ROC AUC of scores: P(a positive scores above a negative), ties counting half (Mann-Whitney)."""
    pos, neg = np.asarray(positive, np.float64).ravel(), np.asarray(negative, np.float64).ravel()
    if not len(pos) or not len(neg):
        raise InputError("roc_auc needs at least one positive and one negative score")
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    i = 0
    while i < len(allv):  # average ranks over ties
        j = i
        while j + 1 < len(allv) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
