"""Default settings, chosen by measurement (README "Measured"); kept free of heavy imports so that the
CLI's --help and --version start fast."""

from __future__ import annotations

#: photos: benchmarks/coverage.py
DEFAULT_THRESHOLD = 0.3
DEFAULT_NMS_IOU = 0.3
DEFAULT_MASK_SCALE = 1.5
DEFAULT_FEATHER = 0.05
DEFAULT_UPSCALE = 2.0

#: videos: benchmarks/video.py
DEFAULT_DETECT_EVERY = 4
DEFAULT_HOLD_SECONDS = 0.5
DEFAULT_VIDEO_THRESHOLD = 0.2
