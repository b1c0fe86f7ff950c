"""Benchmark: training throughput (frames/s) with and without the feature cache.

The frozen detector and CLIP image tower are the expensive part of a training step;
with the feature cache they run once per video (``tr2 cache-features`` or the first
epoch) and every epoch after that reads their outputs from disk. This script trains
``tr2-small`` (random init, ``small`` recipe) on a synthetic Action Genome with the one
training loop, twice:

* ``feature_cache=false``: every step decodes the frames and runs the extractor;
* ``feature_cache=true``: the cache is filled first (timed separately), then every step
  reads one safetensors file per video.

It reports the loop's own ``train_frames_per_s`` (training steps only, validation
excluded) of the last epoch of each run, the same per CPU-second of the process
(``train_cpu_s``), the cache build time and its size on disk, and -- measured interleaved
video by video, so that both see the same load of a shared host -- the median time per
frame of the frozen extractor (frames decoded and run through detector + CLIP) against
one cache read.

Usage::

    .venv/bin/python bench/bench_train_throughput.py                # 16 videos, 2 epochs
    .venv/bin/python bench/bench_train_throughput.py --videos 40 --epochs 3
    .venv/bin/python bench/bench_train_throughput.py --model tr2 ...  # paper size (slow on CPU)
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="AG root (default: generate synthetic)")
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=270)
    parser.add_argument("--model", default="tr2-small")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--work", type=Path, help="work folder (default: temporary)")
    parser.add_argument("--train-config", default="small", help="training recipe")
    parser.add_argument(
        "--cached-only", action="store_true", help="skip the run without the feature cache"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    from tr2_core.models import load_model_config
    from tr2_core.run import build_run_extractor
    from tr2_core.run_spec import RunSpec
    from tr2_core.train.distributed import Dist, fill_cache
    from tr2_core.train.loop import train
    from tr2_core.train.recipe import load_train_config
    from tr2_core.train.source import make_source

    work = args.work or Path(tempfile.mkdtemp(prefix="tr2_throughput_"))
    data = args.data
    if data is None:
        from tr2_core.data.synthetic import SyntheticConfig, make_synthetic

        data = work / "data"
        if not (data / "annotations").is_dir():
            make_synthetic(
                data,
                SyntheticConfig(
                    videos=args.videos, min_frames=8, max_frames=16, width=args.width,
                    height=args.height, seed=0, short_video_rate=0.0,
                ),
                progress=False,
            )  # fmt: skip
    model_cfg = load_model_config(args.model)
    run = RunSpec(data=str(data), model=args.model, random_init=True, cache_dir=str(work / "cache"))
    recipe = ("max_val_videos=1", "eval_every=100", f"max_train_videos={args.videos}")
    device = torch.device(args.device)
    results = {}

    # 1. no cache: the extractor runs inside every training step
    cfg = load_train_config(args.train_config, (*recipe, f"epochs={args.epochs}",
                                                "feature_cache=false"))  # fmt: skip
    if not args.cached_only:
        rec = train(work / "no_cache", run, model_cfg, cfg, device=args.device, progress=False)
        results["no_cache_frames_per_s"] = rec["train_frames_per_s"]
        results["no_cache_frames_per_cpu_s"] = rec["train_frames"] / rec["train_cpu_s"]

    # 2. build the cache (what `tr2 cache-features` does), timed
    cfg = load_train_config(args.train_config, (*recipe, f"epochs={args.epochs}"))
    frozen = build_run_extractor(run, model_cfg, cfg.seed, device)
    source, _ = make_source(
        run, cfg, "train", frozen, device,
        training=True, max_videos=0, use_cache=True,
    )  # fmt: skip
    t0, cpu0 = time.perf_counter(), time.process_time()
    fill_cache(source, Dist(device=device), "cache", progress=False)
    build_s = time.perf_counter() - t0
    frames = sum(source.num_frames(i) for i in range(len(source)))
    results["cache_build_frames_per_cpu_s"] = frames / (time.process_time() - cpu0)
    size = sum(p.stat().st_size for p in source.cache.dir.glob("*.safetensors"))
    results["cache_build_s"] = build_s
    results["cache_build_frames_per_s"] = frames / build_s
    results["cache_bytes"] = size

    # 3. training from the cache: reads on the training thread, then prefetched
    for name, depth in (("cached_no_prefetch", 0), ("cached", 2)):
        cfg.prefetch = depth
        rec = train(work / name, run, model_cfg, cfg, device=args.device, progress=False)
        results[f"{name}_frames_per_s"] = rec["train_frames_per_s"]
        results[f"{name}_frames_per_cpu_s"] = frames / rec["train_cpu_s"]
        results[f"{name}_final_loss"] = rec["loss"]
    if not args.cached_only:
        results["speedup"] = results["cached_frames_per_s"] / results["no_cache_frames_per_s"]
        results["speedup_cpu"] = (
            results["cached_frames_per_cpu_s"] / results["no_cache_frames_per_cpu_s"]
        )
    # 4. where the difference comes from, measured interleaved video by video (both see
    #    the same host load): extractor on decoded frames vs one cache read
    fresh, _ = make_source(
        run, cfg, "train", frozen, device,
        training=True, max_videos=0, use_cache=False,
    )  # fmt: skip
    extract_ms, read_ms = [], []
    for _ in range(2):
        for i in range(len(source)):
            n = source.num_frames(i)
            t0 = time.perf_counter()
            fresh.get(i)
            t1 = time.perf_counter()
            source.get(i)
            t2 = time.perf_counter()
            extract_ms.append(1e3 * (t1 - t0) / n)
            read_ms.append(1e3 * (t2 - t1) / n)
    results["extract_ms_per_frame_median"] = float(np.median(extract_ms))
    results["cache_read_ms_per_frame_median"] = float(np.median(read_ms))
    results.update(
        model=args.model, device=args.device, threads=torch.get_num_threads(),
        train_frames_per_epoch=frames, videos=len(source), epochs=args.epochs,
    )  # fmt: skip

    print(f"\n{args.model} on {args.device} ({torch.get_num_threads()} threads), "
          f"{len(source)} training videos / {frames} frames per epoch, last of {args.epochs} "
          "epochs")  # fmt: skip
    print("  (wall clock, and per CPU-second used by this process)")
    if not args.cached_only:
        print(f"  without feature cache : {results['no_cache_frames_per_s']:8.2f} frames/s  "
              f"{results['no_cache_frames_per_cpu_s']:8.2f} frames/CPU-s")  # fmt: skip
    print(f"  cache, no prefetch    : {results['cached_no_prefetch_frames_per_s']:8.2f} frames/s"
          f"  {results['cached_no_prefetch_frames_per_cpu_s']:8.2f} frames/CPU-s")  # fmt: skip
    same = results["cached_final_loss"] == results["cached_no_prefetch_final_loss"]
    print(f"  cache, prefetch {cfg.prefetch}     : {results['cached_frames_per_s']:8.2f} "
          f"frames/s  {results['cached_frames_per_cpu_s']:8.2f} frames/CPU-s  "
          f"(same loss: {same})")  # fmt: skip
    if not args.cached_only:
        print(f"  cache speedup         : {results['speedup']:.1f}x wall, "
              f"{results['speedup_cpu']:.1f}x CPU")  # fmt: skip
    build_fps = results["cache_build_frames_per_s"]
    print(f"  cache build           : {build_s:8.1f} s ({build_fps:.1f} frames/s), "
          f"{size / 2**20:.2f} MiB ({size / frames / 1024:.1f} KiB per frame)")  # fmt: skip
    ext, rd = results["extract_ms_per_frame_median"], results["cache_read_ms_per_frame_median"]
    print(f"  interleaved, median   : extractor {ext:.1f} ms/frame vs cache read "
          f"{rd:.2f} ms/frame")  # fmt: skip
    (work / "throughput.json").write_text(json.dumps(results, indent=1))
    print(f"  -> {work / 'throughput.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
