"""The authors' SGDet post-processing (``object_classifier.sgdet_labels: release``)
against a plain transcription of their object classifier's SGDet inference: labels from
the detector's distribution, book / chair / food duplicated, per-class NMS 0.6 with +1
areas, the person by probability."""

from __future__ import annotations

import pytest
import torch
from release_detector_fixtures import ref_relabel

from tr2_core.models import entities as det


def scene(seed: int, num: int = 40, num_frames: int = 4):
    """Detections whose labels hit the cleaned classes and whose boxes overlap."""
    g = torch.Generator().manual_seed(seed)
    frame = torch.sort(torch.randint(0, num_frames, (num,), generator=g)).values
    # a few spots per frame with jitter: same-class boxes overlap above 0.6 at times
    centre = torch.randint(0, 3, (num, 2), generator=g) * 30 + torch.rand(num, 2, generator=g) * 4
    size = 20 + torch.rand(num, 2, generator=g) * 20
    boxes = torch.cat([centre, centre + size], 1).round()
    logits = torch.randn(num, 36, generator=g)
    favoured = torch.tensor([0, 4, 7, 16, 2])[torch.randint(0, 5, (num,), generator=g)]
    logits[torch.arange(num), favoured] += 3.0
    # a second favourite, so that a copy's next class is not a coin toss
    logits[torch.arange(num), (favoured + 1) % 36] += 2.0
    dist = logits.softmax(1)
    features = torch.randn(num, 6, generator=g)
    return frame, boxes, features, dist, num_frames


def run_tr2(frame, boxes, features, dist, num_frames):
    f, b, lab, sc, feat, _ = det.release_sgdet_entities(frame, boxes, features, dist, num_frames)
    return f, b, lab, sc, feat


def as_rows(frame, boxes, labels, scores):
    return [
        (int(f), [float(v) for v in b], int(lab), float(s))
        for f, b, lab, s in zip(frame, boxes, labels, scores, strict=True)
    ]


def reference_rows(frame, boxes, dist, num_frames, **variant):
    ref = ref_relabel(frame.tolist(), boxes.tolist(), dist.tolist(), num_frames, **variant)
    return [(f, [float(v) for v in b], lab, s) for f, b, lab, s, _ in ref], [r[4] for r in ref]


@pytest.mark.parametrize("seed", range(6))
def test_release_relabelling_equals_the_authors(seed):
    frame, boxes, features, dist, num_frames = scene(seed)
    f, b, lab, sc, feat = run_tr2(frame, boxes, features, dist, num_frames)
    ref, rows = reference_rows(frame, boxes, dist, num_frames)
    got = as_rows(f, b, lab, sc)
    assert [r[:3] for r in got] == [r[:3] for r in ref]
    assert torch.allclose(torch.tensor([r[3] for r in got]), torch.tensor([r[3] for r in ref]))
    assert torch.equal(feat, features[rows])  # copies carry their box's feature
    assert len(rows) > len(set(rows))  # the scene has copies of cleaned classes
    per_frame = torch.bincount(f[lab == 1], minlength=num_frames)
    assert per_frame.tolist() == [1 if bool((f == i).any()) else 0 for i in range(num_frames)]


VARIANTS = {
    "no cleaning": {"cleaned": ()},
    "no second NMS": {"nms": 1.01},
    "NMS at the detector's 0.4": {"nms": 0.4},
    "person by label": {"person": "label"},
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_step_of_the_relabelling_matters(name):
    """Each documented step changes the result on these scenes: leaving one out of the
    reference makes tr2 disagree with it."""
    differs = False
    for seed in range(6):
        frame, boxes, features, dist, num_frames = scene(seed)
        got = as_rows(*run_tr2(frame, boxes, features, dist, num_frames)[:4])
        broken, _ = reference_rows(frame, boxes, dist, num_frames, **VARIANTS[name])
        differs |= [r[:3] for r in got] != [r[:3] for r in broken]
    assert differs, name


def test_no_detections_give_no_entities():
    empty = torch.zeros(0, dtype=torch.long)
    f, b, lab, sc, feat = run_tr2(
        empty, torch.zeros(0, 4), torch.zeros(0, 6), torch.zeros(0, 36), 3
    )
    assert f.numel() == b.numel() == lab.numel() == sc.numel() == feat.numel() == 0
