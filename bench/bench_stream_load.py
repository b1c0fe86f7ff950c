"""Benchmark: the newest-frame policy under overload (frames 3x faster than inference).

A producer thread plays a camera: it hands a fresh (H, W, 3) frame stamped with
the monotonic clock to :class:`tr2_ros.policy.LatestSlot` at ``--speedup`` times
the engine's measured rate. The consumer (this thread) is the node's worker:
take the newest frame, ``StreamingEngine.process`` it, record the latency from
the frame's stamp to its result. A monitor thread samples the process RSS, the
slot's pending count and the engine's window length.

Reported: frames produced / processed / dropped (stale, replaced in the slot),
latency p50 / p95 / max (stamp -> result) next to the bound the policy promises
(one inference waited + its own inference), RSS after warm-up, its maximum and
its drift between the first and second half of the run.

``--compare-fifo`` runs the same load through an unbounded FIFO queue (every frame
processed in order), what a naive callback that queues all frames does: there the
latency and memory grow for as long as the overload lasts.

Usage::

    .venv/bin/python bench/bench_stream_load.py                       # tr2-small, 60 s
    .venv/bin/python bench/bench_stream_load.py --model tr2 --duration 120 --max-gap 30
    .venv/bin/python bench/bench_stream_load.py --device cuda --model tr2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from _common import scene

from tr2_core.run import build_model
from tr2_core.stream.engine import StreamingEngine
from tr2_ros.policy import LatestSlot

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


@dataclass
class Frame:
    seq: int
    stamp_ns: int  # time.monotonic_ns() when "captured"
    image: np.ndarray


class FifoSlot:
    """Unbounded FIFO with LatestSlot's put/take/close interface (the naive policy)."""

    def __init__(self) -> None:
        self.q: queue.Queue[Any] = queue.Queue()
        self.received = 0
        self.closed = False

    def put(self, item: Any) -> bool:
        self.received += 1
        self.q.put(item)
        return False

    def take(self, timeout: float | None = None) -> Any:
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.closed = True

    def pending(self) -> int:
        return self.q.qsize()


def producer(slot: Any, image: np.ndarray, period_s: float, stop: threading.Event) -> None:
    """Puts a fresh copy of ``image`` every ``period_s`` (absolute schedule, no drift)."""
    seq = 0
    next_t = time.monotonic()
    while not stop.is_set():
        slot.put(Frame(seq, time.monotonic_ns(), image.copy()))
        seq += 1
        next_t += period_s
        delay = next_t - time.monotonic()
        if delay > 0:
            stop.wait(delay)


def run_load(
    engine: StreamingEngine, slot: Any, duration: float, mode: str, image, boxes, labels, period_s
):
    """Drive ``engine`` from ``slot`` for ``duration`` s; returns the measurements."""
    stop = threading.Event()
    samples: list[tuple[float, float, int, int]] = []  # (t, rss, pending, window)
    t0 = time.monotonic()

    def monitor() -> None:
        while not stop.is_set():
            pending = slot.pending() if hasattr(slot, "pending") else slot.stats().pending
            samples.append((time.monotonic() - t0, rss_mb(), pending, len(engine.frames)))
            stop.wait(0.25)

    given = {} if mode == "sgdet" else {"boxes": boxes, "labels": labels}
    threads = [
        threading.Thread(target=producer, args=(slot, image, period_s, stop), daemon=True),
        threading.Thread(target=monitor, daemon=True),
    ]
    for t in threads:
        t.start()
    latencies, inference, seqs = [], [], []
    while time.monotonic() - t0 < duration:
        frame = slot.take(timeout=1.0)
        if frame is None:
            continue
        start = time.monotonic_ns()
        engine.process(frame.image, frame.stamp_ns, **given)
        end = time.monotonic_ns()
        latencies.append((end - frame.stamp_ns) / 1e6)
        inference.append((end - start) / 1e6)
        seqs.append(frame.seq)
    stop.set()
    slot.close()
    for t in threads:
        t.join()
    return latencies, inference, seqs, samples


