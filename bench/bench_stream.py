"""Benchmark: per-frame latency of streaming TR² vs recomputing the window, as W grows.

For each window ``W`` (default 2 4 8 16 32) it times, per new frame:

* **streaming**: ``StreamingEngine.process`` with the window full: the new frame's
  extraction (ResNet C4 body + RoIAlign/box head on the given boxes, CLIP union
  crops), its relation representation and spatial encoder, then the temporal
  decoder + message token + heads over the window's sequences;
* **recompute**: the offline model on the last ``W`` frames for every new frame
  (``extractor.extract`` over W frames + ``relation(features)``), what a system
  without the streaming cache would do.

Inputs: random-init model (random weights cost the same as trained ones), random
``H x W`` frames, PredCls-style given boxes (``--entities``: one person and
``entities - 1`` objects, so ``entities - 1`` pairs per frame) to fix the work per
frame. One extra SGDet run (detector instead of boxes) at ``--sgdet-window``,
``--entities`` detections per frame (see :func:`sgdet_model`).

Times are wall-clock (median and min over the timed frames) and process CPU time
(median). On a CPU shared with other jobs the wall time includes waiting for the
cores; the CPU time does not, and with ``--threads 1`` it is what an idle
machine would show as wall time.

How the window is filled: the first frame is processed for real; the rest of
the window is filled with copies of that frame's cached per-frame work (same
tracks, so every pair's sequence spans the whole window, as for a static scene).
Each timed frame is then a real ``process`` call on a full window. This skips
``W - 1`` expensive warm-up extractions without changing what a steady-state
frame costs.

Recompute on a slow CPU: running the paper-size extractor over 32 frames per new
frame takes minutes. When ``iterations x`` the predicted time exceeds
``--recompute-budget`` seconds, the figure is **estimated** from measured parts
(W x one frame's extraction + the relation model over W frames, each timed) and
marked ``est.``; windows that fit the budget are measured directly, and both
numbers are printed for them so the estimate can be checked.

Usage::

    .venv/bin/python bench/bench_stream.py                      # paper size (tr2), CPU
    .venv/bin/python bench/bench_stream.py --threads 1          # shared CPU: clean CPU times
    .venv/bin/python bench/bench_stream.py --model tr2-small --iterations 5
    .venv/bin/python bench/bench_stream.py --device cuda --iterations 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from _common import parse_engine_options, scene

import tr2_core.models.extractor as extractor_module
from tr2_core.run import build_model
from tr2_core.stream.engine import StreamingEngine
from tr2_core.types import VideoFeatures
from tr2_core.vocab import PERSON


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Per-call wall and CPU (this process, all threads) seconds."""

    wall: list[float]
    cpu: list[float]

    def summary(self) -> dict[str, float]:
        return {
            "ms": 1000 * statistics.median(self.wall),
            "min_ms": 1000 * min(self.wall),
            "cpu_ms": 1000 * statistics.median(self.cpu),
        }


def timed(fn: Callable[[], object], iterations: int, device: torch.device) -> Timing:
    """Wall and process-CPU seconds of ``iterations`` calls (after the caller's warm-up).

    On a shared CPU the wall time includes waiting for cores other processes hold;
    the CPU time counts only this process's work (with one torch thread it is the
    wall time an idle machine would show)."""
    wall, cpu = [], []
    for _ in range(iterations):
        _sync(device)
        w, c = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return Timing(wall, cpu)


def fill_window(engine: StreamingEngine, step_ns: int) -> None:
    """Fill the window with copies of its newest frame's cached work (see module doc)."""
    newest = engine.frames[-1]
    while len(engine.frames) < engine.window:
        newest = dataclasses.replace(newest, stamp_ns=newest.stamp_ns + step_ns)
        engine.frames.append(newest)


def replicate(features: VideoFeatures, times: int) -> VideoFeatures:
    """One frame's features repeated as ``times`` frames (rows offset per frame)."""
    n = features.entity_frame.shape[0]
    dev = features.entity_frame.device
    frames = torch.arange(times, device=dev)

    def rep(t: torch.Tensor) -> torch.Tensor:
        return t.repeat((times,) + (1,) * (t.dim() - 1))

    offsets_e = frames.repeat_interleave(n)
    p = features.pair_frame.shape[0]
    offsets_p = frames.repeat_interleave(p)
    return VideoFeatures(
        frame_keys=[f"f{i}" for i in range(times)],
        entity_frame=offsets_e,
        entity_boxes=rep(features.entity_boxes),
        entity_labels=rep(features.entity_labels),
        entity_scores=rep(features.entity_scores),
        entity_features=rep(features.entity_features),
        entity_track=rep(features.entity_track),
        pair_frame=offsets_p,
        pair_subject=rep(features.pair_subject) + offsets_p * n,
        pair_object=rep(features.pair_object) + offsets_p * n,
        union_features=rep(features.union_features),
    )


