"""``tr2 pretrain-synthetic``: fit the small detector and CLIP to a synthetic dataset."""

from __future__ import annotations

import argparse

NAME = "pretrain-synthetic"
HELP = "train the small detector and CLIP on a synthetic dataset (real weight-file formats)"
DESCRIPTION = """\
Fit the frozen parts of a small model config to a SYNTHETIC dataset (tr2 make-synthetic):
the detector (random ResNet C4 body with batch norms calibrated on the frames; RPN head
and box predictor trained on the rendered boxes and classes) and the CLIP (both towers,
sigmoid-contrastive on union crops against their relation prompts, with a relation
probe). Fitted on a pretraining world: --world-videos fresh short videos rendered in
memory with the dataset's own generator settings and another seed, so no video of the
dataset (training, validation or test) is seen; --world-videos 0 fits on the dataset's
training videos without the held-out validation videos.

Writes a torchvision FasterRCNN state dict and an open_clip checkpoint -- the formats of
real weights -- into the cache (keyed by model config, annotations and budget; built on
first use) and prints their paths, for:

  tr2 train ... --detector-weights DETECTOR.pt --clip-weights CLIP.pt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="synthetic dataset root")
    parser.add_argument("--model", default="tr2-small", help="model config (tr2-small)")
    parser.add_argument("--detector-steps", type=int, default=100, help="detector steps (100)")
    parser.add_argument("--clip-steps", type=int, default=600, help="CLIP steps (600)")
    parser.add_argument(
        "--world-videos",
        type=int,
        default=1500,
        help="short videos of the dataset's world rendered in memory to fit on (1500); "
        "0: fit on the dataset's own training videos (needed for a non-synthetic dataset)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (0)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model config override for the fits, e.g. detector.min_size=256 (then train "
        "and test with the same model.detector.min_size=256)",
    )
    parser.add_argument("--device", default="cpu", help="where the fits run: cpu (default) or cuda")
    parser.add_argument("--cache-dir", help="weights cache root (default ~/.cache/tr2/pretrained)")
    parser.add_argument("--json", help="also write the two paths to this JSON file")


def run(args: argparse.Namespace) -> int:
    import json
    import logging
    from pathlib import Path

    from tr2_core.pretrain import PretrainBudget, pretrained_weights

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    budget = PretrainBudget(
        detector_steps=args.detector_steps,
        clip_steps=args.clip_steps,
        world_videos=args.world_videos,
        seed=args.seed,
    )
    weights = pretrained_weights(args.data, args.model, budget=budget, cache_dir=args.cache_dir,
                                 overrides=args.override, device=args.device)  # fmt: skip
    how = "cached" if weights.cached else f"trained in {weights.seconds:.0f} s"
    print(f"detector weights: {weights.detector}\nCLIP weights:     {weights.clip}\n({how})")
    if args.json:
        paths = {"detector": str(weights.detector), "clip": str(weights.clip)}
        Path(args.json).write_text(json.dumps(paths, indent=1) + "\n")
    return 0
