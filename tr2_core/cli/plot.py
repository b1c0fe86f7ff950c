"""``tr2 plot``: pictures of runs, results and predictions (PNG or SVG).

The arguments map onto :mod:`tr2_core.viz.run_plots` (curves, recall, fig5)
and :mod:`tr2_core.cli.plot_frames` (graph, timeline), which read the files,
evaluate, and hand computed data to :mod:`tr2_core.viz`.
"""

from __future__ import annotations

import argparse

from tr2_core.cli.eval import add_small_box_argument

NAME = "plot"
HELP = "pictures: training curves, recall per predicate, the paper's Fig. 5, scene graphs"
DESCRIPTION = """\
Draw a picture; the --out suffix picks the format (.png or .svg).

  curves    loss per term, learning rate and validation R@K per epoch of
            `tr2 train` run folders (several runs overlaid)
  recall    R@K / mR@K per predicate family and recall per predicate (the
            mR view) of several runs side by side, from `tr2 eval --json`
            files or predictions .npz (with --data; only these give the
            per-predicate panel)
  fig5      the TR² paper's Fig. 5 for any two runs: gain of run A over run B
            in R@K vs. the proportion of videos sorted by relation-change
            degree (predictions .npz, or `tr2 eval --per-frame` files)
  graph     one frame: the image with boxes and ids beside its scene graph
  timeline  one (person, object) pair over a video: predicted score of every
            predicate per frame, GT dots, lines where GT relations change

Examples:
  tr2 plot curves runs/tr2 runs/sttran --labels TR2 STTran-like --out curves.png
  tr2 plot recall --data AG_ROOT tr2.npz freq.json --labels TR2 frequency --out recall.svg
  tr2 plot fig5 --data AG_ROOT --a tr2.npz --b sttran.npz --label-a TR2 \\
      --label-b STTran-like --out fig5.png
  tr2 plot graph --data AG_ROOT --predictions tr2.npz --frame 001YG.mp4/000089.png --out g.png
  tr2 plot timeline --data AG_ROOT --predictions tr2.npz --video 001YG.mp4 --object cup --out t.png
"""

_TASKS = ("predcls", "sgcls", "sgdet")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="OUT.png|OUT.svg", help="picture to write")
    p.add_argument("--dpi", type=int, default=150, help="PNG resolution (150)")


