"""Output type of the relation model."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RelationOutput:
    """What :class:`~tr2_core.models.tr2.RelationModel` returns for one clip.

    ``N`` entities and ``P`` pairs, aligned with the input
    :class:`~tr2_core.types.VideoFeatures` rows.

    Attributes:
        entity_logits: (N, 37) object-classifier logits (index 0 = background), or None
            in PredCls (GT labels are used, the classifier is not run).
        entity_labels: (N,) int64 labels the relation model used: the given labels in
            PredCls; in SGCls/SGDet pair subjects are ``person`` and the other entities the
            classifier's best class among 2..36.
        entity_scores: (N,) float32 confidence of ``entity_labels`` (given scores in
            PredCls, classifier softmax probability otherwise).
        attention: (P, 3) logits (softmax family).
        spatial: (P, 6) logits (sigmoid, multi-label).
        contacting: (P, 17) logits (sigmoid, multi-label).
        relation_features: (P, R) e_r, R = 2 * d_model with the message token, else d_model.
        pair_sequence: (P,) int64 id of the pair's temporal sequence (same entity pair).
        pair_prev: (P,) int64 row of the previous element of the pair's sequence (the row
            itself for the first element).
        guidance_visual: (3, P, D) per-family projection v = W_f e_r (D = CLIP width), or
            None unless guidance mode is ``full`` / ``no_tdiff``. Families in vocab order.
        change_logits: (P, 3) TR²ᵇⁱⁿ logits of "the family's relations changed between
            pair_prev and this row", or None unless guidance mode is ``bin``. Rows without a
            previous element (``pair_prev == row``) carry no meaning.
    """

    entity_logits: torch.Tensor | None
    entity_labels: torch.Tensor
    entity_scores: torch.Tensor
    attention: torch.Tensor
    spatial: torch.Tensor
    contacting: torch.Tensor
    relation_features: torch.Tensor
    pair_sequence: torch.Tensor
    pair_prev: torch.Tensor
    guidance_visual: torch.Tensor | None = None
    change_logits: torch.Tensor | None = None

    @property
    def has_prev(self) -> torch.Tensor:
        """(P,) bool: the row has a previous element in its sequence."""
        return self.pair_prev != torch.arange(self.pair_prev.shape[0], device=self.pair_prev.device)

    def probabilities(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(attention softmax (P, 3), spatial sigmoid (P, 6), contacting sigmoid (P, 17))."""
        return (
            self.attention.softmax(-1),
            self.spatial.sigmoid(),
            self.contacting.sigmoid(),
        )
