"""Interpolate two sets of weights of the same model (a "model soup" of two runs).

    python -m anonymizer.train.interpolate A.safetensors B.safetensors --alpha 0.7 --out W.safetensors

Every floating-point tensor of the result is ``A x (1 - alpha) + B x alpha``; other tensors (integer
buffers) must be equal in both and are copied. Tensors that only one file has are left out (and named):
e.g. the surrogate generator's ``palette_weight``, which ``surrogate_palette --weigh`` measures again for
the result.

Why: two runs of the same model that start from the same weights (one fine-tuned from the other) can be
mixed along the straight line between them, and a point on it can keep most of each run's strength. The
shipped surrogate generator is such a mix: the stage-5 weights (natural faces, 98.0% found by dlib's own
detector) and the row-targets run (more different people per password, fewer natural faces), at alpha 0.7
(models/surrogate.md measures the line).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def interpolate(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float, *, names: tuple[str, str] = ("A", "B")
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(the mixed tensors, the keys left out because only one side has them). Raises ValueError naming
    the key for a shape mismatch, unequal non-float tensors, or an alpha outside 0..1."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in 0..1, got {alpha}")
    out: dict[str, torch.Tensor] = {}
    for key in sorted(set(a) & set(b)):
        ta, tb = a[key], b[key]
        if ta.shape != tb.shape or ta.dtype != tb.dtype:
            raise ValueError(
                f"{key}: {names[0]} has {tuple(ta.shape)} {ta.dtype}, {names[1]} has {tuple(tb.shape)} {tb.dtype}"
            )
        if ta.is_floating_point():
            out[key] = ta * (1 - alpha) + tb * alpha
        elif torch.equal(ta, tb):
            out[key] = ta.clone()
        else:
            raise ValueError(
                f"{key}: non-float tensors differ between {names[0]} and {names[1]}; they cannot be interpolated"
            )
    if not out:
        raise ValueError(f"{names[0]} and {names[1]} share no tensors: not weights of the same model")
    return out, sorted(set(a) ^ set(b))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="weights at alpha 0 (.safetensors)")
    ap.add_argument("b", type=Path, help="weights at alpha 1 (.safetensors)")
    ap.add_argument("--alpha", type=float, required=True, help="share of B, 0..1")
    ap.add_argument("--out", type=Path, required=True, help="the mixed weights (.safetensors; never one of the inputs)")
    args = ap.parse_args(argv)

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .common import save_weights

    if args.out.resolve() in (args.a.resolve(), args.b.resolve()):
        raise SystemExit(f"{args.out}: the output would overwrite an input")
    loaded = []
    for path in (args.a, args.b):
        try:
            loaded.append(load_file(str(path)))
        except (OSError, SafetensorError) as e:
            raise SystemExit(f"{path}: cannot read safetensors weights ({e})") from None
    try:
        mixed, left_out = interpolate(loaded[0], loaded[1], args.alpha, names=(str(args.a), str(args.b)))
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if left_out:
        print(f"left out (only one side has them): {', '.join(left_out)}")
    save_weights(mixed, args.out, f"interpolated: {1 - args.alpha:g} x {args.a.name} + {args.alpha:g} x {args.b.name}")


if __name__ == "__main__":
    main()
