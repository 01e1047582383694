"""anonymizer: privacy-first face anonymization.

    >>> from anonymizer import detect_faces, anonymize_image
    >>> result = anonymize_image("photo.jpg", method="pixelate")  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import anonymize_image, detect_faces
from .errors import (
    AnonymizerError,
    InputError,
    MediaError,
    VaultError,
    VaultIntegrityError,
    WeightsError,
    WrongKeyError,
)
from .types import AnonymizedImage, Detections, Face, Region

__all__ = [
    "AnonymizedImage",
    "AnonymizerError",
    "Detections",
    "Face",
    "InputError",
    "MediaError",
    "Region",
    "VaultError",
    "VaultIntegrityError",
    "WeightsError",
    "WrongKeyError",
    "__version__",
    "anonymize_image",
    "detect_faces",
]
