"""Pairs: which entities are related. Per frame the person (the subject) x every other
entity; the entity pairs left out (for the release's SGCls re-pairing); pairs re-formed
around another subject; and the union box of a pair. Vectorised over the clip.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from tr2_core.models.entities import best_person
from tr2_core.types import VideoFeatures
from tr2_core.vocab import PERSON


def union_boxes(subject: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
    """Union of two box sets (P, 4) ``x1 y1 x2 y2`` -> (P, 4)."""
    lo = torch.minimum(subject[:, :2], obj[:, :2])
    hi = torch.maximum(subject[:, 2:], obj[:, 2:])
    return torch.cat([lo, hi], dim=1)


def make_pairs(
    entity_frame: torch.Tensor,
    entity_labels: torch.Tensor,
    entity_scores: torch.Tensor,
    num_frames: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs of a clip: the best person of each frame x every other entity of the frame.

    Returns (pair_frame, pair_subject, pair_object), each (P,) int64, in entity row order
    (so sorted by frame when the entities are).
    """
    subject_of = best_person(entity_frame, entity_labels, entity_scores, num_frames)
    rows = torch.arange(entity_frame.shape[0], device=entity_frame.device)
    subj = subject_of[entity_frame]
    keep = (subj >= 0) & (subj != rows)
    return entity_frame[keep], subj[keep], rows[keep]


def other_pairs(
    entity_frame: torch.Tensor,
    entity_labels: torch.Tensor,
    entity_scores: torch.Tensor,
    num_frames: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The entity pairs of each frame that :func:`make_pairs` leaves out: every
    unordered pair of two entities neither of which is the frame's subject.

    entity_frame (N,) int64 sorted -> (first, second), each (Q,) int64 entity rows,
    ``first < second``, sorted by frame. Together with the pairs they cover every
    unordered pair of a frame's entities once.
    """
    device = entity_frame.device
    rows = torch.arange(entity_frame.shape[0], device=device)
    counts = torch.bincount(entity_frame, minlength=num_frames)
    start = torch.cumsum(counts, 0) - counts
    later = (start + counts)[entity_frame] - rows - 1  # entities after each one in its frame
    first = torch.repeat_interleave(rows, later)
    group_start = torch.cumsum(later, 0) - later
    offset = torch.arange(first.shape[0], device=device) - torch.repeat_interleave(
        group_start, later
    )
    second = first + offset + 1
    subject_of = best_person(entity_frame, entity_labels, entity_scores, num_frames)
    subject = subject_of[entity_frame[first]]
    keep = (first != subject) & (second != subject)
    return first[keep], second[keep]


def pairs_around(
    features: VideoFeatures, person_of_frame: torch.Tensor, entity_labels: torch.Tensor
) -> VideoFeatures:
    """``features`` with its pairs re-formed around other subjects (the release's SGCls
    re-pairing): per frame the entity ``person_of_frame`` (T,) int64 (-1: none) x every
    other entity whose ``entity_labels`` (N,) is not person, in entity order. Each new
    pair's union feature is the one already extracted for the same two entities (union
    boxes do not depend on the order): from the pairs or the other pairs.

    Raises:
        ValueError: a new pair's two entities have no union feature (features extracted
            without ``with_other_pairs``).
    """
    frame = features.entity_frame
    num = frame.shape[0]
    rows = torch.arange(num, device=frame.device)
    subject = person_of_frame[frame] if num else rows
    keep = (subject >= 0) & (subject != rows) & (entity_labels != PERSON)
    new_subject, new_object = subject[keep], rows[keep]

    def unordered(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.minimum(a, b) * num + torch.maximum(a, b)

    known = [unordered(features.pair_subject, features.pair_object)]
    union = [features.union_features]
    if features.other_pair_subject is not None:
        known.append(unordered(features.other_pair_subject, features.other_pair_object))
        union.append(features.other_union_features.to(features.union_features))
    known_keys = torch.cat(known)
    order = torch.argsort(known_keys)
    wanted = unordered(new_subject, new_object)
    pos = torch.searchsorted(known_keys[order], wanted).clamp(max=max(known_keys.numel() - 1, 0))
    found = known_keys.numel() > 0 and bool((known_keys[order][pos] == wanted).all())
    if wanted.numel() and not found:
        raise ValueError(
            "SGCls re-pairing needs the union features of every entity pair of a frame: "
            "extract with with_other_pairs=True (object_classifier.sgcls_pairs=classifier)"
        )
    return replace(
        features,
        pair_frame=frame[keep],
        pair_subject=new_subject,
        pair_object=new_object,
        union_features=torch.cat(union)[order[pos]] if wanted.numel() else union[0][:0],
    )
