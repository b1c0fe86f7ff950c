"""A plain, per-frame reference evaluator written from ``docs/evaluation.md``.

Slow on purpose: Python loops over frames, rows and candidates, one obvious
step per rule of that page, so that it can be read against it line by
line. The tests compare the fast evaluator (:mod:`tr2_core.evaluation.recall`)
with it on random cases; the benchmark uses it for the speed-up figure.
Nothing else should call it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tr2_core.types import GroundTruth, Predictions
from tr2_core.vocab import FAMILIES, NUM_PREDICATES, SPATIAL

__all__ = ["reference_evaluate", "reference_relation_changes", "legacy_iou_one"]

SEMI_THRESHOLD = 0.9
NO_CONSTRAINT_LIMIT = 100


def legacy_iou_one(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``x1 y1 x2 y2`` boxes with ``width = x2 - x1 + 1`` (legacy)."""
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    iw = min(ax2, bx2) - max(ax1, bx1) + 1.0
    ih = min(ay2, by2) - max(ay1, by1) + 1.0
    inter = iw * ih if (iw > 0 and ih > 0) else 0.0
    union = (ax2 - ax1 + 1.0) * (ay2 - ay1 + 1.0) + (bx2 - bx1 + 1.0) * (by2 - by1 + 1.0) - inter
    return inter / union if union > 0 else 0.0


def _family_of(p: int) -> int:
    for i, fam in enumerate(FAMILIES):
        if fam.start <= p < fam.stop:
            return i
    raise ValueError(p)


def _argmax(vec: list[float]) -> int:
    best = 0
    for p in range(1, len(vec)):
        if vec[p] > vec[best]:
            best = p
    return best


Row = tuple[int, int, list[float]]  # (subject box, object box, 26 scores)


def _frame_candidates(
    rows: list[Row], setting: str, scores: list[float], pairs: list[Row]
) -> list[tuple[int, int, int, float]]:
    """Candidates ``(subject box, object box, predicate, ranking score)`` of one
    frame, ranked (stable descending), for one setting."""
    cands: list[tuple[int, int, int, float]] = []  # in generation order

    def add(sub: int, obj: int, p: int, value: float) -> None:
        cands.append((sub, obj, p, scores[sub] * scores[obj] * value))

    if setting == "with":
        for sub, obj, vec in rows:
            p = _argmax(vec)
            add(sub, obj, p, vec[p])
    elif setting == "semi":
        for r, (sub, obj, vec) in enumerate(rows):
            if r < len(pairs):  # attention rows come first
                p = _argmax(vec)
                add(sub, obj, p, vec[p])
            else:
                for p in range(NUM_PREDICATES):
                    if vec[p] > SEMI_THRESHOLD:
                        add(sub, obj, p, vec[p])
    elif setting == "no":
        for sub, obj, vec in rows:
            for p in range(NUM_PREDICATES):
                add(sub, obj, p, vec[p])
    else:  # top<k>: pair by pair, the pair's 26 concatenated scores
        k = int(setting[3:])
        for sub, obj, vec in pairs:
            by_score = sorted(range(NUM_PREDICATES), key=lambda p, v=vec: -v[p])  # stable
            kept = set(by_score[:k])
            for p in range(NUM_PREDICATES):
                if p in kept:
                    if SPATIAL.start <= p < SPATIAL.stop:
                        add(obj, sub, p, vec[p])  # the reversed pair
                    else:
                        add(sub, obj, p, vec[p])
    ranked = sorted(cands, key=lambda c: -c[3])  # Python's sort is stable
    if setting == "no":
        ranked = ranked[:NO_CONSTRAINT_LIMIT]
    return ranked


