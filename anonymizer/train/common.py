"""Pieces every trainer shares: seeding and the device, face landmarks from the prepared cache, checkpoints
(what goes in, atomic saving, resuming), the end of a run."""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..media.files import atomic_file, write_atomic


def face_landmarks(root: Path, cache: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(names (N,), landmarks float32 (N, 5, 2)) of a faces folder: from ``cache`` (an .npz with ``names``
    and ``landmarks``, e.g. carried to another machine) or from :func:`prepare_faces`' own cache."""
    from .faces import prepare_faces

    if cache is not None:
        z = np.load(cache, allow_pickle=False)
        return z["names"], z["landmarks"]
    fs = prepare_faces(root, with_dlib=False, progress=True)
    return fs.names, fs.landmarks


def add_run_options(
    ap: argparse.ArgumentParser, *, save_every: int, export: str = "write the final weights here"
) -> None:
    """The options of every step-based trainer that control the run rather than the model: --seed,
    --save-every, --stop-after, --time-limit, --export and --device."""
    ap.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    ap.add_argument("--save-every", type=int, default=save_every, help="default: %(default)s")
    ap.add_argument("--stop-after", type=int, default=None, help="stop after N steps of this run (resume later)")
    ap.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="stop cleanly (checkpoint saved) after this many seconds; resume later",
    )
    ap.add_argument("--export", type=Path, default=None, help=export)
    ap.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def seed_and_device(seed: int, device: str | None) -> torch.device:
    """Seed Python's, NumPy's and torch's generators; the device asked for, else CUDA when present, else CPU."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def warm_cosine(opt: torch.optim.Optimizer, steps: int, warm_part: int = 30) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule of the plate trainers: a linear warm-up over the first ``steps //
    warm_part`` steps, then a cosine down to zero at ``steps``."""
    warm = max(1, steps // warm_part)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / warm) * (0.5 * (1 + math.cos(math.pi * min(k, steps) / steps)))
    )


def checkpoint_state(parts: Mapping[str, Any], rng: np.random.Generator, **extra: Any) -> dict[str, Any]:
    """What a checkpoint holds: each part's state_dict under its name (models, optimisers, schedulers),
    the NumPy generator's and torch's RNG states, and ``extra`` (step, history, ...)."""
    return {
        **{k: v.state_dict() for k, v in parts.items()},
        "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        **extra,
    }


def resume(
    path: Path, parts: Mapping[str, Any], rng: np.random.Generator, device: torch.device
) -> dict[str, Any] | None:
    """Load a :func:`checkpoint_state` from ``path`` into ``parts`` and the generators; the whole state
    (for its extra fields), or None when there is no checkpoint yet."""
    if not path.is_file():
        return None
    state: dict[str, Any] = torch.load(path, weights_only=False, map_location=device)  # our own checkpoint
    if missing := [name for name in parts if name not in state]:
        raise SystemExit(
            f"{path} was saved by a run without {', '.join(missing)} (other options); "
            "use another --out, or start from it with --init where the trainer has it"
        )
    for name, part in parts.items():
        part.load_state_dict(state[name])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"].cpu())
    return state


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """torch.save through a temporary file and a rename: an interrupted save never leaves a broken last.pt."""
    with atomic_file(path) as f:
        torch.save(state, f)


def run_steps(
    step: int,
    end: int,
    *,
    desc: str,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    batch_loss: Callable[[], torch.Tensor],
    checkpoint: Callable[[int, Any], None],
    save_every: int,
    time_limit: float | None,
    digits: int = 4,
) -> tuple[int, int, float]:
    """The optimisation loop of a step-based trainer: from ``step`` to ``end``, each step the loss of a fresh
    batch (``batch_loss()``) back-propagated, ``opt`` and ``sched`` stepped, its running average on a
    progress bar (``digits`` decimals); past ``time_limit`` seconds the run ends early. Every ``save_every``
    steps and at the last, ``checkpoint(step, bar)`` evaluates and saves (``bar.write`` prints beside the
    bar). Returns (the step reached, steps done in this run, the monotonic start time for
    :func:`finish_run`)."""
    from tqdm import tqdm

    bar = tqdm(total=end - step, desc=desc, unit="step")
    started = time.monotonic()
    avg = None
    while step < end:
        loss = batch_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        v = float(loss.detach())
        avg = v if avg is None else 0.98 * avg + 0.02 * v
        bar.update(1)
        bar.set_postfix(loss=f"{avg:.{digits}f}")
        if time_limit is not None and time.monotonic() - started > time_limit:
            end = step
        if step % save_every == 0 or step == end:
            checkpoint(step, bar)
    bar.close()
    return step, bar.n, started


def finish_run(
    *,
    done: int,
    started: float,
    step: int,
    steps: int,
    export: Path | None,
    weights: dict[str, torch.Tensor],
    source: str,
) -> bool:
    """Print the run's speed; when all ``steps`` are done and ``export`` is given, write ``weights`` there
    as safetensors (atomically). Returns whether the training is complete."""
    took = time.monotonic() - started
    print(f"this run: {done} steps in {took:.1f} s ({done / max(took, 1e-9):.2f} steps/s)")
    if step < steps:
        print(f"stopped at step {step} of {steps}; run the same command again to resume")
        return False
    if export is not None:
        save_weights(weights, export, source)
    return True


def save_weights(weights: dict[str, torch.Tensor], path: Path, source: str) -> None:
    """Write ``weights`` to ``path`` as safetensors with ``source`` in its metadata, through a temporary
    file and a rename (an interrupted write never leaves a broken file), and say so."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
    write_atomic(path, save(tensors, metadata={"source": source}))
    print(f"wrote {path}")
