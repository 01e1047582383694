"""One photo end to end: persons, faces and plates found, covered or replaced, and the result
(:class:`AnonymizedImage`) encoded with its originals sealed when a key is given."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..defaults import DEFAULT_METHOD
from ..media.files import write_atomic
from ..media.image import LoadedImage, encode_image
from ..types import Face, Region
from ..vault.images import seal_regions, sidecar_path
from ..vault.keys import Key, surrogate_seed_for
from ..vault.surrogate import SurrogateSeed
from .models import get_finder, get_painter, get_plate_finder, get_segmenter
from .options import check_method, parse_targets
from .persons import cover_persons
from .photo import DEFAULT_FEATHER, DEFAULT_MASK_SCALE, DEFAULT_THRESHOLD, DEFAULT_UPSCALE, cover_faces
from .plates import cover_plates


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


def anonymize_loaded(
    img: LoadedImage,
    *,
    method: str = DEFAULT_METHOD,
    shape: str = "ellipse",
    mask_scale: float = DEFAULT_MASK_SCALE,
    feather: float = DEFAULT_FEATHER,
    threshold: float = DEFAULT_THRESHOLD,
    upscale: float = DEFAULT_UPSCALE,
    color: tuple[int, int, int] = (0, 0, 0),
    model: str = "centerface",
    key: Key | None = None,
    targets: str | tuple[str, ...] = ("face",),
    surrogate_seed: SurrogateSeed | None = None,
) -> AnonymizedImage:
    """:func:`anonymizer.api.anonymize_image` of an image already loaded (see there)."""
    wanted = parse_targets(targets)
    check_method(method, wanted)
    out, mask = img.rgb, np.zeros(img.rgb.shape[:2], bool)
    regions: tuple[Region, ...] = ()
    extra: dict[str, object] = {}
    if "person" in wanted:
        persons = get_segmenter().segment(img.rgb)
        out, regions, mask = cover_persons(img.rgb, persons, method=method, color=color)
        extra["persons"] = [p.to_dict() for p in persons]
    faces: tuple[Face, ...] = ()
    if "face" in wanted:
        faces = get_finder(model, threshold, upscale).find(img.rgb)
        if method == "surrogate":
            seed = surrogate_seed_for(key, surrogate_seed)
            out, face_regions, face_mask = get_painter().paint(out, faces, seed.for_context(img.rgb.tobytes()))
        else:
            out, face_regions, face_mask = cover_faces(
                out, faces, method=method, shape=shape, mask_scale=mask_scale, feather=feather, color=color
            )
        regions, mask = (*regions, *face_regions), mask | face_mask
    if "plate" in wanted:  # a box of the method; surrogates are for faces, so plates are covered solid
        plates = get_plate_finder().find(img.rgb)
        cover = "solid" if method == "surrogate" else method
        out, plate_regions, plate_mask = cover_plates(out, plates, method=cover, color=color)
        regions, mask = (*regions, *plate_regions), mask | plate_mask
        extra["plates"] = [p.to_dict() for p in plates]
    originals: tuple[np.ndarray, ...] = ()
    if key is not None:
        # every crop from the untouched original, so restoring them in any order gives the original back
        originals = tuple(img.rgb[r.box[1] : r.box[3], r.box[0] : r.box[2]].copy() for r in regions)
    return AnonymizedImage(
        image=out,
        faces=faces,
        regions=regions,
        mask=mask,
        method=method,
        source=img.path,
        originals=originals,
        key=key,
        loaded=img,
        extra=extra,
    )
