"""Contact sheets: each input beside its output, so a person can check a batch at a glance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .files import write_private
from .image import encode_image, load_image


def contact_sheet(
    rows: Sequence[tuple[Path, Path, str]],
    dest: str | Path,
    *,
    thumb: int = 320,
    pad: int = 8,
    label_height: int = 18,
) -> Path:
    """Write a PNG with one row per (input, output, caption): input thumbnail, output thumbnail, caption.

    The sheet shows the original faces: it is for the person checking a batch, never for release.

    Files that cannot be read are shown as a grey box. Returns ``dest``.
    """
    width = pad * 3 + thumb * 2
    head = label_height + pad
    height = head + pad + len(rows) * (thumb + label_height + pad)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.rectangle((0, 0, width, head), fill=(190, 0, 0))
    draw.text((pad, pad // 2 + 2), "FOR REVIEW ONLY - the left column shows the ORIGINAL faces", fill=(255, 255, 255))
    for i, (src, out, caption) in enumerate(rows):
        top = head + pad + i * (thumb + label_height + pad)
        draw.text((pad, top), caption[:100], fill=(0, 0, 0))
        for j, path in enumerate((src, out)):
            try:
                im = Image.fromarray(load_image(path).rgb)
            except Exception:  # a sheet is a convenience: an unreadable file becomes a grey box
                im = Image.new("RGB", (thumb, thumb), (200, 200, 200))
            im.thumbnail((thumb, thumb))
            left = pad + j * (thumb + pad) + (thumb - im.width) // 2
            sheet.paste(im, (left, top + label_height + (thumb - im.height) // 2))
    dest = Path(dest)
    write_private(dest, encode_image(np.asarray(sheet), format="png"))  # it shows the original faces
    return dest