def reference_relation_changes(gt: GroundTruth) -> tuple[list[int], list[bool], list[float]]:
    """Plain version of :func:`tr2_core.evaluation.breakdown.relation_changes`.

    Returns:
        (triplet state per triplet: 0 unchanged, 1 changed, 2 first frame;
        frame changed per frame; change degree per video).
    """
    n_frames = gt.num_frames
    sets: list[dict[tuple[int, int], set[int]]] = [{} for _ in range(n_frames)]
    tuples: list[set[tuple[int, int]]] = [set() for _ in range(n_frames)]
    info = []
    for t in range(gt.triplet_frame.shape[0]):
        f = int(gt.triplet_frame[t])
        p = int(gt.triplet_predicate[t])
        fam = _family_of(p)
        box = gt.triplet_subject[t] if FAMILIES[fam] is SPATIAL else gt.triplet_object[t]
        cls = int(gt.box_labels[box])
        sets[f].setdefault((cls, fam), set()).add(p)
        tuples[f].add((cls, p))
        info.append((f, cls, fam))
    states = []
    for f, cls, fam in info:
        video = int(gt.frame_video[f])
        if f == int(gt.video_start[video]):
            states.append(2)
            continue
        before = sets[f - 1].get((cls, fam), set())
        states.append(1 if sets[f][(cls, fam)] != before else 0)
    frame_changed = []
    for f in range(n_frames):
        first = f == int(gt.video_start[int(gt.frame_video[f])])
        frame_changed.append((not first) and tuples[f] != tuples[f - 1])
    video_change = []
    for v in range(gt.num_videos):
        lo, hi = int(gt.video_start[v]), int(gt.video_start[v + 1])
        n = hi - lo
        video_change.append(sum(frame_changed[lo + 1 : hi]) / (n - 1) if n > 1 else 0.0)
    return states, frame_changed, video_change


