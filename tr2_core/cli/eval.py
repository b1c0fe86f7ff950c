"""``tr2 eval``: score a predictions file against Action Genome annotations."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tr2_core.evaluation.result import EvaluationResult

NAME = "eval"
HELP = "score a predictions .npz (R@K, mR@K in all constraint settings)"
DESCRIPTION = """\
Score a predictions file (the .npz layout of docs/evaluation.md) against the
Action Genome annotations of a split: Recall@K and mean Recall@K for
K = 10, 20, 50, 100 in the With / Semi / No constraint and Top-6 settings, plus
a per-family and a time-variant breakdown (on a synthetic dataset with temporal
effects also recall on its occluded / blurred / halfway / clean frames, from
annotations/synthetic_meta.json). Reads only AG_ROOT/annotations/.

Examples:
  tr2 eval --data AG_ROOT --predictions preds.npz --task predcls --json metrics.json
  tr2 eval --data AG_ROOT --predictions preds.npz --task sgdet --json metrics.json

As in the baselines, SGCls / SGDet ground truth leaves out objects whose box short edge
is <= 16 px (--no-filter-small-boxes keeps them). A predictions file whose frame set is
not the split's is refused, naming the first missing or extra frame (--partial accepts
it with a warning).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="AG_ROOT", help="Action Genome root")
    parser.add_argument("--predictions", required=True, metavar="PRED.npz")
    parser.add_argument("--task", required=True, choices=("predcls", "sgcls", "sgdet"))
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--json", metavar="OUT.json", help="write the metrics (fractions)")
    add_small_box_argument(parser)
    parser.add_argument(
        "--partial",
        action="store_true",
        help="accept predictions whose frame set differs from the split's (a warning names "
        "the first missing / extra frame; missing frames score 0). Default: refused",
    )
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["with", "semi", "no", "topk"],
        metavar="S",
        help="constraint settings: with semi no top<k> (topk = top<--topk>)",
    )
    parser.add_argument("--topk", type=int, default=6, help="k of the Top-k setting (6)")
    parser.add_argument("--ks", nargs="+", type=int, default=[10, 20, 50, 100], metavar="K")
    parser.add_argument(
        "--per-frame",
        metavar="OUT.npz",
        help="also save per-frame recalls (to compare two runs: Fig. 5 analysis)",
    )


def add_small_box_argument(parser: argparse.ArgumentParser, default: str = "") -> None:
    """``--filter-small-boxes`` / ``--no-filter-small-boxes``: the one flag of every
    command that reads a split's ground truth (resolve it with
    :func:`~tr2_core.evaluation.predictions.small_box_filter`)."""
    parser.add_argument(
        "--filter-small-boxes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop objects with a box short edge <= 16 px "
        + (default or "(default: on for sgcls/sgdet, off for predcls, the baselines' protocol)"),
    )


def add_temporal_effects(metrics: dict, result: EvaluationResult, data_root: str) -> dict:
    """Add ``'temporal_effects'`` (the breakdown of
    :func:`~tr2_core.evaluation.breakdown.temporal_effects_breakdown`) to
    ``metrics`` when ``data_root`` is a synthetic dataset whose meta file lists
    occluded, blurred or halfway frames; leave it unchanged otherwise (real
    Action Genome). Shared by ``tr2 eval`` and ``tr2 test``; returns ``metrics``."""
    from tr2_core.data.synthetic.meta import temporal_effect_frames
    from tr2_core.evaluation.breakdown import temporal_effects_breakdown

    effect_frames = temporal_effect_frames(data_root)
    if effect_frames:
        metrics["temporal_effects"] = temporal_effects_breakdown(result, effect_frames)
    return metrics


def run(args: argparse.Namespace) -> int:
    from tr2_core.data.action_genome import load_split
    from tr2_core.evaluation.changes import relation_changes
    from tr2_core.evaluation.predictions import (
        check_frame_coverage,
        load_predictions,
        small_box_filter,
    )
    from tr2_core.evaluation.recall import evaluate_detailed, parse_settings
    from tr2_core.evaluation.report import format_report, save_per_frame, write_metrics_json
    from tr2_core.outputs import check_output_files

    parse_settings(args.settings, args.topk)  # fail on a typo before loading anything
    check_output_files(
        {"--json": args.json, "--per-frame": args.per_frame},
        inputs=[args.predictions, args.data],
    )
    t0 = time.perf_counter()
    filtered = small_box_filter(args.task, args.filter_small_boxes)
    split = load_split(args.data, args.split, filter_small_boxes=filtered)
    t1 = time.perf_counter()
    preds = load_predictions(args.predictions)
    t2 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_frame_coverage(
            split.gt.frame_keys, preds, str(args.predictions), strict=not args.partial
        )
    for warning in caught:  # one clean line, not Python's warning format
        print(f"tr2 eval: warning: {warning.message}", file=sys.stderr)
    result = evaluate_detailed(
        split.gt,
        preds,
        task=args.task,
        settings=args.settings,
        ks=args.ks,
        topk=args.topk,
        validate=False,  # load_predictions validated
        source=str(args.predictions),
    )
    changes = relation_changes(split.gt)
    metrics = add_temporal_effects(result.metrics(changes=changes), result, args.data)
    t3 = time.perf_counter()
    print(format_report(metrics))
    if args.json:
        write_metrics_json(args.json, metrics)
        print(f"\nmetrics written to {args.json}")
    if args.per_frame:
        save_per_frame(args.per_frame, result, changes)
        print(f"per-frame recalls written to {args.per_frame}")
    if filtered != small_box_filter(args.task):
        print(
            f"note: the small-box filter is {'on' if filtered else 'off'}; the baselines'"
            f" {args.task} protocol has it {'off' if filtered else 'on'}",
            file=sys.stderr,
        )
    print(
        f"(annotations {t1 - t0:.2f} s, predictions {t2 - t1:.2f} s, evaluation {t3 - t2:.2f} s)",
        file=sys.stderr,
    )
    return 0
