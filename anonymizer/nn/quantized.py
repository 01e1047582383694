"""CenterFace in int8 for CPUs: the face detector about three times faster, with the same coverage.

Post-training quantization (PyTorch's FX graph mode, the ``x86`` backend: per-channel int8 weights,
uint8 activations whose ranges come from histograms of calibration photos). Quantized as it comes,
CenterFace lost 12% of the float detector's faces at the same threshold on crowd photos: within one of
its depthwise convolutions the channels' weights (and so activations) span ranges 144x to 170,000x apart,
and one per-tensor activation range cannot serve them all. So first the backbone is *equalized*
(:func:`equalize`, cross-layer equalization, Nagel et al., "Data-Free Quantization Through Weight
Equalization and Bias Correction", ICCV 2019): each channel between two convolutions is scaled down in the
first and up by the same factor in the second (ReLU passes positive factors through), which leaves the
float network's function unchanged and evens out the channels' ranges.

The calibration ranges are data (``models/centerface_int8.safetensors``, the observers' histograms),
measured by ``python -m anonymizer.train.quantize``; :func:`centerface_int8` rebuilds the int8 network
from the float weights, the equalization and those ranges. models/centerface_int8.md gives the measurements.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..errors import InputError, WeightsError
from ._registry import register_model
from .backbones import MobileNetV2, init_weights
from .detectors import FaceDetector, centerface, folded_network

if TYPE_CHECKING:
    from torch.ao.quantization.observer import HistogramObserver

#: PyTorch's quantization backend for x86 CPUs (fbgemm kernels, per-channel weights)
BACKEND = "x86"
#: passes of :func:`equalize` over the backbone: each pass moves every pair's ranges to their geometric
#: mean, and pairs that share a convolution pull against each other, so the scales settle over passes
#: (measured on CenterFace: the largest change of a weight was 152x in pass 1, 2.7x in pass 2, 39% in pass 3,
#: 9% in pass 4, 2% in pass 5; the shipped ranges were calibrated after 4)
EQUALIZE_PASSES = 4
#: the observers' state: the tensors the weights file holds ...
OBSERVER = "activation_post_process"
#: ... with, under this prefix, each histogram observer's scale and zero point as its search found them
#: (``qparams.<observer>.scale`` / ``.zero_point``): the search over 80 histograms took about 1.2 of the
#: 3.4 s it took to build the int8 network, and its result is the same every time
QPARAMS = "qparams."


class _Core(nn.Module):
    """Backbone -> neck -> head, without the detector's input checks (the FX tracer cannot follow them)."""

    def __init__(self, net: FaceDetector) -> None:
        super().__init__()
        self.backbone, self.neck, self.head = net.backbone, net.neck, net.head

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.head(self.neck(self.backbone(x)))


def _scale_pair(first: nn.Conv2d, second: nn.Conv2d) -> None:
    """Scale ``first``'s output channels by 1 / s and ``second``'s input channels by s (``second`` dense or
    depthwise), s making both ranges their geometric mean. Channels either side leaves at 0 keep s = 1."""
    depthwise = second.groups > 1 and second.groups == second.in_channels
    r1 = first.weight.detach().abs().flatten(1).amax(1)
    w2 = second.weight.detach()
    r2 = (w2 if depthwise else w2.transpose(0, 1)).abs().flatten(1).amax(1)
    ok = (r1 > 0) & (r2 > 0)
    s = torch.where(ok, torch.sqrt(r1 * r2) / torch.where(ok, r2, 1.0), 1.0)
    with torch.no_grad():
        first.weight.div_(s.view(-1, 1, 1, 1))
        if first.bias is not None:
            first.bias.div_(s)
        second.weight.mul_(s.view(-1, 1, 1, 1) if depthwise else s.view(1, -1, 1, 1))


def _conv(features: nn.Module, path: str) -> nn.Conv2d:
    conv = features.get_submodule(path)
    if not isinstance(conv, nn.Conv2d):
        raise InputError(f"expected a convolution at features.{path}, got {type(conv).__name__}")
    return conv


