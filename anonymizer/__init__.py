"""anonymizer: privacy-first face anonymization.

>>> from anonymizer import detect_faces, anonymize_image
>>> result = anonymize_image("photo.jpg", method="pixelate")  # doctest: +SKIP
>>> key = Key.from_password("correct horse battery staple")  # doctest: +SKIP
>>> anonymize_image("photo.jpg", key=key).save("out.png")  # doctest: +SKIP
>>> restore_image("out.png", key).image  # the original pixels  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from .errors import (
    AnonymizerError,
    InputError,
    MediaError,
    VaultError,
    VaultIntegrityError,
    WeightsError,
    WrongKeyError,
)
from .types import Detections, Face, Plate, Region
from .vault import Identity, Key, RestoredImage, SurrogateSeed

if TYPE_CHECKING:
    from .api import (
        AnonymizedImage,
        anonymize_image,
        audit_image,
        deepfake_score,
        detect_faces,
        detect_plates,
        enhance,
        restore_image,
        segment_persons,
    )

_LAZY = {
    "AnonymizedImage",
    "anonymize_image",
    "audit_image",
    "deepfake_score",
    "detect_faces",
    "detect_plates",
    "enhance",
    "restore_image",
    "segment_persons",
}


def __getattr__(name: str) -> Any:
    # the API pulls in torch; importing it on first use keeps `anonymizer --help` fast
    if name in _LAZY:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'anonymizer' has no attribute {name!r}")


__all__ = [
    "AnonymizedImage",
    "AnonymizerError",
    "Detections",
    "Face",
    "Identity",
    "InputError",
    "Key",
    "MediaError",
    "Plate",
    "Region",
    "RestoredImage",
    "SurrogateSeed",
    "VaultError",
    "VaultIntegrityError",
    "WeightsError",
    "WrongKeyError",
    "__version__",
    "anonymize_image",
    "audit_image",
    "deepfake_score",
    "detect_faces",
    "detect_plates",
    "enhance",
    "restore_image",
    "segment_persons",
]
