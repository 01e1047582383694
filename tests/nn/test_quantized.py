"""CenterFace in int8: equalization keeps the float network's function, the int8 detector finds the faces
the float one finds on real photos, at any thread count, and refuses ranges or inputs that do not fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anonymizer.errors import InputError, WeightsError
from anonymizer.media import load_image
from anonymizer.nn import centerface, centerface_int8, list_models
from anonymizer.nn.detectors import prepare_batch
from anonymizer.nn.quantized import QPARAMS, QuantizedDetector, convert, equalize, observer_state, prepared
from anonymizer.nn.runtime import configure_runtime
from anonymizer.ops.boxes import iou_matrix
from anonymizer.pipeline.photo import FaceFinder
from anonymizer.weights import get_weights, is_ready


def test_registered_with_declared_ranges() -> None:
    assert "centerface_int8" in list_models()
    spec = get_weights("centerface_int8")
    assert spec.model == "centerface_int8" and spec.file.endswith(".safetensors")
    assert is_ready(spec)


def test_equalization_keeps_the_float_function(samples: Path) -> None:
    net = centerface().eval()
    x = prepare_batch([torch.from_numpy(load_image(samples / "grace_hopper.jpg").rgb)], channels_last=False)
    with torch.inference_mode():
        before = net(x)
        before_ranges = [net.backbone.features[k].block[1].conv.weight.abs().flatten(1).amax(1) for k in (2, 8)]
        equalize(net.backbone)
        after = net(x)
    for name in before:
        assert torch.allclose(before[name], after[name], atol=1e-3, rtol=1e-3), name
    for k, r in zip((2, 8), before_ranges, strict=True):
        # a depthwise convolution's channels spanned ranges 144x (block 2) and 1e5x (block 8) apart; far closer now
        now = net.backbone.features[k].block[1].conv.weight.detach().abs().flatten(1).amax(1)
        assert float(now.max() / now.min()) < float(r.max() / r.min()) / 10


def test_equalization_needs_a_folded_backbone() -> None:
    with pytest.raises(InputError, match="folded"):
        equalize(centerface(weights=None).backbone)  # the random network keeps its batch-norm


@pytest.fixture(scope="module")
def finders() -> tuple[FaceFinder, FaceFinder]:
    return FaceFinder("centerface", threshold=0.3), FaceFinder("centerface_int8", threshold=0.3)


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "astronaut.png", "group_solvay_1927.jpg"])
def test_int8_finds_the_faces_the_float_detector_finds(finders, samples: Path, name: str) -> None:
    rgb = load_image(samples / name).rgb
    floating, int8 = (np.array([f.box for f in finder.find(rgb)]).reshape(-1, 4) for finder in finders)
    sure = np.array([f.box for f in finders[0].find(rgb) if f.score >= 0.5]).reshape(-1, 4)
    assert len(sure) >= 1 and len(int8) >= 1
    assert (iou_matrix(sure, int8).max(1) >= 0.7).all()  # every sure float face, at nearly the same box
    assert abs(len(int8) - len(floating)) <= max(1, len(floating) // 10)


def test_int8_gives_the_same_faces_at_any_thread_count(finders, samples: Path) -> None:
    rgb = load_image(samples / "group_solvay_1927_closeup.jpg").rgb
    threads = torch.get_num_threads()
    try:
        configure_runtime(1)
        one = finders[1].find(rgb)
        configure_runtime(2)
        two = finders[1].find(rgb)
    finally:
        configure_runtime(threads)
    assert one == two and len(one) > 0


def test_int8_refuses_bad_input() -> None:
    net = centerface_int8(weights=None)
    assert isinstance(net, QuantizedDetector)
    with pytest.raises(InputError, match="multiples of 32"):
        net(torch.zeros(1, 3, 50, 64))
    with pytest.raises(InputError, match=r"\[B, 3, H, W\]"):
        net(torch.zeros(3, 64, 64))


def test_ranges_of_another_network_are_refused() -> None:
    net = centerface().eval()
    state = observer_state(prepared(net))
    dropped = dict(list(state.items())[:-4])
    with pytest.raises(WeightsError, match="missing"):
        convert(net, dropped)
    with pytest.raises(WeightsError, match="unexpected"):
        convert(net, {**state, "activation_post_process_999.min_val": torch.tensor(0.0)})


def _no_search(self: object) -> None:
    raise AssertionError("searched a histogram")


def test_stored_scales_give_the_network_the_histograms_give(samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.ao.quantization.observer import HistogramObserver

    from anonymizer.weights import load_state_dict

    net = centerface().eval()
    state = load_state_dict(get_weights("centerface_int8"))
    scales = {k: v for k, v in state.items() if k.startswith(QPARAMS)}
    assert len(scales) == 160  # scale and zero point of each of the 80 histogram observers
    histograms_only = {k: v for k, v in state.items() if not k.startswith(QPARAMS)}
    rgb = load_image(samples / "group_solvay_1927_closeup.jpg").rgb
    x = prepare_batch([torch.from_numpy(rgb)], channels_last=False)
    with torch.inference_mode():
        searched = convert(net, histograms_only)(x)
        with monkeypatch.context() as m:  # with the stored scales the conversion searches no histogram
            m.setattr(HistogramObserver, "calculate_qparams", _no_search)
            stored = convert(net, state)(x)
    assert stored.keys() == searched.keys()
    assert all(torch.equal(stored[k].dequantize(), searched[k].dequantize()) for k in stored)
    # a scale missing or another network's is refused
    with pytest.raises(WeightsError, match="scales do not fit.*missing"):
        convert(net, {k: v for k, v in state.items() if k != min(scales)})
    with pytest.raises(WeightsError, match="scales do not fit.*unexpected"):
        convert(net, {**state, f"{QPARAMS}activation_post_process_999.scale": torch.tensor([1.0])})
