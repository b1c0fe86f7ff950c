"""Classifiers: the object classifier and the per-family predicate classifiers
(linear, or CLIP text embeddings as classifier weights)."""

from __future__ import annotations

import torch
from torch import nn

from tr2_core.models.config import ObjectClassifierConfig
from tr2_core.vocab import FAMILIES, NUM_OBJECT_CLASSES, NUM_PREDICATES


class ObjectClassifier(nn.Module):
    """Entity visual feature (N, entity_dim) -> (N, 37) logits (0 = background)."""

    def __init__(self, entity_dim: int, cfg: ObjectClassifierConfig) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(entity_dim, cfg.hidden_dim),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden_dim, NUM_OBJECT_CLASSES),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


class LinearPredicateHeads(nn.Module):
    """One linear layer per family: e_r (P, R) -> {family: (P, family.size)} logits."""

    def __init__(self, relation_dim: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({f.name: nn.Linear(relation_dim, f.size) for f in FAMILIES})

    def forward(self, e_r: torch.Tensor, object_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``object_labels`` (P,) is unused (same signature as :class:`TextPredicateHeads`)."""
        return {name: head(e_r) for name, head in self.heads.items()}


class TextPredicateHeads(nn.Module):
    """Text embeddings as classifier weights (authors' PredCls/SGCls heads).

    Per family, e_r is projected to the CLIP width D and scored against the
    L2-normalised text embedding of the prompt (pair's object class, predicate):
    ``logit[p, k] = <W_f e_r[p] + b_f, t̂[obj[p], family.start + k]>``.

    The (37, 26, D) text table is a persistent buffer (saved in checkpoints);
    ``text_table_set`` records whether real embeddings were loaded.
    """

    def __init__(self, relation_dim: int, text_dim: int, text_table: torch.Tensor | None) -> None:
        super().__init__()
        self.proj = nn.ModuleDict({f.name: nn.Linear(relation_dim, text_dim) for f in FAMILIES})
        table = torch.zeros(NUM_OBJECT_CLASSES, NUM_PREDICATES, text_dim)
        self.register_buffer("text_table", table)
        self.register_buffer("text_table_set", torch.zeros((), dtype=torch.bool))
        if text_table is not None:
            self.set_text_table(text_table)

    def set_text_table(self, table: torch.Tensor) -> None:
        """Install a (37, 26, D) table of CLIP text embeddings (normalised here)."""
        if tuple(table.shape) != tuple(self.text_table.shape):
            raise ValueError(
                f"text table has shape {tuple(table.shape)}, "
                f"expected {tuple(self.text_table.shape)}"
            )
        table = table.to(self.text_table)
        self.text_table.copy_(nn.functional.normalize(table, dim=-1))
        self.text_table_set.fill_(True)

    def forward(self, e_r: torch.Tensor, object_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """e_r (P, R), object_labels (P,) -> {family: (P, family.size)} logits."""
        if not bool(self.text_table_set):
            raise RuntimeError(
                "heads.classifier=text but no text table was installed: pass text_table= to "
                "create_relation_model (from `tr2 prompts`) or load a checkpoint that holds one"
            )
        weights = self.text_table[object_labels]  # (P, 26, D)
        out = {}
        for family in FAMILIES:
            v = self.proj[family.name](e_r)  # (P, D)
            out[family.name] = torch.einsum("pd,pkd->pk", v, weights[:, family.slice])
        return out
