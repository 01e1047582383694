"""FaceAttributes: rough sex and age of a face from its IdentityNet embedding, so that a surrogate donor
can be chosen to suit the face (issue 31: an old man should not get a young woman's face).

A linear head on the 128-d embedding of :class:`anonymizer.nn.identity.IdentityNet` (which the donor
painter computes anyway for its identity check): one logit for "female", and logits over the age bands
:data:`AGE_BANDS`. :meth:`FaceAttributes.predict` turns them into a probability and an expected age in
years. Trained by ``python -m anonymizer.train.attributes`` (models/face_attributes.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import InputError
from ._registry import register_model, with_weights
from .identity import EMBEDDING_DIM

#: lower edges of the age bands in years (the last band is open): infants, children, teenagers, then decades
AGE_BANDS = (0, 4, 13, 20, 30, 40, 50, 60)
#: the age each band stands for in :meth:`FaceAttributes.predict` (years)
AGE_MIDS = (2.0, 8.0, 16.0, 25.0, 35.0, 45.0, 55.0, 70.0)


class FaceAttributes(nn.Module):
    """forward(embedding: Tensor[B, 128]) -> Tensor[B, 1 + len(AGE_BANDS)]: the logit of "female", then
    the age bands' logits. The embedding is standardised by the training set's mean and spread (stored
    with the weights)."""

    def __init__(self, dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        self.register_buffer("centre", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.head = nn.Linear(dim, 1 + len(AGE_BANDS))

    def forward(self, embedding: Tensor) -> Tensor:
        if embedding.ndim != 2 or embedding.shape[1] != self.head.in_features:
            raise InputError(f"expected Tensor[B, {self.head.in_features}], got {tuple(embedding.shape)}")
        return self.head((embedding - self.get_buffer("centre")) / self.get_buffer("scale"))

    def predict(self, embedding: Tensor) -> tuple[Tensor, Tensor]:
        """(probability of female [B], expected age in years [B]) for IdentityNet embeddings [B, 128]."""
        out = self(embedding)
        mids = torch.tensor(AGE_MIDS, dtype=out.dtype, device=out.device)
        return torch.sigmoid(out[:, 0]), torch.softmax(out[:, 1:], dim=1) @ mids


@register_model("face_attributes")
def face_attributes(*, weights: str | None = "default") -> FaceAttributes:
    """FaceAttributes with the weights shipped in models/ (``weights=None``: untrained, for tests and training)."""
    return with_weights(FaceAttributes(), "face_attributes", weights)


__all__ = ["AGE_BANDS", "AGE_MIDS", "FaceAttributes", "face_attributes"]
