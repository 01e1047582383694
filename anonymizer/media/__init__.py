"""Media reading and writing."""

from __future__ import annotations

from .files import write_atomic
from .image import IMAGE_SUFFIXES, LoadedImage, encode_image, load_image, save_image

__all__ = ["IMAGE_SUFFIXES", "LoadedImage", "encode_image", "load_image", "save_image", "write_atomic"]
