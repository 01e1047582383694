"""Image reading and writing: EXIF orientation, metadata policy, size limits, atomic writes."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from ..errors import InputError, MediaError
from .files import write_atomic

log = logging.getLogger(__name__)

#: Refuse images with more pixels than this (a decompression bomb guard; 179 MP, 16k x 11k fits): Pillow's
#: own refusal (2 x its MAX_IMAGE_PIXELS), which Image.open applies before we see the size
MAX_PIXELS = 178_956_970

#: File formats we write, by Pillow format name -> file extension.
FORMATS: dict[str, str] = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp"})
_FORMAT_ALIASES = {
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "jpe": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "tif": "TIFF",
    "tiff": "TIFF",
    "bmp": "BMP",
}
_EXIF_ORIENTATION = 0x0112


@dataclass(eq=False)
class LoadedImage:
    """An upright RGB image and what came with it.

    rgb: uint8 (H, W, 3), EXIF orientation applied. alpha: uint8 (H, W) or None.
    format: Pillow format name of the source ("JPEG", "PNG", ...), or None for in-memory images.
    icc_profile: the colour profile, kept on output. exif/xmp/comment/text: metadata, written
    out only with ``keep_metadata``.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    path: Path | None = None
    format: str | None = None
    icc_profile: bytes | None = None
    exif: Image.Exif | None = None
    xmp: bytes | None = None
    comment: bytes | None = None
    text: dict[str, str] = field(default_factory=dict)
    #: the file's bytes as read (None for in-memory images): a vault may seal them whole
    data: bytes | None = field(default=None, repr=False)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def normalize_format(name: str) -> str:
    """'jpg' / 'JPEG' / '.png' -> Pillow format name; InputError for anything we do not write."""
    key = name.lower().lstrip(".")
    if key not in _FORMAT_ALIASES:
        raise InputError(f"unsupported output format {name!r}; expected one of jpeg, png, webp, tiff, bmp")
    return _FORMAT_ALIASES[key]


def _from_pil(im: Image.Image, path: Path | None) -> LoadedImage:
    frames = int(getattr(im, "n_frames", 1))
    # MPO (most phone JPEGs) carries a reduced preview as its second frame: the first frame is the photo,
    # and only pixels of the first frame are ever written out.
    if frames > 1 and im.format != "MPO":
        # Only the first frame would be anonymized and the others would leak: refuse.
        raise InputError(f"{im.format} has {frames} frames; multi-frame images are not supported", path=path)
    info = dict(im.info)
    try:
        exif = im.getexif()
    except Exception:  # a broken EXIF block must not stop anonymization; it is never copied
        exif = None
    im = ImageOps.exif_transpose(im) or im
    alpha = None
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in info):
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba)[:, :, 3].copy()
        im = rgba.convert("RGB")
    elif im.mode != "RGB":
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            im = Image.fromarray(np.clip(arr / max(arr.max(), 1) * 255, 0, 255).astype(np.uint8)).convert("RGB")
        else:
            im = im.convert("RGB")
    text = {str(k): v for k, v in info.items() if isinstance(v, str) and k != "xmp"}
    xmp = info.get("xmp")
    return LoadedImage(
        rgb=np.array(im, dtype=np.uint8),  # a writable copy
        alpha=alpha,
        path=path,
        icc_profile=info.get("icc_profile"),
        exif=exif if exif else None,
        xmp=xmp.encode() if isinstance(xmp, str) else xmp,
        comment=info.get("comment"),
        text=text,
    )


