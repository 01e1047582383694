"""What an image file says besides its pixels: metadata that can identify a person, a place or a device.

:func:`metadata_leaks` reads a file (never modifies it) and returns one :class:`Leak` per finding:
GPS position, embedded thumbnail (an un-anonymized copy of the photo), XMP, comments and text chunks,
IPTC, and EXIF fields that name people or devices (owner, artist, serial numbers, maker notes). The
colour profile and the orientation are not leaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image

from ..errors import InputError

_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
#: EXIF tags that identify a person or a device (IFD0 or the Exif sub-IFD).
_IDENTIFYING = {
    0x013B: "Artist",
    0x8298: "Copyright",
    0x010E: "ImageDescription",
    0x9286: "UserComment",
    0xA430: "CameraOwnerName",
    0xA431: "BodySerialNumber",
    0xA435: "LensSerialNumber",
    0xC62F: "CameraSerialNumber",
    0x927C: "MakerNote",
    0x9C9B: "XPTitle",
    0x9C9C: "XPComment",
    0x9C9D: "XPAuthor",
}
#: Text chunks our own encoder never writes but harmless tools do; not personal.
_HARMLESS_TEXT = {
    "Software",
    "dpi",
    "gamma",
    "jfif",
    "jfif_version",
    "jfif_unit",
    "jfif_density",
    "progression",
    "progressive",
}


@dataclass(frozen=True)
class Leak:
    """kind: "gps", "thumbnail", "xmp", "comment", "text", "iptc", "exif"; detail: what was found."""

    kind: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


def metadata_leaks(path: str | Path) -> list[Leak]:
    """Identifying metadata in the image file ``path`` (empty list: none found)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            return _leaks(im)
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image metadata ({exc})", path=path) from None


def _leaks(im: Image.Image) -> list[Leak]:
    out: list[Leak] = []
    info = im.info
    try:
        exif = im.getexif()
    except Exception:  # a broken EXIF block is still a block: report it
        out.append(Leak("exif", "an EXIF block that cannot be parsed"))
        exif = None
    if exif:
        gps = exif.get_ifd(_GPS_IFD)
        if gps:
            where = _latlon(gps)
            out.append(Leak("gps", f"GPS position{' (' + where + ')' if where else ''}, {len(gps)} GPS tags"))
        found = [name for tag, name in _IDENTIFYING.items() if tag in exif and exif[tag]]
        sub = exif.get_ifd(_EXIF_IFD)
        found += [name for tag, name in _IDENTIFYING.items() if tag in sub and sub[tag] and name not in found]
        if found:
            out.append(Leak("exif", "EXIF names a person or device: " + ", ".join(found)))
        try:
            ifd1 = exif.get_ifd(ExifTags.IFD.IFD1)
        except (KeyError, ValueError, OSError):
            ifd1 = {}
        if ifd1 and (0x0201 in ifd1 or 0x0111 in ifd1):
            out.append(Leak("thumbnail", "an embedded EXIF thumbnail (a copy of the photo, not anonymized)"))
    frames = int(getattr(im, "n_frames", 1))
    if frames > 1 and im.format == "MPO":
        out.append(Leak("thumbnail", f"{frames - 1} extra image(s) in the MPO file (previews, not anonymized)"))
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if xmp:
        out.append(Leak("xmp", f"XMP packet of {len(xmp)} bytes"))
    if info.get("comment"):
        out.append(Leak("comment", f"comment: {_short(info['comment'])}"))
    if "photoshop" in info or "iptc" in info:
        out.append(Leak("iptc", "IPTC / Photoshop resource block"))
    text = getattr(im, "text", None) or {}
    for k, v in text.items():
        if k not in _HARMLESS_TEXT and not k.startswith("XML:com.adobe.xmp"):
            out.append(Leak("text", f"text chunk {k!r}: {_short(v)}"))
    return out


def _short(v: object, n: int = 60) -> str:
    s = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    s = " ".join(s.split())
    return repr(s if len(s) <= n else s[: n - 1] + "…")


def _latlon(gps: dict) -> str:
    def deg(tag: int, ref_tag: int, name: str) -> str:
        try:
            d, m, sec = (float(x) for x in gps[tag])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return ""
        sign = -1 if gps.get(ref_tag) in ("S", "W") else 1
        return f"{name} {sign * (d + m / 60 + sec / 3600):.4f}"

    parts = [
        deg(ExifTags.GPS.GPSLatitude, ExifTags.GPS.GPSLatitudeRef, "latitude"),
        deg(ExifTags.GPS.GPSLongitude, ExifTags.GPS.GPSLongitudeRef, "longitude"),
    ]
    return ", ".join(p for p in parts if p)
