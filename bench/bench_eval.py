"""Benchmark of the evaluator at the size of the Action Genome test split.

Measures, on random data of the real split's shape (1,750 videos, 56,923
frames, 2-3 objects per frame; and a 10-object stress case):

1. the fast evaluator in-process, all four settings (With / Semi / No / Top-6)
   plus the family and time-variant breakdowns;
2. the plain per-frame reference (:mod:`tr2_core.testing.reference`) on a
   subset of frames, extrapolated per frame to the full split, for the
   speed-up (``--reference-frames 0`` runs it on the full split: minutes);
3. ``tr2 eval`` end to end as a subprocess (interpreter start-up, imports,
   reading the annotations from pickles in the release layout written by
   :func:`~tr2_core.data.release_writer.write_annotations`, reading and
   validating the predictions file, evaluating, printing, writing JSON), with
   a cold annotation cache (first run parses the pickles) and warm.

Usage::

    .venv/bin/python bench/bench_eval.py            # everything (~2-4 min)
    .venv/bin/python bench/bench_eval.py --quick    # smaller subset, fewer repeats
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tr2_core.data.release_writer import write_annotations  # noqa: E402
from tr2_core.evaluation.predictions import save_predictions  # noqa: E402
from tr2_core.evaluation.recall import DEFAULT_SETTINGS, evaluate_detailed  # noqa: E402
from tr2_core.testing.eval_fixtures import (  # noqa: E402
    random_predictions,
    random_split,
    release_records,
)
from tr2_core.testing.reference import reference_evaluate  # noqa: E402
from tr2_core.types import GroundTruth, Predictions  # noqa: E402

TEST_VIDEOS, TEST_FRAMES = 1750, 56923


def timed(fn: Callable[[], object], repeat: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each call (CPU time is robust to other load)."""
    out = []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        out.append((time.perf_counter() - t, time.process_time() - c))
    return out


def fast_eval(gt: GroundTruth, preds: Predictions, task: str) -> dict:
    return evaluate_detailed(gt, preds, task=task).metrics()


def fmt(times: list[tuple[float, float]]) -> str:
    wall = [w for w, _ in times]
    cpu = [c for _, c in times]
    return (
        f"{min(wall):6.2f} s wall (median {statistics.median(wall):.2f}), "
        f"{min(cpu):6.2f} s CPU, n={len(times)}"
    )


def bench_case(name: str, objects: tuple[int, int], args: argparse.Namespace) -> list[str]:
    lines = []
    gt = random_split(num_videos=TEST_VIDEOS, num_frames=TEST_FRAMES, objects=objects, seed=0)
    n_pairs = gt.boxes.shape[0] - gt.num_frames
    lines.append(
        f"[{name}] {gt.num_videos:,} videos, {gt.num_frames:,} frames, {n_pairs:,} pairs, "
        f"{gt.triplet_frame.shape[0]:,} GT triplets"
    )
    for task, detect in (("predcls", False), ("sgdet", True)):
        preds = random_predictions(gt, seed=1, detect=detect)
        t = timed(lambda p=preds, k=task: fast_eval(gt, p, k), args.repeat)
        lines.append(f"  fast evaluator, 4 settings + breakdowns, {task:8s}: {fmt(t)}")
        if task == "predcls":
            fast_full = min(c for _, c in t)

    # Reference on a subset of the same shape, extrapolated per frame.
    sub_frames = args.reference_frames or TEST_FRAMES
    sub_videos = max(1, round(TEST_VIDEOS * sub_frames / TEST_FRAMES))
    sub = random_split(num_videos=sub_videos, num_frames=sub_frames, objects=objects, seed=2)
    sub_preds = random_predictions(sub, seed=3)
    ((_, t_ref),) = timed(
        lambda: reference_evaluate(sub, sub_preds, task="predcls", settings=DEFAULT_SETTINGS), 1
    )
    per_frame = t_ref / sub.num_frames
    ref_full = per_frame * TEST_FRAMES
    how = "measured" if sub.num_frames == TEST_FRAMES else f"from {sub.num_frames:,} frames"
    lines.append(
        f"  reference (plain per-frame), predcls: {ref_full:7.1f} s CPU for the split "
        f"({how}, {1000 * per_frame:.2f} ms/frame)"
    )
    lines.append(
        f"  speed-up of the fast evaluator (CPU time, predcls): {ref_full / fast_full:,.0f}x"
    )
    return lines


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(root: Path, preds: Path, cache: Path, out_json: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``tr2 eval`` subprocess."""
    env = dict(os.environ, TR2_CACHE_DIR=str(cache))
    cmd = [sys.executable, "-m", "tr2_core", "eval", "--data", str(root)]
    cmd += ["--predictions", str(preds), "--task", "predcls", "--json", str(out_json)]
    t, c = time.perf_counter(), _children_cpu()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - t, _children_cpu() - c
    if done.returncode != 0:
        raise RuntimeError(f"tr2 eval failed:\n{done.stderr}")
    return elapsed, cpu


def bench_cli(args: argparse.Namespace) -> list[str]:
    lines = []
    gt = random_split(num_videos=TEST_VIDEOS, num_frames=TEST_FRAMES, seed=0)
    preds = random_predictions(gt, seed=1)
    with tempfile.TemporaryDirectory(prefix="tr2_bench_") as tmp:
        tmp_path = Path(tmp)
        t = time.perf_counter()
        person, objects = release_records(gt, "test")
        write_annotations(tmp_path / "ag", person, objects)
        pred_path = save_predictions(tmp_path / "preds.npz", preds)
        setup = time.perf_counter() - t
        size = sum(p.stat().st_size for p in (tmp_path / "ag" / "annotations").iterdir())
        lines.append(
            f"[tr2 eval end to end] annotations pickles {size / 2**20:.0f} MiB, predictions "
            f"{pred_path.stat().st_size / 2**20:.0f} MiB (written in {setup:.0f} s, not timed)"
        )
        cache = tmp_path / "cache"
        cold = run_cli(tmp_path / "ag", pred_path, cache, tmp_path / "m.json")
        warm = [
            run_cli(tmp_path / "ag", pred_path, cache, tmp_path / "m.json")
            for _ in range(args.repeat)
        ]
        lines.append(f"  cold annotation cache (parses the pickles): {fmt([cold])}")
        lines.append(f"  warm annotation cache:                      {fmt(warm)}")
        start = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import numpy"], check=True)
            start.append(time.perf_counter() - t)
        lines.append(f"  (for scale: `python -c 'import numpy'` takes {min(start):.2f} s wall)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small reference subset, 1 repeat")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--reference-frames",
        type=int,
        default=2000,
        help="frames for the reference timing (0: the full split)",
    )
    parser.add_argument("--no-stress", action="store_true", help="skip the 10-object case")
    parser.add_argument("--no-cli", action="store_true", help="skip the tr2 eval runs")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.reference_frames = 1, 300

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.processor() or platform.machine()}, {cores} CPU cores available, "
        f"load average {load:.1f} at start, Python {platform.python_version()}"
    )
    lines = bench_case("AG test split size, 2-3 objects/frame", (2, 3), args)
    print("\n".join(lines), flush=True)
    if not args.no_stress:
        print("\n".join(bench_case("stress: 10 objects/frame", (10, 10), args)), flush=True)
    if not args.no_cli:
        print("\n".join(bench_cli(args)), flush=True)


if __name__ == "__main__":
    main()