def bench_streaming(model, args, device, image, boxes, labels, window: int, mode: str) -> dict:
    engine = StreamingEngine(
        model.extractor,
        model.relation,
        window=window,
        mode=mode,
        max_gap_s=1e6,
        score_threshold=0.0,  # every entity, as before EngineOptions' deployment default 0.1
        **parse_engine_options(args.engine_option),
    )
    if args.autocast == "bf16":
        process = engine.process

        def autocast_process(*a, **kw):
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return process(*a, **kw)

        engine.process = autocast_process
    step = 33_000_000
    given = {} if mode == "sgdet" else {"boxes": boxes, "labels": labels}
    result = engine.process(image, 0, **given)
    fill_window(engine, step)
    stamp = [engine.frames[-1].stamp_ns]

    def one() -> None:
        stamp[0] += step
        nonlocal result
        result = engine.process(image, stamp[0], **given)

    one()  # warm-up on the full window
    timing = timed(one, args.iterations, device)
    assert len(result.window_stamps_ns) == window
    return {
        **timing.summary(),
        "entities": int(result.entity_track.shape[0]),
        "pairs": int(result.pair_subject.shape[0]),
    }


def bench_recompute(model, args, device, image, boxes, labels, window: int, parts: dict) -> dict:
    """Offline model over the last ``window`` frames per new frame (measured or estimated)."""
    ext, rel = model.extractor, model.relation
    img_t = torch.from_numpy(image).permute(2, 0, 1).to(device)
    b_t = torch.from_numpy(boxes)
    l_t = torch.from_numpy(labels)
    tracks = torch.arange(len(labels))
    with torch.no_grad():
        if "extract_1" not in parts:  # one frame's extraction, and its features
            ext.extract([img_t], [b_t], [l_t], tracks=[tracks])
            parts["extract_1"] = timed(
                lambda: ext.extract([img_t], [b_t], [l_t], tracks=[tracks]), 2, device
            ).summary()
            parts["features_1"] = ext.extract([img_t], [b_t], [l_t], tracks=[tracks])
        feats_w = replicate(parts["features_1"], window)
        rel(feats_w, mode="predcls")
        t_rel = timed(lambda: rel(feats_w, mode="predcls"), 2, device).summary()
        one_frame = parts["extract_1"]
        out = {
            "estimate": {k: window * one_frame[k] + t_rel[k] for k in ("ms", "cpu_ms")},
            "relation": t_rel,
            "measured": None,
        }
        if out["estimate"]["ms"] / 1000 * (args.iterations + 1) <= args.recompute_budget:
            imgs, bs, ls, ts = [img_t] * window, [b_t] * window, [l_t] * window, [tracks] * window

            def one() -> None:
                rel(ext.extract(imgs, bs, ls, tracks=ts), mode="predcls")

            one()
            out["measured"] = timed(one, args.iterations, device).summary()
    return out


