"""Synthetic VideoFeatures / VideoTargets for the model tests (no detector, no CLIP)."""

from __future__ import annotations

import torch

from tr2_core.models.extractor import create_extractor
from tr2_core.models.model_config import ModelConfig, load_model_config
from tr2_core.types import VideoFeatures, VideoTargets
from tr2_core.vocab import CONTACTING, PERSON, SPATIAL


def small_config(*overrides: str) -> ModelConfig:
    """tr2-small with dropout off (deterministic comparisons) and overrides."""
    return load_model_config("tr2-small", ("fusion.dropout=0.0", *overrides))


def make_features(
    objects_per_frame: list[list[int]],
    *,
    entity_dim: int = 512,
    union_dim: int = 64,
    tracks: list[list[int]] | None = None,
    seed: int = 0,
) -> VideoFeatures:
    """One person (label 1) per frame followed by the given object labels; pairs =
    person x every object, in frame order. Random features."""
    g = torch.Generator().manual_seed(seed)
    ent_frame, ent_labels, ent_track = [], [], []
    pair_frame, pair_subject, pair_object = [], [], []
    for t, objects in enumerate(objects_per_frame):
        person = len(ent_labels)
        ent_frame.append(t)
        ent_labels.append(1)
        ent_track.append(tracks[t][0] if tracks else -1)
        for j, label in enumerate(objects):
            pair_frame.append(t)
            pair_subject.append(person)
            pair_object.append(len(ent_labels))
            ent_frame.append(t)
            ent_labels.append(label)
            ent_track.append(tracks[t][j + 1] if tracks else -1)
    n, p = len(ent_labels), len(pair_frame)
    xy = torch.rand(n, 2, generator=g) * 100
    wh = torch.rand(n, 2, generator=g) * 50 + 5
    return VideoFeatures(
        frame_keys=[f"v.mp4/{t:06d}.png" for t in range(len(objects_per_frame))],
        entity_frame=torch.tensor(ent_frame, dtype=torch.long),
        entity_boxes=torch.cat([xy, xy + wh], dim=1),
        entity_labels=torch.tensor(ent_labels, dtype=torch.long),
        entity_scores=torch.ones(n),
        entity_features=torch.randn(n, entity_dim, generator=g).relu(),
        entity_track=torch.tensor(ent_track, dtype=torch.long),
        pair_frame=torch.tensor(pair_frame, dtype=torch.long),
        pair_subject=torch.tensor(pair_subject, dtype=torch.long),
        pair_object=torch.tensor(pair_object, dtype=torch.long),
        union_features=torch.randn(p, union_dim, generator=g),
    )


def make_targets(features: VideoFeatures, seed: int = 0) -> VideoTargets:
    """Random but valid labels for ``features`` (every pair has >= 1 label per family)."""
    g = torch.Generator().manual_seed(seed)
    p = features.pair_frame.shape[0]
    spatial = (torch.rand(p, SPATIAL.size, generator=g) < 0.3).float()
    spatial[torch.arange(p), torch.randint(0, SPATIAL.size, (p,), generator=g)] = 1.0
    contacting = (torch.rand(p, CONTACTING.size, generator=g) < 0.2).float()
    contacting[torch.arange(p), torch.randint(0, CONTACTING.size, (p,), generator=g)] = 1.0
    return VideoTargets(
        entity_labels=features.entity_labels.clone(),
        pair_attention=torch.randint(0, 3, (p,), generator=g),
        pair_spatial=spatial,
        pair_contacting=contacting,
    )


# --------------------------------------------------------------------------- extractor inputs
def frames(num: int = 3, seed: int = 0, size=(96, 128)) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=g) for _ in range(num)]


BOXES = torch.tensor([[10.0, 10.0, 60.0, 90.0], [50.0, 30.0, 120.0, 80.0], [0.0, 0.0, 20.0, 30.0]])
LABELS = torch.tensor([PERSON, 5, 9])


def people_and_bags_extractor():
    """A small random-init extractor whose detector sees people (0.27) and bags (0.25)
    everywhere: every frame has several detections of both."""
    ext = create_extractor(small_config("detector.detections_per_image=100"), random_init=True)
    with torch.no_grad():
        predictor = ext.detector.roi_heads.box_predictor.cls_score
        predictor.weight.zero_()
        predictor.bias.zero_()
        predictor.bias[PERSON] = 3.0
        predictor.bias[2] = 2.9
    return ext