def _summary(
    flags: list[list[bool]],
    frames: list[int],
    preds: list[int],
    ks: Sequence[int],
    members: list[bool],
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    per_frame: dict[int, list[int]] = {}
    for t, f in enumerate(frames):
        if members[t]:
            per_frame.setdefault(f, []).append(t)
    per_pred: dict[int, list[int]] = {}
    for t, p in enumerate(preds):
        if members[t]:
            per_pred.setdefault(p, []).append(t)
    for c, k in enumerate(ks):
        if not per_frame:
            out[f"R@{k}"] = None
            continue
        recalls = [sum(flags[t][c] for t in ts) / len(ts) for ts in per_frame.values()]
        out[f"R@{k}"] = sum(recalls) / len(recalls)
    for c, k in enumerate(ks):
        if not per_pred:
            out[f"mR@{k}"] = None
            continue
        recalls = [sum(flags[t][c] for t in ts) / len(ts) for ts in per_pred.values()]
        out[f"mR@{k}"] = sum(recalls) / len(recalls)
    return out


def reference_evaluate(
    gt: GroundTruth,
    preds: Predictions,
    *,
    task: str,
    settings: Sequence[str] = ("with", "semi", "no", "top6"),
    ks: Sequence[int] = (10, 20, 50, 100),
) -> tuple[dict, dict[str, np.ndarray]]:
    """Evaluate frame by frame, literally as docs/evaluation.md says.

    Args:
        gt, preds: as for :func:`tr2_core.evaluation.recall.evaluate`
            (``preds`` assumed valid).
        task: ``'predcls'`` takes object scores as 1.
        settings: canonical names (``'with'``, ``'semi'``, ``'no'``, ``'top<k>'``).
        ks: the K values.

    Returns:
        (metrics dict with the same keys as the fast evaluator's, including
        ``families`` and ``time_variant``; setting -> (T, len(ks)) bool matched
        flags per GT triplet).
    """
    ks = tuple(ks)
    frame_of_key = {str(k): i for i, k in enumerate(preds.frame_keys.tolist())}
    pred_pairs: dict[int, list[int]] = {}
    for q in range(preds.pair_subject.shape[0]):
        f = int(preds.box_frame[preds.pair_subject[q]])
        pred_pairs.setdefault(f, []).append(q)
    box_scores = [1.0 if task == "predcls" else float(s) for s in preds.box_scores.tolist()]

    n_triplets = gt.triplet_frame.shape[0]
    triplets_of_frame: dict[int, list[int]] = {}
    for t in range(n_triplets):
        triplets_of_frame.setdefault(int(gt.triplet_frame[t]), []).append(t)

    flags = {s: [[False] * len(ks) for _ in range(n_triplets)] for s in settings}
    for f in range(gt.num_frames):
        gt_ts = triplets_of_frame.get(f, [])
        if not gt_ts:
            continue
        pf = frame_of_key.get(str(gt.frame_keys[f]))
        if pf is None:
            continue  # no predictions: every triplet unmatched
        pairs = []
        for q in pred_pairs.get(pf, []):
            vec = (
                preds.attention[q].tolist()
                + preds.spatial[q].tolist()
                + preds.contacting[q].tolist()
            )
            pairs.append((int(preds.pair_subject[q]), int(preds.pair_object[q]), vec))
        rows = []
        for block, fam in enumerate(FAMILIES):
            for sub, obj, vec in pairs:
                row = [0.0] * NUM_PREDICATES
                for p in range(fam.start, fam.stop):
                    row[p] = vec[p]
                if block == FAMILIES.index(SPATIAL):
                    rows.append((obj, sub, row))  # the reversed pair
                else:
                    rows.append((sub, obj, row))
        for setting in settings:
            ranked = _frame_candidates(rows, setting, box_scores, pairs)
            for c, k in enumerate(ks):
                for t in gt_ts:
                    gs, go = int(gt.triplet_subject[t]), int(gt.triplet_object[t])
                    gp = int(gt.triplet_predicate[t])
                    for sub, obj, p, _score in ranked[:k]:
                        if (
                            p == gp
                            and int(preds.box_labels[sub]) == int(gt.box_labels[gs])
                            and int(preds.box_labels[obj]) == int(gt.box_labels[go])
                            and legacy_iou_one(preds.boxes[sub], gt.boxes[gs]) >= 0.5
                            and legacy_iou_one(preds.boxes[obj], gt.boxes[go]) >= 0.5
                        ):
                            flags[setting][t][c] = True
                            break

    frames = [int(v) for v in gt.triplet_frame.tolist()]
    predicates = [int(v) for v in gt.triplet_predicate.tolist()]
    everyone = [True] * n_triplets
    metrics: dict = {s: _summary(flags[s], frames, predicates, ks, everyone) for s in settings}
    metrics["frames"] = len(set(frames))
    metrics["task"] = task
    metrics["triplets"] = n_triplets
    families: dict = {}
    for i, fam in enumerate(FAMILIES):
        members = [_family_of(p) == i for p in predicates]
        entry: dict = {"triplets": sum(members)}
        for s in settings:
            entry[s] = _summary(flags[s], frames, predicates, ks, members)
        families[fam.name] = entry
    metrics["families"] = families
    states, frame_changed, _ = reference_relation_changes(gt)
    tv: dict = {}
    for name, code in (("changed", 1), ("unchanged", 0)):
        members = [st == code for st in states]
        entry = {
            "triplets": sum(members),
            "frames": len({frames[t] for t in range(n_triplets) if members[t]}),
        }
        for s in settings:
            entry[s] = _summary(flags[s], frames, predicates, ks, members)
        tv[name] = entry
    tv["first_frame_triplets"] = sum(st == 2 for st in states)
    tv["changed_frames"] = sum(frame_changed)
    tv["frames_after_first"] = sum(
        1 for f in range(gt.num_frames) if f != int(gt.video_start[int(gt.frame_video[f])])
    )
    metrics["time_variant"] = tv
    matched = {s: np.array(flags[s], dtype=bool).reshape(n_triplets, len(ks)) for s in settings}
    return metrics, matched
