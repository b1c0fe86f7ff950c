"""Ground truth and predictions built in memory, for tests and the benchmark.

:func:`ground_truth_from_frames` turns a short per-frame description into the
columnar :class:`~tr2_core.types.GroundTruth`; :func:`random_split` and
:func:`random_predictions` build split-sized random data directly in NumPy
(the AG test split has 1,750 videos and 56,923 frames).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tr2_core.types import GroundTruth, Predictions
from tr2_core.vocab import (
    ATTENTION,
    CONTACTING,
    NUM_OBJECT_CLASSES,
    OBJECT_CLASSES,
    PERSON,
    PREDICATES,
    SPATIAL,
)

__all__ = ["ground_truth_from_frames", "random_split", "random_predictions", "release_records"]


def ground_truth_from_frames(frames: Sequence[Mapping[str, Any]]) -> GroundTruth:
    """Build a :class:`GroundTruth` from per-frame dicts.

    Each frame: ``key`` (``'VIDEO.mp4/FRAME.png'``), ``boxes`` (n, 4) x1 y1 x2 y2
    with the person first, ``labels`` (n,), ``triplets``: iterable of
    ``(subject, object, predicate)`` with subject / object local box indices,
    and optionally ``size`` ``(width, height)``. Frames of one video must be
    consecutive (in frame order).
    """
    keys = [str(f["key"]) for f in frames]
    video_of = [k.split("/", 1)[0] for k in keys]
    videos: list[str] = []
    frame_video = []
    for v in video_of:
        if not videos or videos[-1] != v:
            if v in videos:
                raise ValueError(f"frames of video {v!r} are not consecutive")
            videos.append(v)
        frame_video.append(len(videos) - 1)
    frame_video_arr = np.asarray(frame_video, dtype=np.int64)
    video_start = np.searchsorted(frame_video_arr, np.arange(len(videos) + 1))
    box_counts = [len(f["labels"]) for f in frames]
    box_start = np.zeros(len(frames) + 1, dtype=np.int64)
    np.cumsum(box_counts, out=box_start[1:])
    boxes = [np.asarray(f["boxes"], dtype=np.float32).reshape(-1, 4) for f in frames]
    labels = [np.asarray(f["labels"], dtype=np.int64).reshape(-1) for f in frames]
    t_frame, t_sub, t_obj, t_pred = [], [], [], []
    for i, f in enumerate(frames):
        for s, o, p in f.get("triplets", ()):
            t_frame.append(i)
            t_sub.append(box_start[i] + int(s))
            t_obj.append(box_start[i] + int(o))
            t_pred.append(int(p))
    return GroundTruth(
        videos=np.asarray(videos, dtype=str),
        video_start=video_start.astype(np.int64),
        frame_keys=np.asarray(keys, dtype=str),
        frame_video=np.asarray(frame_video, dtype=np.int64),
        frame_size=np.asarray([f.get("size", (480, 270)) for f in frames], dtype=np.int64).reshape(
            -1, 2
        ),
        box_start=box_start,
        box_frame=np.repeat(np.arange(len(frames), dtype=np.int64), box_counts),
        boxes=np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32),
        box_labels=np.concatenate(labels) if labels else np.zeros(0, np.int64),
        triplet_frame=np.asarray(t_frame, dtype=np.int64),
        triplet_subject=np.asarray(t_sub, dtype=np.int64),
        triplet_object=np.asarray(t_obj, dtype=np.int64),
        triplet_predicate=np.asarray(t_pred, dtype=np.int64),
    )


def _random_boxes(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    x1 = rng.uniform(0, width * 0.8, n)
    y1 = rng.uniform(0, height * 0.8, n)
    w = rng.uniform(17, width * 0.5, n)
    h = rng.uniform(17, height * 0.5, n)
    return np.stack(
        [x1, y1, np.minimum(x1 + w, width - 1), np.minimum(y1 + h, height - 1)], axis=1
    ).astype(np.float32)


def random_split(
    *,
    num_videos: int = 1750,
    num_frames: int = 56923,
    objects: tuple[int, int] = (2, 3),
    seed: int = 0,
) -> GroundTruth:
    """A random split of AG's shape, built in NumPy (no Python loop over frames).

    Args:
        num_videos, num_frames: sizes (defaults: the AG test split; every video
            gets at least 3 frames).
        objects: inclusive range of objects per frame (besides the person).
        seed: random seed.

    Labels per object: one attention predicate, 1-2 spatial, 1-2 contacting;
    an object's class is kept through its video (object slots per video), so
    relation changes over time look like AG's.
    """
    rng = np.random.default_rng(seed)
    if num_frames < 3 * num_videos:
        raise ValueError("need at least 3 frames per video")
    extra = rng.multinomial(num_frames - 3 * num_videos, np.full(num_videos, 1.0 / num_videos))
    per_video = 3 + extra
    video_start = np.zeros(num_videos + 1, dtype=np.int64)
    np.cumsum(per_video, out=video_start[1:])
    frame_video = np.repeat(np.arange(num_videos, dtype=np.int64), per_video)
    frame_number = np.arange(num_frames) - video_start[frame_video] + 1
    videos = np.char.add(np.char.zfill(np.arange(num_videos).astype(str), 5), ".mp4")
    frame_keys = np.char.add(
        np.char.add(videos[frame_video], "/"),
        np.char.add(np.char.zfill((frame_number * 7).astype(str), 6), ".png"),
    )
    lo, hi = objects
    n_obj = rng.integers(lo, hi + 1, num_frames)
    n_box = n_obj + 1
    box_start = np.zeros(num_frames + 1, dtype=np.int64)
    np.cumsum(n_box, out=box_start[1:])
    num_boxes = int(box_start[-1])
    box_frame = np.repeat(np.arange(num_frames, dtype=np.int64), n_box)
    slot = np.arange(num_boxes) - box_start[box_frame]  # 0 = person
    video_classes = rng.integers(2, NUM_OBJECT_CLASSES, (num_videos, hi + 1))
    box_labels = np.where(slot == 0, PERSON, video_classes[frame_video[box_frame], slot])
    boxes = _random_boxes(rng, num_boxes, 480, 270)

    is_obj = slot > 0
    obj_rows = np.flatnonzero(is_obj)
    person_rows = box_start[box_frame[obj_rows]]
    n_sp = rng.integers(1, 3, obj_rows.shape[0])
    n_ct = rng.integers(1, 3, obj_rows.shape[0])
    # attention: (person, object); spatial: (object, person); contacting: (person, object)
    att_pred = rng.integers(ATTENTION.start, ATTENTION.stop, obj_rows.shape[0])
    sp_obj = np.repeat(np.arange(obj_rows.shape[0]), n_sp)
    ct_obj = np.repeat(np.arange(obj_rows.shape[0]), n_ct)
    sp_pred = (
        SPATIAL.start
        + (
            rng.integers(0, SPATIAL.size, obj_rows.shape[0])[sp_obj]
            + (np.arange(sp_obj.shape[0]) - np.repeat(np.cumsum(n_sp) - n_sp, n_sp))
        )
        % SPATIAL.size
    )
    ct_pred = (
        CONTACTING.start
        + (
            rng.integers(0, CONTACTING.size, obj_rows.shape[0])[ct_obj]
            + (np.arange(ct_obj.shape[0]) - np.repeat(np.cumsum(n_ct) - n_ct, n_ct))
        )
        % CONTACTING.size
    )
    subj = np.concatenate([person_rows, obj_rows[sp_obj], person_rows[ct_obj]])
    obj = np.concatenate([obj_rows, person_rows[sp_obj], obj_rows[ct_obj]])
    pred = np.concatenate([att_pred, sp_pred, ct_pred])
    # The loader's order: by object box, then attention, spatial, contacting.
    t_frame = box_frame[subj]
    owner = np.concatenate([obj_rows, obj_rows[sp_obj], obj_rows[ct_obj]])
    fam = np.repeat([0, 1, 2], [obj_rows.shape[0], sp_obj.shape[0], ct_obj.shape[0]])
    order = np.lexsort((fam, owner))
    return GroundTruth(
        videos=videos,
        video_start=video_start,
        frame_keys=frame_keys,
        frame_video=frame_video,
        frame_size=np.tile(np.array([[480, 270]], dtype=np.int64), (num_frames, 1)),
        box_start=box_start,
        box_frame=box_frame,
        boxes=boxes,
        box_labels=box_labels.astype(np.int64),
        triplet_frame=t_frame[order],
        triplet_subject=subj[order],
        triplet_object=obj[order],
        triplet_predicate=pred[order].astype(np.int64),
    )


def random_predictions(
    gt: GroundTruth,
    *,
    seed: int = 0,
    detect: bool = False,
    quantize: int | None = None,
) -> Predictions:
    """Random, mildly informative predictions for every frame of ``gt``.

    One pair (person, object) per GT object. Scores are random with the GT
    predicates boosted, so recall is neither 0 nor 1.

    Args:
        gt: the ground truth to predict.
        seed: random seed.
        detect: SGDet-like: boxes jittered (some IoU < 0.5), random object
            scores, one extra random box per frame (no pair).
        quantize: round scores to this many levels (creates exact ties).
    """
    rng = np.random.default_rng(seed)
    num_boxes = gt.boxes.shape[0]
    boxes = gt.boxes.copy()
    scores = np.ones(num_boxes, dtype=np.float32)
    if detect:
        wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
        boxes = boxes + (rng.normal(0, 0.12, (num_boxes, 4)) * wh).astype(np.float32)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
        scores = rng.uniform(0.3, 1.0, num_boxes).astype(np.float32)
    box_frame = gt.box_frame.copy()
    labels = gt.box_labels.copy()
    slot = np.arange(num_boxes) - gt.box_start[gt.box_frame]
    obj_rows = np.flatnonzero(slot > 0)
    subj = gt.box_start[gt.box_frame[obj_rows]]
    num_pairs = obj_rows.shape[0]

    # Boost GT predicates of each pair.
    pair_of_box = np.full(num_boxes, -1, dtype=np.int64)
    pair_of_box[obj_rows] = np.arange(num_pairs)
    spatial = np.asarray(gt.triplet_predicate) >= SPATIAL.start
    spatial &= np.asarray(gt.triplet_predicate) < SPATIAL.stop
    t_obj = np.where(spatial, gt.triplet_subject, gt.triplet_object)
    t_pair = pair_of_box[t_obj]
    logits = rng.normal(0, 1.0, (num_pairs, 26))
    np.add.at(logits, (t_pair, gt.triplet_predicate), rng.uniform(0.5, 3.0, t_pair.shape[0]))
    att = np.exp(logits[:, ATTENTION.slice])
    att /= att.sum(axis=1, keepdims=True)
    sig = 1.0 / (1.0 + np.exp(-(logits - 1.0)))
    rel = np.concatenate([att, sig[:, SPATIAL.slice], sig[:, CONTACTING.slice]], axis=1)
    if quantize:
        rel = np.round(rel * quantize) / quantize
        scores = (np.round(scores * quantize) / quantize).astype(np.float32)
    rel = rel.astype(np.float32)

    if detect:  # one extra unpaired box per frame
        extra = _random_boxes(rng, gt.num_frames, 480, 270)
        boxes = np.concatenate([boxes, extra])
        box_frame = np.concatenate([box_frame, np.arange(gt.num_frames)])
        labels = np.concatenate([labels, rng.integers(2, NUM_OBJECT_CLASSES, gt.num_frames)])
        scores = np.concatenate([scores, rng.uniform(0.1, 0.5, gt.num_frames).astype(np.float32)])
    return Predictions(
        frame_keys=np.asarray(gt.frame_keys),
        box_frame=box_frame.astype(np.int64),
        boxes=boxes.astype(np.float32),
        box_labels=labels.astype(np.int64),
        box_scores=scores.astype(np.float32),
        pair_subject=subj.astype(np.int64),
        pair_object=obj_rows.astype(np.int64),
        attention=rel[:, ATTENTION.slice],
        spatial=rel[:, SPATIAL.slice],
        contacting=rel[:, CONTACTING.slice],
    )


def release_records(
    gt: GroundTruth, split: str = "test"
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The two annotation pickles' content (``person_bbox``,
    ``object_bbox_and_relationship``) that describe ``gt`` in the release format,
    for :func:`tr2_core.data.release_writer.write_annotations`.

    Boxes become ``x y w h`` with ``w = x2 - x1`` (the loader's inverse); every
    object is visible; predicate names come from the GT triplets of its box.
    """
    family = np.zeros(len(PREDICATES), dtype=np.int64)
    family[SPATIAL.slice] = 1
    family[CONTACTING.slice] = 2
    fields = ("attention_relationship", "spatial_relationship", "contacting_relationship")
    t_pred = np.asarray(gt.triplet_predicate)
    t_box = np.where(family[t_pred] == 1, gt.triplet_subject, gt.triplet_object)
    order = np.argsort(t_box, kind="stable")
    box_first = np.searchsorted(t_box[order], np.arange(gt.boxes.shape[0] + 1))
    boxes = gt.boxes.astype(np.float64)
    person: dict[str, dict[str, Any]] = {}
    objects: dict[str, list[dict[str, Any]]] = {}
    for f, key in enumerate(gt.frame_keys.tolist()):
        start, stop = int(gt.box_start[f]), int(gt.box_start[f + 1])
        person[key] = {
            "bbox": gt.boxes[start : start + 1].astype(np.float32),
            "bbox_score": np.ones(1, dtype=np.float32),
            "bbox_size": tuple(int(v) for v in gt.frame_size[f]),
            "bbox_mode": "xyxy",
            "keypoints": np.zeros((1, 17, 3), dtype=np.float32),
            "keypoints_logits": np.zeros((1, 17), dtype=np.float32),
        }
        video, frame = key.split("/", 1)
        records = []
        for b in range(start + 1, stop):
            names: tuple[list[str], list[str], list[str]] = ([], [], [])
            for t in order[box_first[b] : box_first[b + 1]]:
                names[family[t_pred[t]]].append(PREDICATES[t_pred[t]])
            x1, y1, x2, y2 = boxes[b].tolist()
            cls = OBJECT_CLASSES[int(gt.box_labels[b])]
            records.append(
                {
                    "class": cls,
                    "bbox": (x1, y1, x2 - x1, y2 - y1),
                    "visible": True,
                    **dict(zip(fields, names, strict=True)),
                    "metadata": {"tag": f"{video}/{cls}/{frame[:-4]}", "set": split},
                }
            )
        objects[key] = records
    return person, objects
