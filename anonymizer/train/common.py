"""Pieces every trainer shares: face landmarks from the prepared cache, atomic checkpoints, the end of a run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def face_landmarks(root: Path, cache: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(names (N,), landmarks float32 (N, 5, 2)) of a faces folder: from ``cache`` (an .npz with ``names``
    and ``landmarks``, e.g. carried to another machine) or from :func:`prepare_faces`' own cache."""
    from .faces import prepare_faces

    if cache is not None:
        z = np.load(cache, allow_pickle=False)
        return z["names"], z["landmarks"]
    fs = prepare_faces(root, with_dlib=False, progress=True)
    return fs.names, fs.landmarks


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """torch.save through a temporary file and a rename: an interrupted save never leaves a broken last.pt."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def finish_run(*, done: int, started: float, step: int, steps: int, export: Path | None,
               weights: dict[str, torch.Tensor], source: str) -> bool:
    """Print the run's speed; when all ``steps`` are done and ``export`` is given, write ``weights`` there
    as safetensors (atomically). Returns whether the training is complete."""
    took = time.monotonic() - started
    print(f"this run: {done} steps in {took:.1f} s ({done / max(took, 1e-9):.2f} steps/s)")
    if step < steps:
        print(f"stopped at step {step} of {steps}; run the same command again to resume")
        return False
    if export is not None:
        from safetensors.torch import save_file

        export.parent.mkdir(parents=True, exist_ok=True)
        tmp = export.with_name(export.name + ".tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp), metadata={"source": source})
        tmp.replace(export)
        print(f"wrote {export}")
    return True
