"""The online engine: frames one at a time in, that frame's scene graph out.

Per frame, the work that depends only on that frame (detector or given boxes,
CLIP union crops, relation representation, spatial encoder) is done once and
kept in a rolling window of ``W`` frames. Each new frame then adds only the
temporal pass (decoder + message token + heads) over the window's sequences
that contain one of its pairs. The result for frame ``t`` equals the offline
model run on the same ``W`` frames (tested).

Entities get stable ids from :class:`~tr2_core.stream.tracker.IoUTracker`, and
the temporal decoder groups relations by those ids.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tr2_core.models.config import TaskMode
from tr2_core.models.fusion import sequence_layout
from tr2_core.stream.tracker import IoUTracker
from tr2_core.types import SceneGraphResult, VideoFeatures

log = logging.getLogger(__name__)


@dataclass
class _WindowFrame:
    """What the window keeps per frame (all on the model's device)."""

    stamp_ns: int
    features: VideoFeatures  # one frame, entity_track filled by the tracker
    labels: torch.Tensor  # (N,) labels the relation model uses
    scores: torch.Tensor  # (N,) their confidences
    encoded: torch.Tensor  # (P, d) relation representation after the spatial encoder


@dataclass
class EngineStats:
    """Counters a node or tool reports."""

    frames: int = 0
    resets: int = 0
    rejected: int = 0
    reset_reasons: list[str] = field(default_factory=list)


def _empty_result(stamp_ns: int, window: np.ndarray) -> SceneGraphResult:
    z = np.zeros
    return SceneGraphResult(
        stamp_ns=stamp_ns,
        entity_track=z(0, np.int64),
        entity_labels=z(0, np.int64),
        entity_scores=z(0, np.float32),
        entity_boxes=z((0, 4), np.float32),
        pair_subject=z(0, np.int64),
        pair_object=z(0, np.int64),
        attention=z((0, 3), np.float32),
        spatial=z((0, 6), np.float32),
        contacting=z((0, 17), np.float32),
        window_stamps_ns=window,
    )


class StreamingEngine:
    """Streaming TR².

    Args:
        extractor: the frozen :class:`~tr2_core.models.FeatureExtractor`.
        relation: the trained :class:`~tr2_core.models.RelationModel`.
        window: number of frames ``W`` the temporal decoder sees (the newest included).
        mode: ``"sgdet"`` detects entities; ``"predcls"`` / ``"sgcls"`` take boxes
            (and labels for predcls) passed to :meth:`process`.
        max_gap_s: a timestamp gap longer than this resets the window and tracker.
        score_threshold: entities below this confidence are dropped (SGDet).
        tracker: entity tracker (default :class:`IoUTracker`).
    """

    def __init__(
        self,
        extractor: Any,
        relation: torch.nn.Module,
        *,
        window: int = 8,
        mode: TaskMode = "sgdet",
        max_gap_s: float = 1.0,
        score_threshold: float = 0.0,
        tracker: IoUTracker | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.extractor = extractor
        self.relation = relation.eval()
        self.window = window
        self.mode = mode
        self.max_gap_ns = int(max_gap_s * 1e9)
        self.score_threshold = score_threshold
        self.tracker = tracker or IoUTracker()
        self.frames: deque[_WindowFrame] = deque(maxlen=window)
        self.stats = EngineStats()

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path,
        *,
        device: str = "cpu",
        window: int = 8,
        mode: TaskMode = "sgdet",
        clip_weights: str | None = None,
        detector_weights: str | None = None,
        **kwargs: Any,
    ) -> StreamingEngine:
        """Rebuild extractor and relation model from a ``tr2 train`` checkpoint.

        ``clip_weights`` / ``detector_weights`` override the paths saved in the
        checkpoint (weights usually live elsewhere on a robot than on the
        training machine)."""
        from tr2_core.train.loop import load_trained

        *_, parts, _ = load_trained(
            checkpoint,
            torch.device(device),
            clip_weights=clip_weights,
            detector_weights=detector_weights,
        )
        return cls(parts.extractor, parts.relation, window=window, mode=mode, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.relation.parameters()).device

    def reset(self, reason: str) -> None:
        """Empty the window and forget tracks (logged)."""
        if self.frames:
            log.warning("stream reset: %s", reason)
            self.stats.resets += 1
            self.stats.reset_reasons.append(reason)
        self.frames.clear()
        self.tracker.reset()

    # ------------------------------------------------------------------ per frame
    def _check_stamp(self, stamp_ns: int) -> None:
        if not self.frames:
            return
        last = self.frames[-1].stamp_ns
        if stamp_ns < last:
            self.reset(f"timestamp went backwards ({last} -> {stamp_ns} ns)")
        elif stamp_ns - last > self.max_gap_ns:
            self.reset(f"gap of {(stamp_ns - last) / 1e9:.3f} s > {self.max_gap_ns / 1e9} s")

    @torch.no_grad()
    def _encode_frame(
        self,
        image: torch.Tensor,
        stamp_ns: int,
        boxes: np.ndarray | None,
        labels: np.ndarray | None,
    ) -> _WindowFrame:
        dev = self.device
        if self.mode == "sgdet":
            feats = self.extractor.extract([image], frame_keys=[str(stamp_ns)])
        else:
            b_np = np.asarray(boxes, np.float32).reshape(-1, 4)
            lab_np = np.asarray(labels, np.int64).reshape(-1)
            if len(lab_np) != len(b_np):
                raise ValueError(f"{len(b_np)} boxes but {len(lab_np)} labels")
            # Non-finite boxes would poison RoIAlign and the crops: leave them out.
            finite = np.isfinite(b_np).all(1)
            if not finite.all():
                self.stats.rejected += int((~finite).sum())
                log.warning("dropped %d entities with non-finite boxes", int((~finite).sum()))
                b_np, lab_np = b_np[finite], lab_np[finite]
            b = torch.from_numpy(b_np).to(dev)
            lab = torch.from_numpy(lab_np).to(dev)
            feats = self.extractor.extract([image], [b], [lab], frame_keys=[str(stamp_ns)])
        _, ent_labels, ent_scores = self.relation.entity_labels(feats, self.mode)
        tracks = self.tracker.update(feats.entity_boxes.cpu().numpy(), ent_labels.cpu().numpy())
        feats.entity_track = torch.as_tensor(tracks, device=dev)
        x = self.relation.representation(feats, ent_labels)
        x = self.relation.fusion.spatial_pass(x, feats.pair_frame)
        return _WindowFrame(stamp_ns, feats, ent_labels, ent_scores, x)

    @torch.no_grad()
    def _temporal(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Temporal pass over the window -> newest frame's (attention, spatial,
        contacting) probabilities, each (P_last, family size)."""
        frames = list(self.frames)
        fusion = self.relation.fusion
        # Concatenate the window: entity rows offset per frame, frame index 0..W-1.
        n_ent = torch.tensor([f.labels.shape[0] for f in frames], device=self.device)
        offsets = torch.cumsum(n_ent, 0) - n_ent
        subj = torch.cat(
            [f.features.pair_subject + o for f, o in zip(frames, offsets, strict=True)]
        )
        obj = torch.cat([f.features.pair_object + o for f, o in zip(frames, offsets, strict=True)])
        pf = torch.cat([torch.full_like(f.features.pair_frame, i) for i, f in enumerate(frames)])
        tracks = torch.cat([f.features.entity_track for f in frames])
        labels = torch.cat([f.labels for f in frames])
        x = torch.cat([f.encoded for f in frames])
        last = len(frames) - 1
        layout = sequence_layout(pf, subj, obj, tracks, labels)
        # Only sequences that reach the newest frame matter; attention never crosses
        # sequences, so dropping the others changes nothing for the newest rows.
        wanted = torch.zeros(layout.grouping.num_groups, dtype=torch.bool, device=x.device)
        wanted[layout.grouping.group[pf == last]] = True
        keep = wanted[layout.grouping.group]
        pf, subj, obj, x = pf[keep], subj[keep], obj[keep], x[keep]
        layout = sequence_layout(pf, subj, obj, tracks, labels)
        x = fusion.temporal_pass(x, layout)
        newest = pf == last
        logits = self.relation.heads(x[newest], labels[obj[newest]], self.mode)
        return (
            logits["attention"].softmax(-1),
            logits["spatial"].sigmoid(),
            logits["contacting"].sigmoid(),
        )

    def process(
        self,
        image: np.ndarray,
        stamp_ns: int,
        boxes: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> SceneGraphResult:
        """One frame -> its scene graph.

        Args:
            image: (H, W, 3) uint8 RGB.
            stamp_ns: timestamp in nanoseconds (a jump back or a long gap resets).
            boxes: (N, 4) ``x1 y1 x2 y2`` for predcls / sgcls (ignored in sgdet).
            labels: (N,) AG object indices for predcls (person first).

        Returns:
            :class:`SceneGraphResult`; entities with non-finite boxes or scores and
            pairs that refer to them are left out, never raised.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(
                f"image must be (H, W, 3) uint8 RGB with H, W > 0; got {image.shape} {image.dtype}"
            )
        self._check_stamp(stamp_ns)
        tensor = torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1)
        tensor = tensor.to(self.device)
        frame = self._encode_frame(tensor, stamp_ns, boxes, labels)
        self.frames.append(frame)
        self.stats.frames += 1
        window = np.array([f.stamp_ns for f in self.frames], np.int64)
        f = frame.features
        if f.pair_frame.shape[0] == 0:
            return _empty_result(stamp_ns, window)
        attention, spatial, contacting = self._temporal()
        return self._result(frame, attention, spatial, contacting, window)

    def _result(
        self,
        frame: _WindowFrame,
        attention: torch.Tensor,
        spatial: torch.Tensor,
        contacting: torch.Tensor,
        window: np.ndarray,
    ) -> SceneGraphResult:
        f = frame.features
        boxes = f.entity_boxes.float().cpu().numpy()
        scores = frame.scores.float().cpu().numpy()
        ok = np.isfinite(boxes).all(1) & np.isfinite(scores) & (scores >= self.score_threshold)
        subj = f.pair_subject.cpu().numpy()
        obj = f.pair_object.cpu().numpy()
        att, spa, con = (t.float().cpu().numpy() for t in (attention, spatial, contacting))
        pair_ok = (
            ok[subj]
            & ok[obj]
            & np.isfinite(att).all(1)
            & np.isfinite(spa).all(1)
            & np.isfinite(con).all(1)
        )
        if not (ok.all() and pair_ok.all()):
            self.stats.rejected += int((~ok).sum() + (~pair_ok).sum())
        new_index = np.cumsum(ok) - 1  # entity row -> row among kept entities
        return SceneGraphResult(
            stamp_ns=frame.stamp_ns,
            entity_track=f.entity_track.cpu().numpy()[ok],
            entity_labels=frame.labels.cpu().numpy()[ok].astype(np.int64),
            entity_scores=scores[ok].astype(np.float32),
            entity_boxes=boxes[ok].astype(np.float32),
            pair_subject=new_index[subj[pair_ok]].astype(np.int64),
            pair_object=new_index[obj[pair_ok]].astype(np.int64),
            attention=att[pair_ok],
            spatial=spa[pair_ok],
            contacting=con[pair_ok],
            window_stamps_ns=window,
        )
