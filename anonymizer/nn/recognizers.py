"""The recognizer interface and our own IdentityNet behind it (the surrogate painter's identity check and
the audit's built-in recognizer; the audit's dlib recognizer, optional, lives in :mod:`anonymizer.audit`).

    a = rec.embed(original_rgb, face)     # face: a Face (box + 5 landmarks) in that image
    b = rec.embed(output_rgb, face)       # the same geometry in the anonymized image
    distance(a, b) > rec.threshold        # a different person
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from ..ops.align import align_face
from ..ops.checks import require_rgb
from ..types import Face
from .identity import IDENTITY_CROP, IDENTITY_THRESHOLD, identity_net


class Recognizer(Protocol):
    """Maps a face (image + its detected geometry) to a descriptor; Euclidean distance compares them."""

    name: str
    threshold: float

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray: ...

    def embed_many(self, rgb: np.ndarray, faces: list[Face] | tuple[Face, ...]) -> np.ndarray: ...


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def contiguous_rgb(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` checked (uint8 H x W x 3) and C-contiguous, as the recognizers' native code needs it."""
    require_rgb(rgb)
    return np.ascontiguousarray(rgb)


class IdentityNetRecognizer:
    """Our IdentityNet on 5-landmark-aligned crops; descriptors in dlib's space, with its own calibrated
    same-person threshold (:data:`anonymizer.nn.identity.IDENTITY_THRESHOLD`)."""

    name = "identity_net"

    def __init__(self, weights: str | None = "default") -> None:
        self.threshold = IDENTITY_THRESHOLD
        self.model = identity_net(weights=weights)

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_many(rgb, [face])[0]

    def embed_many(self, rgb: np.ndarray, faces: list[Face] | tuple[Face, ...]) -> np.ndarray:
        rgb = contiguous_rgb(rgb)
        if not faces:
            return np.zeros((0, 128), np.float32)
        crops = np.stack([align_face(rgb, f.landmarks, size=IDENTITY_CROP) for f in faces])
        return self.embed_crops(crops)

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """crops: uint8 (N, 96, 96, 3) aligned faces -> float32 (N, 128)."""
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0
            return self.model(x).numpy().astype(np.float32)
