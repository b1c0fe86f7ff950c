"""Columnar data types shared by the loader, the evaluator and the model.

Everything is stored column-wise (one NumPy array per field, rows of all frames
concatenated) so that 57k-frame splits are handled with vectorised code and no
per-frame Python objects. Conventions:

* boxes are ``x1 y1 x2 y2`` float32 in original-image pixels;
* object labels are AG object indices (1 = person, see :mod:`tr2_core.vocab`);
* predicates use the global 0..25 index;
* ``*_start`` arrays are CSR offsets: rows of frame ``f`` are
  ``start[f]:start[f + 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is only needed by the model side
    import torch


@dataclass(frozen=True)
class GroundTruth:
    """Ground truth of one split in the evaluator's form (docs/evaluation.md).

    Frames are grouped by video and ordered by frame number inside a video.
    The first box of every frame is the person box (label 1), followed by the
    frame's visible objects in annotation order.

    Attributes:
        videos: (V,) str, video ids like ``'001YG.mp4'``.
        video_start: (V + 1,) int64 CSR offsets into the frame rows.
        frame_keys: (F,) str, ``'VIDEO.mp4/FRAME.png'``.
        frame_video: (F,) int64 row into ``videos``.
        frame_size: (F, 2) int64 image ``(width, height)`` from ``bbox_size``.
        box_start: (F + 1,) int64 CSR offsets into the box rows.
        box_frame: (B,) int64 row into ``frame_keys``.
        boxes: (B, 4) float32 ``x1 y1 x2 y2``.
        box_labels: (B,) int64 AG object index.
        triplet_frame: (T,) int64 row into ``frame_keys``.
        triplet_subject: (T,) int64 row into ``boxes``.
        triplet_object: (T,) int64 row into ``boxes``.
        triplet_predicate: (T,) int64 global predicate index.
            Attention and contacting triplets are (person, object, p); spatial
            triplets are (object, person, p) as in the evaluator lineage.
    """

    videos: np.ndarray
    video_start: np.ndarray
    frame_keys: np.ndarray
    frame_video: np.ndarray
    frame_size: np.ndarray
    box_start: np.ndarray
    box_frame: np.ndarray
    boxes: np.ndarray
    box_labels: np.ndarray
    triplet_frame: np.ndarray
    triplet_subject: np.ndarray
    triplet_object: np.ndarray
    triplet_predicate: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.frame_keys.shape[0])

    @property
    def num_videos(self) -> int:
        return int(self.videos.shape[0])


@dataclass(frozen=True)
class Predictions:
    """Scene-graph predictions of one split: the ``.npz`` layout of
    ``docs/evaluation.md``, field for field.

    Attributes:
        frame_keys: (F,) str, one per predicted frame.
        box_frame: (B,) int64 row into ``frame_keys``.
        boxes: (B, 4) float32 ``x1 y1 x2 y2`` original-image pixels.
        box_labels: (B,) int64 AG object index 1..36.
        box_scores: (B,) float32 object confidence (1.0 in PredCls).
        pair_subject: (P,) int64 row into ``boxes`` (the person box).
        pair_object: (P,) int64 row into ``boxes``.
        attention: (P, 3) float32 probabilities.
        spatial: (P, 6) float32 sigmoid scores.
        contacting: (P, 17) float32 sigmoid scores.
    """

    frame_keys: np.ndarray
    box_frame: np.ndarray
    boxes: np.ndarray
    box_labels: np.ndarray
    box_scores: np.ndarray
    pair_subject: np.ndarray
    pair_object: np.ndarray
    attention: np.ndarray
    spatial: np.ndarray
    contacting: np.ndarray

    FIELDS = (
        "frame_keys", "box_frame", "boxes", "box_labels", "box_scores",
        "pair_subject", "pair_object", "attention", "spatial", "contacting",
    )  # fmt: skip


# --------------------------------------------------------------------------
# Model-side types (torch). Imported lazily by the model code so that the
# evaluator never needs torch.


@dataclass
class VideoFeatures:
    """Outputs of the frozen extractor (detector + CLIP image tower) for one
    video clip: everything the trainable relation model consumes. Cacheable.

    ``N`` entities over all ``T`` frames, ``P`` (subject, object) pairs over
    all frames; entities and pairs are sorted by frame.

    Attributes:
        frame_keys: list of T ``'VIDEO.mp4/FRAME.png'`` keys (or stream ids).
        entity_frame: (N,) int64 frame index 0..T-1.
        entity_boxes: (N, 4) float32 ``x1 y1 x2 y2`` original-image pixels.
        entity_labels: (N,) int64 AG object index (GT in PredCls/SGCls input,
            detector labels in SGDet).
        entity_scores: (N,) float32 detector / given confidence.
        entity_features: (N, 2048) float32 pooled RoI features.
        entity_track: (N,) int64 track id, or -1 where no tracker ran.
        pair_frame: (P,) int64 frame index.
        pair_subject: (P,) int64 row into the entities (the person).
        pair_object: (P,) int64 row into the entities.
        union_features: (P, 512) float32 CLIP image embedding of the union-box crop.
        other_pair_subject, other_pair_object: (Q,) int64 rows of the entity pairs of a
            frame that are not pairs (neither is the pairs' subject; each unordered pair
            once, lower row first, sorted by frame), or None when not extracted. Only
            SGCls with ``object_classifier.sgcls_pairs: classifier`` asks for them: it
            re-forms the pairs around the person the classifier chose.
        other_union_features: (Q, 512) float32 their union-crop embeddings, or None.
    """

    frame_keys: list[str]
    entity_frame: torch.Tensor
    entity_boxes: torch.Tensor
    entity_labels: torch.Tensor
    entity_scores: torch.Tensor
    entity_features: torch.Tensor
    entity_track: torch.Tensor
    pair_frame: torch.Tensor
    pair_subject: torch.Tensor
    pair_object: torch.Tensor
    union_features: torch.Tensor
    other_pair_subject: torch.Tensor | None = None
    other_pair_object: torch.Tensor | None = None
    other_union_features: torch.Tensor | None = None


@dataclass
class VideoTargets:
    """Training labels aligned with a :class:`VideoFeatures`.

    Attributes:
        entity_labels: (N,) int64 GT object index (0 = background for an
            unmatched SGDet detection).
        pair_attention: (P,) int64 attention index 0..2 (-1: no label).
        pair_spatial: (P, 6) float32 multi-hot spatial labels.
        pair_contacting: (P, 17) float32 multi-hot contacting labels.
    """

    entity_labels: torch.Tensor
    pair_attention: torch.Tensor
    pair_spatial: torch.Tensor
    pair_contacting: torch.Tensor


@dataclass(frozen=True)
class SceneGraphResult:
    """One frame's scene graph, ROS-free (NumPy), as the streaming engine
    returns it and the ROS node / tools serialise it.

    Attributes:
        stamp_ns: frame timestamp in nanoseconds.
        entity_track: (N,) int64 stable track id.
        entity_labels: (N,) int64 AG object index.
        entity_scores: (N,) float32.
        entity_boxes: (N, 4) float32 ``x1 y1 x2 y2`` pixels.
        pair_subject: (P,) int64 row into the entities.
        pair_object: (P,) int64 row into the entities.
        attention: (P, 3) float32 probabilities.
        spatial: (P, 6) float32 sigmoid scores.
        contacting: (P, 17) float32 sigmoid scores.
        window_stamps_ns: (W,) int64 stamps of the frames in the temporal window.
    """

    stamp_ns: int
    entity_track: np.ndarray
    entity_labels: np.ndarray
    entity_scores: np.ndarray
    entity_boxes: np.ndarray
    pair_subject: np.ndarray
    pair_object: np.ndarray
    attention: np.ndarray
    spatial: np.ndarray
    contacting: np.ndarray
    window_stamps_ns: np.ndarray


# --------------------------------------------------------------------------
# The decoded scene graph: what the ROS message, the JSONL line and the overlay
# show. Made from a SceneGraphResult by tr2_core.scene_graph.decode_scene_graph.


@dataclass(frozen=True)
class PredicateScores:
    """One pair's answer in one predicate family (``tr2/msg/PredicateScores``).

    Attributes:
        family: ``'attention'``, ``'spatial'`` or ``'contacting'``.
        first_predicate_id: global index of the family's first predicate.
        scores: (S,) float32 all the family's scores (S = family size).
        top: global index of the best-scoring predicate.
        top_score: its score.
        holding: global indices of the predicates that hold, best first: the
            top one for single-label attention, every one scoring at least
            the relation threshold for spatial and contacting.
    """

    family: str
    first_predicate_id: int
    scores: np.ndarray
    top: int
    top_score: float
    holding: tuple[int, ...]


@dataclass(frozen=True)
class SceneGraphNode:
    """One entity (``tr2/msg/SceneGraphNode``); its id is its row in the graph.

    Attributes:
        track_id: stable track id (-1 where no tracker ran).
        label: AG object index 1..36.
        score: detector / given confidence.
        box: (4,) float32 ``x1 y1 x2 y2`` pixels.
    """

    track_id: int
    label: int
    score: float
    box: np.ndarray


@dataclass(frozen=True)
class SceneGraphEdge:
    """One (subject, object) pair with its three families (``tr2/msg/SceneGraphEdge``).

    Attributes:
        subject, object: rows into :attr:`SceneGraph.nodes`.
        attention, spatial, contacting: the pair's answer per family.
    """

    subject: int
    object: int
    attention: PredicateScores
    spatial: PredicateScores
    contacting: PredicateScores


@dataclass(frozen=True)
class SceneGraph:
    """One frame's decoded scene graph.

    Attributes:
        stamp_ns: frame timestamp in nanoseconds.
        nodes: the entities.
        edges: the pairs.
        window_stamps_ns: (W,) int64 stamps of the temporal window, oldest first.
        rejected: entities and pairs left out while decoding (non-finite values
            or below the score threshold).
    """

    stamp_ns: int
    nodes: tuple[SceneGraphNode, ...]
    edges: tuple[SceneGraphEdge, ...]
    window_stamps_ns: np.ndarray
    rejected: int = 0
