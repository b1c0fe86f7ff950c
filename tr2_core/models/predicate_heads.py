"""Predicate scores: per-family classifiers over the fused relation feature (linear, or
CLIP text embeddings of the prompts as classifier weights), chosen per task."""

from __future__ import annotations

import torch
from torch import nn

from tr2_core.models.model_config import HeadConfig
from tr2_core.vocab import FAMILIES, NUM_OBJECT_CLASSES, NUM_PREDICATES


class LinearPredicateHeads(nn.Module):
    """One linear layer per family: e_r (P, R) -> {family: (P, family.size)} logits."""

    def __init__(self, relation_dim: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({f.name: nn.Linear(relation_dim, f.size) for f in FAMILIES})

    def forward(
        self, e_r: torch.Tensor, object_labels: torch.Tensor, task: str | None = None
    ) -> dict[str, torch.Tensor]:
        """``object_labels`` and ``task`` are unused (signature of :class:`TaskPredicateHeads`)."""
        return {name: head(e_r) for name, head in self.heads.items()}


class TextPredicateHeads(nn.Module):
    """Text embeddings as classifier weights (authors' PredCls/SGCls heads).

    Per family, e_r is projected to the CLIP width D and scored against the text
    embedding of the prompt (pair's object class, predicate):
    ``logit[p, k] = <W_f e_r[p] + b_f, t[obj[p], family.start + k]>`` with t the raw
    ``encode_text`` output (authors) or its L2-normalised form (``normalize``).

    The (37, 26, D) text table is a persistent buffer (saved in checkpoints);
    ``text_table_set`` records whether real embeddings were loaded.
    """

    def __init__(
        self,
        relation_dim: int,
        text_dim: int,
        text_table: torch.Tensor | None,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.proj = nn.ModuleDict({f.name: nn.Linear(relation_dim, text_dim) for f in FAMILIES})
        table = torch.zeros(NUM_OBJECT_CLASSES, NUM_PREDICATES, text_dim)
        self.register_buffer("text_table", table)
        self.register_buffer("text_table_set", torch.zeros((), dtype=torch.bool))
        if text_table is not None:
            self.set_text_table(text_table)

    def set_text_table(self, table: torch.Tensor) -> None:
        """Install a (37, 26, D) table of CLIP text embeddings (normalised here when
        ``normalize``)."""
        if tuple(table.shape) != tuple(self.text_table.shape):
            raise ValueError(
                f"text table has shape {tuple(table.shape)}, "
                f"expected {tuple(self.text_table.shape)}"
            )
        table = table.to(self.text_table)
        if self.normalize:
            table = nn.functional.normalize(table, dim=-1)
        self.text_table.copy_(table)
        self.text_table_set.fill_(True)

    def forward(
        self, e_r: torch.Tensor, object_labels: torch.Tensor, task: str | None = None
    ) -> dict[str, torch.Tensor]:
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


class TaskPredicateHeads(nn.Module):
    """Both head kinds, chosen per task (authors: text heads in PredCls / SGCls, linear
    heads in SGDet). Used when the tasks of one config need different kinds."""

    def __init__(self, cfg: HeadConfig, text: TextPredicateHeads, linear: LinearPredicateHeads):
        super().__init__()
        self.cfg = cfg
        self.text = text
        self.linear = linear

    def forward(
        self, e_r: torch.Tensor, object_labels: torch.Tensor, task: str | None = None
    ) -> dict[str, torch.Tensor]:
        """As the single-kind heads; ``task`` is required (the kind depends on it)."""
        if task is None:
            raise ValueError(
                "these predicate heads depend on the task (heads.sgdet_classifier differs "
                "from heads.classifier): pass task='predcls' / 'sgcls' / 'sgdet'"
            )
        kind = self.cfg.kind(task)
        return (self.text if kind == "text" else self.linear)(e_r, object_labels)


def build_predicate_heads(
    relation_dim: int, text_dim: int, cfg: HeadConfig, text_table: torch.Tensor | None
) -> nn.Module:
    """The predicate heads of ``cfg``: one kind when every task uses it, else
    :class:`TaskPredicateHeads`. All take ``(e_r, object_labels, task)``."""
    kinds = {cfg.kind(task) for task in ("predcls", "sgcls", "sgdet")}
    text = (
        TextPredicateHeads(relation_dim, text_dim, text_table, cfg.normalize_text)
        if "text" in kinds
        else None
    )
    linear = LinearPredicateHeads(relation_dim) if "linear" in kinds else None
    if text is not None and linear is not None:
        return TaskPredicateHeads(cfg, text, linear)
    return text if text is not None else linear
