"""anonymizer: privacy-first face anonymization."""

from __future__ import annotations

__version__ = "0.1.0"
