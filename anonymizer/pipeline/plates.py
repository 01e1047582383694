"""Licence plates: find them (the plate detector, multi-scale like faces) and cover them with a box."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..defaults import (
    DEFAULT_NMS_IOU,
    DEFAULT_PLATE_THRESHOLD,
    PLATE_MASK_SCALE,
    PLATE_REDUCED,
    PLATE_REDUCED_MIN_SIDE,
    PLATE_UPSCALE,
)
from ..errors import InputError
from ..nn import build_model
from ..nn.detectors import FaceDetector
from ..nn.plate_refiner import PlateRefiner
from ..nn.runtime import configure_runtime
from ..ops.boxes import iou_matrix
from ..ops.centers import Decoded
from ..ops.checks import require_rgb
from ..ops.plate_windows import cut_windows, from_windows, plate_windows
from ..ops.replace import METHODS
from ..types import Face, Plate, Region
from .photo import (
    SEED_SCORE,
    WATCH_SHARE,
    DetectionPass,
    cover_region,
    faint_candidates,
    merge_passes,
    plan_passes,
    probe_candidates,
    run_passes,
    seeded_passes,
)

__all__ = ["PlateFinder", "cover_plates", "reduced_scales", "refine_boxes"]


class PlateFinder:
    """Plate detection over a whole image: the plate detector at the image's own size, enlarged
    ``upscale`` times (in tiles for large images) where the first pass sees a small candidate however
    faint, and reduced for images over 1280 px; boxes above ``threshold`` merged by non-maximum suppression.
    Then the image reduced by each of ``reduced`` (scales in (0, 1); in a large image also by halvings of the
    smallest while its longer side keeps :data:`~anonymizer.defaults.PLATE_REDUCED_MIN_SIDE` px) adds the
    plates found where no box lies yet: near plates the full-size pass misses, without changing any plate it
    found. Last, with ``refine`` (the default), the plate refiner looks again at a window around each box and
    fits the box to its plate (:func:`refine_boxes`; the detector's boxes are often too narrow or over half a
    plate), so that a smaller margin covers it (:data:`~anonymizer.defaults.PLATE_MASK_SCALE`).

    ``find(rgb)`` takes an RGB uint8 (H, W, 3) array and returns plates in its pixels, best first.
    """

    def __init__(
        self,
        *,
        weights: str | None = "default",
        threshold: float = DEFAULT_PLATE_THRESHOLD,
        upscale: float = PLATE_UPSCALE,
        reduced: tuple[float, ...] = PLATE_REDUCED,
        nms_iou: float = DEFAULT_NMS_IOU,
        refine: bool = True,
        batch_size: int = 4,
        threads: int | None = None,
    ) -> None:
        if not 0 < threshold < 1:
            raise InputError(f"plate threshold must be in (0, 1), got {threshold}")
        if upscale != 0 and upscale < 1:
            raise InputError(f"upscale must be 0 (off) or >= 1, got {upscale}")
        if any(not 0 < r < 1 for r in reduced):
            raise InputError(f"reduced scales must be in (0, 1), got {reduced}")
        configure_runtime(threads)
        net = build_model("plate_detector", weights=weights)
        assert isinstance(net, FaceDetector)
        self.model = net.eval().to(memory_format=torch.channels_last)
        self.threshold, self.upscale, self.nms_iou, self.batch_size = threshold, upscale, nms_iou, batch_size
        self.reduced = tuple(reduced)
        refiner = build_model("plate_refiner", weights=None if weights is None else "default") if refine else None
        assert refiner is None or isinstance(refiner, PlateRefiner)
        self.refiner = refiner

    @torch.inference_mode()
    def find(self, rgb: np.ndarray) -> tuple[Plate, ...]:
        return self._find(rgb, watch=False)[0]

    @torch.inference_mode()
    def find_watched(self, rgb: np.ndarray) -> tuple[tuple[Plate, ...], np.ndarray]:
        """:meth:`find`'s plates, and the faint candidates of the full-size and reduced passes
        (:func:`faint_candidates`, float32 ndarray [K, 5]) a video looks at again on the frames up to its next
        detection (:meth:`probe`)."""
        return self._find(rgb, watch=True)

    @torch.inference_mode()
    def probe(self, rgb: np.ndarray, boxes: np.ndarray) -> tuple[Plate, ...]:
        """The plates scoring at least the threshold in crops of ``rgb`` around the faint candidates ``boxes``
        (ndarray[K, 5], :func:`probe_passes`), each at the scale of the pass that saw it."""
        candidates = probe_candidates(self.model, rgb, boxes, floor=self.threshold, nms_iou=self.nms_iou)
        if candidates is None:
            return ()
        size = (rgb.shape[0], rgb.shape[1])
        return self._plates(rgb, *merge_passes(*candidates, nms_iou=self.nms_iou, size=size)[:2])

    def _find(self, rgb: np.ndarray, *, watch: bool) -> tuple[tuple[Plate, ...], np.ndarray]:
        require_rgb(rgb)
        h, w = rgb.shape[:2]
        if h == 0 or w == 0:
            raise InputError(f"image is empty: {w}x{h} pixels")
        passes = plan_passes(w, h, upscale=self.upscale)
        boxes, scores, lms = self._run(rgb, [p for p in passes if p.scale <= 1], SEED_SCORE)
        faint = [(boxes, scores, 1.0)]  # the passes' candidates, the faint among them picked at the end
        enlarged = seeded_passes([p for p in passes if p.scale > 1], boxes)
        if enlarged:
            more = self._run(rgb, enlarged, self.threshold)
            boxes, scores, lms = (torch.cat([a, b]) for a, b in zip((boxes, scores, lms), more, strict=True))
        keep = scores >= self.threshold
        boxes, scores, _ = merge_passes(boxes[keep], scores[keep], lms[keep], nms_iou=self.nms_iou, size=(h, w))
        if self.reduced:
            floor = self.threshold * WATCH_SHARE if watch else self.threshold  # faint ones only when watching
            boxes, scores, faint = self._add_reduced(rgb, boxes, scores, faint, floor)
            order = torch.argsort(scores, descending=True, stable=True)
            boxes, scores = boxes[order], scores[order]
        return self._plates(rgb, boxes, scores), self._faint(faint, boxes) if watch else np.zeros((0, 5), np.float32)

    def _add_reduced(
        self,
        rgb: np.ndarray,
        boxes: Tensor,
        scores: Tensor,
        faint: list[tuple[Tensor, Tensor, float]],
        floor: float,
    ) -> tuple[Tensor, Tensor, list[tuple[Tensor, Tensor, float]]]:
        """``boxes`` and ``scores`` with the plates the reduced passes find where none of ``boxes`` lies (a
        near plate the full-size pass misses; where both see one, the full-size pass's box is kept); ``faint``
        with each reduced pass's candidates from ``floor`` up."""
        h, w = rgb.shape[:2]
        scales = reduced_scales(self.reduced, max(w, h))
        runs = [self._run(rgb, [DetectionPass(0, 0, w, h, r)], floor) for r in scales]
        faint = faint + [(b, s, r) for (b, s, _), r in zip(runs, scales, strict=True)]
        found, conf, lms = (torch.cat(parts) for parts in zip(*runs, strict=True))
        keep = conf >= self.threshold
        found, conf, _ = merge_passes(found[keep], conf[keep], lms[keep], nms_iou=self.nms_iou, size=(h, w))
        new = torch.from_numpy(iou_matrix(found.numpy(), boxes.numpy()).max(1, initial=0.0) <= 0)
        return torch.cat([boxes, found[new]]), torch.cat([scores, conf[new]]), faint

    def _faint(self, passes: list[tuple[Tensor, Tensor, float]], found: Tensor) -> np.ndarray:
        """The faint candidates of each pass (boxes, scores, scale) that no plate of ``found`` overlaps."""
        parts = [
            faint_candidates(b, s, torch.full_like(s, self.threshold), found, nms_iou=self.nms_iou, scale=r)
            for b, s, r in passes
        ]
        return np.concatenate(parts)

    def _plates(self, rgb: np.ndarray, boxes: Tensor, scores: Tensor) -> tuple[Plate, ...]:
        """The plates of the detector's ``boxes``, each box fitted to its plate by the refiner when there is one
        (a fitted box that is empty or overlaps nothing of the detector's falls back to the detector's: a
        plate is never dropped or moved elsewhere by the refiner)."""
        fitted = boxes.numpy()
        if self.refiner is not None and len(fitted):
            new = refine_boxes(self.refiner, rgb, fitted)[0]
            low, high = np.maximum(new[:, :2], fitted[:, :2]), np.minimum(new[:, 2:], fitted[:, 2:])
            fitted = np.where((high > low).all(1)[:, None], new, fitted)  # non-empty, overlapping its own box
        return tuple(
            Plate(box=(b[0], b[1], b[2], b[3]), score=float(s))
            for b, s in zip(fitted.tolist(), scores.tolist(), strict=True)
            if b[2] > b[0] and b[3] > b[1]
        )

    def _run(self, rgb: np.ndarray, passes: list[DetectionPass], floor: float) -> Decoded:
        return run_passes(self.model, rgb, passes, floor=floor, nms_iou=self.nms_iou, batch_size=self.batch_size)


def reduced_scales(reduced: tuple[float, ...], long_side: int) -> tuple[float, ...]:
    """``reduced``, then halvings of its smallest scale while the image's ``long_side`` reduced by them stays
    at least :data:`~anonymizer.defaults.PLATE_REDUCED_MIN_SIDE` px (none for a 640-px image)."""
    scales = list(reduced)
    while scales and long_side * min(scales) / 2 >= PLATE_REDUCED_MIN_SIDE:
        scales.append(min(scales) / 2)
    return tuple(scales)


def cover_plates(
    rgb: np.ndarray,
    plates: tuple[Plate, ...] | list[Plate],
    *,
    method: str = "solid",
    color: tuple[int, int, int] = (0, 0, 0),
    mask_scale: float = PLATE_MASK_SCALE,
) -> tuple[np.ndarray, tuple[Region, ...], np.ndarray]:
    """Cover every plate of ``rgb`` (RGB uint8 (H, W, 3)) with a hard-edged box ``mask_scale`` times its own,
    filled by ``method`` (solid, pixelate or blur, sized as for a face twice the plate's width: four mosaic
    blocks across a plate, so no character keeps a block of its own). Returns (new image, regions of kind
    "plate", changed-pixel mask); the input is not modified."""
    require_rgb(rgb)
    if method not in METHODS:
        raise InputError(f"unknown method {method!r} for plates; expected one of {', '.join(METHODS)}")
    if mask_scale <= 0:
        raise InputError(f"plate mask scale must be > 0, got {mask_scale}")
    out = rgb.copy()
    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), dtype=bool)
    regions: list[Region] = []
    for plate in plates:
        width = 2 * plate.width * mask_scale
        win = cover_region(
            out,
            mask,
            plate.box,
            shape="box",
            scale=mask_scale,
            feather=0.0,
            method=method,
            face_width=width,
            color=color,
        )
        if win is None:
            continue
        as_face = Face(box=plate.box, score=plate.score, landmarks=())
        regions.append(Region(face=as_face, box=win, shape="box", kind="plate"))
    return out, tuple(regions), mask


@torch.inference_mode()
def refine_boxes(model: PlateRefiner, rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plate refiner's look at each of ``boxes`` (float32 [N, 4], x1, y1, x2, y2 in the pixels of ``rgb``,
    RGB uint8 (H, W, 3)): the plate's box (float32 [N, 4], same pixels) and the probability that a plate is
    there (float32 [N])."""
    require_rgb(rgb)
    if not len(boxes):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    win = plate_windows(boxes)
    out = model(torch.from_numpy(cut_windows(rgb, win)).permute(0, 3, 1, 2).float()).numpy()
    return from_windows(out[:, :4], win), (1 / (1 + np.exp(-out[:, 4]))).astype(np.float32)
