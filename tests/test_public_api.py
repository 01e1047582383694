"""The public surface is pinned: a change here is a deliberate API change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import anonymizer
from anonymizer import AnonymizedImage, Detections, InputError, anonymize_image, detect_faces

ROOT = Path(__file__).resolve().parent.parent


def test_public_names() -> None:
    assert sorted(anonymizer.__all__) == [
        "AnonymizedImage",
        "AnonymizerError",
        "Detections",
        "Face",
        "Identity",
        "InputError",
        "Key",
        "MediaError",
        "Plate",
        "Region",
        "RestoredImage",
        "SurrogateSeed",
        "VaultError",
        "VaultIntegrityError",
        "WeightsError",
        "WrongKeyError",
        "__version__",
        "anonymize_image",
        "audit_image",
        "deepfake_score",
        "detect_faces",
        "detect_plates",
        "enhance",
        "restore_image",
        "segment_persons",
    ]
    assert issubclass(anonymizer.WrongKeyError, anonymizer.VaultError)
    assert issubclass(anonymizer.VaultIntegrityError, anonymizer.AnonymizerError)


def test_api_accepts_path_pil_and_array(samples: Path) -> None:
    from PIL import Image

    path = samples / "astronaut.png"
    by_path = detect_faces(path)
    by_pil = detect_faces(Image.open(path))
    arr = np.asarray(Image.open(path).convert("RGB"))
    by_array = detect_faces(arr)
    assert isinstance(by_path, Detections) and by_path.path == str(path)
    assert len(by_path.faces) == len(by_pil.faces) == len(by_array.faces) == 1
    assert by_path.faces[0].box == pytest.approx(by_array.faces[0].box)
    before = arr.copy()
    result = anonymize_image(arr, method="pixelate")
    assert isinstance(result, AnonymizedImage)
    np.testing.assert_array_equal(arr, before)  # the input is not modified
    x1, y1, x2, y2 = (int(v) for v in result.faces[0].box)
    assert not np.array_equal(result.image[y1:y2, x1:x2], arr[y1:y2, x1:x2])
    assert result.mask[(y1 + y2) // 2, (x1 + x2) // 2] and not result.mask[0, 0]
    assert len(result.regions) == 1 and result.regions[0].shape == "ellipse"


def test_api_bad_input() -> None:
    with pytest.raises(InputError, match="uint8"):
        detect_faces(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(InputError, match="unknown method"):
        anonymize_image(np.zeros((64, 64, 3), np.uint8), method="swirl")


def test_cli_starts_without_importing_torch() -> None:
    # `anonymizer --help` and `--version` stay fast: torch is imported on first use only
    code = "import sys, anonymizer.cli.app, anonymizer.api, anonymizer; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"
    assert callable(anonymizer.detect_faces)  # the lazy names still resolve
