"""Pure tensor and array functions: boxes, centre-map decoding, masks and replacement methods."""
