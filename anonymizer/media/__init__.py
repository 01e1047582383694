"""Media reading and writing."""

from __future__ import annotations

from .image import IMAGE_SUFFIXES, LoadedImage, encode_image, load_image, save_image, write_atomic

__all__ = ["IMAGE_SUFFIXES", "LoadedImage", "encode_image", "load_image", "save_image", "write_atomic"]
