"""Face recognizers behind one small interface: dlib's ResNet (independent, optional) and IdentityNet.

    rec = get_recognizer("dlib")          # or "identity_net"; "auto" prefers dlib when installed
    a = rec.embed(original_rgb, face)     # face: a Face (box + 5 landmarks) in that image
    b = rec.embed(output_rgb, face)       # the same geometry in the anonymized image
    rec.distance(a, b) > rec.threshold    # a different person

dlib comes from the optional extra ``pip install 'anonymizer[audit]'`` (PyPI ``dlib-bin`` and
``face-recognition-models``). The model files are found on disk: importing ``face_recognition_models``
needs ``pkg_resources``, which recent setuptools removed.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, WeightsError
from ..nn.recognizers import IdentityNetRecognizer, Recognizer, contiguous_rgb, distance
from ..types import Face

__all__ = [
    "RECOGNIZERS",
    "DlibRecognizer",
    "IdentityNetRecognizer",
    "Recognizer",
    "distance",
    "dlib_available",
    "get_recognizer",
]

#: dlib's own decision threshold: descriptors further apart than this are different people.
DLIB_THRESHOLD = 0.6
DLIB_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_SHAPE5 = "shape_predictor_5_face_landmarks.dat"
AUDIT_EXTRA = "pip install 'anonymizer[audit]' (dlib-bin and face-recognition-models)"
#: Where our detector's five landmarks (eyes, nose tip, mouth corners) fall in dlib's own 150-px chip
#: (``get_face_chip``, padding 0.25): the median over 300 faces-utk training faces, each chip placed by
#: dlib's 5-point shape predictor. :meth:`DlibRecognizer.embed_aligned` uses it to describe faces whose
#: landmarks are known without running the shape predictor (small generated crops during training);
#: on faces-utk crops this moves the descriptor by 0.17 on average (0.22 from a 64-px crop), against
#: dlib's 0.6 threshold.
DLIB_CHIP_TEMPLATE = np.array(
    [[47.98, 47.17], [102.61, 48.27], [74.35, 75.31], [51.09, 98.20], [95.61, 99.06]], np.float32
)
DLIB_CHIP = 150


def dlib_model_files() -> tuple[Path, Path]:
    """(ResNet, 5-point shape predictor) files of the installed ``face-recognition-models`` package."""
    spec = importlib.util.find_spec("face_recognition_models")  # finds the folder without importing it
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"dlib's face-recognition models are not installed; {AUDIT_EXTRA}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = (folder / DLIB_RESNET, folder / DLIB_SHAPE5)
    for f in files:
        if not f.is_file():
            raise WeightsError(f"dlib model file missing; {AUDIT_EXTRA}", path=f)
    return files


def dlib_available() -> bool:
    if importlib.util.find_spec("dlib") is None:
        return False
    try:
        dlib_model_files()
    except WeightsError:
        return False
    return True


class DlibRecognizer:
    """dlib's face-recognition ResNet (128-d, 99.38% on LFW per dlib) with its 5-point shape predictor.

    The face box comes from our detector; dlib's own shape predictor places its landmarks inside it and
    dlib aligns the 150x150 chip itself, so this check shares nothing with our models but the box.
    """

    name = "dlib"
    threshold = DLIB_THRESHOLD

    def __init__(self) -> None:
        if importlib.util.find_spec("dlib") is None:
            raise WeightsError(f"dlib is not installed; {AUDIT_EXTRA}")
        import dlib

        resnet, shape5 = dlib_model_files()
        self._dlib = dlib
        self._sp = dlib.shape_predictor(str(shape5))
        self._net = dlib.face_recognition_model_v1(str(resnet))
        self._lock = threading.Lock()
        self._detector: Any = None

    def _rect(self, face: Face, shape: tuple[int, ...]) -> Any:
        x1, y1, x2, y2 = face.box
        h, w = shape[:2]
        return self._dlib.rectangle(
            max(0, int(round(x1))), max(0, int(round(y1))), min(w - 1, int(round(x2))), min(h - 1, int(round(y2)))
        )

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_many(rgb, [face])[0]

    def embed_many(self, rgb: np.ndarray, faces: list[Face] | tuple[Face, ...]) -> np.ndarray:
        rgb = contiguous_rgb(rgb)
        out = np.zeros((len(faces), 128), np.float32)
        with self._lock:
            for i, face in enumerate(faces):
                shape = self._sp(rgb, self._rect(face, rgb.shape))
                out[i] = np.asarray(self._net.compute_face_descriptor(rgb, shape), np.float32)
        return out

    def embed_aligned(self, crops: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Descriptors (N, 128) of uint8 RGB crops (N, H, W, 3) whose five landmarks (N, 5, 2, in crop
        pixels) are known: each crop is warped onto :data:`DLIB_CHIP_TEMPLATE` (bicubic, edges repeated)
        instead of being placed by dlib's shape predictor."""
        import cv2

        from ..ops.align import similarity_transform

        if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8 or landmarks.shape != (len(crops), 5, 2):
            raise InputError(
                f"expected uint8 crops (N, H, W, 3) and landmarks (N, 5, 2), got {crops.shape} {crops.dtype}, "
                f"{landmarks.shape}"
            )
        chips = [
            cv2.warpAffine(
                c,
                similarity_transform(lm.astype(np.float64), DLIB_CHIP_TEMPLATE.astype(np.float64)),
                (DLIB_CHIP, DLIB_CHIP),
                flags=cv2.INTER_CUBIC,
                borderMode=cv2.BORDER_REPLICATE,
            )
            for c, lm in zip(crops, landmarks, strict=True)
        ]
        if not chips:
            return np.zeros((0, 128), np.float32)
        with self._lock:
            return np.asarray(self._net.compute_face_descriptor(chips), np.float32).reshape(len(chips), 128)

    def count_faces(self, rgb: np.ndarray, *, upsample: int = 1) -> int:
        """Faces found by dlib's own HOG detector (an independent 'is this still a face?' check)."""
        rgb = contiguous_rgb(rgb)
        with self._lock:
            if self._detector is None:
                self._detector = self._dlib.get_frontal_face_detector()
            return len(self._detector(rgb, upsample))


RECOGNIZERS = ("auto", "dlib", "identity_net")


@lru_cache(maxsize=2)
def get_recognizer(name: str = "auto") -> Recognizer:
    """A shared recognizer: "dlib", "identity_net", or "auto" (dlib when the audit extra is installed)."""
    if name not in RECOGNIZERS:
        raise InputError(f"unknown recognizer {name!r}; expected one of {', '.join(RECOGNIZERS)}")
    if name == "dlib" or (name == "auto" and dlib_available()):
        return DlibRecognizer()
    return IdentityNetRecognizer()
