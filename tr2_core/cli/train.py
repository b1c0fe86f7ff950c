"""``tr2 train``: train the relation model (one process, or DDP under torchrun)."""

from __future__ import annotations

import argparse

from tr2_core.cli.eval import add_small_box_argument

NAME = "train"
HELP = "train TR² on an Action Genome root (resumable; DDP under torchrun)"
DESCRIPTION = """\
Train the relation model of a model config (tr2_core/configs/models/) with a training recipe
(tr2_core/configs/train/) on AG_ROOT. The frozen detector and CLIP run once per video: their
outputs are cached on disk (--cache-dir, default ~/.cache/tr2/features) and training
reads them from there. Every epoch evaluates on the validation split with the
project's evaluator, appends a record to RUN_DIR/metrics.jsonl and writes
RUN_DIR/last.pt (RUN_DIR/best.pt when validation R@20 improved), atomically.

Trailing KEY=VALUE arguments override the training recipe (lr=0.0001, epochs=2);
prefix model keys with "model." (model.fusion.temporal_layers=1).

examples:
  tr2 train --data AG --model tr2 --train-config tr2 --out runs/tr2 \\
      --clip-weights ViT-B-32.pt --detector-weights faster_rcnn_ag.pth
  tr2 train --data synth --model tr2-small --train-config small --out runs/s --random-init
  tr2 train --out runs/s --resume                   # continue after a crash / kill
  torchrun --nproc_per_node 4 --no-python tr2 train --data AG ... --out runs/tr2
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="Action Genome root (annotations/, frames/)")
    parser.add_argument("--model", default="tr2", help="model config name or YAML (default tr2)")
    parser.add_argument(
        "--train-config", default="tr2", help="training recipe name or YAML (default tr2)"
    )
    parser.add_argument("--out", required=True, help="run folder (checkpoints, metrics.jsonl)")
    parser.add_argument("--task", choices=("predcls", "sgcls", "sgdet"), default="predcls")
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="random detector/CLIP weights: tests and the synthetic demo only (loud warning)",
    )
    parser.add_argument("--clip-weights", metavar="PATH_OR_TAG", help="open_clip checkpoint")
    parser.add_argument(
        "--detector-weights", metavar="PATH", help="torchvision FasterRCNN state dict"
    )
    parser.add_argument(
        "--text-table",
        metavar="PATH",
        help="prompt table from `tr2 prompts` (default: built from the CLIP weights)",
    )
    parser.add_argument(
        "--glove",
        metavar="PATH",
        help="GloVe text file (glove.6B.200d.txt) for the class embeddings (default: random)",
    )
    add_small_box_argument(parser)
    parser.add_argument("--cache-dir", help="feature-cache root (default ~/.cache/tr2/features)")
    parser.add_argument(
        "--resume", action="store_true", help="continue RUN_DIR/last.pt (its saved config)"
    )
    parser.add_argument(
        "--init",
        metavar="CKPT",
        help="start the relation model from this checkpoint's weights (fine-tuning, e.g. an "
        "online model from `tr2 import-release`'s checkpoint; same widths needed)",
    )
    parser.add_argument("--epochs", type=int, help="number of epochs (also extends a resume)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="recipe / model.* config overrides"
    )


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """``model.x=v`` -> model overrides (prefix stripped); ``train.x=v`` / ``x=v`` -> recipe."""
    model, train = [], []
    for item in overrides:
        if item.startswith("model."):
            model.append(item[len("model.") :])
        else:
            train.append(item[len("train.") :] if item.startswith("train.") else item)
    return model, train


def setup_logging() -> None:
    import logging
    import os

    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run(args: argparse.Namespace) -> int:
    from tr2_core.errors import ConfigError
    from tr2_core.models import load_model_config
    from tr2_core.run_spec import RunSpec
    from tr2_core.train.loop import train
    from tr2_core.train.recipe import load_train_config

    setup_logging()
    if args.resume:
        ignored = [
            flag
            for flag, value in (
                ("--data", args.data),
                ("--text-table", args.text_table),
                ("--glove", args.glove),
                ("--clip-weights", args.clip_weights),
                ("--detector-weights", args.detector_weights),
                ("--init", args.init),
                ("overrides", args.overrides),
            )  # fmt: skip
            if value
        ]
        if ignored:
            raise ConfigError(
                f"--resume continues with the configuration saved in {args.out}/last.pt; "
                f"remove {', '.join(ignored)} (only --epochs and --device may change)"
            )
        train(
            args.out,
            resume=True,
            epochs=args.epochs,
            device=args.device,
            progress=not args.no_progress,
        )
        return 0
    if not args.data:
        raise ConfigError("--data AG_ROOT is required (unless --resume)")
    model_over, train_over = split_overrides(args.overrides)
    model_cfg = load_model_config(args.model, tuple(model_over))
    train_cfg = load_train_config(args.train_config, tuple(train_over))
    if args.epochs is not None:
        train_cfg.epochs = args.epochs
        train_cfg.validate()
    from pathlib import Path

    run_spec = RunSpec(
        data=str(Path(args.data).resolve()),  # absolute: --resume may run from elsewhere
        model=args.model,
        task=args.task,
        random_init=args.random_init,
        clip_weights=args.clip_weights,
        detector_weights=args.detector_weights,
        text_table=args.text_table,
        glove=str(Path(args.glove).resolve()) if args.glove else None,
        filter_small_boxes=args.filter_small_boxes,
        cache_dir=str(Path(args.cache_dir).resolve()) if args.cache_dir else None,
    )
    if (Path(args.out) / "last.pt").exists():
        raise ConfigError(
            f"{args.out} already holds a run (last.pt): use --resume to continue it or "
            "choose another --out"
        )
    train(
        args.out, run_spec, model_cfg, train_cfg, device=args.device,
        progress=not args.no_progress, init=args.init,
    )  # fmt: skip
    return 0
