"""Print bench/gpu_check.sh's results as one Markdown table.

Usage: ``python bench/gpu_check_table.py RESULTS_DIR``. Reads the JSON files and logs
the script's steps wrote; a missing or failed step shows as ``failed`` / ``-``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any


def load(results: Path, name: str) -> Any:
    path = results / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def stream_ms(data: Any, window: int) -> str:
    if not data:
        return "-"
    for row in data["rows"]:
        if row["window"] == window:
            ms = row["streaming"]["ms"]
            return f"{ms:.2f} ms ({1e3 / ms:.0f} fps)"
    return "-"


def per_frame(data: Any, key: str) -> str:
    return f"{data['ms_per_frame'][key]:.2f} ms" if data and key in data["ms_per_frame"] else "-"


def train_run(results: Path, name: str) -> str:
    path = results / name / "metrics.jsonl"
    if not path.is_file():
        return "failed (no metrics)"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    last = records[-1]
    return (
        f"{len(records)} epochs, loss {last['loss']:.4f}, {last['train_frames_per_s']:.0f} frames/s"
    )


def main(results: Path) -> int:
    steps = {}
    if (results / "steps.txt").is_file():
        for line in (results / "steps.txt").read_text().splitlines():
            name, rc, ms = line.split()
            steps[name] = (int(rc), int(ms) / 1e3)
    stream = load(results, "stream.json")
    windows = [r["window"] for r in stream["rows"]] if stream else []
    rows: list[tuple[str, str]] = []
    size = f"{stream['meta']['frame_hw'][1]}x{stream['meta']['frame_hw'][0]}" if stream else "?"
    for w in windows:
        rows.append((f"streaming {size}, given boxes, W={w} (defaults)", stream_ms(stream, w)))
    rows.append(
        ("  W=8 plain fp32 (fast paths off)", stream_ms(load(results, "stream_plain.json"), 8))
    )
    rows.append(("  W=8 TF32", stream_ms(load(results, "stream_tf32.json"), 8)))
    rows.append(("  W=8 bf16 autocast", stream_ms(load(results, "stream_bf16.json"), 8)))
    rows.append(("  W=8 TF32 + CUDA graphs", stream_ms(load(results, "stream_graphs.json"), 8)))
    big = load(results, "stream_1080.json")
    big_size = f"{big['meta']['frame_hw'][1]}x{big['meta']['frame_hw'][0]}" if big else "?"
    rows.append((f"streaming {big_size}, W=8", stream_ms(big, 8)))
    sgdet = stream.get("sgdet") if stream else None
    rows.append(
        (
            "streaming SGDet, W=8",
            f"{sgdet['ms']:.2f} ms ({1e3 / sgdet['ms']:.0f} fps)" if sgdet else "-",
        )
    )
    fp32, bf16 = load(results, "model_fp32.json"), load(results, "model_bf16.json")
    frames = fp32["frames"] if fp32 else "?"
    rows.append(
        (
            f"extractor over {frames} frames at once, per frame fp32 / bf16",
            f"{per_frame(fp32, 'extractor_given_boxes')} / "
            f"{per_frame(bf16, 'extractor_given_boxes')}",
        )
    )
    rows.append(
        (f"relation model, {frames} frames, per frame", per_frame(fp32, "relation_predcls"))
    )
    node = load(results, "node.json")
    rows.append(
        ("node: image in -> message out (W=8)", f"{node['total_ms']:.2f} ms" if node else "-")
    )
    tp = load(results, "throughput/throughput.json")
    if tp:
        rows.append(
            (
                "training from the cache, no prefetch / prefetch",
                f"{tp['cached_no_prefetch_frames_per_s']:.0f} / "
                f"{tp['cached_frames_per_s']:.0f} frames/s",
            )
        )
    else:
        rows.append(("training from the cache", "-"))
    rows.append(("paper recipe, 2 epochs, plain", train_run(results, "run_plain")))
    rows.append(("paper recipe, 2 epochs, torchrun", train_run(results, "run_torchrun")))

    env = (results / "env.txt").read_text().strip() if (results / "env.txt").is_file() else ""
    print(f"### bench/gpu_check.sh\n\n{env}\n")
    print("| measure | result |\n|---|---|")
    for measure, value in rows:
        print(f"| {measure} | {value} |")
    fast = load(results, "fast_paths.json")
    if fast:
        print("\n| fast path (W=8) | ms/frame | max diff vs fp32 | tolerance |\n|---|---|---|---|")
        for r in fast:
            ms = "not run: " + r.get("note", "") if r["ms"] is None else f"{r['ms']:.2f}"
            diff = "-" if r["max_diff"] is None else f"{r['max_diff']:.1e}"
            tol = r.get("tolerance")
            tol = "reported" if r["ms"] is not None and tol is None else tol
            tol = "-" if tol is None else tol
            verdict = "" if r.get("ok", True) else " FAILED"
            print(f"| {r['setting']} | {ms} | {diff} | {tol}{verdict} |")
    print("\n| step | exit | seconds |\n|---|---|---|")
    for name, (rc, seconds) in steps.items():
        print(f"| {name} | {rc} | {seconds:.0f} |")
    node_parts = {k: v for k, v in (node or {}).items() if re.search(r" ms$", k)}
    if node_parts:
        print("\nnode breakdown: " + ", ".join(f"{k} {v:.2f}" for k, v in node_parts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