def _pairs(backbone: MobileNetV2) -> list[tuple[nn.Conv2d, nn.Conv2d]]:
    """The convolutions of CenterFace's MobileNetV2 with a ReLU (or nothing) between them: the stem and the
    first depthwise convolution, then in each block the expansion and the depthwise convolution, and the
    depthwise convolution and the projection (the projection's output is added to the block's input, so
    it is left as it is)."""
    f = backbone.get_submodule("features")
    stem, dw, project = (_conv(f, p) for p in ("0.conv", "1.block.0.conv", "1.block.1.conv"))
    pairs = [(stem, dw), (dw, project)]
    for k in range(2, len(list(f.children()))):
        expand, dw, project = (_conv(f, f"{k}.block.{j}.conv") for j in range(3))
        pairs += [(expand, dw), (dw, project)]
    return pairs


def equalize(backbone: MobileNetV2, passes: int = EQUALIZE_PASSES) -> None:
    """Cross-layer equalization of a folded CenterFace backbone (no batch-norm: ``norm=False``), in place.
    The network computes the same function (up to float rounding), with channel ranges made even."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in backbone.modules()):
        raise InputError("equalize needs a backbone with its batch-norm folded (norm=False)")
    for _ in range(passes):
        for first, second in _pairs(backbone):
            _scale_pair(first, second)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence what torch 2.14 (pinned) says about its own quantization API while we call it: that
    ``torch.ao.quantization`` is moving to the torchao package, that its quantized tensor types are
    deprecated, and that the x86 observers still pass ``reduce_range``. The API works as documented;
    models/centerface_int8.md says what a move to torchao's pt2e API would take."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


@contextmanager
def _no_stack_traces() -> Iterator[None]:
    """Tell torch.fx's tracer not to record a Python stack trace for each node of the graph (they only
    serve its error messages, and recording them took about 0.25 s of the build)."""
    import torch.fx.config as fx_config

    before = fx_config.do_not_emit_stack_traces
    fx_config.do_not_emit_stack_traces = True
    try:
        yield
    finally:
        fx_config.do_not_emit_stack_traces = before


def prepared(net: FaceDetector) -> torch.fx.GraphModule:
    """A copy of the float ``net``, equalized, traced and given the backend's observers (FX
    ``prepare_fx``): run photos through it to calibrate (:func:`calibrate`) or load their ranges."""
    core = _Core(copy.deepcopy(net)).eval()
    equalize(core.backbone)  # type: ignore[arg-type]
    example = torch.zeros(1, 3, 64, 64)
    with _quiet(), _no_stack_traces():
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import prepare_fx

        return prepare_fx(core, get_default_qconfig_mapping(BACKEND), (example,))


def observer_state(model: nn.Module) -> dict[str, Tensor]:
    """The observers' tensors of a :func:`prepared` network (their histograms and ranges), by name."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if OBSERVER in k}


def _histograms(model: nn.Module) -> list[tuple[str, HistogramObserver]]:
    """(name, module) of each histogram observer of a :func:`prepared` network."""
    from torch.ao.quantization.observer import HistogramObserver

    return [(n, m) for n, m in model.named_modules() if isinstance(m, HistogramObserver)]


def searched_qparams(model: nn.Module) -> dict[str, Tensor]:
    """Each histogram observer's scale and zero point (its ``calculate_qparams``: the search for the range
    that quantizes its histogram best) of a :func:`prepared` network with its observers' state in place,
    under :data:`QPARAMS` names."""
    out: dict[str, Tensor] = {}
    for name, module in _histograms(model):
        scale, zero_point = module.calculate_qparams()
        out[f"{QPARAMS}{name}.scale"] = scale.detach().clone()
        out[f"{QPARAMS}{name}.zero_point"] = zero_point.detach().clone()
    return out


def _qparams_names(model: nn.Module) -> list[str]:
    """The :data:`QPARAMS` names :func:`searched_qparams` gives for ``model``, without the search."""
    return [f"{QPARAMS}{n}.{k}" for n, _ in _histograms(model) for k in ("scale", "zero_point")]


def _fix_qparams(model: nn.Module, qparams: dict[str, Tensor]) -> None:
    """Replace each histogram observer of ``model`` by a fixed one with its scale and zero point from
    ``qparams`` (:func:`searched_qparams`): the same int8 network without the search."""
    from torch.ao.quantization.observer import FixedQParamsObserver, HistogramObserver

    fixed = {
        id(old): FixedQParamsObserver(
            scale=float(qparams[f"{QPARAMS}{name}.scale"]),
            zero_point=int(qparams[f"{QPARAMS}{name}.zero_point"]),
            dtype=old.dtype,
            qscheme=old.qscheme,
            quant_min=old.quant_min,
            quant_max=old.quant_max,
        )
        for name, old in _histograms(model)
    }
    # an observer can sit under several names (the graph's nodes name it by any of them): replace each name,
    # or the conversion searches again under the names left (0.75 of 2.4 s in a build, measured 2026-12-08)
    for name, old in list(model.named_modules(remove_duplicate=False)):
        if isinstance(old, HistogramObserver):
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, fixed[id(old)])


