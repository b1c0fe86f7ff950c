"""Run a relation model over a split's videos -> :class:`Predictions` (the ``.npz``
layout of ``docs/evaluation.md``)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from tr2_core.evaluation.predictions import empty_predictions
from tr2_core.progress import bar_disabled
from tr2_core.stream.tracker import IoUTracker, track_frames
from tr2_core.train.dataset import frame_chunks
from tr2_core.train.source import ClipSource, move_features
from tr2_core.types import Predictions, VideoFeatures
from tr2_core.vocab import ATTENTION, CONTACTING, SPATIAL


def clip_predictions(features: VideoFeatures, output) -> Predictions:
    """One clip's predictions: every entity a box (label / score the relation model
    used: GT labels and 1.0 in PredCls), every pair its three family score vectors
    (attention softmax, spatial and contacting sigmoids)."""
    attention, spatial, contacting = output.probabilities()

    def np_(t: torch.Tensor, dtype) -> np.ndarray:
        return (
            t.detach().float().cpu().numpy().astype(dtype)
            if t.is_floating_point()
            else (t.detach().cpu().numpy().astype(dtype))
        )

    return Predictions(
        frame_keys=np.asarray(features.frame_keys, dtype=str),
        box_frame=np_(features.entity_frame, np.int64),
        boxes=np_(features.entity_boxes, np.float32),
        box_labels=np_(output.entity_labels, np.int64),
        box_scores=np_(output.entity_scores, np.float32),
        pair_subject=np_(features.pair_subject, np.int64),
        pair_object=np_(features.pair_object, np.int64),
        attention=np_(attention, np.float32),
        spatial=np_(spatial, np.float32),
        contacting=np_(contacting, np.float32),
    )


def concat_predictions(parts: Sequence[Predictions]) -> Predictions:
    """Concatenate predictions of disjoint frame sets, renumbering the row indices."""
    if not parts:
        return empty_predictions()
    frames = np.cumsum([0] + [len(p.frame_keys) for p in parts])
    boxes = np.cumsum([0] + [len(p.box_frame) for p in parts])
    cat = np.concatenate
    return Predictions(
        frame_keys=cat([p.frame_keys.astype(str) for p in parts]),
        box_frame=cat([p.box_frame + frames[i] for i, p in enumerate(parts)]),
        boxes=cat([p.boxes for p in parts]).reshape(-1, 4),
        box_labels=cat([p.box_labels for p in parts]),
        box_scores=cat([p.box_scores for p in parts]),
        pair_subject=cat([p.pair_subject + boxes[i] for i, p in enumerate(parts)]),
        pair_object=cat([p.pair_object + boxes[i] for i, p in enumerate(parts)]),
        attention=cat([p.attention for p in parts]).reshape(-1, ATTENTION.size),
        spatial=cat([p.spatial for p in parts]).reshape(-1, SPATIAL.size),
        contacting=cat([p.contacting for p in parts]).reshape(-1, CONTACTING.size),
    )


def is_online(relation: torch.nn.Module) -> bool:
    """Whether ``relation`` (a :class:`~tr2_core.models.RelationModel`, or one wrapped by
    DDP) follows the online protocol (``fusion.online``)."""
    model = getattr(relation, "module", relation)
    return bool(model.config.fusion.online)


def protocol_name(relation: torch.nn.Module) -> str:
    """``online`` (causal, W-frame windows) or ``offline`` (bidirectional, whole clip)."""
    return "online" if is_online(relation) else "offline"


def clip_output(relation: torch.nn.Module, features: VideoFeatures, task: str):
    """The relation model's output for one clip under its protocol.

    Offline: ``relation(features)`` (class-label sequence keys, the authors' test).
    Online: what the streaming engine produces frame by frame -- the per-frame half,
    entities tracked by the engine's :class:`IoUTracker` on the labels the model uses,
    then every frame predicted from its own last W frames (sequence keys: track ids).
    """
    if not is_online(relation):
        return relation(features, mode=task)
    encoding = relation.encode(features, task)
    tracks = track_frames(
        IoUTracker(),
        features.entity_boxes.float().cpu().numpy(),
        encoding.entity_labels.cpu().numpy(),
        features.entity_frame.cpu().numpy(),
        len(features.frame_keys),
    )
    encoding.entity_track = torch.as_tensor(tracks, device=features.entity_frame.device)
    return relation.decode(encoding, task)


@torch.no_grad()
def predict(
    relation: torch.nn.Module,
    source: ClipSource,
    indices: Sequence[int],
    *,
    task: str,
    device: torch.device | str,
    max_clip_frames: int = 0,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    progress: bool = True,
    desc: str = "predict",
) -> Predictions:
    """Predictions of videos ``indices`` of ``source`` (eval mode, no gradients).

    A video longer than ``max_clip_frames`` (> 0) is run in consecutive chunks of that
    many frames (the temporal decoder sees one chunk at a time). An online model runs
    every video whole (its frames see at most their own W-frame windows, and the tracker
    follows the whole video, as the engine): see :func:`clip_output`.
    """
    if is_online(relation):
        max_clip_frames = 0
    was_training = relation.training
    relation.eval()
    parts: list[Predictions] = []
    try:
        bar = tqdm(indices, desc=desc, unit="video", disable=bar_disabled(progress), leave=False)
        for index in bar:
            for start, stop in frame_chunks(source.num_frames(index), max_clip_frames):
                features, _ = source.get(index, start, stop)
                features = move_features(features, device)
                with autocast():
                    # the release's SGCls re-pairs around the classifier's person
                    features = getattr(relation, "module", relation).inference_pairs(features, task)
                    output = clip_output(relation, features, task)
                parts.append(clip_predictions(features, output))
    finally:
        relation.train(was_training)
    return concat_predictions(parts)


# -- pickle-free (de)serialisation, for gathering predictions across DDP ranks ---------
def predictions_to_bytes(preds: Predictions) -> bytes:
    """An uncompressed ``.npz`` in memory (strings as unicode arrays; no pickle)."""
    buf = io.BytesIO()
    np.savez(buf, **{name: getattr(preds, name) for name in Predictions.FIELDS})
    return buf.getvalue()


def predictions_from_bytes(data: bytes) -> Predictions:
    """Inverse of :func:`predictions_to_bytes` (``allow_pickle=False``)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return Predictions(**{name: npz[name] for name in Predictions.FIELDS})
