"""Whole people: person instance masks (Mask R-CNN) and covering them."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..defaults import DEFAULT_PERSON_THRESHOLD
from ..errors import InputError
from ..ops.checks import require_rgb
from ..ops.replace import METHODS, composite, replace_patch
from ..types import Face, Region

#: Person score threshold: the one at which the dev split's mask AP was measured (models/person_maskrcnn.md).
#: Masks grow by this fraction of the person's height (at least 2 px) before covering: edges are where
#: a network's masks are least sure, and a sliver of clothing or hair can identify.
PERSON_MASK_GROW = 0.02
#: photos: the short side the network sees (trained at 320-448, evaluated at 384; benchmarks/masks.py on the
#: dev split: 384 mask AP50 0.877 / AP75 0.534 / recall 83.6%, 448 0.873 / 0.559 / 90.2%, 512 0.890 / 0.478 /
#: 93.4%, models/person_maskrcnn.md), and the long side it sees at most
PHOTO_SIZE, PHOTO_MAX_SIDE = 448, 704
#: close-ups (MediaPipe's selfie segmentation): a region it calls a person with at least CLOSEUP_THRESHOLD,
#: of at least CLOSEUP_MIN_AREA of the image and with at least CLOSEUP_NEW of it outside the Mask R-CNN's
#: masks, becomes a person of score CLOSEUP_SCORE (the segmenter gives no score of its own)
#: (samples/group_solvay_1927.jpg, faces found at 0.5 inside a person: 22 of 29 at 0.5 with tiles of half
#: the short side, 26 of 29 at 0.3 with tiles of a third)
CLOSEUP_THRESHOLD, CLOSEUP_MIN_AREA, CLOSEUP_NEW, CLOSEUP_SCORE = 0.3, 0.02, 0.25, 0.5
#: the close-up segmenter is asked only where the Mask R-CNN finds at most CLOSEUP_MAX_PERSONS people of
#: score CLOSEUP_SURE or more: portraits, interviews and groups it cannot parse; in a street crowd (its own
#: domain) the close-up network also takes the doorway and wall between the people for a person (the 720p
#: clip of benchmarks/video.py: 4-9 such people a frame). Only sure ones count: on a talking head the Mask
#: R-CNN finds the hair and a patch of background as two or three "people" (0.54-0.99), which counted
#: whole kept the close-up network away on some frames and left the body showing
CLOSEUP_MAX_PERSONS, CLOSEUP_SURE = 2, 0.9
#: images at least three times this on the short side are also seen in tiles (:func:`selfie_probability`)
CLOSEUP_TILE = 256
#: videos: people in street and CCTV footage are small; the network sees the frame at least at its own size
#: (never enlarged beyond the photo scale: enlarged, a person filling the frame comes apart into pieces), up
#: to this long side (on the 720p clip of benchmarks/video.py: 8-10 people a frame found against 4-8 at
#: the photo size, 0.34 s a frame against 0.12)
VIDEO_SIDE = 1280


@dataclass(frozen=True)
class Person:
    """One person: box (x1, y1, x2, y2) floats in image pixels, score 0..1, mask bool (H, W) of the image."""

    box: tuple[float, float, float, float]
    score: float
    mask: np.ndarray

    def to_dict(self) -> dict[str, object]:
        return {"box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 4)}


class PersonSegmenter:
    """Loads the person Mask R-CNN once; :meth:`segment` is safe to call from several threads."""

    def __init__(
        self,
        *,
        threshold: float = DEFAULT_PERSON_THRESHOLD,
        weights: str = "default",
        native_side: int = 0,
        closeups: bool = True,
    ) -> None:
        """The network sees an image with its short side at :data:`PHOTO_SIZE`, at most
        :data:`PHOTO_MAX_SIDE` on the long side; with
        ``native_side`` (videos) at least at the image's own size, up to that long side. ``closeups``: add
        the people the close-up segmenter finds and the Mask R-CNN leaves out (:meth:`closeups_of`)."""
        if not 0 < threshold < 1:
            raise InputError(f"person threshold must be in (0, 1), got {threshold}")
        from ..nn.masks import person_maskrcnn

        self.threshold = threshold
        self.size = PHOTO_SIZE
        self.native_side = native_side
        self.closeups = closeups
        self._selfie_net: torch.nn.Module | None = None
        self.model = person_maskrcnn(weights=weights)
        self._lock = threading.Lock()

    def find(self, rgb: np.ndarray) -> tuple[Person, ...]:
        """:meth:`segment`, by the name a video's planner calls its finders by."""
        return self.segment(rgb)

    def segment(self, rgb: np.ndarray) -> tuple[Person, ...]:
        """Every person above the threshold, best first, with a mask at the image's size; then, with
        ``closeups`` and at most :data:`CLOSEUP_MAX_PERSONS` of them at :data:`CLOSEUP_SURE` or more, the people
        the close-up segmenter sees that those masks leave out (:meth:`closeups_of`)."""
        require_rgb(rgb)
        persons = self._maskrcnn(rgb)
        if self.closeups and sum(p.score >= CLOSEUP_SURE for p in persons) <= CLOSEUP_MAX_PERSONS:
            return persons + self.closeups_of(rgb, persons)
        return persons

    def closeups_of(self, rgb: np.ndarray, persons: tuple[Person, ...]) -> tuple[Person, ...]:
        """One person per region of at least :data:`CLOSEUP_MIN_AREA` of the image that the close-up
        segmenter (MediaPipe's selfie segmentation, models/selfie_segmentation.md) calls a person with at
        least :data:`CLOSEUP_THRESHOLD` and ``persons``' masks leave at least :data:`CLOSEUP_NEW` of
        uncovered: people filling the frame, whom the street-trained Mask R-CNN takes apart or misses."""
        h, w = rgb.shape[:2]
        found = selfie_probability(self._selfie(), rgb) >= CLOSEUP_THRESHOLD
        covered = np.zeros((h, w), bool)
        for p in persons:
            covered |= p.mask
        n, labels, stats, _ = cv2.connectedComponentsWithStats(found.astype(np.uint8), connectivity=8)
        more = []
        for k in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[k])
            if area < CLOSEUP_MIN_AREA * h * w:
                continue
            region = labels == k
            if (region & ~covered).sum() < CLOSEUP_NEW * area:
                continue
            box = (float(x), float(y), float(x + bw), float(y + bh))
            more.append(Person(box=box, score=CLOSEUP_SCORE, mask=region))
        return tuple(more)

    def _selfie(self) -> torch.nn.Module:
        if self._selfie_net is None:
            from ..nn.selfie import selfie_segmentation

            self._selfie_net = selfie_segmentation()
        return self._selfie_net

    def _maskrcnn(self, rgb: np.ndarray) -> tuple[Person, ...]:
        h, w = rgb.shape[:2]
        # the network sees the image at its test size; masks come back at that size and are enlarged here
        # (pasting 50 full-size float masks of a 12 MP photo would take gigabytes)
        s = self.size / min(h, w)
        s = min(s, PHOTO_MAX_SIDE / max(h, w))
        if self.native_side:
            s = max(s, min(1.0, self.native_side / max(h, w)))
        small = cv2.resize(
            rgb,
            (max(1, round(w * s)), max(1, round(h * s))),
            interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
        )
        x = torch.tensor(small).permute(2, 0, 1).float().div_(255.0)
        with self._lock, torch.inference_mode():
            self.model.transform.min_size = (min(small.shape[:2]),)  # type: ignore[union-attr]
            self.model.transform.max_size = max(small.shape[:2])  # type: ignore[union-attr]
            out = self.model([x])[0]
        keep = out["scores"] >= self.threshold
        scores = out["scores"][keep].numpy()
        boxes = out["boxes"][keep].numpy() / np.array([small.shape[1] / w, small.shape[0] / h] * 2)
        probs = out["masks"][keep][:, 0].numpy()
        persons = []
        for box, score, prob in zip(boxes, scores, probs, strict=True):
            mask = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5
            if not mask.any():
                continue
            persons.append(Person(box=tuple(float(v) for v in box), score=float(score), mask=mask))  # type: ignore[arg-type]
        return tuple(persons)


