"""Property tests: the fast evaluator equals the plain per-frame reference.

Random cases with exact ties (scores drawn from a small set), frames with fewer
than four pairs, several objects of one class, boxes jittered across the IoU
0.5 threshold, wrong labels, extra boxes and pairs, missing predicted frames,
frames and pairs in shuffled order.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tr2_core.evaluation.changes import relation_changes
from tr2_core.evaluation.recall import evaluate_detailed
from tr2_core.testing.eval_fixtures import ground_truth_from_frames
from tr2_core.testing.reference import reference_evaluate, reference_relation_changes
from tr2_core.types import GroundTruth, Predictions
from tr2_core.vocab import ATTENTION, CONTACTING, SPATIAL

SCORES = (0.0, 0.25, 0.5, 0.9, 0.95, 1.0)
BOX_SCORES = (1.0, 0.5, 0.25)
CLASSES = (2, 3, 4)  # few classes: duplicates within a frame and across frames
SETTINGS = ("with", "semi", "no", "top6", "top2")
KS = (1, 3, 10, 20, 50, 100)


@st.composite
def boxes(draw: st.DrawFn) -> tuple[float, float, float, float]:
    x = draw(st.integers(0, 40))
    y = draw(st.integers(0, 40))
    w = draw(st.integers(0, 30))
    h = draw(st.integers(0, 30))
    return (float(x), float(y), float(x + w), float(y + h))


@st.composite
def ground_truths(draw: st.DrawFn) -> GroundTruth:
    frames = []
    for v in range(draw(st.integers(1, 3))):
        for f in range(draw(st.integers(1, 4))):
            n_obj = draw(st.integers(0, 4))
            labels = [1] + [draw(st.sampled_from(CLASSES)) for _ in range(n_obj)]
            frame_boxes = [draw(boxes()) for _ in range(n_obj + 1)]
            triplets = []
            for m in range(1, n_obj + 1):
                for p in draw(
                    st.lists(st.integers(ATTENTION.start, ATTENTION.stop - 1), max_size=1)
                ):
                    triplets.append((0, m, p))
                for p in draw(st.lists(st.integers(SPATIAL.start, SPATIAL.stop - 1), max_size=2)):
                    triplets.append((m, 0, p))
                for p in draw(
                    st.lists(st.integers(CONTACTING.start, CONTACTING.stop - 1), max_size=2)
                ):
                    triplets.append((0, m, p))
            frames.append(
                {
                    "key": f"v{v}.mp4/{f:06d}.png",
                    "boxes": frame_boxes,
                    "labels": labels,
                    "triplets": triplets,
                }
            )
    return ground_truth_from_frames(frames)


@st.composite
def cases(draw: st.DrawFn) -> tuple[GroundTruth, Predictions]:
    gt = draw(ground_truths())
    keys, bf, bxs, labels, bscores = [], [], [], [], []
    ps, po, rel = [], [], []
    for f in range(gt.num_frames):
        if draw(st.integers(0, 5)) == 0:
            continue  # frame not predicted
        fi = len(keys)
        keys.append(str(gt.frame_keys[f]))
        start, stop = int(gt.box_start[f]), int(gt.box_start[f + 1])
        local = []
        for b in range(start, stop):
            if b > start and draw(st.integers(0, 6)) == 0:
                continue  # object not detected
            jitter = [float(draw(st.sampled_from((0, 0, 0, 1, 4, 12)))) for _ in range(4)]
            x1, y1, x2, y2 = (float(v) for v in gt.boxes[b])
            box = (x1 + jitter[0], y1 + jitter[1], max(x2 + jitter[2], x1 + jitter[0]),
                   max(y2 + jitter[3], y1 + jitter[1]))  # fmt: skip
            label = int(gt.box_labels[b])
            if b > start and draw(st.integers(0, 8)) == 0:
                label = draw(st.sampled_from(CLASSES))
            local.append(len(bxs))
            bf.append(fi)
            bxs.append(box)
            labels.append(label)
            bscores.append(draw(st.sampled_from(BOX_SCORES)))
        if draw(st.booleans()):  # an extra detection
            local.append(len(bxs))
            bf.append(fi)
            bxs.append(draw(boxes()))
            labels.append(draw(st.sampled_from((1, *CLASSES))))
            bscores.append(draw(st.sampled_from(BOX_SCORES)))
        if not local:
            continue
        pairs = [(local[0], o) for o in local[1:]]
        if len(local) > 1 and draw(st.booleans()):
            pairs.append((local[-1], local[0]))  # an odd extra pair
        for s, o in pairs:
            ps.append(s)
            po.append(o)
            rel.append([draw(st.sampled_from(SCORES)) for _ in range(26)])
    # Shuffle frames and pairs.
    n_frames, n_pairs = len(keys), len(ps)
    frame_perm = draw(st.permutations(range(n_frames))) if n_frames else []
    pair_perm = draw(st.permutations(range(n_pairs))) if n_pairs else []
    new_frame = np.empty(n_frames, dtype=np.int64)
    new_frame[list(frame_perm)] = np.arange(n_frames)
    rel_arr = np.asarray(rel, dtype=np.float32).reshape(-1, 26)[list(pair_perm)]
    preds = Predictions(
        frame_keys=np.asarray([keys[i] for i in frame_perm], dtype=str).reshape(-1),
        box_frame=new_frame[np.asarray(bf, dtype=np.int64)] if bf else np.zeros(0, np.int64),
        boxes=np.asarray(bxs, dtype=np.float32).reshape(-1, 4),
        box_labels=np.asarray(labels, dtype=np.int64),
        box_scores=np.asarray(bscores, dtype=np.float32),
        pair_subject=np.asarray(ps, dtype=np.int64)[list(pair_perm)].reshape(-1),
        pair_object=np.asarray(po, dtype=np.int64)[list(pair_perm)].reshape(-1),
        attention=rel_arr[:, ATTENTION.slice],
        spatial=rel_arr[:, SPATIAL.slice],
        contacting=rel_arr[:, CONTACTING.slice],
    )
    return gt, preds


def assert_same(fast: object, ref: object, path: str = "") -> None:
    if isinstance(fast, dict):
        assert isinstance(ref, dict) and set(fast) == set(ref), path
        for key in fast:
            assert_same(fast[key], ref[key], f"{path}/{key}")
    elif isinstance(fast, float):
        assert ref is not None and abs(fast - ref) <= 1e-12, (path, fast, ref)
    else:
        assert fast == ref, (path, fast, ref)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), task=st.sampled_from(("predcls", "sgcls", "sgdet")))
def test_fast_evaluator_equals_reference(case: tuple[GroundTruth, Predictions], task: str) -> None:
    gt, preds = case
    result = evaluate_detailed(gt, preds, task=task, settings=SETTINGS, ks=KS)
    ref_metrics, ref_matched = reference_evaluate(gt, preds, task=task, settings=SETTINGS, ks=KS)
    for setting in SETTINGS:
        np.testing.assert_array_equal(result.matched(setting), ref_matched[setting], setting)
    assert_same(result.metrics(), ref_metrics)


@settings(max_examples=100, deadline=None)
@given(gt=ground_truths())
def test_relation_changes_equal_reference(gt: GroundTruth) -> None:
    changes = relation_changes(gt)
    states, frame_changed, video_change = reference_relation_changes(gt)
    assert changes.triplet_state.tolist() == states
    assert changes.frame_changed.tolist() == frame_changed
    assert changes.video_change.tolist() == pytest.approx(video_change)
