"""Conversion of MediaPipe's ``selfie_segmentation.tflite`` (Apache-2.0) into :class:`SelfieSegmentation`.

The flatbuffer is read with the pure-Python ``tflite`` schema package (no TensorFlow, no MediaPipe), as the
face mesh's is (:mod:`anonymizer.nn.facemesh_tflite`). Its graph is walked op by op into the program
:data:`~anonymizer.nn.selfie.PROGRAM` describes; the conversion fails unless the two agree exactly (every
op, its wiring, kernel, stride and padding), so the weights can only land in the network they were made
for. Float16 constants are widened to float32 exactly. Run once, offline::

    python -m anonymizer.nn.selfie_tflite mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite \\
        models/selfie_segmentation.safetensors

``--print-program`` prints the program read from the file (how :data:`PROGRAM` was written).
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import WeightsError
from .facemesh_tflite import _Graph, mediapipe_file
from .selfie import PROGRAM, SelfieSegmentation

#: The file converted (mediapipe 0.10.14's wheel).
SOURCE_SHA256 = "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"


def selfie_tflite_path() -> Path:
    """``$ANONYMIZER_SELFIE_TFLITE``, else ``selfie_segmentation.tflite`` inside an installed ``mediapipe``
    package (found without importing it). Only conversion and its checks need it; loading never does."""
    return mediapipe_file("ANONYMIZER_SELFIE_TFLITE", "selfie_segmentation", "selfie_segmentation.tflite")


def _options(g: _Graph, op: Any, cls: Any) -> Any:
    opts = cls()
    table = op.BuiltinOptions()
    opts.Init(table.Bytes, table.Pos)
    return opts


def read_program(path: str | Path) -> tuple[list[tuple[Any, ...]], list[np.ndarray]]:
    """(the program, the weights of its convolutions in order: kernel in torch's layout, then bias) of ``path``."""
    g = _Graph(Path(path))
    t = g.tflite
    ids: dict[int, int] = {int(g.graph.InputsAsNumpy()[0]): 0}
    program: list[tuple[Any, ...]] = []
    arrays: list[np.ndarray] = []

    def src(i: int) -> int:
        if i not in ids:
            raise WeightsError(f"tensor {g.names[i]!r} is read before it is written", path=g.path)
        return ids[i]

    def dst(i: int) -> int:
        ids[i] = len(ids)
        return ids[i]

    for name, ins, outs, op in g.ops:
        if name == "DEQUANTIZE":
            continue
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "CUSTOM"):
            program.append(_conv(g, name, ins, op, arrays, src(ins[0])) + (dst(outs[0]),))
        elif name == "AVERAGE_POOL_2D":
            o = _options(g, op, t.Pool2DOptions)
            k = (o.FilterHeight(), o.FilterWidth(), o.StrideH(), o.StrideW())
            if len(set(k)) != 1 or o.Padding() != t.Padding.VALID or o.FusedActivationFunction():
                raise WeightsError(f"unexpected average pool {k}", path=g.path)
            program.append(("pool", src(ins[0]), k[0], dst(outs[0])))
        elif name in ("ADD", "MUL"):
            o = _options(g, op, t.AddOptions if name == "ADD" else t.MulOptions)
            if o.FusedActivationFunction():
                raise WeightsError(f"{name} with a fused activation", path=g.path)
            program.append((name.lower(), src(ins[0]), src(ins[1]), dst(outs[0])))
        elif name in ("RELU", "HARD_SWISH", "LOGISTIC"):
            program.append(
                ({"RELU": "relu", "HARD_SWISH": "hswish", "LOGISTIC": "sigmoid"}[name], src(ins[0]), dst(outs[0]))
            )
        elif name == "RESIZE_BILINEAR":
            o = _options(g, op, t.ResizeBilinearOptions)
            if o.AlignCorners() or not o.HalfPixelCenters():
                raise WeightsError("bilinear resize without half-pixel centres", path=g.path)
            size = g.model.Buffers(g.graph.Tensors(ins[1]).Buffer()).DataAsNumpy().view(np.int32)
            program.append(("resize", src(ins[0]), int(size[0]), int(size[1]), dst(outs[0])))
        else:
            raise WeightsError(f"unexpected op {name}", path=g.path)
    if ids.get(int(g.graph.OutputsAsNumpy()[0])) != len(ids) - 1:
        raise WeightsError("the graph's output is not its last op's", path=g.path)
    return program, arrays


