"""Is a face synthetic or manipulated? Scores faces with the deepfake classifier trained here."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from ..errors import InputError
from ..nn.deepfake import DEEPFAKE_SIZE
from ..nn.surrogate import crop_template
from ..ops.align import similarity_transform
from ..types import Face

#: Probability at or above which the audit calls a face synthetic (``synthetic_flagged``): the score 10% of
#: 161 real faces unlike the training data reach with the shipped weights (models/deepfake.md, "Threshold").
SYNTHETIC_THRESHOLD = 0.9988


def align_for_deepfake(rgb: np.ndarray, face: Face) -> np.ndarray:
    """The face aligned by its five landmarks onto the classifier's 128-px crop (RGB uint8)."""
    lm = np.asarray(face.landmarks, np.float64)
    if lm.shape != (5, 2):
        raise InputError("scoring a face needs its five landmarks")
    m = similarity_transform(lm, crop_template(DEEPFAKE_SIZE))
    return cv2.warpAffine(
        rgb, m, (DEEPFAKE_SIZE, DEEPFAKE_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


class DeepfakeScorer:
    """Loads the classifier once; :meth:`score_crops` and :meth:`score_faces` are thread-safe. ``threshold``:
    the probability at or above which :meth:`flagged` calls a face synthetic."""

    def __init__(
        self, *, weights: str = "default", model: torch.nn.Module | None = None, threshold: float = SYNTHETIC_THRESHOLD
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise InputError(f"the synthetic threshold must lie between 0 and 1, got {threshold}")
        self.threshold = float(threshold)
        if model is None:
            from ..nn.deepfake import deepfake_mobilenet

            model = deepfake_mobilenet(weights=weights)
        self.model = model.eval()
        self._lock = threading.Lock()

    def score_crops(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities (N,) that aligned crops (N, 128, 128, 3) uint8 are synthetic or manipulated: the
        sigmoid of the mean logit of each crop and its mirror image (a face scores as its mirror image does)."""
        if crops.ndim != 4 or crops.shape[1:] != (DEEPFAKE_SIZE, DEEPFAKE_SIZE, 3) or crops.dtype != np.uint8:
            raise InputError(
                f"expected aligned crops (N, {DEEPFAKE_SIZE}, {DEEPFAKE_SIZE}, 3) uint8, got {crops.shape} "
                f"{crops.dtype}"
            )
        if not len(crops):
            return np.zeros(0, np.float32)
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div(255.0)
        with self._lock, torch.inference_mode():
            logits = (self.model(x) + self.model(x.flip(3))) / 2
        return torch.sigmoid(logits).numpy().astype(np.float32)

    def flagged(self, probability: float) -> bool:
        """Whether a face (or a track's mean) scored ``probability`` counts as synthetic."""
        return bool(probability >= self.threshold)

    def score_faces(self, rgb: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Probabilities (len(faces),) for faces of ``rgb`` (each needs its five landmarks)."""
        crops = [align_for_deepfake(rgb, f) for f in faces]
        return self.score_crops(np.stack(crops) if crops else np.zeros((0, DEEPFAKE_SIZE, DEEPFAKE_SIZE, 3), np.uint8))
