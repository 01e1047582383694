"""Self-blended images (SBI): training fakes for the deepfake detector, made from one real face.

A slightly transformed copy of the face (colour, sharpness, scale and position) is blended back onto the
face itself through a soft, deformed mask around its landmarks. The result has the traces every face swap
leaves (a blending boundary, mismatched colour statistics and frequencies) and no identity change, so a
classifier trained on it learns the traces rather than one generator's look (Shiohara and Yamasaki,
"Detecting Deepfakes with Self-Blended Images", CVPR 2022; this is our own implementation of the recipe,
with the five landmarks our detector gives).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError
from .checks import require_rgb

#: Blending ratios drawn from, as in the paper: mostly a full blend, sometimes a partial one.
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


def landmark_ellipse(shape: tuple[int, int], landmarks: np.ndarray, *, grow: float = 1.0) -> np.ndarray:
    """A filled ellipse (H, W) float32 in {0, 1} over eyes, nose and mouth of five ``landmarks`` (pixels),
    ``grow`` times the face-region size (1 = brows to chin, cheek to cheek)."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (5, 2) or not np.isfinite(lm).all():
        raise InputError(f"expected five finite (x, y) landmarks, got shape {lm.shape}")
    eyes, mouth = lm[:2].mean(0), lm[3:].mean(0)
    centre = (eyes + mouth) / 2
    eye_dist = max(float(np.linalg.norm(lm[1] - lm[0])), 1.0)
    vertical = max(float(np.linalg.norm(mouth - eyes)), 1.0)
    angle = float(np.degrees(np.arctan2(lm[1, 1] - lm[0, 1], lm[1, 0] - lm[0, 0])))
    axes = (max(1, round(eye_dist * 1.05 * grow)), max(1, round(vertical * 1.55 * grow)))
    mask = np.zeros(shape, np.float32)
    cv2.ellipse(mask, (round(centre[0]), round(centre[1] - 0.08 * axes[1])), axes, angle, 0, 360, 1.0, -1)
    return mask


def blend_mask(shape: tuple[int, int], landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The soft blending mask (H, W) float32 in 0..1: the landmark ellipse at a random size, deformed by
    smooth random displacements and blurred by a random kernel, times a random blending ratio."""
    h, w = shape
    mask = landmark_ellipse(shape, landmarks, grow=float(rng.uniform(0.8, 1.15)))
    eye_dist = max(
        float(np.linalg.norm(np.asarray(landmarks, np.float64)[1] - np.asarray(landmarks, np.float64)[0])), 1.0
    )
    # elastic deformation: a coarse random field, smoothly enlarged
    amp = 0.12 * eye_dist
    field = rng.normal(0, 1, (2, 6, 6)).astype(np.float32) * amp
    dx = cv2.resize(field[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(field[1], (w, h), interpolation=cv2.INTER_CUBIC)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mask = cv2.remap(
        mask, gx + dx, gy + dy, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    k = int(rng.integers(1, 6)) * 0.06 * eye_dist
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=max(k, 0.5))
    mask = np.clip(mask / max(float(mask.max()), 1e-6), 0, 1)
    return (mask * float(rng.choice(BLEND_RATIOS))).astype(np.float32)


def _source(rgb: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The transformed copy: colour and contrast shifts, sometimes blurred or sharpened, slightly scaled
    and moved about the face centre."""
    x: np.ndarray = rgb.astype(np.float32)
    x = x * rng.uniform(0.9, 1.1, 3) + rng.uniform(-12, 12, 3)  # per-channel gain and shift
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.85, 1.15) + mean
    r = rng.random()
    if r < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=float(rng.uniform(0.6, 1.4)))
    elif r < 0.5:
        x = x + 0.6 * (x - cv2.GaussianBlur(x, (0, 0), sigmaX=1.0))
    lm = np.asarray(landmarks, np.float64)
    eye_dist = max(float(np.linalg.norm(lm[1] - lm[0])), 1.0)
    centre = lm.mean(0)
    scale = float(rng.uniform(0.95, 1.05))
    shift = rng.uniform(-0.04, 0.04, 2) * eye_dist
    m = np.asarray(cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 0.0, scale), np.float64)
    m[:, 2] += shift
    h, w = rgb.shape[:2]
    x = cv2.warpAffine(x, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.clip(x, 0, 255)


def self_blend(rgb: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(blended RGB uint8 (H, W, 3), mask float32 (H, W)) for one face of ``rgb`` with five ``landmarks``.
    The input is not modified; pixels where the mask is 0 are unchanged."""
    require_rgb(rgb)
    mask = blend_mask(rgb.shape[:2], landmarks, rng)
    src = _source(rgb, landmarks, rng)
    a = mask[:, :, None]
    out = rgb.astype(np.float32) * (1 - a) + src * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask
