"""Entities and pairs over a clip (models/entities.py, models/pairs.py): the best person
of each frame, one person kept, the pairs and the other entity pairs, vectorised."""

from __future__ import annotations

import torch

from tr2_core.models.entities import best_person, keep_single_person
from tr2_core.models.pairs import make_pairs, other_pairs
from tr2_core.vocab import PERSON


def test_best_person_and_pairs_vectorised():
    frame = torch.tensor([0, 0, 0, 1, 1, 2])
    labels = torch.tensor([PERSON, 5, PERSON, 7, 8, PERSON])
    scores = torch.tensor([0.5, 0.9, 0.8, 0.4, 0.3, 0.2])
    assert best_person(frame, labels, scores, 4).tolist() == [2, -1, 5, -1]
    keep = keep_single_person(frame, labels, scores, 4)
    assert keep.tolist() == [False, True, True, True, True, True]
    pf, ps, po = make_pairs(frame[keep], labels[keep], scores[keep], 4)
    assert pf.tolist() == [0] and ps.tolist() == [1] and po.tolist() == [0]


def test_other_pairs_cover_every_entity_pair_once():
    frame = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    labels = torch.tensor([PERSON, 5, 6, 7, 8, PERSON, 2, 3, PERSON, PERSON])
    scores = torch.tensor([1.0, 1, 1, 1, 1, 0.5, 1, 1, 0.9, 1])
    first, second = other_pairs(frame, labels, scores, 4)
    assert list(zip(first.tolist(), second.tolist(), strict=True)) == [
        (1, 2),  # frame 0: the person's pairs are pairs
        (3, 4),  # frame 1 has no person: every pair
        (5, 6),  # frame 2: row 8 is the best person
        (5, 7),
        (6, 7),
    ]
    pf, ps, po = make_pairs(frame, labels, scores, 4)
    covered = {frozenset(p) for p in zip(ps.tolist(), po.tolist(), strict=True)}
    covered |= {frozenset(p) for p in zip(first.tolist(), second.tolist(), strict=True)}
    everything = {
        frozenset((a, b)) for a in range(10) for b in range(a + 1, 10) if frame[a] == frame[b]
    }
    assert covered == everything
