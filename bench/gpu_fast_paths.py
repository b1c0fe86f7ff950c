"""Check and time the streaming engine's fast paths against the plain float32 path.

For each setting (plain fp32; the defaults: BN folding + newest-queries-only; TF32;
fixed shape buckets; torch.compile with CUDA graphs; bfloat16 autocast) it streams the
same frames (given boxes, a moving scene), reports the median ms per frame once the
window is full, and the largest difference of the newest frame's probabilities from
the plain path. A setting whose difference exceeds its tolerance fails the run (exit
code 1): exact paths 1e-4 on a GPU (1e-5 on a CPU, as in test/test_fast_paths.py),
TF32 5e-3, bfloat16 autocast 5e-2 (reported, not failed: a precision change).

CUDA-only settings (TF32, CUDA graphs) are skipped on a CPU, and said so.

Usage::

    python bench/gpu_fast_paths.py --device cuda               # paper size, W=8
    python bench/gpu_fast_paths.py --model tr2-small --frames 6  # CPU smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

SETTINGS: list[tuple[str, dict, bool, float | None]] = [
    # name, EngineOptions changes, CUDA only, tolerance (None: reported only)
    ("fp32 plain", {"fold_batchnorm": False, "newest_queries_only": False}, False, 0.0),
    ("defaults (BN fold, newest)", {}, False, 1e-4),
    ("+ fixed shapes", {"fixed_shapes": True}, False, 1e-4),
    ("+ TF32", {"tf32": True}, True, 5e-3),
    ("+ CUDA graphs", {"compile": "cuda-graphs"}, True, 1e-4),
    ("+ TF32 + CUDA graphs", {"tf32": True, "compile": "cuda-graphs"}, True, 5e-3),
    ("+ bf16 autocast", {"autocast": True}, False, None),
]


def scene(t: int, height: int, width: int, entities: int):
    rng = np.random.default_rng(t)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    base = np.random.default_rng(0)
    xy = base.uniform(0, 0.7, (entities, 2)) * [width, height] + t
    wh = base.uniform(0.1, 0.3, (entities, 2)) * [width, height]
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    labels = np.concatenate([[1], base.integers(2, 37, entities - 1)]).astype(np.int64)
    return image, boxes, labels


def run_setting(args, changes: dict, device: torch.device):
    from tr2_core.run import build_model
    from tr2_core.stream.engine import StreamingEngine

    torch.manual_seed(0)  # the same random weights for every setting
    model = build_model(args.model, random_init=True, device=device)
    changes = dict(changes)
    autocast = changes.pop("autocast", False)
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 is process-wide: reset per setting
    torch.backends.cudnn.allow_tf32 = False
    engine = StreamingEngine(model.extractor, model.relation, device=str(device),
                             window=args.window, mode="predcls", score_threshold=0.0,
                             max_gap_s=1e6, **changes)  # fmt: skip
    outputs, times = [], []
    for t in range(args.frames):
        image, boxes, labels = scene(t, args.height, args.width, args.entities)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            res = engine.process(image, t * 33_000_000, boxes, labels)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        outputs.append(np.concatenate([res.attention, res.spatial, res.contacting], 1))
    timed = times[args.window :] or times[-1:]  # window full (compiles happen before)
    return outputs, 1e3 * statistics.median(timed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tr2")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--frames", type=int, default=30, help="frames per setting")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--entities", type=int, default=10)
    parser.add_argument("--json", metavar="OUT.json")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    exact_tol = 1e-4 if device.type == "cuda" else 1e-5
    rows, failed, reference = [], [], None
    for name, changes, cuda_only, tol in SETTINGS:
        if cuda_only and device.type != "cuda":
            rows.append({"setting": name, "ms": None, "max_diff": None, "note": "CUDA only"})
            continue
        outputs, ms = run_setting(args, changes, device)
        if reference is None:
            reference = outputs
        pairs = zip(outputs, reference, strict=True)
        diff = max(float(np.abs(a - b).max(initial=0.0)) for a, b in pairs)
        limit = exact_tol if tol == 1e-4 else tol
        ok = limit is None or diff <= limit
        rows.append({"setting": name, "ms": ms, "fps": 1e3 / ms, "max_diff": diff,
                     "tolerance": limit, "ok": ok})  # fmt: skip
        if not ok:
            failed.append(name)
    print(f"fast paths, {args.model} on {args.device}, {args.width}x{args.height}, "
          f"{args.entities} entities, W={args.window}, {args.frames} frames")  # fmt: skip
    for r in rows:
        if r["ms"] is None:
            print(f"  {r['setting']:<28} not run ({r['note']})")
            continue
        tol = "reported" if r["tolerance"] is None else f"tol {r['tolerance']:.0e}"
        print(f"  {r['setting']:<28} {r['ms']:8.2f} ms  {r['fps']:7.1f} fps  "
              f"max diff {r['max_diff']:.2e} ({tol}){'' if r['ok'] else '  FAILED'}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if failed:
        print(f"FAILED: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
