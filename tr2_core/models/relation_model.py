"""The trainable TR² relation model: object classifier, relation representation,
relation feature fusion, predicate heads and guidance projections.

It consumes :class:`~tr2_core.types.VideoFeatures` (cacheable outputs of the
frozen extractor) and returns :class:`~tr2_core.models.relation_outputs.RelationOutput`.
The task mode only chooses where entity labels come from (given in PredCls,
object classifier in SGCls/SGDet); all other branches are the same.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tr2_core.errors import WeightsError
from tr2_core.models.entities import group_argmax, load_strict, read_state_dict
from tr2_core.models.entity_classifier import ObjectClassifier
from tr2_core.models.fusion import RelationFusion, SequenceLayout, sequence_layout
from tr2_core.models.guidance import ChangeHead, TextTable, load_text_table
from tr2_core.models.model_config import ModelConfig, TaskMode, resolve_config
from tr2_core.models.online import online_windows
from tr2_core.models.pair_features import RelationRepresentation
from tr2_core.models.pairs import pairs_around
from tr2_core.models.predicate_heads import build_predicate_heads
from tr2_core.models.relation_outputs import PairEncoding, RelationOutput
from tr2_core.types import VideoFeatures, VideoTargets
from tr2_core.vocab import FAMILIES

TASK_MODES: tuple[str, ...] = ("predcls", "sgcls", "sgdet")


class RelationModel(nn.Module):
    """TR² trainable part.

    ``forward(features, targets=None, *, mode="predcls") -> RelationOutput`` is
    ``decode(encode(features, mode), mode)``: :meth:`encode` is the per-frame half (cacheable),
    :meth:`decode` the temporal half over a window of encodings.
    ``targets`` is accepted for interface symmetry and not used: the heads never see
    labels; the losses take targets (see :func:`~tr2_core.models.losses.compute_losses`).
    """

    def __init__(self, config: ModelConfig, text_table: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        rep = config.representation
        d = config.d_model
        self.object_classifier = ObjectClassifier(
            rep.entity_dim, config.object_classifier, rep.class_embed_dim
        )
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
        self, features: VideoFeatures, mode: TaskMode
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(entity_logits or None, labels (N,), scores (N,)) for ``mode``.

        The labels feed the class embeddings, the sequence keys and the text heads. In
        SGCls and SGDet training they are the given labels -- GT labels, and in SGDet the
        labels assigned to the detections (see
        :func:`~tr2_core.train.sgdet_assignment.extract_sgdet_training`) -- as
        in the authors' release (their object classifier returns these while training);
        the classifier's logits still train it, and its predicted labels are used only at
        inference (eval mode). SGDet inference takes the detector's labels and scores
        (for ``release``: as the extractor relabelled them) instead when
        ``object_classifier.sgdet_labels`` is ``detector`` or ``release``.
        """
        if mode == "predcls":
            return None, features.entity_labels, features.entity_scores
        logits, labels, scores = self.object_classifier.classify(features)
        detector_labels = self.config.object_classifier.sgdet_labels in ("detector", "release")
        if self.training or (mode == "sgdet" and detector_labels):
            return logits, features.entity_labels, features.entity_scores
        return logits, labels, scores

    @torch.no_grad()
    def inference_pairs(self, features: VideoFeatures, mode: TaskMode) -> VideoFeatures:
        """The features whose pairs the model predicts: ``features`` itself, except at
        SGCls inference with ``object_classifier.sgcls_pairs: classifier`` (the release),
        where the pairs are re-formed around the person the classifier chose
        (:func:`~tr2_core.models.pairs.pairs_around`). Callers predict on, and read
        the pairs of, what this returns."""
        cfg = self.config.object_classifier
        if mode != "sgcls" or self.training or cfg.sgcls_pairs != "classifier":
            return features
        logits, labels, _ = self.object_classifier.classify(features)
        person_probability = logits.detach().float()[:, 1:].softmax(-1)[:, 0]
        person = group_argmax(person_probability, features.entity_frame, len(features.frame_keys))
        return pairs_around(features, person, labels)

    def encode(self, features: VideoFeatures, mode: TaskMode = "predcls") -> PairEncoding:
        """Per-frame half: entity labels (given, or the object classifier), relation
        representation and spatial encoder. Every row depends only on its own frame, so a
        stream computes this once per frame and caches it.

        features: :class:`~tr2_core.types.VideoFeatures` of T frames -> :class:`PairEncoding`
        (``encoded`` (P, d_model)).
        """
        if mode not in TASK_MODES:
            raise ValueError(f"mode must be one of {TASK_MODES}, got {mode!r}")
        logits, labels, scores = self.entity_labels(features, mode)
        x = self.representation(features, labels)
        return PairEncoding(
            num_frames=len(features.frame_keys),
            entity_logits=logits,
            entity_labels=labels,
            entity_scores=scores,
            entity_track=features.entity_track,
            pair_frame=features.pair_frame,
            pair_subject=features.pair_subject,
            pair_object=features.pair_object,
            encoded=self.fusion.spatial_pass(x, features.pair_frame),
        )

    def decode(
        self,
        encoding: PairEncoding,
        mode: TaskMode,
        *,
        with_guidance: bool | None = None,
        only_frame: int | None = None,
        newest_only: bool = False,
        bucket: tuple[int, int] | None = None,
    ) -> RelationOutput:
        """Temporal half, over a window of encodings (:func:`concat_encodings`): regroup
        by entity pair, temporal decoder, message token, predicate heads (and guidance).

        This is the one path from encodings to predicate scores, offline (:meth:`forward`)
        and online (the streaming engine): which frames a pair may attend to is decided
        once, in :meth:`~tr2_core.models.fusion.TemporalDecoder.attention_block`.

        Args:
            encoding: P pair rows over the window.
            mode: the task the encoding was made for (:meth:`encode`'s ``mode``); the
                predicate heads may differ per task (``heads.sgdet_classifier``).
            with_guidance: compute the guidance outputs (default: ``self.training``).
            only_frame: decode for that frame only (the streaming engine's newest frame):
                sequences that do not reach it are dropped before the temporal decoder
                (attention never crosses sequences, so its rows are unchanged) and the
                pair fields of the output are that frame's rows, in encoding order;
                ``pair_sequence`` / ``pair_prev`` then index the encoding's rows. No
                guidance outputs.
            newest_only: with ``only_frame``, compute the last temporal layer only for
                that frame's rows and the rows their message token reads (the same
                scores to float rounding; tested at 1e-5).
            bucket: (sequences, length) minimum padded shape of the temporal decoder's
                batch (fixed shapes for compiled decoding; same scores).
        Returns:
            :class:`RelationOutput` (entity fields: all of the encoding's entities).
        """
        if mode not in TASK_MODES:
            raise ValueError(f"mode must be one of {TASK_MODES}, got {mode!r}")
        enc = encoding
        labels = enc.entity_labels
        layout = sequence_layout(
            enc.pair_frame, enc.pair_subject, enc.pair_object, enc.entity_track, labels
        )
        rows = torch.arange(enc.pair_frame.shape[0], device=enc.pair_frame.device)
        if only_frame is not None:
            wanted = torch.zeros(layout.grouping.num_groups, dtype=torch.bool, device=rows.device)
            wanted[layout.grouping.group[enc.pair_frame == only_frame]] = True
            rows, layout = layout.keep_sequences(wanted)
            with_guidance = False
        query_rows = None
        if only_frame is not None and newest_only:
            newest_rows = (enc.pair_frame[rows] == only_frame).nonzero().squeeze(1)
            query_rows = torch.unique(torch.cat([newest_rows, layout.prev[newest_rows]]))
        e_r = self._temporal_features(
            enc.encoded[rows],
            layout,
            whole_clip=only_frame is None,
            query_rows=query_rows,
            bucket=bucket,
        )
        pair_object = enc.pair_object[rows]
        sequence, prev = layout.grouping.group, layout.prev
        if only_frame is not None:
            newest = enc.pair_frame[rows] == only_frame
            e_r, pair_object = e_r[newest], pair_object[newest]
            sequence, prev = sequence[newest], rows[prev[newest]]
        family_logits = self.heads(e_r, labels[pair_object], mode)
        if with_guidance is None:
            with_guidance = self.training
        visual, change = self._guidance(e_r, layout.prev) if with_guidance else (None, None)
        bias = None
        if visual is not None and self.config.guidance.difference_bias:
            bias = torch.stack([self.guidance_proj[f.name].bias for f in FAMILIES])
        return RelationOutput(
            entity_logits=enc.entity_logits,
            entity_labels=labels,
            entity_scores=enc.entity_scores,
            attention=family_logits["attention"],
            spatial=family_logits["spatial"],
            contacting=family_logits["contacting"],
            relation_features=e_r,
            pair_sequence=sequence,
            pair_prev=prev,
            guidance_visual=visual,
            change_logits=change,
            guidance_bias=bias,
        )

    def _temporal_features(
        self,
        encoded: torch.Tensor,
        layout: SequenceLayout,
        *,
        whole_clip: bool,
        query_rows: torch.Tensor | None = None,
        bucket: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Temporal decoder and message token: encoded (P, d_model) -> e_r (P, R).

        An online model (``fusion.online``) run over a whole clip predicts every row from
        its own window (:func:`~tr2_core.models.online.online_windows`), as the engine
        does; the engine's own window (``whole_clip`` false) is already that window, and
        only there do the engine's fast paths apply (``query_rows``: rows the last decoder
        layer must compute; ``bucket``: fixed padded shape).
        """
        fusion = self.config.fusion
        if not (fusion.online and whole_clip):
            return self.fusion.temporal_pass(encoded, layout, query_rows, bucket)
        rows, windows, target = online_windows(layout, fusion.temporal_window)
        return self.fusion.temporal_pass(encoded[rows], windows)[target]

    def _guidance(
        self, e_r: torch.Tensor, prev: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(guidance_visual (3, P, D) or None, change_logits (P, 3) or None) of e_r (P, R);
        ``prev`` (P,) is each row's previous element in its sequence."""
        if self.guidance_proj is None:
            return None, None
        projected = [self.guidance_proj[f.name](e_r) for f in FAMILIES]
        if self.change_heads is None:
            return torch.stack(projected, dim=0), None
        change = torch.cat(
            [
                self.change_heads[f.name](v - v[prev])
                for f, v in zip(FAMILIES, projected, strict=True)
            ],
            dim=1,
        )
        return None, change

    def forward(
        self,
        features: VideoFeatures,
        targets: VideoTargets | None = None,
        *,
        mode: TaskMode = "predcls",
        with_guidance: bool | None = None,
    ) -> RelationOutput:
        """features: :class:`~tr2_core.types.VideoFeatures` of one clip -> RelationOutput:
        :meth:`decode` of :meth:`encode`.

        ``with_guidance`` (default: ``self.training``) computes the guidance outputs
        (``guidance_visual`` / ``change_logits``) when the config has guidance.
        """
        return self.decode(self.encode(features, mode), mode, with_guidance=with_guidance)


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
    in the text classifier heads (when any task uses them: ``heads.uses_text``); a
    checkpoint also carries it.
    """
    cfg = resolve_config(config)
    table = _table_tensor(text_table, cfg.representation.union_dim)
    model = RelationModel(cfg, text_table=table if cfg.heads.uses_text else None)
    if weights is not None:
        load_relation_weights(model, weights)
    return model.to(device)


def _table_tensor(
    text_table: TextTable | torch.Tensor | str | Path | None, dim: int
) -> torch.Tensor | None:
    """The (37, 26, dim) tensor of a text table given as a table, tensor or ``.npz`` path."""
    if text_table is None:
        return None
    if isinstance(text_table, (str, Path)):
        text_table = load_text_table(text_table, expected_dim=dim)
    table = text_table.table if isinstance(text_table, TextTable) else text_table
    if table.shape[-1] != dim:
        raise WeightsError(f"text table width {table.shape[-1]} but the model expects {dim}")
    return table


def load_relation_weights(model: nn.Module, path: str | Path) -> None:
    """Strictly load a relation-model state dict file (``{"model": sd}``, ``{"state_dict":
    sd}`` or a bare state dict); mismatches raise :class:`WeightsError`."""
    load_strict(model, read_state_dict(path, "relation model"), "relation model", str(path))
