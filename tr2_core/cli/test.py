"""``tr2 test``: run a trained checkpoint over a split -> predictions .npz + metrics JSON."""

from __future__ import annotations

import argparse

from tr2_core.cli.eval import add_small_box_argument, add_temporal_effects

NAME = "test"
HELP = "run a trained checkpoint over an AG split; write predictions.npz and metrics.json"
DESCRIPTION = """\
Rebuild the model from the configuration saved in the checkpoint (the frozen
detector/CLIP must be the ones it was trained with: pass the same weights), run it
over the split, and write OUT/predictions.npz (the layout of docs/evaluation.md, readable by
`tr2 eval`) and OUT/metrics.json (the evaluator's result, fractions in [0, 1]; on a
synthetic dataset with temporal effects it holds "temporal_effects", as `tr2 eval`).

The protocol is the model's (docs/protocols.md): an offline model (tr2) sees each
video whole, bidirectionally, as in the published TR² numbers; an online model
(tr2-online) predicts every frame from its own past W frames only, entities tracked as
in the streaming engine -- exactly what the engine publishes for that frame.

examples:
  tr2 test --checkpoint runs/tr2/best.pt --data AG --out runs/tr2/test \\
      --clip-weights ViT-B-32.pt --detector-weights faster_rcnn_ag.pth
  tr2 test --checkpoint runs/s/best.pt --data synth --out runs/s/test
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="RUN_DIR/best.pt or last.pt")
    parser.add_argument("--data", help="AG root (default: the one the run was trained on)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--split", choices=("train", "val", "test"), default="test")
    parser.add_argument("--clip-weights", metavar="PATH_OR_TAG", help="(default: as trained)")
    parser.add_argument("--detector-weights", metavar="PATH", help="(default: as trained)")
    parser.add_argument("--cache-dir", help="feature-cache root (default: as trained)")
    parser.add_argument(
        "--no-cache", action="store_true", help="extract features without the feature cache"
    )
    parser.add_argument(
        "--max-videos", type=int, default=0, help="only the first N videos (0: all)"
    )
    parser.add_argument(
        "--max-clip-frames",
        type=int,
        help="run videos in chunks of at most N frames (default: the training recipe's)",
    )
    add_small_box_argument(parser, "(default: as trained, which defaults to the baselines' "
                           "protocol: on for sgcls/sgdet)")  # fmt: skip
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="run with a detector inference setting changed (repeatable): "
        "detector.score_thresh, detector.nms_thresh or detector.detections_per_image, "
        "e.g. detector.score_thresh=0.03 for SGDet with a weak detector",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import logging
    from pathlib import Path

    from tr2_core.evaluation.predictions import check_frame_coverage, save_predictions
    from tr2_core.evaluation.recall import evaluate_detailed
    from tr2_core.evaluation.report import format_temporal_effects
    from tr2_core.run import load_trained
    from tr2_core.train.checkpoint import train_config_from
    from tr2_core.train.distributed import fill_cache, setup_distributed
    from tr2_core.train.predict import predict, protocol_name
    from tr2_core.train.recipe import autocast_factory
    from tr2_core.train.source import make_source

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    d = setup_distributed(args.device)
    if d.enabled:
        from tr2_core.errors import ConfigError

        raise ConfigError("tr2 test runs in one process (not under torchrun)")
    from tr2_core.outputs import prepare_folder, staged_outputs
    from tr2_core.run import load_checkpoint

    # every field of the checkpoint is checked before anything is built or written
    ckpt = load_checkpoint(args.checkpoint)
    train_cfg = train_config_from(ckpt["config"], args.checkpoint)
    prepare_folder(args.out, "--out", "tr2-test", inputs=[args.checkpoint, args.data])
    trained = load_trained(
        args.checkpoint,
        d.device,
        loaded=ckpt,
        data=args.data,
        clip_weights=args.clip_weights,
        detector_weights=args.detector_weights,
        cache_dir=args.cache_dir,
        model_overrides=args.override,
    )
    run_spec = trained.run
    if args.filter_small_boxes is not None:
        run_spec = dataclasses.replace(run_spec, filter_small_boxes=args.filter_small_boxes)
    source, _ = make_source(
        run_spec, train_cfg, args.split, trained.model.frozen, d.device,
        training=False, max_videos=args.max_videos, use_cache=not args.no_cache,
    )  # fmt: skip
    fill_cache(source, d, f"cache {args.split} features", not args.no_progress)
    chunk = train_cfg.max_clip_frames if args.max_clip_frames is None else args.max_clip_frames
    preds = predict(
        trained.model.relation, source, list(range(len(source))), task=run_spec.task,
        device=d.device, max_clip_frames=chunk, autocast=autocast_factory(train_cfg, d.device),
        progress=not args.no_progress, desc=f"test {args.split}",
    )  # fmt: skip
    out = Path(args.out)
    gt = source.videos.selected_gt()
    check_frame_coverage(gt.frame_keys, preds, "the model's predictions")
    result = evaluate_detailed(gt, preds, task=run_spec.task)
    metrics = add_temporal_effects(result.metrics(), result, run_spec.data)
    protocol = protocol_name(trained.model.relation)
    metrics["protocol"] = protocol
    metrics["temporal_window"] = trained.model.relation.config.fusion.temporal_window
    metrics["small_boxes_filtered"] = run_spec.small_boxes_filtered
    metrics["checkpoint"] = str(args.checkpoint)
    metrics["epoch"] = int(ckpt["epoch"])
    metrics["random_init"] = run_spec.random_init
    metrics["split"] = args.split
    metrics["overrides"] = list(args.override)
    # both files or neither (a rerun that fails keeps the pair an earlier one wrote)
    finals = [out / "predictions.npz", out / "metrics.json"]
    with staged_outputs(finals, inputs=[args.checkpoint, args.data], overwrite=True) as staged:
        save_predictions(staged[0], preds)
        staged[1].write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    window = metrics["temporal_window"]
    print(
        f"protocol: {protocol} ("
        + (
            f"causal, each frame from its last {window or 'all'} frames, as the engine)"
            if protocol == "online"
            else "bidirectional over whole videos, as published)"
        )
    )
    print(f"{run_spec.task} on {args.split} ({metrics['frames']} frames), epoch {ckpt['epoch']}"
          + ("  [RANDOM INIT: not TR² numbers]" if run_spec.random_init else ""))  # fmt: skip
    print(f"{'':8}" + "".join(f"{k:>8}" for k in ("R@10", "R@20", "R@50", "mR@10", "mR@20")))
    for setting in ("with", "semi", "no", "top6"):
        if setting in metrics:
            row = metrics[setting]
            print(f"{setting:8}" + "".join(f"{100 * row[k]:8.1f}" for k in
                                           ("R@10", "R@20", "R@50", "mR@10", "mR@20")))  # fmt: skip
    if "temporal_effects" in metrics:
        print(format_temporal_effects(metrics))
    print(f"wrote {out / 'predictions.npz'} and {out / 'metrics.json'}")
    return 0
