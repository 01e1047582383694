"""Carrying a vault inside an image file (PNG chunk, JPEG APP15 segments, WebP chunk) or beside it.

``embed(image_bytes, vault)`` inserts the vault; ``extract(file_bytes)`` returns (vault or None, the image
bytes with the vault removed). ``extract(embed(b, v)) == (v, b)`` exactly, so a vault can authenticate
the image it came with (its header holds the SHA-256 of those bytes).
"""

from __future__ import annotations

import struct
import zlib

from ..errors import VaultError, VaultIntegrityError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: ancillary, private, reserved-bit clear, not safe to copy (an editor that changes the image drops it)
PNG_CHUNK = b"anVT"
JPEG_MARKER = 0xEF  # APP15
JPEG_ID = b"ANONYMIZER-VAULT\x00"
JPEG_MAX_SEGMENT = 65533 - len(JPEG_ID) - 4  # payload per segment after id, index, count
WEBP_CHUNK = b"ANVT"
SIDECAR_SUFFIX = ".vault"


def container_of(data: bytes) -> str | None:
    """'png', 'jpeg', 'webp' for formats that can carry a vault; None otherwise."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def embed(image: bytes, vault: bytes) -> bytes:
    kind = container_of(image)
    if kind == "png":
        return _png_embed(image, vault)
    if kind == "jpeg":
        return _jpeg_embed(image, vault)
    if kind == "webp":
        return _webp_embed(image, vault)
    raise VaultError("this image format cannot carry a vault; use a sidecar .vault file")


def extract(data: bytes) -> tuple[bytes | None, bytes]:
    """(vault or None, the image without it). Only the layout :func:`embed` writes is accepted (the
    chunk just before IEND, the segments in order after the leading APPn ones, the chunk last): a vault
    moved or re-split elsewhere in the file is refused, so that every byte of the file is checked."""
    kind = container_of(data)
    if kind is None:
        return None, data
    vault, base = {"png": _png_extract, "jpeg": _jpeg_extract, "webp": _webp_extract}[kind](data)
    if vault is not None and embed(base, vault) != data:
        raise VaultIntegrityError("integrity check failed: the vault is not where the anonymizer puts it in the file")
    return vault, base


# PNG ------------------------------------------------------------------------------------------------


def _png_chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, total length) of every chunk; VaultIntegrityError when the structure is broken."""
    out = []
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise VaultIntegrityError("truncated PNG file")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        total = 12 + length
        if pos + total > len(data):
            raise VaultIntegrityError("truncated PNG file")
        out.append((pos, ctype, total))
        pos += total
        if ctype == b"IEND":
            break
    return out