def is_image_file(path: str | Path) -> bool:
    """Whether Pillow recognises ``path``'s content as an image (only its header is read)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path):
                return True
    except Image.DecompressionBombError:
        return True  # an image, too large: load_image says so
    except (OSError, ValueError, SyntaxError, EOFError):
        return False


def load_image(src: str | Path | Image.Image | np.ndarray, *, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Read ``src`` (a path, a PIL image, or an RGB/RGBA/grey uint8 array) as an upright RGB image.

    Raises InputError naming the file for a missing, empty, truncated, non-image, multi-frame or
    oversized (decompression bomb) input.
    """
    if isinstance(src, np.ndarray):
        return _from_array(src)
    if isinstance(src, Image.Image):
        im = src
        im.load()
        loaded = _from_pil(im, None)
        loaded.format = im.format
        return loaded
    path = Path(src)
    if not path.exists():
        raise InputError("no such file", path=path)
    if not path.is_file():
        raise InputError("not a regular file", path=path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from exc
    if not data:
        raise InputError("empty file (0 bytes); expected an image", path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # e.g. "Corrupt EXIF data": metadata is dropped (or re-parsed) on output anyway
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise InputError(
                        f"image is {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels:,} "
                        "(possible decompression bomb)",
                        path=path,
                    )
                fmt = im.format
                im.load()
                loaded = _from_pil(im, path)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"image too large: above the limit of {MAX_PIXELS:,} pixels (possible decompression bomb)", path=path
        ) from exc
    except UnidentifiedImageError:
        raise InputError("not an image Pillow can read (expected JPEG, PNG, WebP, TIFF, BMP, ...)", path=path) from None
    except (OSError, SyntaxError, ValueError, TypeError, EOFError, IndexError, KeyError) as exc:
        # Pillow's decoders signal damaged files with all of these
        raise InputError(f"truncated or corrupt image ({type(exc).__name__}: {exc})", path=path) from exc
    loaded.format, loaded.data = fmt, data
    return loaded


def _from_array(arr: np.ndarray) -> LoadedImage:
    if arr.dtype != np.uint8:
        raise InputError(f"image array must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"image array must be (H, W, 3) RGB or (H, W, 4) RGBA, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"image array is empty, shape {arr.shape}")
    alpha = arr[:, :, 3].copy() if arr.shape[2] == 4 else None
    return LoadedImage(rgb=np.array(arr[:, :, :3], order="C"), alpha=alpha)  # a copy, like the other inputs


_EXIF_IFD = 0x8769
_MAKER_NOTE = 0x927C


#: what ``keep_metadata`` still leaves out unless asked for by name (``keep_private``): where the photo
#: was taken, which camera and lens (their serial numbers tie photos to one owner), and who owns or took it
PRIVATE_METADATA = {
    "gps": "GPS position",
    "serials": "camera and lens serial numbers",
    "owner": "owner and author names",
}
_GPS_IFD = 0x8825
#: EXIF tags by kind: IFD0 (CameraSerialNumber, Artist, XPAuthor) and the Exif IFD (BodySerialNumber,
#: LensSerialNumber, CameraOwnerName)
_PRIVATE_TAGS = {"serials": ((0xC62F,), (0xA431, 0xA435)), "owner": ((0x013B, 0x9C9D), (0xA430,))}
#: XMP property names by kind: XMP is kept whole or not at all, so one of these drops it
_PRIVATE_XMP = {
    "gps": (
        b"GPS",
        b"photoshop:City",
        b"photoshop:State",
        b"photoshop:Country",
        b"Iptc4xmpCore:Location",
        b"LocationCreated",
        b"LocationShown",
    ),
    "serials": (b"SerialNumber",),
    "owner": (b"OwnerName", b"dc:creator", b"tiff:Artist"),
}
#: PNG text keys by kind
_PRIVATE_TEXT = {"owner": ("Author", "Artist")}


def _exif_for_output(exif: Image.Exif, keep_private: Collection[str] = ()) -> bytes:
    """EXIF to keep with ``keep_metadata``: upright orientation, never an embedded image, and none of the
    :data:`PRIVATE_METADATA` kinds but those in ``keep_private``.

    The thumbnail (IFD1) is an un-anonymized copy of the photo: Pillow's ``tobytes()`` writes IFD0 and
    its sub-IFDs only, never IFD1 (a test checks the thumbnail's bytes are gone). MakerNote is dropped
    too: camera makers store preview JPEGs (and serial numbers) in it.
    """
    out = Image.Exif()
    out.load(exif.tobytes())
    out[_EXIF_ORIENTATION] = 1  # the pixels are upright now
    sub = out.get_ifd(_EXIF_IFD)
    sub.pop(_MAKER_NOTE, None)
    if "gps" not in keep_private:
        out.pop(_GPS_IFD, None)
    for kind, (top, inner) in _PRIVATE_TAGS.items():
        if kind not in keep_private:
            for tag in top:
                out.pop(tag, None)
            for tag in inner:
                sub.pop(tag, None)
    return out.tobytes()


def private_metadata(image: LoadedImage) -> dict[str, list[str]]:
    """The :data:`PRIVATE_METADATA` kinds ``image`` carries, each with where (EXIF, XMP, PNG text)."""
    found: dict[str, list[str]] = {}
    if image.exif is not None:
        sub = image.exif.get_ifd(_EXIF_IFD)
        if image.exif.get_ifd(_GPS_IFD):
            found.setdefault("gps", []).append("EXIF")
        for kind, (top, inner) in _PRIVATE_TAGS.items():
            if any(t in image.exif for t in top) or any(t in sub for t in inner):
                found.setdefault(kind, []).append("EXIF")
    for kind, names in _PRIVATE_XMP.items():
        if image.xmp and any(n in image.xmp for n in names):
            found.setdefault(kind, []).append("XMP")
    for kind, keys in _PRIVATE_TEXT.items():
        if any(k in image.text for k in keys):
            found.setdefault(kind, []).append("PNG text")
    return found


def _xmp_allowed(image: LoadedImage, keep_private: Collection[str]) -> bool:
    return all(kind in keep_private or "XMP" not in where for kind, where in private_metadata(image).items())


def _metadata_for_output(src: LoadedImage, fmt: str, keep_private: Collection[str]) -> dict[str, object]:
    """Pillow save arguments carrying ``src``'s metadata (see :func:`encode_image`)."""
    kw: dict[str, object] = {}
    if src.exif is not None:
        kw["exif"] = _exif_for_output(src.exif, keep_private)
    if src.xmp and fmt in ("JPEG", "PNG", "WEBP", "TIFF") and _xmp_allowed(src, keep_private):
        kw["xmp"] = src.xmp
    if src.comment and fmt == "JPEG":
        kw["comment"] = src.comment
    dropped = {k for kind, keys in _PRIVATE_TEXT.items() if kind not in keep_private for k in keys}
    if src.text and fmt == "PNG":
        info = PngInfo()
        for k, v in src.text.items():
            if k not in dropped:
                info.add_text(k, v)
        kw["pnginfo"] = info
    return kw


def encode_image(
    image: LoadedImage | np.ndarray,
    *,
    format: str,
    keep_metadata: bool = False,
    keep_private: Collection[str] = (),
    quality: int = 95,
    alpha: np.ndarray | None = None,
) -> bytes:
    """Encode an RGB uint8 array (with the source's colour profile and, if asked, its metadata).

    Metadata is stripped by default (EXIF with GPS, XMP, IPTC, comments, text chunks); the ICC
    profile is kept. ``keep_metadata`` copies EXIF (never its thumbnail, orientation reset), XMP,
    comments and PNG text, but not the :data:`PRIVATE_METADATA` kinds (GPS, serial numbers, owner
    names) except those named in ``keep_private``: their EXIF tags and PNG text keys are dropped, and
    an XMP packet holding any of them is dropped whole. JPEG is written at ``quality`` with 4:4:4
    chroma, PNG losslessly.
    """
    fmt = normalize_format(format)
    src = image if isinstance(image, LoadedImage) else None
    rgb = image.rgb if isinstance(image, LoadedImage) else image
    if alpha is None and src is not None:
        alpha = src.alpha
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"expected an RGB uint8 (H, W, 3) array, got {rgb.dtype} {rgb.shape}")
    im = Image.fromarray(rgb, "RGB")
    if alpha is not None and fmt in ("PNG", "WEBP", "TIFF"):
        im.putalpha(Image.fromarray(alpha, "L"))
    kw: dict[str, object] = {}
    if src is not None and src.icc_profile:
        kw["icc_profile"] = src.icc_profile
    if fmt == "JPEG":
        kw.update(quality=quality, subsampling=0, optimize=True)
    elif fmt == "PNG":
        kw.update(optimize=False, compress_level=6)
    elif fmt == "WEBP":
        kw.update(lossless=True, quality=100, method=4)
    if keep_metadata and src is not None:
        kw.update(_metadata_for_output(src, fmt, keep_private))
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt, **kw)
    except (OSError, ValueError) as exc:
        raise MediaError(f"cannot encode {fmt}: {exc}") from exc
    return buf.getvalue()


def save_image(
    image: LoadedImage | np.ndarray,
    path: str | Path,
    *,
    format: str | None = None,
    keep_metadata: bool = False,
    quality: int = 95,
) -> Path:
    """Encode and write atomically. ``format`` defaults to the one named by ``path``'s extension."""
    path = Path(path)
    fmt = normalize_format(format or path.suffix or "png")
    write_atomic(path, encode_image(image, format=fmt, keep_metadata=keep_metadata, quality=quality))
    return path
