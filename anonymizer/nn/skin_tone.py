"""SkinTone: a face's skin lightness as it would read under the donors' even light, from its IdentityNet
embedding, so that a surrogate donor of a like complexion is drawn whatever the photo's light (issue 31).

Read from the photo itself (forehead and cheeks), a face's lightness follows the light as much as the
person: a light-skinned face in shadow, backlit or under a cap reads 20-30 L* darker and drew donors of
another complexion. IdentityNet was trained to ignore brightness, contrast and colour, yet its embedding
still carries the features that go with a complexion; a linear head on it, taken of the face's crop scaled
to an even exposure (:meth:`anonymizer.pipeline.donor_painter.DonorPainter.describe` with ``even_light``)
and fitted on the donor pool's faces (each with its skin's L* measured under studio or FFHQ light),
predicts the L* the face would have in that light. Trained by ``python -m anonymizer.train.skin_tone``
(models/skin_tone.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import InputError
from ._registry import register_model, with_weights
from .identity import EMBEDDING_DIM

#: the predicted lightness is kept within these L* (the donor pool's faces span about 35..90)
L_RANGE = (20.0, 95.0)


class SkinTone(nn.Module):
    """forward(embedding: Tensor[B, 128]) -> Tensor[B]: the face's skin lightness (CIELAB L*, 0..100) under
    the donors' light. The embedding is standardised by the training set's mean and spread (stored with
    the weights)."""

    def __init__(self, dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        self.register_buffer("centre", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.head = nn.Linear(dim, 1)

    def forward(self, embedding: Tensor) -> Tensor:
        if embedding.ndim != 2 or embedding.shape[1] != self.head.in_features:
            raise InputError(f"expected Tensor[B, {self.head.in_features}], got {tuple(embedding.shape)}")
        out = self.head((embedding - self.get_buffer("centre")) / self.get_buffer("scale"))[:, 0]
        return out.clamp(*L_RANGE)


@register_model("skin_tone")
def skin_tone(*, weights: str | None = "default") -> SkinTone:
    """SkinTone with the weights shipped in models/ (``weights=None``: untrained, for tests and training)."""
    return with_weights(SkinTone(), "skin_tone", weights)


__all__ = ["L_RANGE", "SkinTone", "skin_tone"]
