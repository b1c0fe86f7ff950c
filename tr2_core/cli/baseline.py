"""``tr2 baseline``: the frequency baseline's predictions for a split."""

from __future__ import annotations

import argparse

NAME = "baseline"
HELP = "frequency baseline (M-FREQ style): predictions .npz from training statistics"
DESCRIPTION = """\
Predict each predicate by its training frequency per object class (attention
as a distribution, spatial / contacting as per-predicate frequencies), for
every (person, object) pair of the evaluation split, in PredCls (GT boxes and
labels). The output is a predictions .npz for `tr2 eval`: the floor that
learned models must beat.

Example:
  tr2 baseline --data AG_ROOT --out freq.npz
  tr2 eval --data AG_ROOT --predictions freq.npz --task predcls
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="AG_ROOT", help="Action Genome root")
    parser.add_argument("--out", required=True, metavar="PRED.npz", help="predictions to write")
    parser.add_argument("--task", default="predcls", choices=("predcls",))
    parser.add_argument(
        "--split", default="test", choices=("train", "test"), help="predicted split"
    )
    parser.add_argument(
        "--table", metavar="FREQ.npz", help="also save the frequency table (per class)"
    )


def run(args: argparse.Namespace) -> int:
    from tr2_core.data.action_genome import load_split
    from tr2_core.evaluation.predictions import save_predictions
    from tr2_core.frequency_baseline import fit_frequency, predict_frequency, save_frequency_table
    from tr2_core.outputs import check_output_files

    check_output_files({"--out": args.out, "--table": args.table}, inputs=[args.data])
    train = load_split(args.data, "train")
    table = fit_frequency(train)
    target = train if args.split == "train" else load_split(args.data, args.split)
    preds = predict_frequency(table, target, task=args.task)
    save_predictions(args.out, preds)
    seen = int((table.pairs[2:] > 0).sum())
    print(
        f"frequency table from {train.num_pairs:,} training pairs ({seen} object classes seen); "
        f"predictions for {target.num_frames:,} {args.split} frames, "
        f"{preds.pair_subject.shape[0]:,} pairs written to {args.out}"
    )
    if args.table:
        save_frequency_table(args.table, table)
        print(f"frequency table written to {args.table}")
    return 0
