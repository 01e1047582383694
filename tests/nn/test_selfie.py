"""MediaPipe's selfie segmentation in our own module: the program's forward contract with random weights,
the shipped weights on a portrait, and, where the tflite file and a LiteRT interpreter are present, the
conversion (reproducing the shipped file) and numerical equality with the interpreter."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from anonymizer.errors import InputError, WeightsError
from anonymizer.media import load_image
from anonymizer.media.files import sha256_file
from anonymizer.nn import SelfieSegmentation, build_model, list_models, selfie_segmentation
from anonymizer.nn.selfie import SELFIE_INPUT
from anonymizer.weights import get_weights


@pytest.fixture(scope="module")
def net() -> SelfieSegmentation:
    return selfie_segmentation()


def _portrait(samples: Path) -> np.ndarray:
    rgb = load_image(samples / "grace_hopper.jpg").rgb
    return cv2.resize(rgb, (SELFIE_INPUT, SELFIE_INPUT), interpolation=cv2.INTER_AREA)


def _input(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def test_registered_with_declared_weights_and_random_forward() -> None:
    assert "selfie_segmentation" in list_models()
    spec = get_weights("selfie_segmentation")
    assert spec.model == "selfie_segmentation" and "Apache-2.0" in spec.licence
    net = build_model("selfie_segmentation", weights=None)
    with torch.inference_mode():
        out = net(torch.rand(2, 3, SELFIE_INPUT, SELFIE_INPUT))
    assert out.shape == (2, 1, SELFIE_INPUT, SELFIE_INPUT) and ((out >= 0) & (out <= 1)).all()
    with pytest.raises(InputError, match="256, 256"):
        net(torch.rand(1, 3, 128, 128))


def test_the_shipped_weights_find_the_person_in_a_portrait(net: SelfieSegmentation, samples: Path) -> None:
    with torch.inference_mode():
        prob = net(_input(_portrait(samples)))[0, 0].numpy()
    assert prob[100:230, 90:170].mean() > 0.95  # her face and uniform (measured: 1.00)
    assert prob[:60, :40].mean() < 0.05 and prob[:60, -40:].mean() < 0.05  # the flags behind her


@pytest.fixture(scope="module")
def tflite_file() -> Path:
    from anonymizer.nn.selfie_tflite import selfie_tflite_path

    try:
        path = selfie_tflite_path()
    except WeightsError as exc:
        pytest.skip(str(exc))
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def test_matches_litert(net: SelfieSegmentation, tflite_file: Path, samples: Path) -> None:
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    it = litert.Interpreter(model_path=str(tflite_file), num_threads=1)
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    for img in (_portrait(samples).astype(np.float32) / 255, rng.random((256, 256, 3), dtype=np.float32)):
        it.set_tensor(it.get_input_details()[0]["index"], img[None])
        it.invoke()
        ref = it.get_tensor(it.get_output_details()[0]["index"])[0, :, :, 0]
        with torch.inference_mode():
            ours = net(torch.from_numpy(img).permute(2, 0, 1)[None])[0, 0].numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-3, rtol=0)  # measured: 3e-5 on the portrait


def test_conversion_reproduces_the_shipped_file(tflite_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("tflite")
    from anonymizer.nn.selfie_tflite import SOURCE_SHA256, main

    assert sha256_file(tflite_file) == SOURCE_SHA256
    out = tmp_path / "selfie.safetensors"
    main([str(tflite_file), str(out)])
    assert sha256_file(out) == get_weights("selfie_segmentation").sha256


def test_conversion_rejects_bad_files(tmp_path: Path) -> None:
    pytest.importorskip("tflite")
    from anonymizer.nn.selfie_tflite import convert_selfie_tflite

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a tflite file" * 4)
    with pytest.raises(WeightsError, match="bad.tflite"):
        convert_selfie_tflite(bad)
    with pytest.raises(WeightsError, match="not found"):
        convert_selfie_tflite(tmp_path / "missing.tflite")