def _png_embed(image: bytes, vault: bytes) -> bytes:
    chunks = _png_chunks(image)
    iend = next((c for c in chunks if c[1] == b"IEND"), None)
    if iend is None:
        raise VaultError("PNG without IEND")
    body = PNG_CHUNK + vault
    chunk = struct.pack(">I", len(vault)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return image[: iend[0]] + chunk + image[iend[0] :]


def _png_extract(data: bytes) -> tuple[bytes | None, bytes]:
    found = [c for c in _png_chunks(data) if c[1] == PNG_CHUNK]
    if not found:
        return None, data
    if len(found) > 1:
        raise VaultIntegrityError("integrity check failed: more than one vault chunk in the PNG")
    pos, _, total = found[0]
    vault = data[pos + 8 : pos + total - 4]
    (crc,) = struct.unpack(">I", data[pos + total - 4 : pos + total])
    if crc != zlib.crc32(data[pos + 4 : pos + total - 4]) & 0xFFFFFFFF:
        raise VaultIntegrityError("integrity check failed: the vault chunk's CRC does not match")
    return vault, data[:pos] + data[pos + total :]


# JPEG -----------------------------------------------------------------------------------------------


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, marker, total length) of the marker segments before the first SOS."""
    out = []
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise VaultIntegrityError("malformed JPEG: expected a marker")
        if data[pos + 1] == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        if marker in (0x01, *range(0xD0, 0xD8)):
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            raise VaultIntegrityError("malformed JPEG: truncated segment")
        out.append((pos, marker, 2 + length))
        pos += 2 + length
    return out


def _jpeg_embed(image: bytes, vault: bytes) -> bytes:
    segs = _jpeg_segments(image)
    insert = 2
    for pos, marker, total in segs:  # after the leading APPn segments (JFIF/EXIF stay first)
        if 0xE0 <= marker <= 0xEF:
            insert = pos + total
        else:
            break
    parts = [vault[o : o + JPEG_MAX_SEGMENT] for o in range(0, len(vault), JPEG_MAX_SEGMENT)] or [b""]
    if len(parts) > 0xFFFF:
        raise VaultError("vault too large for JPEG segments; use a sidecar .vault file")
    segments = b"".join(
        b"\xff"
        + bytes([JPEG_MARKER])
        + struct.pack(">H", 2 + len(JPEG_ID) + 4 + len(p))
        + JPEG_ID
        + struct.pack(">HH", i, len(parts))
        + p
        for i, p in enumerate(parts)
    )
    return image[:insert] + segments + image[insert:]


def _jpeg_extract(data: bytes) -> tuple[bytes | None, bytes]:
    ours = [
        (pos, total)
        for pos, marker, total in _jpeg_segments(data)
        if marker == JPEG_MARKER and data[pos + 4 : pos + 4 + len(JPEG_ID)] == JPEG_ID
    ]
    if any(total < 4 + len(JPEG_ID) + 4 for _, total in ours):
        raise VaultIntegrityError("integrity check failed: a vault segment in the JPEG is too short")
    if not ours:
        return None, data
    pieces: dict[int, bytes] = {}
    count = None
    for pos, total in ours:
        head = pos + 4 + len(JPEG_ID)
        index, n = struct.unpack(">HH", data[head : head + 4])
        if count is None:
            count = n
        if n != count or index >= n or index in pieces:
            raise VaultIntegrityError("integrity check failed: inconsistent vault segments in the JPEG")
        pieces[index] = data[head + 4 : pos + total]
    if count != len(pieces):
        raise VaultIntegrityError(f"integrity check failed: {len(pieces)} of {count} vault segments in the JPEG")
    base = bytearray()
    last = 0
    for pos, total in ours:
        base += data[last:pos]
        last = pos + total
    base += data[last:]
    return b"".join(pieces[i] for i in range(len(pieces))), bytes(base)


# WebP -----------------------------------------------------------------------------------------------


def _webp_chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    if len(data) < 12:
        raise VaultIntegrityError("truncated WebP file")
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size != len(data) - 8:
        raise VaultIntegrityError("integrity check failed: the WebP RIFF size does not match the file")
    end = len(data)
    out = []
    pos = 12
    while pos + 8 <= end:
        ctype = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        total = 8 + size + (size & 1)
        if pos + total > end:
            raise VaultIntegrityError("truncated WebP file")
        out.append((pos, ctype, total))
        pos += total
    return out


def _webp_rewrap(body: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _webp_embed(image: bytes, vault: bytes) -> bytes:
    chunks = _webp_chunks(image)
    body = image[12:]
    added = not chunks or chunks[0][1] != b"VP8X"
    if added:
        # Simple format: unknown chunks need the extended (VP8X) header, which gives the canvas size.
        body = _vp8x_for(image) + body
    # first byte of our chunk: 1 when we added the VP8X header, so that extract() can undo exactly that
    payload = bytes([1 if added else 0]) + vault
    pad = b"\x00" if len(payload) & 1 else b""
    body = body + WEBP_CHUNK + struct.pack("<I", len(payload)) + payload + pad
    return _webp_rewrap(body)


def _webp_extract(data: bytes) -> tuple[bytes | None, bytes]:
    chunks = _webp_chunks(data)
    ours = [c for c in chunks if c[1] == WEBP_CHUNK]
    if not ours:
        return None, data
    if len(ours) > 1:
        raise VaultIntegrityError("integrity check failed: more than one vault chunk in the WebP")
    pos, _, total = ours[0]
    (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
    if size < 1 or pos + total > len(data) or data[pos + 8] not in (0, 1):
        raise VaultIntegrityError("integrity check failed: malformed vault chunk in the WebP")
    added = data[pos + 8] == 1
    if size & 1 and data[pos + 8 + size] != 0:
        raise VaultIntegrityError("integrity check failed: the vault chunk's padding was modified")
    vault = data[pos + 9 : pos + 8 + size]
    body = data[12:pos] + data[pos + total :]
    if added:
        rest = _webp_rewrap(body[18:])
        if body[:18] != _vp8x_for(rest):  # the header we added must be exactly the one we would add
            raise VaultIntegrityError("integrity check failed: the WebP extended header was modified")
        body = body[18:]
    return vault, _webp_rewrap(body)


def _vp8x_for(image: bytes) -> bytes:
    """The VP8X chunk our embed() adds to a simple-format WebP ``image``."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(image), formats=["WEBP"]) as im:
            w, h = im.size
            has_alpha = im.mode in ("RGBA", "LA")
    except (OSError, ValueError) as exc:
        raise VaultIntegrityError(f"integrity check failed: unreadable WebP ({exc})") from None
    flags = 0x10 if has_alpha else 0
    return (
        b"VP8X"
        + struct.pack("<I", 10)
        + bytes([flags, 0, 0, 0])
        + (w - 1).to_bytes(3, "little")
        + (h - 1).to_bytes(3, "little")
    )