#: masks grown by more than this many pixels are grown on blocks of GROW_BLOCK x GROW_BLOCK pixels
GROW_EXACT, GROW_BLOCK = 8, 4


def grow_mask(mask: np.ndarray, r: int) -> np.ndarray:
    """``mask`` (bool) dilated by a disc of radius ``r`` px. Beyond :data:`GROW_EXACT` px it is dilated on
    blocks (any pixel set sets its block; the disc one block wider): a superset of the exact growth, at most
    two blocks wider, and many times faster for the large radii video persons take."""
    if r <= GROW_EXACT:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        return cv2.dilate(mask.astype(np.uint8), kernel) > 0
    f = GROW_BLOCK
    h, w = mask.shape
    padded = np.zeros((-(-h // f) * f, -(-w // f) * f), bool)
    padded[:h, :w] = mask
    blocks = padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f).any(axis=(1, 3))
    rb = -(-r // f) + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rb + 1, 2 * rb + 1))
    grown = cv2.dilate(np.asarray(blocks, np.uint8), kernel)
    return np.repeat(np.repeat(grown, f, axis=0), f, axis=1)[:h, :w] > 0


def selfie_probability(net: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    """The close-up segmenter's person probability (float32, H x W) for ``rgb``: the highest of the whole
    image's (:func:`_selfie_once`) and, for an image at least three times :data:`CLOSEUP_TILE` on its short
    side, that of square tiles a third of its short side, overlapping by a quarter (people in a group photo
    are too small for the network seen whole)."""
    h, w = rgb.shape[:2]
    prob = _selfie_once(net, rgb)
    if min(h, w) >= 3 * CLOSEUP_TILE:
        tile = min(h, w) // 3
        step = tile * 3 // 4
        for y in sorted({*range(0, h - tile + 1, step), h - tile}):
            for x in sorted({*range(0, w - tile + 1, step), w - tile}):
                part = prob[y : y + tile, x : x + tile]
                np.maximum(part, _selfie_once(net, rgb[y : y + tile, x : x + tile]), out=part)
    return prob


def _selfie_once(net: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    """The person probability of ``rgb`` seen whole: letterboxed into a black square, seen at 256 x 256, the
    map cut back to the image and enlarged to it."""
    from ..nn.selfie import SELFIE_INPUT

    h, w = rgb.shape[:2]
    side = max(h, w)
    square = np.zeros((side, side, 3), np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = rgb
    small = cv2.resize(square, (SELFIE_INPUT, SELFIE_INPUT), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(small).permute(2, 0, 1)[None].float().div_(255.0)
    with torch.inference_mode():
        prob = net(x)[0, 0].numpy()
    big = cv2.resize(prob, (side, side), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(big[top : top + h, left : left + w], dtype=np.float32)


def instance_image(persons: tuple[Person, ...] | list[Person], size: tuple[int, int]) -> np.ndarray:
    """An instance-id image (H, W) uint16: 0 background, k for the k-th person (1-based, in list order).
    Where masks overlap, the earlier (higher-scoring) person wins."""
    h, w = size
    ids = np.zeros((h, w), np.uint16)
    for k in range(len(persons), 0, -1):
        ids[persons[k - 1].mask] = k
    return ids


def cover_persons(
    rgb: np.ndarray,
    persons: tuple[Person, ...] | list[Person],
    *,
    method: str = "solid",
    color: tuple[int, int, int] = (0, 0, 0),
    grow: float = PERSON_MASK_GROW,
) -> tuple[np.ndarray, tuple[Region, ...], np.ndarray]:
    """Cover every person's (grown) mask with ``method``; returns (new image, regions, changed-pixel mask).

    Each region's box is the grown mask's bounding box; its ``shape`` is "mask". The input is not modified.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    out = rgb.copy()
    h, w = rgb.shape[:2]
    changed = np.zeros((h, w), bool)
    regions: list[Region] = []
    for p in persons:
        if p.mask.shape != (h, w):
            raise InputError(f"person mask is {p.mask.shape}, the image is {(h, w)}")
        if not p.mask.any():
            continue
        r = max(2, round(grow * (p.box[3] - p.box[1])))
        ys, xs = np.nonzero(p.mask)
        x1, y1 = max(0, int(xs.min()) - r), max(0, int(ys.min()) - r)
        x2, y2 = min(w, int(xs.max()) + 1 + r), min(h, int(ys.max()) + 1 + r)
        local = grow_mask(p.mask[y1:y2, x1:x2], r)
        patch = out[y1:y2, x1:x2]
        rep = replace_patch(patch, method, face_width=float(x2 - x1), color=color)
        out[y1:y2, x1:x2] = composite(patch, rep, local.astype(np.float32))
        changed[y1:y2, x1:x2] |= local
        face = Face(box=p.box, score=p.score, landmarks=())
        regions.append(Region(face=face, box=(x1, y1, x2, y2), shape="mask", kind="person"))
    return out, tuple(regions), changed
