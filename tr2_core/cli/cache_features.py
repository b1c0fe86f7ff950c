"""``tr2 cache-features``: compute the frozen extractor's outputs once, into the cache."""

from __future__ import annotations

import argparse

NAME = "cache-features"
HELP = "precompute the frozen detector/CLIP features of AG splits into the feature cache"
DESCRIPTION = """\
Run the frozen detector and CLIP image tower over every video of the split(s) and
store the results (one safetensors file per video) under the feature cache, keyed by
the extractor config, its weights, the annotation files, the task and the small-box
option. `tr2 train` / `tr2 test` with the same settings then read them instead of
recomputing (they also fill the cache on first use; this command does it up front,
e.g. on a GPU machine before training elsewhere). Under torchrun each rank computes a
share of the videos.

examples:
  tr2 cache-features --data AG --model tr2 --clip-weights ViT-B-32.pt \\
      --detector-weights faster_rcnn_ag.pth --device cuda
  tr2 cache-features --data synth --model tr2-small --train-config small --random-init
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="Action Genome root")
    parser.add_argument("--model", default="tr2", help="model config name or YAML (default tr2)")
    parser.add_argument(
        "--train-config",
        default="tr2",
        help="training recipe (its seed and cache_dtype must match the training run)",
    )
    parser.add_argument("--task", choices=("predcls", "sgcls", "sgdet"), default="predcls")
    parser.add_argument("--split", choices=("train", "val", "test", "all"), default="all")
    parser.add_argument("--random-init", action="store_true", help="tests / synthetic demo only")
    parser.add_argument("--clip-weights", metavar="PATH_OR_TAG")
    parser.add_argument("--detector-weights", metavar="PATH")
    parser.add_argument("--filter-small-boxes", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--cache-dir", help="feature-cache root (default ~/.cache/tr2/features)")
    parser.add_argument("--max-videos", type=int, default=0, help="first N videos (0: all)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="recipe / model.* config overrides"
    )


def run(args: argparse.Namespace) -> int:
    import time

    from tr2_core.cli.train import setup_logging, split_overrides
    from tr2_core.models import load_model_config
    from tr2_core.run import announce_random_init, build_run_extractor
    from tr2_core.run_spec import RunSpec
    from tr2_core.train.distributed import fill_cache, setup_distributed
    from tr2_core.train.recipe import load_train_config
    from tr2_core.train.source import make_source

    setup_logging()
    model_over, train_over = split_overrides(args.overrides)
    model_cfg = load_model_config(args.model, tuple(model_over))
    train_cfg = load_train_config(args.train_config, tuple(train_over))
    run_spec = RunSpec(
        data=args.data,
        model=args.model,
        task=args.task,
        random_init=args.random_init,
        clip_weights=args.clip_weights,
        detector_weights=args.detector_weights,
        filter_small_boxes=args.filter_small_boxes,
        cache_dir=args.cache_dir,
    )
    d = setup_distributed(args.device)
    if args.random_init and d.master:
        announce_random_init()
    # the relation model is not needed: the extractor alone, seeded as the training run's
    frozen = build_run_extractor(run_spec, model_cfg, train_cfg.seed, d.device)
    # val: the training videos held out for model selection (train config's val_split)
    held_out = ("val",) if train_cfg.val_split == "val" else ()
    splits = ("train", *held_out, "test") if args.split == "all" else (args.split,)
    for split in splits:
        t0 = time.perf_counter()
        source, _ = make_source(
            run_spec, train_cfg, split, frozen, d.device,
            training=split == train_cfg.train_split, max_videos=args.max_videos, use_cache=True,
        )  # fmt: skip
        fill_cache(source, d, f"cache {split} features")
        if d.master:
            print(f"{split}: {len(source)} videos cached in {source.cache.dir} "
                  f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
    d.close()
    return 0