@torch.no_grad()  # not inference mode: the observers' tensors are loaded into another network later
def calibrate(net: FaceDetector, batches: Iterable[Tensor]) -> dict[str, Tensor]:
    """Run ``batches`` (Tensor[B, 3, H, W] float RGB 0..255, sides multiples of 32, as
    :func:`~anonymizer.nn.detectors.prepare_batch` makes them) through :func:`prepared` ``net`` and return
    the observers' state (:func:`observer_state`) with the scale and zero point each histogram gives
    (:func:`searched_qparams`)."""
    model = prepared(net)
    for x in batches:
        model(x)
    return observer_state(model) | searched_qparams(model)


def convert(net: FaceDetector, state: dict[str, Tensor]) -> torch.fx.GraphModule:
    """The int8 network: :func:`prepared` ``net`` with the observers' ``state`` loaded, converted (FX
    ``convert_fx``); where ``state`` also holds the histograms' searched scales and zero points
    (:data:`QPARAMS`), those are taken instead of searching again. Raises WeightsError when ``state`` does
    not hold exactly this network's observers (and, if any, the scales of all its histogram observers)."""
    model = prepared(net)
    observers = {k: v for k, v in state.items() if not k.startswith(QPARAMS)}
    qparams = {k: v for k, v in state.items() if k.startswith(QPARAMS)}
    want = set(observer_state(model))
    if set(observers) != want:
        missing, extra = sorted(want - set(observers))[:3], sorted(set(observers) - want)[:3]
        raise WeightsError(f"int8 ranges do not fit the detector: missing {missing}, unexpected {extra}")
    model.load_state_dict(observers, strict=False)
    if qparams:
        searched = set(_qparams_names(model))
        if set(qparams) != searched:
            missing, extra = sorted(searched - set(qparams))[:3], sorted(set(qparams) - searched)[:3]
            raise WeightsError(f"int8 scales do not fit the detector: missing {missing}, unexpected {extra}")
        _fix_qparams(model, qparams)
    with _quiet():
        from torch.ao.quantization.quantize_fx import convert_fx

        return convert_fx(model)


class QuantizedDetector(FaceDetector):
    """A :class:`~anonymizer.nn.detectors.FaceDetector` whose maps come from an int8 network (``graph``,
    from :func:`convert`); ``head`` decodes them as the float detector's does. Same forward contract."""

    def __init__(self, graph: torch.fx.GraphModule, head: nn.Module) -> None:
        super().__init__(nn.Identity(), nn.Identity(), head)
        self.graph = graph

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        self.check_input(x)
        out = self.graph(x.float())
        return {k: v.dequantize() if v.is_quantized else v for k, v in out.items()}


@register_model("centerface_int8")
def centerface_int8(*, weights: str | None = "default") -> QuantizedDetector:
    """CenterFace in int8 (module doc): the float detector's default weights, equalized, with the activation
    ranges of ``models/centerface_int8.safetensors`` (``weights="default"``). ``weights=None``: the random
    float network, calibrated on two random images, for tests."""
    if weights is None:
        net = folded_network()
        init_weights(net)
        net.eval()
        gen = torch.Generator().manual_seed(0)
        state = calibrate(net, [torch.rand(1, 3, 64, 64, generator=gen) * 255 for _ in range(2)])
    else:
        from ..weights import get_weights, load_state_dict

        net = centerface().eval()
        state = load_state_dict(get_weights("centerface_int8" if weights == "default" else weights))
    return QuantizedDetector(convert(net, state), net.head).eval()


__all__ = [
    "BACKEND",
    "EQUALIZE_PASSES",
    "QPARAMS",
    "QuantizedDetector",
    "calibrate",
    "centerface_int8",
    "convert",
    "equalize",
    "observer_state",
    "prepared",
    "searched_qparams",
]
