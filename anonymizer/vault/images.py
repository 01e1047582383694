"""Reversible photos: seal the original pixels of every covered region, and put them back."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InputError, VaultError, VaultIntegrityError
from ..media.image import LoadedImage, load_image
from ..types import Region
from .containers import SIDECAR_SUFFIX, container_of, embed, extract
from .format import Record, open_vault, seal
from .keys import Identity, Key

VAULT_MODES = ("embed", "sidecar")


@dataclass(frozen=True, eq=False)
class RestoredImage:
    """image: RGB uint8 (H, W, 3) with every sealed region put back; alpha: (H, W) or None;
    regions: how many regions were restored; source: the loaded anonymized file (colour profile)."""

    image: np.ndarray
    alpha: np.ndarray | None
    regions: int
    info: dict[str, Any]
    source: LoadedImage


def _png(crop: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(crop, "RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def seal_regions(
    encoded: bytes,
    regions: Sequence[Region],
    originals: Sequence[np.ndarray],
    key: Key,
    *,
    width: int,
    height: int,
    mode: str = "embed",
    mask: dict[str, float] | None = None,
    original: bytes | None = None,
) -> tuple[bytes, bytes | None]:
    """Seal ``originals`` (the original pixels of each region's box, RGB uint8) for ``key``.

    ``encoded`` is the anonymized image file; the vault records its SHA-256 so that a modified image is
    detected on restore. ``original``, the bytes of the file the image was read from, is sealed instead
    of the regions when it is smaller (a JPEG usually is than its faces as PNG); restoring then gives
    the whole original image. Returns (file bytes, sidecar bytes or None): with ``mode="embed"`` the
    vault is inside the file (PNG, JPEG, WebP), else it is returned for a sidecar ``OUTPUT.vault``.
    """
    if mode not in VAULT_MODES:
        raise InputError(f"vault mode must be one of {VAULT_MODES}, got {mode!r}")
    if len(regions) != len(originals):
        raise InputError(f"{len(regions)} regions but {len(originals)} original crops")
    container = mode if mode == "sidecar" or container_of(encoded) else "sidecar"
    info = {
        "kind": "image",
        "width": width,
        "height": height,
        "image_sha256": hashlib.sha256(encoded).hexdigest(),
        "container": "embedded" if container == "embed" else "sidecar",
    }
    records = []
    for i, (region, crop) in enumerate(zip(regions, originals, strict=True)):
        x1, y1, x2, y2 = region.box
        if crop.shape != (y2 - y1, x2 - x1, 3) or crop.dtype != np.uint8:
            raise InputError(f"region {i}: crop {crop.shape} {crop.dtype} does not match its box {region.box}")
        meta = {
            "region": i,
            "frame": 0,
            "box": [int(v) for v in region.box],
            "face_box": [round(float(v), 3) for v in region.face.box],
            "shape": region.shape,
            **({"kind": region.kind} if region.kind != "face" else {}),
            "codec": "png",
            **({"mask": mask} if mask else {}),
        }
        records.append(Record(meta=meta, payload=_png(np.ascontiguousarray(crop))))
    if original is not None and len(original) < sum(len(r.payload) for r in records):
        records = [Record(meta={"codec": "file", "frame": 0, "regions": len(records)}, payload=original)]
    blob = seal(records, key, info=info)
    if container == "embed":
        return embed(encoded, blob), None
    return encoded, blob


def decode_crop(rec: Record, size: tuple[int, int]) -> np.ndarray:
    """A sealed region's pixels, RGB uint8 of ``size`` = (w, h). Only PNG is accepted, and its declared
    size is checked before decoding: a vault made with a public key is not trusted input."""
    if rec.meta.get("codec") != "png":
        raise VaultIntegrityError(f"sealed region has codec {rec.meta.get('codec')!r}; expected 'png'")
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(rec.payload), formats=["PNG"]) as im:
                if im.size != size:
                    raise VaultIntegrityError(f"sealed region is {im.size}, its box is {size}")
                crop = np.asarray(im.convert("RGB"))
    except VaultIntegrityError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise VaultIntegrityError(f"sealed region cannot be decoded: {exc}") from None
    return crop


def _restore_original(rec: Record, anonymized: LoadedImage, info: dict[str, Any]) -> RestoredImage:
    """The whole original file sealed in place of its regions, decoded as it was when anonymized."""
    original = _decode_checked(rec.payload, (anonymized.width, anonymized.height), "sealed original")
    regions = rec.meta.get("regions")
    return RestoredImage(
        image=original.rgb,
        alpha=original.alpha,
        regions=regions if isinstance(regions, int) else 0,
        info=info,
        source=original,
    )


def _decode_checked(data: bytes, size: tuple[Any, Any], what: str) -> LoadedImage:
    """Decode ``data`` (upright) if it is ``size`` = (w, h), checked before decoding, else
    VaultIntegrityError: a vault made with a public key is not trusted input, nor is a file's header."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.size not in (size, size[::-1]):  # EXIF orientation may turn it upright
                    raise VaultIntegrityError(
                        f"integrity check failed: the {what} is {im.size[0]}x{im.size[1]}, "
                        f"the vault's image {size[0]}x{size[1]}"
                    )
                loaded = load_image(im)
    except VaultIntegrityError:
        raise
    except (
        InputError,
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise VaultIntegrityError(f"the {what} cannot be decoded: {exc}") from None
    if (loaded.width, loaded.height) != size:
        raise VaultIntegrityError(f"integrity check failed: the {what}'s size differs from the vault's")
    return loaded


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def restore_bytes(
    data: bytes, key: Key | Identity, *, sidecar: bytes | None = None, name: str = "image"
) -> RestoredImage:
    """Open the vault carried by ``data`` (or ``sidecar``) and put the original regions back.

    Raises WrongKeyError ("wrong password or key"), VaultIntegrityError ("integrity check failed") or
    VaultError (no vault). Nothing is decoded before the vault and the image are authenticated.
    """
    vault, base = extract(data)
    if vault is None:
        vault = sidecar
    if vault is None:
        raise VaultError(
            f"no vault found in {name} or beside it ({name}{SIDECAR_SUFFIX}); was it anonymized with a key?"
        )
    info, records = open_vault(vault, key)
    if info.get("kind") != "image":
        raise VaultError(f"this vault holds a {info.get('kind')!r}, not an image")
    if hashlib.sha256(base).hexdigest() != info.get("image_sha256"):
        raise VaultIntegrityError("integrity check failed: the image does not match its vault (modified or replaced)")
    loaded = _decode_checked(base, (info.get("width"), info.get("height")), "image")
    if len(records) == 1 and records[0].meta.get("codec") == "file":
        return _restore_original(records[0], loaded, info)
    out = loaded.rgb.copy()
    for rec in records:
        box = rec.meta.get("box")
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box)):
            raise VaultIntegrityError("malformed region geometry in vault")
        x1, y1, x2, y2 = box
        if not (0 <= x1 < x2 <= loaded.width and 0 <= y1 < y2 <= loaded.height):
            raise VaultIntegrityError(f"region box {box} lies outside the {loaded.width}x{loaded.height} image")
        out[y1:y2, x1:x2] = decode_crop(rec, (x2 - x1, y2 - y1))
    return RestoredImage(image=out, alpha=loaded.alpha, regions=len(records), info=info, source=loaded)


def restore_file(path: str | Path, key: Key | Identity) -> RestoredImage:
    """Restore an anonymized file; a sidecar ``PATH.vault`` is used when the file carries no vault."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from exc
    side = sidecar_path(path)
    try:
        sidecar = side.read_bytes() if side.is_file() else None
    except OSError as exc:
        raise InputError(f"cannot read the sidecar vault: {exc.strerror or exc}", path=side) from exc
    try:
        return restore_bytes(data, key, sidecar=sidecar, name=path.name)
    except VaultError as exc:
        raise type(exc)(exc.reason, path=path) from None
