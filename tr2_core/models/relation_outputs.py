"""What the relation model hands on: the per-frame :class:`PairEncoding` (its first half,
cacheable) and the clip's :class:`RelationOutput` (its second half)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class RelationOutput:
    """What :class:`~tr2_core.models.relation_model.RelationModel` returns for one clip.

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
        guidance_bias: (3, D) the projections' biases, added to ``v_t - v_{t-1}`` in
            Eq. (2), or None unless ``guidance.difference_bias`` (the release's form).
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
    guidance_bias: torch.Tensor | None = None

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


@dataclass
class PairEncoding:
    """The per-frame half of :class:`~tr2_core.models.relation_model.RelationModel`
    (:meth:`~tr2_core.models.relation_model.RelationModel.encode`): everything the temporal decode
    needs. It depends only on each frame's own entities and pairs, so the streaming engine
    computes it once per frame and keeps it (:func:`concat_encodings` makes a window).

    ``N`` entities, ``P`` pairs over ``num_frames`` frames; pair rows sorted by frame.

    Attributes:
        num_frames: frames covered (pair_frame values are 0..num_frames-1).
        entity_logits: (N, 37) object-classifier logits, or None in PredCls.
        entity_labels: (N,) int64 labels the relation model uses.
        entity_scores: (N,) float confidence of those labels.
        entity_track: (N,) int64 track id (-1 = untracked; the temporal grouping then
            falls back to class labels).
        pair_frame: (P,) int64 frame of each pair.
        pair_subject: (P,) int64 row of the subject entity.
        pair_object: (P,) int64 row of the object entity.
        encoded: (P, d_model) relation representation after the spatial encoder.
    """

    num_frames: int
    entity_logits: torch.Tensor | None
    entity_labels: torch.Tensor
    entity_scores: torch.Tensor
    entity_track: torch.Tensor
    pair_frame: torch.Tensor
    pair_subject: torch.Tensor
    pair_object: torch.Tensor
    encoded: torch.Tensor


def concat_encodings(parts: Sequence[PairEncoding]) -> PairEncoding:
    """Consecutive encodings -> one over all their frames (entity rows and frame indices
    offset per part, in order). Entity logits are kept only when every part has them."""
    n_ent = [p.entity_labels.shape[0] for p in parts]
    ent_offset = [sum(n_ent[:i]) for i in range(len(parts))]
    frame_offset = [sum(p.num_frames for p in parts[:i]) for i in range(len(parts))]
    logits = [p.entity_logits for p in parts]
    return PairEncoding(
        num_frames=sum(p.num_frames for p in parts),
        entity_logits=None if any(x is None for x in logits) else torch.cat(logits),
        entity_labels=torch.cat([p.entity_labels for p in parts]),
        entity_scores=torch.cat([p.entity_scores for p in parts]),
        entity_track=torch.cat([p.entity_track for p in parts]),
        pair_frame=torch.cat([p.pair_frame + o for p, o in zip(parts, frame_offset, strict=True)]),
        pair_subject=torch.cat(
            [p.pair_subject + o for p, o in zip(parts, ent_offset, strict=True)]
        ),
        pair_object=torch.cat([p.pair_object + o for p, o in zip(parts, ent_offset, strict=True)]),
        encoded=torch.cat([p.encoded for p in parts]),
    )
