"""Conversion of MediaPipe's ``face_landmark.tflite`` (Apache-2.0) into the state dict of :class:`FaceMesh`.

The tflite flatbuffer is read with the pure-Python ``tflite`` schema package (no TensorFlow, no
MediaPipe). Its weights are float16 constants behind DEQUANTIZE ops; they are widened to float32
exactly. Tensors keep their Keras names (``conv2d_7/Kernel``, ``depthwise_conv2d_3/Bias``,
``p_re_lu_4/Alpha``), which :func:`tflite_names` maps onto our modules; every shape is checked, and
every convolution's stride and padding mode in the graph is checked against the module that gets its
weights. Run once, offline::

    python -m anonymizer.nn.facemesh_tflite mediapipe/modules/face_landmark/face_landmark.tflite \\
        models/face_mesh.safetensors
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import WeightsError
from .facemesh import MESH_INPUT, FaceMesh, ResidualBlock

log = logging.getLogger(__name__)

#: The ops a faithful conversion knows how to express; anything else means a different network.
KNOWN_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "PRELU", "ADD", "MAX_POOL_2D", "PAD", "DEQUANTIZE"}
#: Where the converted file came from.
SOURCE = (
    "MediaPipe 0.10.14 wheel (mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64), "
    "mediapipe/modules/face_landmark/face_landmark.tflite"
)
SOURCE_SHA256 = "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"


def face_landmark_tflite_path() -> Path:
    """``$ANONYMIZER_FACE_MESH_TFLITE``, else ``face_landmark.tflite`` inside an installed ``mediapipe``
    package (found without importing it). Only conversion and its checks need it; loading never does."""
    return mediapipe_file("ANONYMIZER_FACE_MESH_TFLITE", "face_landmark", "face_landmark.tflite")


def mediapipe_file(env_var: str, module: str, name: str) -> Path:
    """``$env_var``, else ``mediapipe/modules/<module>/<name>`` inside an installed ``mediapipe`` package
    (found without importing it)."""
    import importlib.util
    import os

    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"{name} not found: set {env_var} or install mediapipe (pip download mediapipe==0.10.14 --no-deps, "
            f"unzip mediapipe/modules/{module}/{name})"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "modules" / module / name


def _block_names(prefix: str, dw: int, pw: int, act: int) -> dict[str, str]:
    return {
        f"{prefix}.dw": f"depthwise_conv2d_{dw}",
        f"{prefix}.pw": f"conv2d_{pw}",
        f"{prefix}.act": f"p_re_lu_{act}",
    }


def tflite_names() -> dict[str, str]:
    """Our module path -> the tflite layer name whose Kernel/Bias (convolutions) or Alpha (PReLU) it gets."""
    names = {"stem.conv": "conv2d_1", "stem.act": "p_re_lu_1"}
    for i in range(len(FaceMesh.TRUNK)):
        names |= _block_names(f"trunk.{i}", i + 1, i + 2, i + 2)
    for j in range(3):
        names |= _block_names(f"mesh.blocks.{j}", 15 + j, 16 + j, 16 + j)
    names |= {"mesh.reduce": "conv2d_19", "mesh.reduce_act": "p_re_lu_19", "mesh.out": "conv2d_21"}
    names |= _block_names("mesh.refine", 18, 20, 20)
    names |= _block_names("presence.blocks.0", 23, 28, 26)
    names |= {"presence.reduce": "conv2d_29", "presence.reduce_act": "p_re_lu_27", "presence.out": "conv2d_31"}
    names |= _block_names("presence.refine", 24, 30, 28)
    return names


class _Graph:
    """The parts of a one-subgraph tflite model the conversion needs: constants by name and the ops."""

    def __init__(self, path: Path) -> None:
        import tflite

        self.path = path
        data = path.read_bytes()
        if data[4:8] != b"TFL3":  # the flatbuffer's file identifier
            raise WeightsError(f"not a tflite file: identifier {data[4:8]!r}, expected b'TFL3'", path=path)
        try:
            model = tflite.Model.GetRootAsModel(data, 0)
            graph = model.Subgraphs(0)
            n_tensors = graph.TensorsLength()
        except Exception as exc:  # the flatbuffer reader raises whatever the damaged bytes lead to
            raise WeightsError(f"cannot read tflite file: {exc}", path=path) from exc
        if model.SubgraphsLength() != 1:
            raise WeightsError(f"expected one subgraph, got {model.SubgraphsLength()}", path=path)
        op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        type_names = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
        self.tflite, self.model, self.graph = tflite, model, graph
        self.names = [graph.Tensors(i).Name().decode() for i in range(n_tensors)]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.types = [type_names[graph.Tensors(i).Type()] for i in range(n_tensors)]
        self.ops: list[tuple[str, list[int], list[int], object]] = []
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            self.ops.append((name, [int(i) for i in op.InputsAsNumpy()], [int(i) for i in op.OutputsAsNumpy()], op))
        # a DEQUANTIZE op turns a float16 constant into the float32 tensor the layer reads
        self.dequantized = {outs[0]: ins[0] for name, ins, outs, _ in self.ops if name == "DEQUANTIZE"}

    def shape(self, i: int) -> tuple[int, ...]:
        t = self.graph.Tensors(i)
        return tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()

    def constant(self, name: str) -> np.ndarray:
        """The float32 value of the constant tensor ``name`` (float16 or float32 in the file)."""
        if name not in self.index:
            raise WeightsError(f"tensor {name!r} not found", path=self.path)
        i = self.index[name]
        t = self.graph.Tensors(i)
        buf = self.model.Buffers(t.Buffer())
        raw = buf.DataAsNumpy() if buf.DataLength() else np.zeros(0, np.uint8)
        dtype = {"FLOAT16": np.float16, "FLOAT32": np.float32}.get(self.types[i])
        if dtype is None or not isinstance(raw, np.ndarray) or raw.size == 0:
            raise WeightsError(f"tensor {name!r} is not a float constant ({self.types[i]})", path=self.path)
        return raw.view(dtype).reshape(self.shape(i)).astype(np.float32)

    def weight_name(self, i: int) -> str:
        """The name of the constant behind input tensor ``i`` (through its DEQUANTIZE, if any)."""
        return self.names[self.dequantized.get(i, i)]


def _expected_conv(model: FaceMesh, path: str) -> tuple[int | None, bool]:
    """(stride, 'SAME' padding?) that our convolution ``path`` assumes; stride None: any."""
    if path.endswith(".dw"):
        block = model.get_submodule(path.rpartition(".")[0])
        assert isinstance(block, ResidualBlock)
        return block.stride, True
    if path == "stem.conv":
        return 2, True
    if path.endswith(".out"):
        return None, False  # 3x3 'VALID' over a 3x3 map: its stride (3 in the file) changes nothing
    return 1, False  # 1x1


def _check_ops(g: _Graph, model: FaceMesh, names: dict[str, str]) -> None:
    unknown = sorted({name for name, *_ in g.ops} - KNOWN_OPS)
    if unknown:
        raise WeightsError(f"unexpected ops {unknown}", path=g.path)
    inputs = [g.shape(int(i)) for i in g.graph.InputsAsNumpy()]
    if inputs != [(1, MESH_INPUT, MESH_INPUT, 3)]:
        raise WeightsError(f"expected one input (1, {MESH_INPUT}, {MESH_INPUT}, 3), got {inputs}", path=g.path)
    expect = {
        layer: _expected_conv(model, path)
        for path, layer in names.items()
        if isinstance(model.get_submodule(path), nn.Conv2d)
    }
    padding = g.tflite.Padding
    seen = set()
    for name, ins, _, op in g.ops:
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        layer = g.weight_name(ins[1]).rpartition("/")[0]
        opts_cls = g.tflite.Conv2DOptions if name == "CONV_2D" else g.tflite.DepthwiseConv2DOptions
        opts = opts_cls()
        table = op.BuiltinOptions()  # type: ignore[attr-defined]
        opts.Init(table.Bytes, table.Pos)
        if layer not in expect:
            raise WeightsError(f"{name} {layer!r} has no counterpart in FaceMesh", path=g.path)
        stride, same = expect[layer]
        got = (opts.StrideH(), opts.StrideW(), opts.Padding() == padding.SAME, opts.FusedActivationFunction())
        want = (stride or got[0], stride or got[1], same, 0)
        if got != want:
            raise WeightsError(
                f"{layer}: expected (stride h, stride w, SAME, activation) {want}, got {got}", path=g.path
            )
        seen.add(layer)
    missing = sorted(set(expect) - seen)
    if missing:
        raise WeightsError(f"convolutions not found in the graph: {missing}", path=g.path)


def convert_face_mesh_tflite(path: str | Path) -> dict[str, Tensor]:
    """Read ``path`` (MediaPipe ``face_landmark.tflite``) and return the float32 state dict of :class:`FaceMesh`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError("tflite file not found", path=path)
    g = _Graph(path)
    model = FaceMesh()
    names = tflite_names()
    _check_ops(g, model, names)
    target = model.state_dict()
    state: dict[str, Tensor] = {}

    def put(key: str, array: np.ndarray, what: str) -> None:
        want = tuple(target[key].shape)
        if array.shape != want:
            raise WeightsError(f"{what}: expected shape {want}, got {array.shape}", path=path)
        state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    for module_path, layer in names.items():
        module = model.get_submodule(module_path)
        if isinstance(module, nn.PReLU):
            alpha = g.constant(f"{layer}/Alpha")  # (1, 1, C): one slope per channel
            put(f"{module_path}.weight", alpha.reshape(-1), f"{layer}/Alpha")
            continue
        kernel = g.constant(f"{layer}/Kernel")
        # tflite: CONV_2D (O, H, W, I), DEPTHWISE_CONV_2D (1, H, W, C); torch: (O, I / groups, H, W)
        assert isinstance(module, nn.Conv2d)
        kernel = kernel.transpose(3, 0, 1, 2) if module.groups > 1 else kernel.transpose(0, 3, 1, 2)
        put(f"{module_path}.weight", kernel, f"{layer}/Kernel")
        put(f"{module_path}.bias", g.constant(f"{layer}/Bias"), f"{layer}/Bias")
    missing = sorted(set(target) - set(state))
    if missing:
        raise WeightsError(f"conversion left parameters unset: {missing[:5]}", path=path)
    return state


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m anonymizer.nn.facemesh_tflite", description=__doc__.split("\n")[0])
    parser.add_argument("tflite", type=Path, help="MediaPipe's face_landmark.tflite")
    parser.add_argument("out", type=Path, help="the safetensors file to write (float32)")
    args = parser.parse_args(argv)
    from safetensors.torch import save_file

    from ..media.files import sha256_file

    got = sha256_file(args.tflite)
    if got != SOURCE_SHA256:
        log.warning("%s: sha256 %s differs from the declared source's %s", args.tflite, got, SOURCE_SHA256)
    state = convert_face_mesh_tflite(args.tflite)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # one metadata key only, so the bytes (and the sha256) are reproducible
    save_file(state, str(args.out), metadata={"source": f"{SOURCE}; licence Apache-2.0"})
    log.info("wrote %s: %d tensors, sha256 %s", args.out, len(state), sha256_file(args.out))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