def summarise(name: str, slot: Any, latencies, inference, seqs, samples, duration: float) -> dict:
    lat = np.asarray(latencies)
    rss = np.asarray([s[1] for s in samples])
    times = np.asarray([s[0] for s in samples])
    first, second = rss[times < duration / 2], rss[times >= duration / 2]
    if isinstance(slot, FifoSlot):
        produced, dropped, backlog = slot.received, 0, slot.pending()
    else:
        st = slot.stats()
        produced, dropped, backlog = st.received, st.dropped, st.pending
    inf_mean = statistics.fmean(inference)
    return {
        "policy": name,
        "produced": produced,
        "processed": len(latencies),
        "dropped": dropped,
        "backlog_at_end": backlog,
        "max_pending": int(max(s[2] for s in samples)),
        "max_window": int(max(s[3] for s in samples)),
        "inference_ms_mean": round(inf_mean, 1),
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p95": round(float(np.percentile(lat, 95)), 1),
            "max": round(float(lat.max()), 1),
            "last": round(float(lat[-1]), 1),
        },
        "latency_bound_ms": round(2 * max(inference), 1),
        "rss_mb": {
            "start": round(float(rss[0]), 1),
            "max": round(float(rss.max()), 1),
            "end": round(float(rss[-1]), 1),
            "median_first_half": round(float(np.median(first)), 1) if first.size else None,
            "median_second_half": round(float(np.median(second)), 1) if second.size else None,
        },
        "in_order": bool(np.all(np.diff(seqs) > 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tr2-small", help="model config (default tr2-small)")
    parser.add_argument("--mode", choices=("predcls", "sgdet"), default="predcls")
    parser.add_argument("--entities", type=int, default=10, help="given boxes (predcls)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per policy")
    parser.add_argument("--speedup", type=float, default=3.0, help="frame rate / engine rate")
    parser.add_argument(
        "--max-gap",
        type=float,
        default=10.0,
        help="engine reset gap in s (the node's default 1.0 would reset a slow model)",
    )
    parser.add_argument("--compare-fifo", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--fifo-duration",
        type=float,
        default=20.0,
        help="seconds for the FIFO run (its memory grows with time: keep it short)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", metavar="OUT.json")
    args = parser.parse_args()

    logging.basicConfig(level=logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(args.model, random_init=True, device=device)
    image, boxes, labels = scene(args.height, args.width, args.entities)
    given = {} if args.mode == "sgdet" else {"boxes": boxes, "labels": labels}

    def engine() -> StreamingEngine:
        return StreamingEngine(
            model.extractor,
            model.relation,
            window=args.window,
            mode=args.mode,
            max_gap_s=args.max_gap,
            score_threshold=0.0,  # every entity (EngineOptions' default is 0.1)
        )

    # The engine's best rate with a full window (the fastest of 6 frames): frames then
    # come at least --speedup times faster than inference even if the machine's load
    # changes during the run.
    e = engine()
    times = []
    for i in range(args.window + 6):
        start = time.perf_counter()
        e.process(image, i * 33_000_000, **given)
        times.append(time.perf_counter() - start)
    t_inf = min(times[-6:])
    period = t_inf / args.speedup
    print(
        f"engine ({args.model}, {args.mode}, W={args.window}, {args.width}x{args.height}):"
        f" {1000 * t_inf:.0f} ms/frame at best -> frames every {1000 * period:.0f} ms"
        f" ({1 / period:.2f} Hz, {args.speedup}x)"
    )
    results = []
    policies = [("LatestSlot", LatestSlot())] + (
        [("unbounded FIFO", FifoSlot())] if args.compare_fifo else []
    )
    for name, slot in policies:
        duration = args.fifo_duration if isinstance(slot, FifoSlot) else args.duration
        out = run_load(engine(), slot, duration, args.mode, image, boxes, labels, period)
        results.append(summarise(name, slot, *out, duration))
        results[-1]["duration_s"] = duration

    for r in results:
        lat, rss = r["latency_ms"], r["rss_mb"]
        print(
            f"\n{r['policy']} ({r['duration_s']:.0f} s): produced {r['produced']},"
            f" processed {r['processed']}"
            f" ({r['produced'] / max(r['processed'], 1):.1f}x overload), "
            f"dropped {r['dropped']} ({100 * r['dropped'] / max(r['produced'], 1):.0f} %),"
            f" backlog at end {r['backlog_at_end']}, max pending {r['max_pending']},"
            f" window <= {r['max_window']}, in order {r['in_order']}"
        )
        print(
            f"  latency stamp->result ms: p50 {lat['p50']}, p95 {lat['p95']}, max {lat['max']},"
            f" last {lat['last']} (inference mean {r['inference_ms_mean']} ms;"
            f" policy bound 2 x max inference = {r['latency_bound_ms']} ms)"
        )
        print(
            f"  RSS MiB: start {rss['start']}, max {rss['max']}, end {rss['end']};"
            f" median 1st half {rss['median_first_half']}, 2nd half {rss['median_second_half']}"
        )
    print(
        f"\nload average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs,"
        f" torch threads {torch.get_num_threads()}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"t_inference_ms": 1000 * t_inf, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