def _conv(g: _Graph, name: str, ins: list[int], op: Any, arrays: list[np.ndarray], x: int) -> tuple[Any, ...]:
    """A convolution's program entry (less its output) and its weights (appended to ``arrays``)."""
    t = g.tflite
    kernel, bias = g.constant(g.weight_name(ins[1])), g.constant(g.weight_name(ins[2]))
    if name == "CUSTOM":  # MediaPipe's Convolution2DTransposeBias: padding, stride w, stride h as int32
        padding, sw, sh = struct.unpack("<iii", op.CustomOptionsAsNumpy().tobytes()[:12])
        if padding != 1 or sw != sh:  # 1: SAME
            raise WeightsError(f"unexpected transposed convolution ({padding}, {sw}, {sh})", path=g.path)
        arrays += [kernel.transpose(3, 0, 1, 2), bias]  # [out, kh, kw, in] -> [in, out, kh, kw]
        return ("deconv", x, kernel.shape[3], kernel.shape[0], kernel.shape[1], sh)
    o = _options(g, op, t.Conv2DOptions if name == "CONV_2D" else t.DepthwiseConv2DOptions)
    if o.StrideH() != o.StrideW() or o.DilationHFactor() != 1 or o.DilationWFactor() != 1:
        raise WeightsError(f"unexpected convolution options in {g.weight_name(ins[1])!r}", path=g.path)
    if o.FusedActivationFunction():
        raise WeightsError(f"{name} with a fused activation", path=g.path)
    same = o.Padding() == t.Padding.SAME
    if name == "CONV_2D":
        arrays += [kernel.transpose(0, 3, 1, 2), bias]  # [out, kh, kw, in] -> [out, in, kh, kw]
        return ("conv", x, kernel.shape[3], kernel.shape[0], kernel.shape[1], o.StrideH(), same, 1)
    arrays += [kernel.transpose(3, 0, 1, 2), bias]  # [1, kh, kw, C] -> [C, 1, kh, kw]
    channels = kernel.shape[3]
    return ("conv", x, channels, channels, kernel.shape[1], o.StrideH(), same, channels)


def convert_selfie_tflite(path: str | Path) -> dict[str, Tensor]:
    """Read ``path`` (MediaPipe ``selfie_segmentation.tflite``); the state dict of :class:`SelfieSegmentation`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError("tflite file not found", path=path)
    program, arrays = read_program(path)
    if [tuple(p) for p in program] != [tuple(p) for p in PROGRAM]:
        raise WeightsError("the file's graph is not the network anonymizer.nn.selfie.PROGRAM describes", path=path)
    target = SelfieSegmentation().state_dict()
    keys = list(target)
    if len(keys) != len(arrays):
        raise WeightsError(f"expected {len(keys)} weight tensors, read {len(arrays)}", path=path)
    state = {}
    for key, array in zip(keys, arrays, strict=True):
        if tuple(target[key].shape) != array.shape:
            raise WeightsError(f"{key}: expected {tuple(target[key].shape)}, got {array.shape}", path=path)
        state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return state


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tflite", type=Path)
    ap.add_argument("out", type=Path, nargs="?")
    ap.add_argument("--print-program", action="store_true")
    args = ap.parse_args(argv)
    if args.print_program:
        for entry in read_program(args.tflite)[0]:
            print(f"    {entry!r},")
        return
    if args.out is None:
        ap.error("give the output file")
    from safetensors.torch import save_file

    from .. import weights

    spec = weights.get_weights("selfie_segmentation")
    save_file(
        convert_selfie_tflite(args.tflite), str(args.out), metadata={"source": f"{spec.source}; licence {spec.licence}"}
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
