"""SGDet training entities (train/sgdet_assignment.py): the greedy one-to-one assignment
of detections to GT boxes, the missed GT boxes added, and the assigned labels and GT-only
pairs the authors train on."""

from __future__ import annotations

import itertools

import pytest
import torch
from model_fixtures import BOXES, LABELS, frames, people_and_bags_extractor, small_config
from torchvision.ops import box_iou

from tr2_core.models import create_extractor
from tr2_core.train.sgdet_assignment import assign_detections, extract_sgdet_training
from tr2_core.vocab import PERSON


@pytest.fixture(scope="module")
def extractor():
    return create_extractor(small_config("detector.score_thresh=0.0"), random_init=True)


def _greedy_reference(det, gt, iou_thr):
    from torchvision.ops import box_iou

    iou = box_iou(det, gt)
    cand = sorted(
        ((float(iou[d, g]), d, g) for d, g in itertools.product(range(len(det)), range(len(gt)))),
        reverse=True,
    )
    out, used_d, used_g = [-1] * len(det), set(), set()
    for v, d, g in cand:
        if v > iou_thr and d not in used_d and g not in used_g:
            out[d] = g
            used_d.add(d)
            used_g.add(g)
    return out


def test_assign_detections_equals_sequential_greedy():
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        nd, ng = (
            int(torch.randint(1, 12, (1,), generator=gen)),
            int(torch.randint(1, 8, (1,), generator=gen)),
        )
        gt = torch.rand(ng, 2, generator=gen) * 50
        gt = torch.cat([gt, gt + 20 + torch.rand(ng, 2, generator=gen) * 20], 1)
        pick = torch.randint(0, ng, (nd,), generator=gen)
        det = gt[pick] + torch.randn(nd, 4, generator=gen) * 4
        got = assign_detections(
            det, torch.zeros(nd, dtype=torch.long), gt, torch.zeros(ng, dtype=torch.long)
        )
        assert got.tolist() == _greedy_reference(det, gt, 0.5)
    # boxes of different frames never match
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert assign_detections(box, torch.tensor([0]), box, torch.tensor([1])).tolist() == [-1]


def test_sgdet_training_adds_missed_gt(extractor):
    gt_boxes = [BOXES, BOXES[:2], BOXES]
    gt_labels = [LABELS, LABELS[:2], LABELS]
    f, entity_gt = extract_sgdet_training(extractor, frames(), gt_boxes, gt_labels)
    assert entity_gt.shape == f.entity_labels.shape
    matched = entity_gt[entity_gt >= 0]
    assert sorted(matched.tolist()) == list(range(8))  # every GT box exactly once
    gt_all = torch.cat(gt_boxes)
    rows = (entity_gt >= 0).nonzero().flatten()
    ious = box_iou(f.entity_boxes[rows], gt_all[entity_gt[rows]]).diagonal()
    assert (ious > 0.5).all()
    assert torch.equal(f.entity_frame, f.entity_frame.sort().values)


def test_sgdet_training_labels_and_pairs_are_the_assigned_gt():
    """As the authors: entities carry their assigned GT label (0 = background), the
    person is the entity assigned to the GT person, and the pairs are the GT relations
    only (no background object) -- with a detector that calls everything a person or a
    bag, none of its labels reach the training features."""
    ext = people_and_bags_extractor()
    gt_boxes = [BOXES, BOXES[:2], BOXES]
    gt_labels = [LABELS, LABELS[:2], LABELS]
    f, entity_gt = extract_sgdet_training(ext, frames(), gt_boxes, gt_labels)
    gt_all = torch.cat(gt_labels)
    assert (f.entity_labels == 0).sum() > 0  # background detections stay entities
    expected = torch.where(entity_gt >= 0, gt_all[entity_gt.clamp(min=0)], 0)
    assert torch.equal(f.entity_labels, expected)
    assert sorted(entity_gt[f.pair_object].tolist()) == [1, 2, 4, 6, 7]  # GT objects
    assert sorted(set(entity_gt[f.pair_subject].tolist())) == [0, 3, 5]  # GT persons
    assert (f.entity_labels[f.pair_subject] == PERSON).all()
    assert f.union_features.shape[0] == 5
