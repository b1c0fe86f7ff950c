"""Benchmark: forward latency per frame of the TR² model (random init).

Times, on one synthetic clip of ``--frames`` frames (``--size`` pixels, one person
and ``--objects`` objects per frame, so ``--objects`` pairs per frame):

* the frozen extractor, PredCls/SGCls path (given boxes: ResNet C4 body, RoIAlign +
  layer4 box head, all union crops through the CLIP image tower in one batch);
* the frozen extractor, SGDet path (RPN + box heads + single best person);
* the relation model alone (representation, spatial encoder, temporal decoder,
  message token, heads), PredCls and SGCls;

and reports milliseconds per frame (median over ``--repeats`` after one warm-up).
Random weights cost the same as trained ones except SGDet, whose work depends on
how many boxes pass the score threshold (random weights: few).

Usage::

    .venv/bin/python bench/bench_model_latency.py                  # paper size, CPU
    .venv/bin/python bench/bench_model_latency.py --model tr2-small
    .venv/bin/python bench/bench_model_latency.py --device cuda --frames 16
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time

import torch

from tr2_core.run import build_model
from tr2_core.vocab import PERSON


def clip_inputs(frames: int, objects: int, size: tuple[int, int], seed: int = 0):
    """Random uint8 frames (3, H, W) and per-frame boxes / labels (person first)."""
    g = torch.Generator().manual_seed(seed)
    height, width = size
    images, boxes, labels = [], [], []
    for _ in range(frames):
        images.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=g))
        n = objects + 1
        xy = torch.rand(n, 2, generator=g) * torch.tensor([width * 0.6, height * 0.6])
        wh = (torch.rand(n, 2, generator=g) * 0.3 + 0.1) * torch.tensor([width, height])
        boxes.append(torch.cat([xy, xy + wh], dim=1))
        labels.append(
            torch.cat([torch.tensor([PERSON]), torch.randint(2, 37, (objects,), generator=g)])
        )
    return images, boxes, labels


def timed(fn, repeats: int, device: torch.device) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tr2", help="model config (default: tr2, paper size)")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--objects", type=int, default=4, help="objects (= pairs) per frame")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(270, 480),
        metavar=("H", "W"),
        help="frame size (default: 270 480, Action Genome's usual frames)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--autocast", choices=("off", "bf16"), default="off",
                        help="time under bfloat16 autocast")  # fmt: skip
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-sgdet", action="store_true")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()

    logging.basicConfig(level=logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = build_model(args.model, random_init=True, device=device)
    model.relation.eval()
    images, boxes, labels = clip_inputs(args.frames, args.objects, tuple(args.size))
    images = [im.to(device) for im in images]
    ext = model.extractor

    bf16 = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.autocast == "bf16")
    with torch.no_grad(), bf16:
        features = ext.extract(images, boxes, labels)
        results: dict[str, float] = {}
        results["extractor_given_boxes"] = timed(
            lambda: ext.extract(images, boxes, labels), args.repeats, device
        )
        if not args.skip_sgdet:
            results["extractor_sgdet"] = timed(lambda: ext.extract(images), args.repeats, device)
        for mode in ("predcls", "sgcls"):
            results[f"relation_{mode}"] = timed(
                lambda mode=mode: model.relation(features, mode=mode), args.repeats, device
            )
        results["extractor_plus_relation_predcls"] = (
            results["extractor_given_boxes"] + results["relation_predcls"]
        )

    per_frame_ms = {k: 1000.0 * v / args.frames for k, v in results.items()}
    cpu = device.type == "cpu"
    report = {
        "model": args.model,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads() if cpu else None,
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "frames": args.frames,
        "autocast": args.autocast,
        "pairs_per_frame": args.objects,
        "frame_size_hw": list(args.size),
        "detector_input_min_max": [model.config.detector.min_size, model.config.detector.max_size],
        "relation_params_M": sum(p.numel() for p in model.relation.parameters()) / 1e6,
        "extractor_params_M": sum(p.numel() for p in ext.parameters()) / 1e6,
        "ms_per_frame": {k: round(v, 2) for k, v in per_frame_ms.items()},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
