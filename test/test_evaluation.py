"""The evaluator's semantics on hand-built frames (docs/evaluation.md, rule by rule).

Expected values are worked out by hand in the comments, independently of both
the fast evaluator and the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_fixtures import (
    BOOK,
    BOOK_BOX,
    CUP,
    CUP_BOX,
    PERSON_BOX,
    P,
    gt_frame,
    predictions,
    scores,
)

from tr2_core.errors import ConfigError, PredictionsError
from tr2_core.evaluation.predictions import empty_predictions
from tr2_core.evaluation.recall import (
    UNMATCHED,
    evaluate,
    evaluate_detailed,
    legacy_iou,
    parse_settings,
)
from tr2_core.testing.eval_fixtures import ground_truth_from_frames
from tr2_core.testing.reference import legacy_iou_one, reference_evaluate
from tr2_core.types import Predictions


def same_as_reference(gt, preds, task="predcls", settings=("with", "semi", "no", "top6"), ks=None):
    ks = ks or (10, 20, 50, 100)
    fast = evaluate(gt, preds, task=task, settings=settings, ks=ks)
    ref, _ = reference_evaluate(gt, preds, task=task, settings=settings, ks=ks)
    for s in settings:
        assert fast[s] == pytest.approx(ref[s], abs=1e-12)
    return fast


def video(*frames: dict) -> list[dict]:
    return list(frames)


# --------------------------------------------------------------------------


def test_legacy_iou_counts_the_extra_pixel() -> None:
    a = np.array([[0.0, 0.0, 9.0, 9.0]])  # 10 x 10 pixels
    b = np.array([[5.0, 0.0, 14.0, 9.0]])  # 10 x 10, 5 columns shared
    assert legacy_iou(a, b)[0] == pytest.approx(50.0 / 150.0)
    # 10x5 inside 10x10: legacy IoU exactly 0.5 (the modern convention gives 36/81).
    c = np.array([[0.0, 0.0, 9.0, 4.0]])
    assert legacy_iou(a, c)[0] == pytest.approx(0.5)
    assert legacy_iou_one(a[0], c[0]) == pytest.approx(0.5)
    # Touching boxes: the legacy rule gives a one-pixel-wide overlap.
    d = np.array([[9.0, 0.0, 18.0, 9.0]])
    assert legacy_iou(a, d)[0] == pytest.approx(10.0 / 190.0)
    far = np.array([[50.0, 50.0, 60.0, 60.0]])
    assert legacy_iou(a, far)[0] == 0.0


def test_iou_threshold_uses_legacy_convention() -> None:
    person = (0.0, 0.0, 9.0, 9.0)
    gt = ground_truth_from_frames(
        [
            {
                "key": "v.mp4/000001.png",
                "boxes": [person, (20.0, 0.0, 29.0, 9.0)],
                "labels": [1, CUP],
                "triplets": [(0, 1, P["looking_at"])],
            }
        ]
    )
    # Predicted person box covers the left half: legacy IoU 0.5 -> match.
    half = (0.0, 0.0, 9.0, 4.0)
    preds = predictions(
        [
            {
                "key": "v.mp4/000001.png",
                "boxes": [(1, half, 1.0), (CUP, (20.0, 0.0, 29.0, 9.0), 1.0)],
                "pairs": [(0, 1, scores(att={"looking_at": 0.8}))],
            }
        ]
    )
    assert evaluate(gt, preds, task="sgdet")["with"]["R@10"] == 1.0
    # One pixel less: IoU 40/100 -> no match.
    preds2 = predictions(
        [
            {
                "key": "v.mp4/000001.png",
                "boxes": [(1, (0.0, 0.0, 9.0, 3.0), 1.0), (CUP, (20.0, 0.0, 29.0, 9.0), 1.0)],
                "pairs": [(0, 1, scores(att={"looking_at": 0.8}))],
            }
        ]
    )
    assert evaluate(gt, preds2, task="sgdet")["with"]["R@10"] == 0.0


def test_spatial_triplets_are_reversed_and_labels_must_match() -> None:
    gt = ground_truth_from_frames(
        [gt_frame("v.mp4/000001.png", [(CUP, CUP_BOX, ["looking_at", "in_front_of", "holding"])])]
    )
    good = predictions(
        [
            {
                "key": "v.mp4/000001.png",
                "boxes": [(1, PERSON_BOX, 1.0), (CUP, CUP_BOX, 1.0)],
                "pairs": [
                    (
                        0,
                        1,
                        scores({"looking_at": 0.7}, {"in_front_of": 0.6}, {"holding": 0.9}),
                    )
                ],
            }
        ]
    )
    m = same_as_reference(gt, good)
    assert m["with"]["R@10"] == 1.0  # all three: the spatial one through the reversed pair
    # The same scores with the object mislabelled: nothing matches.
    wrong = predictions(
        [
            {
                "key": "v.mp4/000001.png",
                "boxes": [(1, PERSON_BOX, 1.0), (BOOK, CUP_BOX, 1.0)],
                "pairs": [
                    (0, 1, scores({"looking_at": 0.7}, {"in_front_of": 0.6}, {"holding": 0.9}))
                ],
            }
        ]
    )
    assert same_as_reference(gt, wrong, task="sgcls")["no"]["R@100"] == 0.0


def test_with_constraint_takes_one_argmax_per_family() -> None:
    gt = ground_truth_from_frames(
        [gt_frame("v.mp4/000001.png", [(CUP, CUP_BOX, ["not_looking_at", "beneath", "holding"])])]
    )
    preds = predictions(
        [
            {
                "key": "v.mp4/000001.png",
                "boxes": [(1, PERSON_BOX, 1.0), (CUP, CUP_BOX, 1.0)],
                "pairs": [
                    (
                        0,
                        1,
                        scores(
                            {"looking_at": 0.5, "not_looking_at": 0.4},  # argmax: wrong
                            {"beneath": 0.8, "above": 0.3},  # argmax: right
                            {"touching": 0.9, "holding": 0.8},  # argmax: wrong
                        ),
                    )
                ],
            }
        ]
    )
    m = same_as_reference(gt, preds)
    assert m["with"]["R@10"] == pytest.approx(1 / 3)
    # mR: three predicates, one recalled.
    assert m["with"]["mR@10"] == pytest.approx(1 / 3)
    # top-6 over the 26 concatenated scores keeps all six non-zero ones.
    assert m["top6"]["R@10"] == 1.0
    # semi: spatial 0.8 and contacting 0.8 are not > 0.9; attention argmax is wrong.
    assert m["semi"]["R@10"] == 0.0


def test_semi_threshold_is_strict() -> None:
    gt = ground_truth_from_frames(
        [gt_frame("v.mp4/000001.png", [(CUP, CUP_BOX, ["holding", "touching"])])]
    )
    preds = predictions(
        [
            {
                "key": "v.mp4/000001.png",
                "boxes": [(1, PERSON_BOX, 1.0), (CUP, CUP_BOX, 1.0)],
                "pairs": [(0, 1, scores({"unsure": 1.0}, {}, {"holding": 0.95, "touching": 0.9}))],
            }
        ]
    )
    m = same_as_reference(gt, preds)
    assert m["semi"]["R@10"] == 0.5  # holding kept; touching at 0.9 (float32 < 0.9) is not


def test_no_constraint_zero_filled_cells_match_in_row_major_order() -> None:
    # One pair; contacting scores all 0. Positive cells: 3 attention + 6 spatial = 9.
    # GT "holding" (index 14) is matched by the attention row's zero cell of
    # column 14: zero cells are ranked in row-major order after the 9 positive
    # ones, and that cell is the (14 - 3)-th zero of the attention row: rank 20.
    gt = ground_truth_from_frames([gt_frame("v.mp4/000001.png", [(CUP, CUP_BOX, ["holding"])])])
    preds = predictions(
        [
            {
                "key": "v.mp4/000001.png",
                "boxes": [(1, PERSON_BOX, 1.0), (CUP, CUP_BOX, 1.0)],
                "pairs": [
                    (
                        0,
                        1,
                        (
                            [0.5, 0.3, 0.2],
                            [0.1, 0.15, 0.2, 0.25, 0.3, 0.35],
                            [0.0] * 17,
                        ),
                    )
                ],
            }
        ]
    )
    result = evaluate_detailed(gt, preds, task="predcls", ks=(20, 21, 50))
    assert int(result.ranks["no"][0]) == 20
    m = same_as_reference(gt, preds, ks=(20, 21, 50))
    assert m["no"]["R@20"] == 0.0
    assert m["no"]["R@21"] == 1.0
    # with: the all-zero contacting row yields predicate 0 (looking_at) with score 0.
    assert m["with"]["R@50"] == 0.0
    assert int(result.ranks["with"][0]) == UNMATCHED


def test_no_constraint_keeps_only_100_cells() -> None:
    # Two pairs (156 cells). All real scores positive except the GT cell, so
    # it ranks after the 51 positive cells and after the zero cells before it
    # in row-major order: rows att0, att1 (23 zeros each), sp0 (20 zeros),
    # then sp1's 3 attention columns: 46 + 20 + 3 = 69 -> rank 120 >= 100.
    gt = ground_truth_from_frames(
        [gt_frame("v.mp4/000001.png", [(CUP, CUP_BOX, []), (BOOK, BOOK_BOX, ["above"])])]
    )
    rng = np.random.default_rng(0)

    def positive(n: int) -> list[float]:
        return rng.uniform(0.1, 0.9, n).round(3).tolist()

    sp1 = positive(6)
    sp1[0] = 0.0  # "above" of the book pair
    preds = predictions(
        [
            {
                "key": "v.mp4/000001.png",
                "boxes": [(1, PERSON_BOX, 1.0), (CUP, CUP_BOX, 1.0), (BOOK, BOOK_BOX, 1.0)],
                "pairs": [
                    (0, 1, (positive(3), positive(6), positive(17))),
                    (0, 2, (positive(3), sp1, positive(17))),
                ],
            }
        ]
    )
    result = evaluate_detailed(gt, preds, task="predcls", ks=(100, 150))
    assert int(result.ranks["no"][0]) == UNMATCHED
    assert result.metrics()["no"]["R@150"] == 0.0
    same_as_reference(gt, preds, ks=(100, 150))


def test_ties_keep_generation_order() -> None:
    # Two pairs, every score 0.5: "with" yields rows att0, att1, sp0, sp1, ct0, ct1
    # all at 0.5; the stable sort keeps that order, so R@1 sees att0 only.
    gt = ground_truth_from_frames(
        [
            gt_frame("v.mp4/000001.png", [(CUP, CUP_BOX, []), (BOOK, BOOK_BOX, ["looking_at"])]),
            gt_frame("v.mp4/000002.png", [(CUP, CUP_BOX, ["looking_at"]), (BOOK, BOOK_BOX, [])]),
        ]
    )
    flat = ([0.5, 0.5, 0.0], [0.5] * 6, [0.5] * 17)
    frames = [
        {
            "key": key,
            "boxes": [(1, PERSON_BOX, 1.0), (CUP, CUP_BOX, 1.0), (BOOK, BOOK_BOX, 1.0)],
            "pairs": [(0, 1, flat), (0, 2, flat)],
        }
        for key in ("v.mp4/000001.png", "v.mp4/000002.png")
    ]
    result = evaluate_detailed(gt, predictions(frames), task="predcls", ks=(1, 2))
    # frame 1: the book's looking_at is row att1 -> rank 1; frame 2: att0 -> rank 0.
    assert result.ranks["with"].tolist() == [1, 0]
    m = same_as_reference(gt, predictions(frames), ks=(1, 2))
    assert m["with"]["R@1"] == 0.5
    assert m["with"]["R@2"] == 1.0
    # top-6 keeps predicates 0, 1, 3, 4, 5, 6 of each pair (ties: lower index
    # first), generated pair by pair: the book's looking_at comes after the
    # cup pair's six -> rank 6.
    assert result.ranks["top6"].tolist() == [6, 0]


def test_pairs_in_any_order_and_across_frames() -> None:
    # Pairs of two frames interleaved in the file, frames listed in reverse.
    gt = ground_truth_from_frames(
        [
            gt_frame("v.mp4/000001.png", [(CUP, CUP_BOX, ["looking_at"])]),
            gt_frame("v.mp4/000002.png", [(BOOK, BOOK_BOX, ["unsure"])]),
        ]
    )
    preds = Predictions(
        frame_keys=np.array(["v.mp4/000002.png", "v.mp4/000001.png"]),
        box_frame=np.array([0, 1, 0, 1]),
        boxes=np.array([PERSON_BOX, PERSON_BOX, BOOK_BOX, CUP_BOX], dtype=np.float32),
        box_labels=np.array([1, 1, BOOK, CUP]),
        box_scores=np.ones(4, dtype=np.float32),
        pair_subject=np.array([1, 0]),
        pair_object=np.array([3, 2]),
        attention=np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]], dtype=np.float32),
        spatial=np.zeros((2, 6), dtype=np.float32),
        contacting=np.zeros((2, 17), dtype=np.float32),
    )
    m = same_as_reference(gt, preds)
    assert m["with"]["R@10"] == 1.0


def test_recall_is_a_mean_over_frames_and_missing_frames_score_zero() -> None:
    gt = ground_truth_from_frames(
        [
            gt_frame("a.mp4/000001.png", [(CUP, CUP_BOX, ["looking_at", "holding"])]),
            gt_frame("a.mp4/000002.png", [(CUP, CUP_BOX, ["looking_at"])]),
            gt_frame("b.mp4/000001.png", [(CUP, CUP_BOX, ["looking_at"])]),
        ]
    )
    pair = (0, 1, scores({"looking_at": 0.9}, {}, {"touching": 0.9}))
    boxes = [(1, PERSON_BOX, 1.0), (CUP, CUP_BOX, 1.0)]
    preds = predictions(
        [
            {"key": "a.mp4/000001.png", "boxes": boxes, "pairs": [pair]},  # 1 of 2
            {"key": "a.mp4/000002.png", "boxes": boxes, "pairs": [pair]},  # 1 of 1
            # b.mp4/000001.png missing: 0 of 1
        ]
    )
    m = same_as_reference(gt, preds)
    assert m["with"]["R@10"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)  # per frame, not pooled
    # mR: looking_at 2 of 3, holding 0 of 1 -> (2/3 + 0) / 2
    assert m["with"]["mR@10"] == pytest.approx(1 / 3)
    assert m["frames"] == 3
    assert evaluate(gt, empty_predictions(), task="predcls")["no"]["R@100"] == 0.0


def test_object_scores_rank_candidates_except_in_predcls() -> None:
    # Two objects; the GT relation is on the object with the lower box score.
    gt = ground_truth_from_frames(
        [gt_frame("v.mp4/000001.png", [(CUP, CUP_BOX, []), (BOOK, BOOK_BOX, ["holding"])])]
    )
    frame = {
        "key": "v.mp4/000001.png",
        "boxes": [(1, PERSON_BOX, 1.0), (CUP, CUP_BOX, 0.9), (BOOK, BOOK_BOX, 0.5)],
        "pairs": [
            (0, 1, scores({"looking_at": 1.0}, {"above": 0.6}, {"holding": 0.6})),
            (0, 2, scores({"looking_at": 1.0}, {"above": 0.6}, {"holding": 0.8})),
        ],
    }
    preds = predictions([frame])
    det = evaluate_detailed(gt, preds, task="sgdet")
    pred = evaluate_detailed(gt, preds, task="predcls")
    # sgdet: rows score 0.9, 0.5, 0.54, 0.3, 0.54, 0.4 -> the book's holding (0.4) ranks 4
    assert int(det.ranks["with"][0]) == 4
    # predcls (scores 1): 1.0, 1.0, 0.6, 0.6, 0.6, 0.8 -> holding 0.8 ranks 2
    assert int(pred.ranks["with"][0]) == 2
    same_as_reference(gt, preds, task="sgdet")


def test_metrics_keys_and_unknown_frames() -> None:
    gt = ground_truth_from_frames([gt_frame("v.mp4/000001.png", [(CUP, CUP_BOX, ["holding"])])])
    m = evaluate(gt, empty_predictions(), task="predcls")
    assert list(m["with"]) == [f"R@{k}" for k in (10, 20, 50, 100)] + [
        f"mR@{k}" for k in (10, 20, 50, 100)
    ]
    assert {"with", "semi", "no", "top6", "frames", "families", "time_variant"} <= set(m)
    stray = predictions([{"key": "other.mp4/000001.png", "boxes": [], "pairs": []}])
    with pytest.raises(PredictionsError, match="other.mp4/000001.png"):
        evaluate(gt, stray, task="predcls")
    with pytest.raises(ConfigError, match="task"):
        evaluate(gt, empty_predictions(), task="detection")
    with pytest.raises(ConfigError, match="top-6|top<k>"):
        parse_settings(["with", "top-6"])
    assert parse_settings(["with", "topk", "top6"], topk=6) == ("with", "top6")


def test_frames_without_triplets_do_not_count() -> None:
    gt = ground_truth_from_frames(
        [
            gt_frame("v.mp4/000001.png", [(CUP, CUP_BOX, ["holding"])]),
            gt_frame("v.mp4/000002.png", [(CUP, CUP_BOX, [])]),
        ]
    )
    preds = predictions(
        [
            {
                "key": "v.mp4/000001.png",
                "boxes": [(1, PERSON_BOX, 1.0), (CUP, CUP_BOX, 1.0)],
                "pairs": [(0, 1, scores({"looking_at": 1.0}, {}, {"holding": 1.0}))],
            }
        ]
    )
    m = same_as_reference(gt, preds)
    assert m["frames"] == 1
    assert m["with"]["R@10"] == 1.0
    recall = evaluate_detailed(gt, preds, task="predcls").frame_recall("with")
    assert recall[0, 0] == 1.0 and np.isnan(recall[1, 0])


def _tr2_core_imports() -> dict[str, set[str]]:
    """Module -> the tr2_core modules it imports (anywhere in the file, lazy ones too)."""
    import ast
    from pathlib import Path

    import tr2_core

    root = Path(tr2_core.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m.startswith("tr2_core")}
    return graph


def test_library_never_imports_test_support() -> None:
    graph = _tr2_core_imports()
    assert "tr2_core.testing.reference" in graph  # the walk saw the package
    offenders = {
        module: sorted(m for m in imports if m.startswith("tr2_core.testing"))
        for module, imports in graph.items()
        if not module.startswith("tr2_core.testing")
    }
    assert {m: v for m, v in offenders.items() if v} == {}


def test_evaluation_modules_import_one_way() -> None:
    """No import cycle inside tr2_core.evaluation (recall <-> breakdown was one)."""
    graph = _tr2_core_imports()
    modules = {m for m in graph if m.startswith("tr2_core.evaluation.")}
    edges = {m: {d for d in graph[m] if d in modules and d != m} for m in modules}
    assert edges["tr2_core.evaluation.breakdown"] >= {"tr2_core.evaluation.result"}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module not in done:
            for dep in edges[module]:
                visit(dep, (*path, module))
            done.add(module)

    for module in sorted(modules):
        visit(module, ())