def _ground_truth(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--data", required=required, metavar="AG_ROOT", help="Action Genome root")
    p.add_argument("--task", default="predcls", choices=_TASKS)
    p.add_argument("--split", default="test", choices=("train", "test"))
    add_small_box_argument(p)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="plot_kind", metavar="KIND", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("curves", help="training curves of run folders", formatter_class=fmt)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="`tr2 train` output folders")
    p.add_argument("--labels", nargs="+", metavar="NAME", help="one legend name per run")
    p.add_argument(
        "--val-metric",
        action="append",
        metavar="SETTING/KEY",
        help="validation metric to draw, e.g. with/R@20 (repeatable; default: with/R@20, "
        "no/R@20, with/mR@20)",
    )
    _common(p)

    p = sub.add_parser("recall", help="recall per family and per predicate", formatter_class=fmt)
    p.add_argument(
        "inputs", nargs="+", metavar="METRICS.json|PRED.npz", help="one per run, side by side"
    )
    p.add_argument("--labels", nargs="+", metavar="NAME", help="one name per run")
    p.add_argument("--setting", default="with", help="with, semi, no or top<k> (with)")
    p.add_argument("--k", type=int, default=20, help="the K of R@K (20)")
    _ground_truth(p, required=False)
    _common(p)

    p = sub.add_parser("fig5", help="the paper's Fig. 5 for two runs", formatter_class=fmt)
    p.add_argument("--a", required=True, metavar="PRED_A.npz", help="run A (the model)")
    p.add_argument("--b", required=True, metavar="PRED_B.npz", help="run B (the baseline)")
    p.add_argument("--label-a", default="A", metavar="NAME")
    p.add_argument("--label-b", default="B", metavar="NAME")
    p.add_argument("--setting", default="with", help="with, semi, no or top<k> (with)")
    p.add_argument("--k", type=int, default=20, help="the K of R@K (20)")
    p.add_argument("--bins", type=int, default=10, help="equal-count video groups (10)")
    p.add_argument("--json", metavar="CURVE.json", help="also write the curve's numbers")
    _ground_truth(p, required=False)
    _common(p)

    p = sub.add_parser("graph", help="scene graph of one frame", formatter_class=fmt)
    p.add_argument("--data", required=True, metavar="AG_ROOT", help="Action Genome root")
    p.add_argument("--predictions", required=True, metavar="PRED.npz")
    p.add_argument("--frame", required=True, metavar="VIDEO.mp4/FRAME.png", help="frame key")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="also draw spatial / contacting predicates scoring at least this (0.5)",
    )
    p.add_argument("--max-pairs", type=int, default=12, help="most pairs drawn (12)")
    p.add_argument("--no-gt", action="store_true", help="do not mark ground-truth predicates")
    p.add_argument(
        "--split", choices=("train", "test"), help="split of the ground truth (default: either)"
    )
    _common(p)

    p = sub.add_parser("timeline", help="predicates of one pair over a video", formatter_class=fmt)
    p.add_argument("--data", required=True, metavar="AG_ROOT", help="Action Genome root")
    p.add_argument("--predictions", required=True, metavar="PRED.npz")
    p.add_argument("--video", required=True, metavar="VIDEO.mp4")
    p.add_argument(
        "--object",
        metavar="CLASS",
        help="object class of the pair, e.g. cup or cup/glass/bottle (default: the class "
        "whose GT relations change most)",
    )
    p.add_argument(
        "--split", choices=("train", "test"), help="split of the ground truth (default: either)"
    )
    _common(p)


def run(args: argparse.Namespace) -> int:
    from tr2_core.cli import plot_frames
    from tr2_core.evaluation.predictions import small_box_filter
    from tr2_core.outputs import check_output_files
    from tr2_core.viz import run_plots
    from tr2_core.viz.curves import DEFAULT_VAL_METRICS

    kind = args.plot_kind
    inputs = [getattr(args, name, None) for name in ("data", "predictions", "a", "b")]
    inputs += [*getattr(args, "run_dirs", []), *getattr(args, "inputs", [])]
    check_output_files({"--out": args.out, "--json": getattr(args, "json", None)}, inputs=inputs)
    if kind == "curves":
        path = run_plots.plot_training_curves(
            args.run_dirs,
            args.out,
            labels=args.labels,
            val_metrics=args.val_metric or DEFAULT_VAL_METRICS,
            dpi=args.dpi,
        )
    elif kind == "recall":
        path = run_plots.plot_recall(
            args.inputs,
            args.out,
            labels=args.labels,
            setting=args.setting,
            k=args.k,
            data_root=args.data,
            task=args.task,
            split=args.split,
            filter_small_boxes=small_box_filter(args.task, args.filter_small_boxes),
            dpi=args.dpi,
        )
    elif kind == "fig5":
        path = run_plots.plot_fig5(
            args.a,
            args.b,
            args.out,
            data_root=args.data,
            label_a=args.label_a,
            label_b=args.label_b,
            task=args.task,
            setting=args.setting,
            k=args.k,
            bins=args.bins,
            split=args.split,
            filter_small_boxes=small_box_filter(args.task, args.filter_small_boxes),
            curve_json=args.json,
            dpi=args.dpi,
        )
    elif kind == "graph":
        path = plot_frames.plot_scene_graph(
            args.data,
            args.predictions,
            args.frame,
            args.out,
            threshold=args.threshold,
            max_pairs=args.max_pairs,
            show_gt=not args.no_gt,
            split=args.split,
            dpi=args.dpi,
        )
    else:
        path = plot_frames.plot_timeline(
            args.data,
            args.predictions,
            args.video,
            args.out,
            object_class=args.object,
            split=args.split,
            dpi=args.dpi,
        )
    print(f"wrote {path}")
    return 0
