"""The models of this process, each loaded once and shared: the face finder and the plate finder per
setting, the person segmenter, the surrogate painter and the deepfake scorer. The pipeline, the API and the
trainers all get their models here, so that a photo job, a video job and the API share one copy."""

from __future__ import annotations

from functools import lru_cache

from ..defaults import DEFAULT_PLATE_THRESHOLD, DEFAULT_THRESHOLD, DEFAULT_UPSCALE, PLATE_REDUCED, PLATE_UPSCALE
from .deepfake import DeepfakeScorer
from .donor_painter import DonorPainter
from .persons import DEFAULT_PERSON_THRESHOLD, VIDEO_SIDE, PersonSegmenter
from .photo import FaceFinder
from .plates import PlateFinder

__all__ = ["get_deepfake_scorer", "get_finder", "get_painter", "get_plate_finder", "get_segmenter"]


def get_finder(
    model: str = "centerface", threshold: float = DEFAULT_THRESHOLD, upscale: float = DEFAULT_UPSCALE
) -> FaceFinder:
    """A shared :class:`~anonymizer.pipeline.photo.FaceFinder` per setting (the model is loaded once)."""
    return _finder(model, float(threshold), float(upscale))


@lru_cache(maxsize=4)
def _finder(model: str, threshold: float, upscale: float) -> FaceFinder:
    return FaceFinder(model, threshold=threshold, upscale=upscale)


def get_segmenter(threshold: float = DEFAULT_PERSON_THRESHOLD, *, video: bool = False) -> PersonSegmenter:
    """A shared :class:`~anonymizer.pipeline.persons.PersonSegmenter` per threshold, for photos or (``video``)
    for video frames, seen at least at their own size up to :data:`~anonymizer.pipeline.persons.VIDEO_SIDE` (the Mask
    R-CNN is loaded once for each)."""
    return _segmenter(float(threshold), video)


@lru_cache(maxsize=4)
def _segmenter(threshold: float, video: bool) -> PersonSegmenter:
    if video:
        return PersonSegmenter(threshold=threshold, native_side=VIDEO_SIDE)
    return PersonSegmenter(threshold=threshold)


def get_plate_finder(
    threshold: float = DEFAULT_PLATE_THRESHOLD,
    upscale: float = PLATE_UPSCALE,
    reduced: tuple[float, ...] = PLATE_REDUCED,
) -> PlateFinder:
    """A shared :class:`~anonymizer.pipeline.plates.PlateFinder` per setting (the detector is loaded once)."""
    return _plate_finder(float(threshold), float(upscale), tuple(float(r) for r in reduced))


@lru_cache(maxsize=2)
def _plate_finder(threshold: float, upscale: float, reduced: tuple[float, ...]) -> PlateFinder:
    return PlateFinder(threshold=threshold, upscale=upscale, reduced=reduced)


@lru_cache(maxsize=1)
def get_painter() -> DonorPainter:
    """The shared :class:`~anonymizer.pipeline.donor_painter.DonorPainter` (donor bank and face-mesh network
    loaded once)."""
    return DonorPainter()


@lru_cache(maxsize=1)
def get_deepfake_scorer() -> DeepfakeScorer:
    """The shared :class:`~anonymizer.pipeline.deepfake.DeepfakeScorer` (the classifier is loaded once)."""
    return DeepfakeScorer()
