"""Relation feature fusion (paper III-B): spatial encoder, regroup by entity pair,
temporal decoder with sinusoidal temporal position embedding (of the position in the
pair's sequence, as the authors, or of the frame index), short-term message token
(Eq. 1), regroup by frame.

Regrouping is index arithmetic on flat ``(P, d)`` rows: every row gets a
``(group, position)`` address and is scattered into a padded ``(G, L, d)`` batch
with one ``index_put``; gathering with the same address is the exact inverse.
No Python loop over relations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from tr2_core.models.model_config import FusionConfig


# --------------------------------------------------------------------------- grouping
@dataclass(frozen=True)
class Grouping:
    """Address of every row in a padded batch.

    Attributes:
        group: (P,) int64 group index 0..G-1.
        position: (P,) int64 position inside the group 0..L-1.
        num_groups: G.
        max_len: L (0 when P == 0).
    """

    group: torch.Tensor
    position: torch.Tensor
    num_groups: int
    max_len: int

    def pad(self, x: torch.Tensor, fill: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Scatter rows ``x`` (P, ...) into ``(G, L, ...)``; returns (padded, valid (G, L) bool)."""
        padded = x.new_full((self.num_groups, self.max_len, *x.shape[1:]), fill)
        padded[self.group, self.position] = x
        valid = torch.zeros(self.num_groups, self.max_len, dtype=torch.bool, device=x.device)
        valid[self.group, self.position] = True
        return padded, valid

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`pad`: (G, L, ...) -> rows (P, ...) in the original order."""
        return padded[self.group, self.position]

    def padded_to(self, num_groups: int, max_len: int) -> Grouping:
        """The same addresses in a batch of at least ``num_groups`` x ``max_len`` (fixed
        shape buckets for CUDA graphs / ``torch.compile``): the extra slots are invalid
        padding, which attention never lets feed a valid row, so valid rows are unchanged
        (tested)."""
        return Grouping(
            self.group,
            self.position,
            max(self.num_groups, num_groups),
            max(self.max_len, max_len),
        )


def make_grouping(keys: torch.Tensor, order: torch.Tensor | None = None) -> Grouping:
    """Group rows by integer ``keys`` (P,) (any values); inside a group rows are ordered
    by ``order`` (P,) and then by row index (stable). Groups are numbered in
    increasing key order."""
    num = keys.shape[0]
    device = keys.device
    if num == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return Grouping(empty, empty, 0, 0)
    uniq, group = torch.unique(keys, return_inverse=True)
    # lexicographic sort by (group, order, row): stable sorts from the last key to the first
    perm = torch.arange(num, device=device)
    if order is not None:
        perm = perm[torch.sort(order[perm], stable=True).indices]
    perm = perm[torch.sort(group[perm], stable=True).indices]
    counts = torch.bincount(group, minlength=uniq.shape[0])
    starts = torch.cumsum(counts, 0) - counts
    position = torch.empty_like(group)
    position[perm] = torch.arange(num, device=device) - starts[group[perm]]
    return Grouping(group, position, int(uniq.shape[0]), int(counts.max()))


@dataclass(frozen=True)
class SequenceLayout:
    """Pair rows regrouped by entity pair over time.

    Attributes:
        grouping: sequence address of every pair row (positions in time order).
        frame: (P,) int64 frame index of every row (the temporal position).
        prev: (P,) int64 row of the previous element of the same sequence; the row itself
            for the first element.
    """

    grouping: Grouping
    frame: torch.Tensor
    prev: torch.Tensor

    def keep_sequences(self, wanted: torch.Tensor) -> tuple[torch.Tensor, SequenceLayout]:
        """Only the sequences marked in ``wanted`` (G,) bool, by index arithmetic (no
        regrouping): returns (kept rows (P',) int64 in row order, their layout). Groups keep
        their relative order and every kept row its position, so the padded batch equals
        the one :func:`sequence_layout` builds from the kept rows alone."""
        seq = self.grouping
        rows = wanted[seq.group].nonzero().squeeze(1)
        new_row = torch.full_like(seq.group, -1)
        new_row[rows] = torch.arange(rows.shape[0], device=rows.device)
        new_group = torch.cumsum(wanted.long(), 0) - 1
        position = seq.position[rows]
        grouping = Grouping(
            new_group[seq.group[rows]],
            position,
            int(wanted.sum()),
            int(position.max()) + 1 if rows.shape[0] else 0,
        )
        return rows, SequenceLayout(grouping, self.frame[rows], new_row[self.prev[rows]])


def pair_sequence_keys(
    pair_subject: torch.Tensor,
    pair_object: torch.Tensor,
    entity_track: torch.Tensor,
    entity_labels: torch.Tensor,
) -> torch.Tensor:
    """(P, 3) int64 sequence key per pair: ``(1, subject track, object track)`` when both
    entities carry a track id (>= 0), else the authors' class-label key
    ``(0, subject label, object label)``."""
    ts, to = entity_track[pair_subject], entity_track[pair_object]
    tracked = (ts >= 0) & (to >= 0)
    a = torch.where(tracked, ts, entity_labels[pair_subject])
    b = torch.where(tracked, to, entity_labels[pair_object])
    return torch.stack([tracked.long(), a.long(), b.long()], dim=1)


def sequence_layout(
    pair_frame: torch.Tensor,
    pair_subject: torch.Tensor,
    pair_object: torch.Tensor,
    entity_track: torch.Tensor,
    entity_labels: torch.Tensor,
) -> SequenceLayout:
    """Regroup pair rows by entity pair (see :func:`pair_sequence_keys`), time-ordered.

    With the class-label key two same-class objects of one frame share a sequence (as in
    the authors' code); their rows follow each other in row order.
    """
    num = pair_frame.shape[0]
    keys = pair_sequence_keys(pair_subject, pair_object, entity_track, entity_labels)
    if num == 0:
        grouping = make_grouping(pair_frame)
        return SequenceLayout(grouping, pair_frame, pair_frame.clone())
    _, seq = torch.unique(keys, dim=0, return_inverse=True)
    grouping = make_grouping(seq, order=pair_frame)
    # previous element: the row at (group, position - 1)
    rows = torch.arange(num, device=pair_frame.device)
    table, _ = grouping.pad(rows, fill=-1)
    prev_pos = (grouping.position - 1).clamp(min=0)
    prev = table[grouping.group, prev_pos]
    return SequenceLayout(grouping, pair_frame, prev)


# --------------------------------------------------------------------------- modules
def sinusoidal_embedding(
    positions: torch.Tensor, dim: int, max_timescale: float = 1.0e4
) -> torch.Tensor:
    """Sinusoidal position embedding (``sin`` half then ``cos`` half, geometric timescales
    1..max_timescale) of integer ``positions`` (...,) -> (..., dim) float32."""
    half = dim // 2
    increment = math.log(max_timescale) / max(half - 1, 1)
    inv = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float32) * -increment)
    scaled = positions.to(torch.float32).unsqueeze(-1) * inv
    emb = torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=-1)
    if dim % 2:
        emb = nn.functional.pad(emb, (0, 1))
    return emb


class SpatialEncoder(nn.Module):
    """Transformer encoder over the relations of each frame (no position embedding)."""

    def __init__(self, d_model: int, cfg: FusionConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [
                nn.TransformerEncoderLayer(
                    d_model, cfg.heads, cfg.ffn_dim, cfg.dropout, batch_first=True
                )
                for _ in range(cfg.spatial_layers)
            ]
        )

    def forward(self, x: torch.Tensor, frames: Grouping) -> torch.Tensor:
        """x (P, d) -> (P, d); attention only among rows of the same frame."""
        padded, valid = frames.pad(x)
        return frames.unpad(self.forward_padded(padded, valid))

    def forward_padded(self, padded: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """padded (F, L, d), valid (F, L) bool -> (F, L, d); padded keys are masked."""
        for layer in self.layers:
            padded = layer(padded, src_key_padding_mask=~valid)
        return padded


class TemporalLayer(nn.Module):
    """Self-attention over a pair sequence; the temporal embedding is added to queries and
    keys (not values); LayerNorm after the attention residual, and after the FFN residual
    only with ``post_ffn_norm`` (the authors' layer has none there)."""

    def __init__(self, d_model: int, cfg: FusionConfig) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, cfg.ffn_dim),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.ffn_dim, d_model),
        )
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model) if cfg.post_ffn_norm else None
        self.drop1 = nn.Dropout(cfg.dropout)
        self.drop2 = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        """x, pos (S, L, d); blocked (S * heads, L, L) bool, True = may not attend."""
        qk = x + pos
        out, _ = self.attn(qk, qk, x, attn_mask=blocked, need_weights=False)
        return self._residual_blocks(x, out)

    def _residual_blocks(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """Attention residual + LayerNorm, FFN residual (+ LayerNorm): x, attended
        (..., d) -> (..., d)."""
        x = self.norm1(x + self.drop1(attended))
        x = x + self.drop2(self.ffn(x))
        return self.norm2(x) if self.norm2 is not None else x

    def forward_rows(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        blocked: torch.Tensor,
        query_position: torch.Tensor,
    ) -> torch.Tensor:
        """:meth:`forward` for some query positions only: keys and values are all of x.

        x, pos (S, L, d); blocked (S * heads, L, L) as in :meth:`forward`;
        query_position (S, Q) int64 positions to compute -> (S, Q, d), equal to
        ``forward(x, pos, blocked)`` gathered at those positions (float rounding).
        """
        num_seq, length, _ = x.shape
        heads = blocked.shape[0] // max(num_seq, 1)
        seq = torch.arange(num_seq, device=x.device)[:, None]
        qk = x + pos
        query = qk[seq, query_position]  # (S, Q, d)
        mask = blocked.view(num_seq, heads, length, length)[seq, :, query_position]  # (S,Q,h,L)
        mask = mask.permute(0, 2, 1, 3).reshape(num_seq * heads, -1, length)
        out, _ = self.attn(query, qk, x, attn_mask=mask, need_weights=False)
        return self._residual_blocks(x[seq, query_position], out)


class TemporalDecoder(nn.Module):
    """``temporal_layers`` x :class:`TemporalLayer` over each pair sequence, with sinusoidal
    embedding of the position in the sequence (``temporal_position: sequence``) or of the
    frame index (``frame``); optionally limited to a window of frames."""

    def __init__(self, d_model: int, cfg: FusionConfig) -> None:
        super().__init__()
        self.d_model = d_model
        self.heads = cfg.heads
        self.window = cfg.temporal_window
        self.causal = cfg.online or cfg.temporal_window > 0
        self.position = cfg.temporal_position
        self.layers = nn.ModuleList(
            [TemporalLayer(d_model, cfg) for _ in range(cfg.temporal_layers)]
        )
        if cfg.decoder_init == "cloned":  # drawn as above (same random stream), then copied
            for layer in self.layers[1:]:
                layer.load_state_dict(self.layers[0].state_dict())

    def attention_block(self, frame: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(S, L) padded frame indices and validity -> (S * heads, L, L) bool blocked mask.

        A query may attend to valid keys; when causal (``online``, or a window is set) only
        to keys of its own or earlier frames, and with a window only to the last
        ``window`` frames. Every element may attend to itself so that padded rows stay
        finite and never feed valid rows. This is the one place the causal mask lives.
        """
        allowed = valid[:, None, :].expand(-1, valid.shape[1], -1)
        if self.causal:
            diff = frame[:, :, None] - frame[:, None, :]
            allowed = allowed & (diff >= 0)
            if self.window > 0:
                allowed = allowed & (diff < self.window)
        eye = torch.eye(valid.shape[1], dtype=torch.bool, device=valid.device)
        allowed = allowed | eye
        return (~allowed).repeat_interleave(self.heads, dim=0)

    def forward(
        self,
        x: torch.Tensor,
        layout: SequenceLayout,
        query_rows: torch.Tensor | None = None,
        bucket: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """x (P, d) -> (P, d); attention only inside each pair sequence.

        Args:
            query_rows: (Q,) int64 rows the caller will read (the streaming engine's
                newest frame and the rows its message token reads): the last layer is
                computed for them only; the other rows of the result then hold the
                previous layer's output and must not be used. None: every row.
            bucket: (sequences, length) minimum padded batch shape (fixed shapes for
                compiled / graph-captured decoding); results are unchanged.
        """
        seq = layout.grouping if bucket is None else layout.grouping.padded_to(*bucket)
        padded, valid = seq.pad(x)
        frame, _ = seq.pad(layout.frame)
        if query_rows is None:
            return seq.unpad(self.forward_padded(padded, frame, valid))
        by_sequence = make_grouping(seq.group[query_rows])  # position among its queries
        queries = Grouping(
            seq.group[query_rows], by_sequence.position, seq.num_groups, by_sequence.max_len
        )
        query_position, _ = queries.pad(seq.position[query_rows])  # (S, Q); padding: 0
        out = self.forward_padded(padded, frame, valid, query_position)
        return seq.unpad(out)

    def position_index(self, frame: torch.Tensor) -> torch.Tensor:
        """(S, L) padded frame indices -> (S, L) the integer each element's temporal
        embedding encodes: its slot 0..L-1 in the sequence (``sequence``; sequences are
        left-aligned and time-ordered, so the slot is the position), or its frame index."""
        if self.position == "frame":
            return frame
        slots = torch.arange(frame.shape[1], device=frame.device)
        return slots.unsqueeze(0).expand_as(frame)

    def forward_padded(
        self,
        padded: torch.Tensor,
        frame: torch.Tensor,
        valid: torch.Tensor,
        query_position: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """padded (S, L, d), frame (S, L) frame index, valid (S, L) bool -> (S, L, d).

        ``query_position`` (S, Q) int64: compute the last layer at those positions only
        (:meth:`TemporalLayer.forward_rows`); other positions keep the previous layer's
        output. Padding entries (position 0) are computed too, exactly.
        """
        pos = sinusoidal_embedding(self.position_index(frame), self.d_model).to(padded.dtype)
        blocked = self.attention_block(frame, valid)
        last = len(self.layers) - 1 if query_position is not None else len(self.layers)
        for layer in self.layers[:last]:
            padded = layer(padded, pos, blocked)
        if query_position is not None:
            rows = self.layers[-1].forward_rows(padded, pos, blocked, query_position)
            seq = torch.arange(padded.shape[0], device=padded.device)[:, None]
            padded = padded.index_put((seq.expand_as(query_position), query_position), rows)
        return padded


class MessageToken(nn.Module):
    """Short-term message token, Eq. (1):
    ``m_{t-1} = g(Concat(e_f[t], e_f[t-1]))`` with
    ``g = tanh(W3 tanh(W2 (W1 x + b1) + b2) + b3)``, ``W1: 2d -> d``;
    ``e_r[t] = Concat(e_f[t], e_f[t-1] * m_{t-1})``.

    ``gate_previous`` is what g sees as e_f[t-1] when it differs from the multiplied one:
    at a sequence's first element the authors feed zeros to g and multiply the element
    itself. (Their g takes Concat(previous, current); the order only permutes W1.)"""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.fuse = nn.Linear(2 * d_model, d_model)
        self.fc1 = nn.Linear(d_model, d_model)
        self.fc2 = nn.Linear(d_model, d_model)

    def forward(
        self,
        current: torch.Tensor,
        previous: torch.Tensor,
        gate_previous: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """current, previous, gate_previous (P, d) -> e_r (P, 2d)."""
        gate_in = previous if gate_previous is None else gate_previous
        m = self.fuse(torch.cat([current, gate_in], dim=-1))
        m = torch.tanh(self.fc2(torch.tanh(self.fc1(m))))
        return torch.cat([current, previous * m], dim=-1)


class RelationFusion(nn.Module):
    """Spatial encoder -> regroup by pair -> temporal decoder -> message token -> by frame.

    Each part is absent (no parameters) when switched off in :class:`FusionConfig`.
    """

    def __init__(self, d_model: int, cfg: FusionConfig) -> None:
        super().__init__()
        self.d_model = d_model
        self.spatial = SpatialEncoder(d_model, cfg) if cfg.spatial_layers > 0 else None
        self.temporal = TemporalDecoder(d_model, cfg) if cfg.temporal_layers > 0 else None
        self.message = MessageToken(d_model) if cfg.message_token else None
        self.message_first = cfg.message_first

    @property
    def out_dim(self) -> int:
        return 2 * self.d_model if self.message is not None else self.d_model

    def spatial_pass(self, x: torch.Tensor, pair_frame: torch.Tensor) -> torch.Tensor:
        """Intra-frame part: x (P, d), pair_frame (P,) -> (P, d). Depends only on each
        frame's own pairs, so the streaming engine runs it once per frame."""
        if self.spatial is None or x.shape[0] == 0:
            return x
        return self.spatial(x, make_grouping(pair_frame))

    def temporal_pass(
        self,
        x: torch.Tensor,
        layout: SequenceLayout,
        query_rows: torch.Tensor | None = None,
        bucket: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Inter-frame part: x (P, d) after :meth:`spatial_pass` -> e_r (P, out_dim).

        ``query_rows`` / ``bucket``: see :meth:`TemporalDecoder.forward` (with
        ``query_rows`` only those rows of the result are valid; they must include the
        ``layout.prev`` of every row the caller reads).
        """
        if x.shape[0] == 0:
            return x.new_zeros(0, self.out_dim)
        if self.temporal is not None:
            x = self.temporal(x, layout, query_rows, bucket)
        if self.message is not None:
            previous = x[layout.prev]
            gate = None
            if self.message_first == "zeros":
                rows = torch.arange(x.shape[0], device=x.device)
                first = (layout.prev == rows).unsqueeze(-1)
                gate = previous.masked_fill(first, 0.0)
            x = self.message(x, previous, gate)
        return x

    def forward(
        self, x: torch.Tensor, pair_frame: torch.Tensor, layout: SequenceLayout
    ) -> torch.Tensor:
        """x (P, d) relation representations, pair_frame (P,) -> e_r (P, out_dim)."""
        return self.temporal_pass(self.spatial_pass(x, pair_frame), layout)
