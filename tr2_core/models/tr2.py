"""The trainable TR² relation model: object classifier, relation representation,
relation feature fusion, predicate heads and guidance projections.

It consumes :class:`~tr2_core.types.VideoFeatures` (cacheable outputs of the
frozen extractor) and returns :class:`~tr2_core.models.outputs.RelationOutput`.
The task mode only chooses where entity labels come from (given in PredCls,
object classifier in SGCls/SGDet); all other branches are the same.
"""

from __future__ import annotations

import torch
from torch import nn

from tr2_core.models.config import ModelConfig, TaskMode
from tr2_core.models.detector import union_boxes
from tr2_core.models.fusion import RelationFusion, sequence_layout
from tr2_core.models.guidance import ChangeHead
from tr2_core.models.heads import ObjectClassifier, build_predicate_heads
from tr2_core.models.outputs import RelationOutput
from tr2_core.vocab import FAMILIES, NUM_OBJECT_CLASSES

TASK_MODES: tuple[str, ...] = ("predcls", "sgcls", "sgdet")


def box_masks(subject: torch.Tensor, obj: torch.Tensor, size: int) -> torch.Tensor:
    """STTran-style two-channel masks: (P, 2, size, size) float, 1 where a cell centre of a
    size x size grid laid over the union box lies inside the subject (channel 0) / object
    (channel 1) box."""
    union = union_boxes(subject, obj)
    steps = (torch.arange(size, device=subject.device, dtype=subject.dtype) + 0.5) / size
    wh = (union[:, 2:] - union[:, :2]).clamp(min=1e-6)
    xs = union[:, None, 0] + steps[None] * wh[:, None, 0]  # (P, S)
    ys = union[:, None, 1] + steps[None] * wh[:, None, 1]
    out = []
    for box in (subject, obj):
        in_x = (xs >= box[:, None, 0]) & (xs <= box[:, None, 2])
        in_y = (ys >= box[:, None, 1]) & (ys <= box[:, None, 3])
        out.append(in_y[:, :, None] & in_x[:, None, :])
    return torch.stack(out, dim=1).to(subject.dtype)


class GeometryBranch(nn.Module):
    """Optional box-geometry branch: two-channel union-box masks -> small conv -> vector."""

    def __init__(self, mask_size: int, out_dim: int) -> None:
        super().__init__()
        self.mask_size = mask_size
        self.net = nn.Sequential(
            nn.Conv2d(2, 64, kernel_size=5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(128, out_dim),
        )

    def forward(self, subject_boxes: torch.Tensor, object_boxes: torch.Tensor) -> torch.Tensor:
        """(P, 4), (P, 4) -> (P, out_dim)."""
        return self.net(box_masks(subject_boxes, object_boxes, self.mask_size))


class RelationRepresentation(nn.Module):
    """Pair representation (P, d_model): Concat(union 512, W_s subject 2048->512,
    W_o object 2048->512, E_s[subject label] 200, E_o[object label] 200[, geometry])."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        rep = config.representation
        self.subject_proj = nn.Linear(rep.entity_dim, rep.entity_proj_dim)
        self.object_proj = nn.Linear(rep.entity_dim, rep.entity_proj_dim)
        self.subject_embed = nn.Embedding(NUM_OBJECT_CLASSES, rep.class_embed_dim)
        self.object_embed = nn.Embedding(NUM_OBJECT_CLASSES, rep.class_embed_dim)
        self.geometry = (
            GeometryBranch(rep.geometry_mask_size, rep.geometry_dim) if rep.geometry else None
        )

    def forward(self, features, labels: torch.Tensor) -> torch.Tensor:
        s, o = features.pair_subject, features.pair_object
        parts = [
            features.union_features,
            self.subject_proj(features.entity_features[s]),
            self.object_proj(features.entity_features[o]),
            self.subject_embed(labels[s]),
            self.object_embed(labels[o]),
        ]
        if self.geometry is not None:
            parts.append(self.geometry(features.entity_boxes[s], features.entity_boxes[o]))
        return torch.cat(parts, dim=1)


class RelationModel(nn.Module):
    """TR² trainable part.

    ``forward(features, targets=None, *, mode="predcls") -> RelationOutput``.
    ``targets`` is accepted for interface symmetry and not used: the heads never see
    labels; the losses take targets (see :func:`~tr2_core.models.losses.compute_losses`).
    """

    def __init__(self, config: ModelConfig, text_table: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        rep = config.representation
        d = config.d_model
        self.object_classifier = ObjectClassifier(rep.entity_dim, config.object_classifier)
        self.representation = RelationRepresentation(config)
        self.fusion = RelationFusion(d, config.fusion)
        r = self.fusion.out_dim
        self.heads = build_predicate_heads(r, rep.union_dim, config.heads, text_table)
        mode = config.guidance.mode
        self.guidance_proj = (
            nn.ModuleDict({f.name: nn.Linear(r, rep.union_dim) for f in FAMILIES})
            if mode != "none"
            else None
        )
        self.change_heads = (
            nn.ModuleDict(
                {f.name: ChangeHead(rep.union_dim, config.guidance.change_head) for f in FAMILIES}
            )
            if mode == "bin"
            else None
        )

    def entity_labels(
        self, features, mode: TaskMode
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(entity_logits or None, labels (N,), scores (N,)) for ``mode``."""
        if mode == "predcls":
            return None, features.entity_labels, features.entity_scores
        return self.object_classifier.classify(features)

    def forward(
        self,
        features,
        targets=None,
        *,
        mode: TaskMode = "predcls",
        with_guidance: bool | None = None,
    ) -> RelationOutput:
        """features: :class:`~tr2_core.types.VideoFeatures` of one clip -> RelationOutput.

        ``with_guidance`` (default: ``self.training``) computes the guidance outputs
        (``guidance_visual`` / ``change_logits``) when the config has guidance.
        """
        if mode not in TASK_MODES:
            raise ValueError(f"mode must be one of {TASK_MODES}, got {mode!r}")
        logits, labels, scores = self.entity_labels(features, mode)
        layout = sequence_layout(
            features.pair_frame,
            features.pair_subject,
            features.pair_object,
            features.entity_track,
            labels,
        )
        x = self.representation(features, labels)
        e_r = self.fusion(x, features.pair_frame, layout)
        family_logits = self.heads(e_r, labels[features.pair_object], mode)
        visual = change = None
        if with_guidance is None:
            with_guidance = self.training
        if self.guidance_proj is not None and with_guidance:
            projected = [self.guidance_proj[f.name](e_r) for f in FAMILIES]
            if self.change_heads is not None:
                change = torch.cat(
                    [
                        self.change_heads[f.name](v - v[layout.prev])
                        for f, v in zip(FAMILIES, projected, strict=True)
                    ],
                    dim=1,
                )
            else:
                visual = torch.stack(projected, dim=0)
        return RelationOutput(
            entity_logits=logits,
            entity_labels=labels,
            entity_scores=scores,
            attention=family_logits["attention"],
            spatial=family_logits["spatial"],
            contacting=family_logits["contacting"],
            relation_features=e_r,
            pair_sequence=layout.grouping.group,
            pair_prev=layout.prev,
            guidance_visual=visual,
            change_logits=change,
        )
