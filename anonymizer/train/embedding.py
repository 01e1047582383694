"""IdentityNet descriptors of many aligned crops, in batches with a progress bar (the trainers' and the
donor selection's shared way to describe faces)."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ..nn.identity import identity_net


def embed_crops(
    crops: list[np.ndarray], *, batch: int = 64, desc: str = "embedding", dtype: torch.dtype = torch.float32
) -> np.ndarray:
    """IdentityNet embeddings ([N, 128], of ``dtype``) of aligned 96x96 uint8 RGB crops. float64 is how the
    donor painter describes a face (:meth:`anonymizer.pipeline.donor_painter.DonorPainter.describe`)."""
    net = identity_net().eval().to(dtype)
    out = np.zeros((len(crops), 128), np.float64 if dtype == torch.float64 else np.float32)
    for s in tqdm(range(0, len(crops), batch), desc=desc, unit="batch"):
        x = torch.from_numpy(np.stack(crops[s : s + batch])).permute(0, 3, 1, 2).to(dtype) / 255.0
        with torch.inference_mode():
            out[s : s + batch] = net(x).numpy()
    return out
