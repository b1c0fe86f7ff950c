"""Builders: one config -> extractor, relation model, or both; weights loading.

Weights never initialise silently: without ``random_init=True`` the frozen parts
need real weights (detector state dict, CLIP checkpoint/tag) and any missing file
or mismatch raises :class:`~tr2_core.errors.WeightsError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tr2_core.errors import WeightsError
from tr2_core.models.config import ModelConfig, TaskMode, load_model_config
from tr2_core.models.detector import (
    build_detector,
    load_detector_weights,
    load_strict,
    read_state_dict,
)
from tr2_core.models.extractor import FeatureExtractor
from tr2_core.models.guidance import TextTable, load_text_table
from tr2_core.models.outputs import RelationOutput
from tr2_core.models.tr2 import RelationModel
from tr2_core.models.union import UnionFeatureEncoder, create_clip
from tr2_core.types import VideoFeatures

log = logging.getLogger(__name__)

RANDOM_INIT_WARNING = (
    "RANDOM INIT: the frozen detector and CLIP of model %r are randomly initialised "
    "(--random-init). Use only for tests and the synthetic demo; numbers from this model are "
    "NOT TR² results."
)


def resolve_config(config: ModelConfig | str | Path, overrides=()) -> ModelConfig:
    """A ModelConfig as is, or a named / YAML config with dotted overrides."""
    if isinstance(config, ModelConfig):
        if overrides:
            raise ValueError("overrides apply to named configs; edit the ModelConfig instead")
        return config
    return load_model_config(config, tuple(overrides))


def create_extractor(
    config: ModelConfig | str | Path,
    *,
    random_init: bool = False,
    detector_weights: str | Path | None = None,
    clip_weights: str | None = None,
    device: str | torch.device = "cpu",
) -> FeatureExtractor:
    """The frozen :class:`FeatureExtractor` of ``config``.

    Args:
        random_init: same architecture with random weights; logs a loud warning and sets
            ``extractor.random_init = True``.
        detector_weights: torchvision-format ``FasterRCNN`` state dict file (overrides
            ``detector.weights``).
        clip_weights: open_clip checkpoint file or tag (overrides ``clip.pretrained``).
    Raises:
        WeightsError: weights missing / unreadable / not matching (never a silent random init).
    """
    cfg = resolve_config(config)
    detector = build_detector(cfg.detector)
    if random_init:
        log.warning(RANDOM_INIT_WARNING, cfg.name)
    else:
        path = detector_weights if detector_weights is not None else cfg.detector.weights
        if not path:
            raise WeightsError(
                f"model {cfg.name!r}: no detector weights; set detector.weights or pass "
                "--detector-weights PATH (a torchvision FasterRCNN state dict); use "
                "--random-init only for tests and the synthetic demo"
            )
        load_detector_weights(detector, path)
    clip_model = create_clip(cfg.clip, random_init=random_init, pretrained=clip_weights)
    union = UnionFeatureEncoder(clip_model, cfg.clip)
    if union.out_dim != cfg.representation.union_dim:
        raise WeightsError(
            f"CLIP {cfg.clip.model_name} gives {union.out_dim}-d image features but "
            f"representation.union_dim is {cfg.representation.union_dim}"
        )
    extractor = FeatureExtractor(detector, union, cfg, random_init=random_init)
    return extractor.to(device)


def _table_tensor(text_table: TextTable | torch.Tensor | str | Path | None, dim: int):
    if text_table is None:
        return None
    if isinstance(text_table, (str, Path)):
        text_table = load_text_table(text_table, expected_dim=dim)
    table = text_table.table if isinstance(text_table, TextTable) else text_table
    if table.shape[-1] != dim:
        raise WeightsError(f"text table width {table.shape[-1]} but the model expects {dim}")
    return table


def create_relation_model(
    config: ModelConfig | str | Path,
    *,
    text_table: TextTable | torch.Tensor | str | Path | None = None,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> RelationModel:
    """The trainable :class:`RelationModel` (random init, or ``weights``: a state dict file
    of this model, loaded strictly with ``weights_only=True``).

    ``text_table`` (a :class:`TextTable`, (37, 26, D) tensor or ``.npz`` path) is installed
    in the text classifier heads (``heads.classifier: text``); a checkpoint also carries it.
    """
    cfg = resolve_config(config)
    table = _table_tensor(text_table, cfg.representation.union_dim)
    model = RelationModel(cfg, text_table=table if cfg.heads.uses_text else None)
    if weights is not None:
        load_relation_weights(model, weights)
    return model.to(device)


def load_relation_weights(model: nn.Module, path: str | Path) -> None:
    """Strictly load a relation-model state dict file (``{"model": sd}``, ``{"state_dict":
    sd}`` or a bare state dict); mismatches raise :class:`WeightsError`."""
    load_strict(model, read_state_dict(path, "relation model"), "relation model", str(path))


@dataclass
class TR2:
    """Extractor + relation model of one config (``create_model``)."""

    config: ModelConfig
    extractor: FeatureExtractor
    relation: RelationModel

    @property
    def random_init(self) -> bool:
        return self.extractor.random_init

    def to(self, device: str | torch.device) -> TR2:
        self.extractor.to(device)
        self.relation.to(device)
        return self

    @torch.no_grad()
    def predict(
        self,
        images: list[torch.Tensor],
        boxes: list[torch.Tensor] | None = None,
        labels: list[torch.Tensor] | None = None,
        *,
        mode: TaskMode = "predcls",
        **extract_kwargs,
    ) -> tuple[VideoFeatures, RelationOutput]:
        """Images of one clip -> (features, relation output) in eval mode."""
        if (boxes is None) != (mode == "sgdet"):
            raise ValueError(
                f"mode {mode!r}: boxes must be {'None' if mode == 'sgdet' else 'given'}"
            )
        features = self.extractor.extract(images, boxes, labels, **extract_kwargs)
        was_training = self.relation.training
        self.relation.eval()
        try:
            out = self.relation(features, mode=mode)
        finally:
            self.relation.train(was_training)
        return features, out


def create_model(
    config: ModelConfig | str | Path,
    *,
    random_init: bool = False,
    overrides=(),
    text_table: TextTable | torch.Tensor | str | Path | None = None,
    detector_weights: str | Path | None = None,
    clip_weights: str | None = None,
    relation_weights: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> TR2:
    """Build the whole model of ``config`` (a ModelConfig, a name in ``config/models/`` or a
    YAML path, with dotted ``overrides``). See :func:`create_extractor` and
    :func:`create_relation_model` for the arguments."""
    cfg = resolve_config(config, overrides)
    extractor = create_extractor(
        cfg,
        random_init=random_init,
        detector_weights=detector_weights,
        clip_weights=clip_weights,
        device=device,
    )
    relation = create_relation_model(
        cfg, text_table=text_table, weights=relation_weights, device=device
    )
    return TR2(cfg, extractor, relation)
