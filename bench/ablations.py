"""The paper's ablation study, reproducible by configuration (Table III, Table IV, Fig. 4).

Trains and evaluates every configuration below with the same data, seeds and
budget, then prints the tables in the paper's layout (PredCls, With
constraints, R@10/20/50) and draws Fig. 5 for TR² against the STTran-like
baseline. Each configuration is the base model config plus overrides, so the
same list runs at paper size on the real Action Genome release (GPU) and at
the small size on synthetic data (CPU):

    # synthetic AG, small config, random-init backbones (CPU, ~30-40 min on 2 cores)
    .venv/bin/python bench/ablations.py --out runs/ablations

    # the real study (GPU machine; weights and the AG release on local paths)
    .venv/bin/python bench/ablations.py --data /data/ag --base tr2 --train-config tr2 \\
        --clip-weights /w/ViT-B-32.pt --detector-weights /w/faster_rcnn_ag.pth \\
        --text-table /w/text_table.npz --device cuda --out runs/ablations-ag

Runs that already have ``test/metrics.json`` are reused, so an interrupted
study continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

# (key, label, overrides on the base model config). Keys name the run folders.
ABLATIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("tr2", "TR² (full)", ()),
    ("tr2-minus", "TR²⁻ (no guidance)", ("guidance.mode=none",)),
    ("tr2-bin", "TR²ᵇⁱⁿ (binary change guidance)", ("guidance.mode=bin",)),
    ("no-tdiff", "no temporal difference, Eq. (4)", ("guidance.mode=no_tdiff",)),
    (
        "fusion-none",
        "- / -",
        ("fusion.spatial_layers=0", "fusion.temporal_layers=0", "fusion.message_token=false"),
    ),
    ("fusion-temporal", "- / decoder+token", ("fusion.spatial_layers=0",)),
    ("fusion-spatial", "spatial / -", ("fusion.temporal_layers=0", "fusion.message_token=false")),
    ("fusion-decoder", "spatial / decoder", ("fusion.message_token=false",)),
    ("fusion-token", "spatial / token", ("fusion.temporal_layers=0",)),
    (
        "sttran-like",
        "STTran-like",
        ("fusion.message_token=false", "fusion.temporal_window=2", "guidance.mode=none"),
    ),
)

# The paper's numbers (PredCls, With, R@10/20/50) for the printed comparison.
PAPER = {
    "tr2": (70.9, 73.8, 73.8),
    "no-tdiff": (70.1, 73.0, 73.0),
    "fusion-none": (69.5, 72.3, 72.3),
    "fusion-temporal": (70.2, 73.1, 73.1),
    "fusion-spatial": (69.7, 72.5, 72.5),
    "fusion-decoder": (70.5, 73.3, 73.4),
    "fusion-token": (70.0, 72.8, 72.9),
    "sttran-like": (68.6, 71.8, 71.8),
}
KS = ("R@10", "R@20", "R@50")


def _tr2(argv: list[str]) -> None:
    from tr2_core.cli import main

    code = main(argv)
    if code:
        raise SystemExit(f"`tr2 {' '.join(argv)}` failed with exit code {code}")


def run_one(args: argparse.Namespace, key: str, overrides: tuple[str, ...], seed: int) -> dict:
    """Train + test one configuration with one seed; returns the test metrics."""
    run_dir = Path(args.out) / f"{key}-seed{seed}"
    metrics_path = run_dir / "test" / "metrics.json"
    if metrics_path.is_file():
        return json.loads(metrics_path.read_text())
    train = ["train", "--data", str(args.data), "--model", args.base]
    train += ["--train-config", args.train_config, "--out", str(run_dir), "--device", args.device]
    train += ["--no-progress"] if args.no_progress else []
    if args.epochs:
        train += ["--epochs", str(args.epochs)]
    if args.random_init:
        train += ["--random-init"]
    for flag in ("clip_weights", "detector_weights", "text_table"):
        if getattr(args, flag):
            train += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    train += [f"seed={seed}"] + [f"model.{o}" for o in (*args.base_override, *overrides)]
    _tr2(train)
    checkpoint = run_dir / ("best.pt" if args.select_best else "last.pt")
    test = ["test", "--checkpoint", str(checkpoint), "--out", str(run_dir / "test")]
    test += ["--device", args.device] + (["--no-progress"] if args.no_progress else [])
    _tr2(test)
    return json.loads(metrics_path.read_text())


def _row(name: str, values: list[float], ref: tuple[float, ...] | None, base=None) -> str:
    cells = []
    for i, v in enumerate(values):
        delta = "" if base is None else f" ({v - base[i]:+.1f})"
        cells.append(f"{v:5.1f}{delta:>8}")
    paper = "" if ref is None else "   paper " + " / ".join(f"{r:.1f}" for r in ref)
    return f"{name:<34}" + "  ".join(cells) + paper


def report(results: dict[str, list[dict]], labels: dict[str, str]) -> str:
    """Tables in the paper's layout: mean over seeds of With R@10/20/50 (percent)."""

    def mean(key: str) -> list[float]:
        runs = results[key]
        return [100 * statistics.mean(r["with"][k] for r in runs) for k in KS]

    head = f"{'':<34}" + "  ".join(f"{k:>13}" for k in KS)
    lines = ["Fig. 4: guidance settings (PredCls, With)", head]
    for key in ("sttran-like", "tr2-minus", "tr2-bin", "tr2"):
        lines.append(_row(labels[key], mean(key), PAPER.get(key)))
    lines += ["", "Table III: temporal difference before guidance", head]
    base = mean("no-tdiff")
    lines.append(_row("-  (Eq. 4)", base, PAPER["no-tdiff"]))
    lines.append(_row("✓  (Eq. 2, TR²)", mean("tr2"), PAPER["tr2"], base))
    lines += ["", "Table IV: relation feature fusion (spatial / temporal)", head]
    base = mean("fusion-none")
    for key in ("fusion-none", "fusion-temporal", "fusion-spatial", "fusion-decoder",
                "fusion-token", "tr2"):  # fmt: skip
        label = "spatial / decoder+token" if key == "tr2" else labels[key]
        lines.append(_row(label, mean(key), PAPER[key], None if key == "fusion-none" else base))
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", help="AG root; default: generate synthetic AG into OUT/synthetic_ag")
    p.add_argument("--out", default="runs/ablations", help="output folder")
    p.add_argument("--base", default="tr2-small", help="base model config (tr2 = paper size)")
    p.add_argument("--train-config", default="small", help="training recipe (small | tr2)")
    p.add_argument(
        "--base-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override of the base model config for every run, e.g. representation.geometry=true",
    )
    p.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    p.add_argument("--videos", type=int, default=120, help="synthetic videos (without --data)")
    p.add_argument("--random-init", action="store_true",
                   help="random detector/CLIP (implied on synthetic data)")  # fmt: skip
    p.add_argument("--clip-weights")
    p.add_argument("--detector-weights")
    p.add_argument("--text-table")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--select-best",
        action="store_true",
        help="test best.pt (picked on validation), not last.pt",
    )
    p.add_argument("--only", nargs="+", help="run only these keys")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.data is None:
        args.data = out / "synthetic_ag"
        args.random_init = True
        if not (args.data / "annotations").is_dir():
            _tr2(["make-synthetic", str(args.data), "--videos", str(args.videos), "--seed", "0",
                  "--frames", "6", "12", "--size", "320x180", "--quiet"])  # fmt: skip
    labels = {key: label for key, label, _ in ABLATIONS}
    chosen = [a for a in ABLATIONS if not args.only or a[0] in args.only]
    start = time.perf_counter()
    results: dict[str, list[dict]] = {}
    for key, label, overrides in chosen:
        for seed in args.seeds:
            t0 = time.perf_counter()
            print(f"\n### {label} [{key}] seed {seed}: {' '.join(overrides) or '(base)'}",
                  flush=True)  # fmt: skip
            results.setdefault(key, []).append(run_one(args, key, overrides, seed))
            print(f"### {key} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    summary = {
        "data": str(args.data),
        "base": args.base,
        "train_config": args.train_config,
        "base_overrides": args.base_override,
        "epochs": args.epochs or "recipe",
        "seeds": args.seeds,
        "random_init": bool(args.random_init),
        "seconds": round(time.perf_counter() - start, 1),
        "with": {k: [r["with"] for r in v] for k, v in results.items()},
    }
    (out / "ablations.json").write_text(json.dumps(summary, indent=1) + "\n")
    if len(results) == len(ABLATIONS):
        table = report(results, labels)
        print("\n" + table)
        (out / "ablations.txt").write_text(table + "\n")
        from tr2_core.cli.plot_runs import plot_fig5

        seed = args.seeds[0]
        fig5 = plot_fig5(
            out / f"tr2-seed{seed}" / "test" / "predictions.npz",
            out / f"sttran-like-seed{seed}" / "test" / "predictions.npz",
            out / "fig5_tr2_vs_sttran.png",
            data_root=args.data,
            label_a="TR²",
            label_b="STTran-like",
        )
        print(f"\nFig. 5 -> {fig5}")
    print(f"results -> {out / 'ablations.json'} ({summary['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
