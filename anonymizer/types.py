"""Frozen result types shared by the library, the CLI and the tests."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .media.image import LoadedImage
    from .vault.keys import Key

#: Landmark order used everywhere: the eye, then the other eye, nose tip, mouth corner, mouth corner.
#: "left"/"right" are as seen in the image: ``left_eye`` has the smaller x on an upright frontal face
#: (it is the subject's right eye).
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    """One detected face, in pixels of the upright image.

    box: (x1, y1, x2, y2), x2/y2 exclusive edges, floats.
    score: detector confidence in 0..1.
    landmarks: five (x, y) points in :data:`LANDMARK_NAMES` order.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...]

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def to_dict(self) -> dict[str, object]:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }


@dataclass(frozen=True)
class Region:
    """One anonymized region: the face (or person) it covers and the integer pixel box its mask spans.

    box: (x1, y1, x2, y2) integer pixels, clipped to the image, x2/y2 exclusive.
    shape: "ellipse" or "box" for faces; "mask" for a person's segmentation mask.
    kind: "face" or "person"; for a person, ``face`` holds the person's box and score (no landmarks).
    """

    face: Face
    box: tuple[int, int, int, int]
    shape: str
    kind: str = "face"


@dataclass(frozen=True)
class Detections:
    """Faces found in one image of ``width`` x ``height`` pixels (upright)."""

    width: int
    height: int
    faces: tuple[Face, ...] = ()
    path: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "faces": [f.to_dict() for f in self.faces],
        }


@dataclass(frozen=True, eq=False)
class AnonymizedImage:
    """The result of anonymizing one image.

    image: RGB uint8 array (H, W, 3), the anonymized upright image.
    faces: every face found; regions: what was covered; mask: bool (H, W), True where
    pixels may have changed (the union of region masks, feathered edges included).
    """

    image: np.ndarray
    faces: tuple[Face, ...]
    regions: tuple[Region, ...]
    mask: np.ndarray
    method: str
    source: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)
    #: with a key: the original pixels of each region's box, to be sealed when the image is encoded
    originals: tuple[np.ndarray, ...] = field(default=(), repr=False)
    key: Key | None = field(default=None, repr=False)
    loaded: LoadedImage | None = field(default=None, repr=False)

    def encode(
        self,
        format: str = "png",
        *,
        keep_metadata: bool = False,
        keep_private: Collection[str] = (),
        quality: int = 95,
        vault: str = "embed",
    ) -> tuple[bytes, bytes | None]:
        """(file bytes, sidecar vault bytes or None). Without a key no vault is written and the original
        pixels are gone; with one, they are sealed inside the file (``vault="embed"``, PNG/JPEG/WebP) or
        returned for a sidecar (``vault="sidecar"``, and for formats that cannot carry a vault).
        ``keep_metadata`` keeps the source's metadata but GPS, serial numbers and owner names, unless
        named in ``keep_private`` (see :func:`anonymizer.media.image.encode_image`)."""
        from .media.image import LoadedImage, encode_image

        src = self.loaded or LoadedImage(rgb=self.image)
        out = LoadedImage(
            rgb=self.image,
            alpha=src.alpha,
            path=src.path,
            format=src.format,
            icc_profile=src.icc_profile,
            exif=src.exif,
            xmp=src.xmp,
            comment=src.comment,
            text=src.text,
        )
        data = encode_image(out, format=format, keep_metadata=keep_metadata, keep_private=keep_private, quality=quality)
        if self.key is None:
            return data, None
        from .vault.images import seal_regions

        return seal_regions(
            data,
            self.regions,
            self.originals,
            self.key,
            width=int(self.image.shape[1]),
            height=int(self.image.shape[0]),
            mode=vault,
            original=src.data,
        )

    def save(
        self,
        path: str | Path,
        *,
        format: str | None = None,
        keep_metadata: bool = False,
        keep_private: Collection[str] = (),
        quality: int = 95,
        vault: str = "embed",
    ) -> Path:
        """Write atomically (format from ``path``'s extension unless given); a sidecar goes to ``PATH.vault``."""
        from .media.image import write_atomic
        from .vault.images import sidecar_path

        path = Path(path)
        data, side = self.encode(
            format or path.suffix or "png",
            keep_metadata=keep_metadata,
            keep_private=keep_private,
            quality=quality,
            vault=vault,
        )
        side_path = sidecar_path(path)
        if side is not None:
            write_atomic(side_path, side)
        elif side_path.is_file():
            side_path.unlink()  # a stale vault from an earlier run would no longer match this file
        write_atomic(path, data)
        return path
