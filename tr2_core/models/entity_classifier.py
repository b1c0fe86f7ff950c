"""The object classifier of SGCls / SGDet: entity feature [+ box, + the detector's class
distribution] -> 37 logits, and the authors' label decision over them (the person of
each frame, duplicate relabelling).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tr2_core.models.entities import group_argmax
from tr2_core.models.model_config import ObjectClassifierConfig
from tr2_core.types import VideoFeatures
from tr2_core.vocab import NUM_OBJECT_CLASSES, PERSON

BOX_EMBED_DIM = 128


class StableBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that uses its running statistics for batches of fewer than two rows
    (a one-entity clip in training would otherwise raise)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < 2:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


def center_size(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) ``x1 y1 x2 y2`` -> (N, 4) ``cx cy w h``."""
    wh = boxes[:, 2:] - boxes[:, :2]
    return torch.cat([boxes[:, :2] + 0.5 * wh, wh], dim=1)


class ObjectClassifier(nn.Module):
    """Entity visual feature [+ box position embedding] -> (N, 37) logits (0 = background).

    Authors' layout (``box_embedding`` and ``batch_norm`` on): the box's centre/size goes
    through BatchNorm, Linear 4 -> 128, ReLU, Dropout; it is concatenated with the
    visual feature and classified by Linear -> BatchNorm -> ReLU -> Linear. With
    ``class_distribution`` the authors' third input sits between the two: the detector's
    class distribution (N, 36) times a (36, class_embed_dim) table.
    """

    def __init__(
        self, entity_dim: int, cfg: ObjectClassifierConfig, class_embed_dim: int = 200
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.class_embed = None
        if cfg.class_distribution:
            self.class_embed = nn.Embedding(NUM_OBJECT_CLASSES - 1, class_embed_dim)
            # the detector's classification layer (frozen; a buffer, never trained here)
            self.register_buffer("detector_cls_weight", torch.zeros(NUM_OBJECT_CLASSES, entity_dim))
            self.register_buffer("detector_cls_bias", torch.zeros(NUM_OBJECT_CLASSES))
        self.box_embed = (
            nn.Sequential(
                StableBatchNorm1d(4, momentum=0.001),
                nn.Linear(4, BOX_EMBED_DIM),
                nn.ReLU(),
                nn.Dropout(0.1),
            )
            if cfg.box_embedding
            else None
        )
        in_dim = entity_dim + (BOX_EMBED_DIM if cfg.box_embedding else 0)
        in_dim += class_embed_dim if cfg.class_distribution else 0
        middle: list[nn.Module] = (
            [StableBatchNorm1d(cfg.hidden_dim), nn.ReLU()]
            if cfg.batch_norm
            else [nn.ReLU(), nn.Dropout(cfg.dropout)]
        )
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, cfg.hidden_dim),
            *middle,
            nn.Linear(cfg.hidden_dim, NUM_OBJECT_CLASSES),
        )

    def forward(self, features: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
        """features (N, entity_dim), boxes (N, 4) ``x1 y1 x2 y2`` -> (N, 37) logits."""
        parts = [features]
        if self.class_embed is not None:
            parts.append(self.detector_distribution(features) @ self.class_embed.weight)
        if self.box_embed is not None:
            if boxes is None:
                raise ValueError("object_classifier.box_embedding is on: pass the entity boxes")
            parts.append(self.box_embed(center_size(boxes.to(features))))
        return self.mlp(torch.cat(parts, 1) if len(parts) > 1 else features)

    def detector_distribution(self, features: torch.Tensor) -> torch.Tensor:
        """features (N, entity_dim) -> (N, 36): softmax over the 36 objects of the
        detector's classification layer (background logit dropped first, as the
        release)."""
        logits = nn.functional.linear(features, self.detector_cls_weight, self.detector_cls_bias)
        return logits[:, 1:].softmax(dim=1)

    def classify(self, video: VideoFeatures) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits and label decision for a :class:`~tr2_core.types.VideoFeatures`:
        (logits (N, 37), labels (N,) int64, scores (N,) float, detached)."""
        logits = self(video.entity_features, video.entity_boxes)
        labels, scores = decide_entity_labels(
            logits, video.entity_frame, video.pair_subject, self.cfg
        )
        return logits, labels, scores


def decide_entity_labels(
    logits: torch.Tensor,
    entity_frame: torch.Tensor,
    pair_subject: torch.Tensor,
    cfg: ObjectClassifierConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' SGCls label decision from object-classifier logits.

    Softmax over the 36 non-background classes; every entity takes its best class among
    2..36; per frame the person is the entity with the highest person probability
    (``cfg.person = classifier``) or the pairs' subject (``pair_subject``). With
    ``cfg.dedup``, per frame, of the most frequent label (ties: the smallest) only the
    most probable box keeps it; each other one gets that class's probability zeroed and
    takes its best remaining class (any of 1..36), as the authors.

    Args:
        logits: (N, 37). entity_frame: (N,) int64. pair_subject: (P,) int64 rows.
    Returns:
        labels (N,) int64 in 1..36 and scores (N,) float32 (softmax probability of the
        label), detached.
    """
    probs = logits.detach().float()[:, 1:].softmax(-1)  # (N, 36): column j = class j + 1
    num = probs.shape[0]
    if num == 0:
        return torch.zeros(0, dtype=torch.long, device=logits.device), probs.new_zeros(0)
    scores, best = probs[:, PERSON:].max(dim=1)  # classes 2..36
    labels = best + PERSON + 1
    if cfg.person == "classifier":
        num_frames = int(entity_frame.max()) + 1
        person = group_argmax(probs[:, 0], entity_frame, num_frames)
        person = person[person >= 0]
    else:
        person = pair_subject.unique()
    labels[person] = PERSON
    scores[person] = probs[person, 0]
    if cfg.dedup:
        labels, scores = _remove_duplicates(probs, labels, scores, entity_frame)
    return labels, scores


def _remove_duplicates(
    probs: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, entity_frame: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame, the most frequent label (ties: the smallest) is kept by its most probable
    box only; the others take their best class with that one's probability zeroed."""
    num_frames = int(entity_frame.max()) + 1
    counts = torch.zeros(num_frames, NUM_OBJECT_CLASSES, dtype=torch.long, device=labels.device)
    counts.index_put_((entity_frame, labels), torch.ones_like(labels), accumulate=True)
    mode = counts.argmax(dim=1)  # first maximum = smallest label
    duplicated = labels == mode[entity_frame]
    duplicated &= counts.max(dim=1).values[entity_frame] > 1
    rows = torch.arange(labels.shape[0], device=labels.device)
    on_mode = probs[rows, (labels - 1).clamp(min=0)]
    keeper = group_argmax(on_mode, entity_frame, num_frames, duplicated)
    losers = duplicated & (keeper[entity_frame] != rows)
    if bool(losers.any()):
        rest = probs[losers].clone()
        rest[torch.arange(rest.shape[0], device=rest.device), labels[losers] - 1] = 0.0
        new_score, new_index = rest.max(dim=1)
        labels = labels.clone()
        scores = scores.clone()
        labels[losers] = new_index + 1
        scores[losers] = new_score
    return labels, scores