def sgdet_model(args, device):
    """The model for the SGDet run: paper-config detector (all its work: C4 body, RPN,
    box head on every proposal, per-class NMS) with ``detections_per_image`` =
    ``--entities`` and no score threshold, so the frame keeps as many entities as the
    given-boxes runs. A random classifier seldom says ``person`` (and without a person
    there are no pairs), so the highest-scoring detection of each frame is relabelled
    ``person``, as a trained detector would label the actor. And a random ResNet-101
    with frozen batch statistics blows activations up (~1e4), so random box regressions
    throw every proposal off the image and the detector would stop after the RPN; the
    RPN's and box head's regression layers are zeroed (proposals = anchors, detections
    = proposals). Neither change alters the detector's work per frame."""
    model = build_model(
        args.model,
        random_init=True,
        overrides=("detector.score_thresh=0.0", f"detector.detections_per_image={args.entities}"),
        device=device,
    )
    model.relation.eval()
    ext = model.extractor
    with torch.no_grad():
        for layer in (
            ext.detector.rpn.head.bbox_pred,
            ext.detector.roi_heads.box_predictor.bbox_pred,
        ):
            layer.weight.zero_()
            layer.bias.zero_()
    detect = extractor_module.detect

    def detect_with_person(detector, batch, feature_maps, scales):
        boxes, labels, scores, features = detect(detector, batch, feature_maps, scales)
        for lab, sc in zip(labels, scores, strict=True):
            if lab.numel():
                lab[sc.argmax()] = PERSON
        return boxes, labels, scores, features

    # the extractor calls the entities stage's detect by module name: this process only
    extractor_module.detect = detect_with_person
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tr2", help="model config (default: tr2, paper size)")
    parser.add_argument("--windows", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--entities", type=int, default=10, help="given boxes (person first)")
    parser.add_argument("--iterations", type=int, default=2, help="timed frames per setting")
    parser.add_argument(
        "--recompute-budget",
        type=float,
        default=120.0,
        help="seconds a directly measured recompute setting may take (else estimated)",
    )
    parser.add_argument("--sgdet-window", type=int, default=8, help="0: no SGDet run")
    parser.add_argument("--no-recompute", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the figures as JSON")
    parser.add_argument("--engine-option", action="append", default=[], metavar="NAME=VALUE",
                        help="EngineOptions field for the streaming runs, e.g. tf32=true "
                        "(repeatable)")  # fmt: skip
    parser.add_argument("--autocast", choices=("off", "bf16"), default="off",
                        help="run the streaming engine under bfloat16 autocast")  # fmt: skip
    args = parser.parse_args()

    logging.basicConfig(level=logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    start = time.perf_counter()
    model = build_model(args.model, random_init=True, device=device)
    model.relation.eval()
    image, boxes, labels = scene(args.height, args.width, args.entities)

    rows = []
    parts: dict = {}
    for window in args.windows:
        row = {"window": window, "streaming": bench_streaming(
            model, args, device, image, boxes, labels, window, "predcls"
        )}  # fmt: skip
        if not args.no_recompute:
            row["recompute"] = bench_recompute(
                model, args, device, image, boxes, labels, window, parts
            )
        rows.append(row)
        print(f"  W={window} done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)

    sgdet = None
    if args.sgdet_window:
        del model
        sgdet = bench_streaming(
            sgdet_model(args, device), args, device, image, None, None, args.sgdet_window, "sgdet"
        )
        sgdet["window"] = args.sgdet_window

    cpu = device.type == "cpu"
    meta = {
        "model": args.model,
        "device": torch.cuda.get_device_name(device) if not cpu else "cpu",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads() if cpu else None,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "frame_hw": [args.height, args.width],
        "entities": args.entities,
        "iterations": args.iterations,
        "total_s": round(time.perf_counter() - start, 1),
    }
    threads = f" ({meta['torch_threads']} threads)" if cpu else ""
    print(
        f"\nTR² streaming vs recompute, model {args.model} (random init), {meta['device']}"
        f"{threads}, {args.width}x{args.height}, given boxes: {args.entities} entities /"
        f" {args.entities - 1} pairs per frame, median of {args.iterations} frames"
    )
    head = (
        f"{'W':>3} | {'streaming: wall ms':>18} {'(min)':>7} {'CPU ms':>7} {'fps':>6} |"
        f" {'recompute: wall ms':>18} {'CPU ms':>8} {'fps':>6} {'':>6} | {'relation(W) ms':>14}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        s = row["streaming"]
        line = (
            f"{row['window']:>3} | {s['ms']:>18.0f} {s['min_ms']:>7.0f} {s['cpu_ms']:>7.0f}"
            f" {1000 / s['ms']:>6.2f} |"
        )
        r = row.get("recompute")
        if r is None:
            line += f" {'-':>18} {'-':>8} {'-':>6} {'':>6} | {'-':>14}"
        else:
            value, tag = (r["measured"], "") if r["measured"] else (r["estimate"], "est.")
            line += (
                f" {value['ms']:>18.0f} {value['cpu_ms']:>8.0f} {1000 / value['ms']:>6.3f}"
                f" {tag:>6} | {r['relation']['ms']:>14.0f}"
            )
        print(line)
        if r is not None and r["measured"]:
            print(
                f"{'':>3} | {'':>42} | {r['estimate']['ms']:>18.0f} {r['estimate']['cpu_ms']:>8.0f}"
                f" {'':>6} {'(est.)':>6} |"
            )
    if sgdet:
        print(
            f"SGDet streaming, W={sgdet['window']}: {sgdet['ms']:.0f} ms/frame wall "
            f"(min {sgdet['min_ms']:.0f}, CPU {sgdet['cpu_ms']:.0f}; {1000 / sgdet['ms']:.2f} fps),"
            f" {sgdet['entities']} entities / {sgdet['pairs']} pairs"
        )
    print(
        f"load average (1 min) at the end: {meta['load_average_1m_at_end']} on "
        f"{meta['cpu_count']} CPUs; total {meta['total_s']} s"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows, "sgdet": sgdet}, f, indent=2)


if __name__ == "__main__":
    main()
