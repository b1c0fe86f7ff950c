"""The paper's ablation study, reproducible by configuration (Table III, Table IV, Fig. 4).

Trains and tests every configuration below with the same data, seeds and
budget, then prints the tables in the paper's layout (PredCls, With
constraints, R@10/20): per row the mean over seeds with its 95 % bootstrap
interval over test videos and the per-seed values, per row the difference to
the table's reference row with its paired interval, and the "changed"
time-variant group for TR² against the variants without temporal fusion.
Fig. 5 is drawn for TR² against the STTran-like baseline. Each configuration is
the base model config plus overrides, so the same list runs at paper size on
the real Action Genome release (GPU) and at the small size on synthetic data
(CPU):

    # the synthetic study: temporal synthetic world, 560 videos (loaded: 318 trained on,
    # 81 validation, 133 test), detector/CLIP fitted to it, 3 seeds, best.pt on validation
    .venv/bin/python bench/ablations.py --out runs/ablations

    # a smoke run (refused sizes need --small)
    .venv/bin/python bench/ablations.py --out /tmp/abl --small --videos 12 --epochs 1 \\
        --seeds 0 --only tr2 fusion-none --threads 1

    # the real study (GPU machine; weights and the AG release on local paths)
    .venv/bin/python bench/ablations.py --data /data/ag --base tr2 --train-config tr2 \\
        --no-geometry --clip-weights /w/ViT-B-32.pt --detector-weights /w/faster_rcnn_ag.pth \\
        --text-table /w/text_table.npz --device cuda --out runs/ablations-ag

Runs that already have ``test/metrics.json`` are reused, so an interrupted
study continues where it stopped. Writes OUT/ablations.txt (the tables) and
OUT/ablations.json (every number, the configuration, sizes, seconds, machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

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

# (title, reference row, rows as (key, label)): the paper's tables; every row
# but the reference is printed with its difference to the reference.
TABLES: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Fig. 4: guidance settings",
        "tr2",
        (
            ("sttran-like", "STTran-like"),
            ("tr2-minus", "TR²⁻ (no guidance)"),
            ("tr2-bin", "TR²ᵇⁱⁿ (binary change)"),
            ("tr2", "TR² (full)"),
        ),
    ),
    (
        "Table III: temporal difference before guidance",
        "no-tdiff",
        (("no-tdiff", "-  (Eq. 4)"), ("tr2", "✓  (Eq. 2, TR²)")),
    ),
    (
        "Table IV: relation feature fusion (spatial / temporal)",
        "fusion-none",
        (
            ("fusion-none", "- / -"),
            ("fusion-temporal", "- / decoder+token"),
            ("fusion-spatial", "spatial / -"),
            ("fusion-decoder", "spatial / decoder"),
            ("fusion-token", "spatial / token"),
            ("tr2", "spatial / decoder+token (TR²)"),
        ),
    ),
)
# The "changed" time-variant group: TR² against the variants without temporal fusion.
CHANGED_ROWS = ("tr2", "fusion-none", "sttran-like")

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
KS = (10, 20, 50)  # evaluated; the tables print R@10 and R@20
SHOWN_KS = (10, 20)
MIN_TRAINED, MIN_TEST = 300, 100  # the study's minimum: videos trained on / tested on


def _tr2(argv: list[str]) -> None:
    from tr2_core.cli import main

    code = main(argv)
    if code:
        raise SystemExit(f"`tr2 {' '.join(argv)}` failed with exit code {code}")


# --------------------------------------------------------------------------
# Data, frozen parts, runs


def make_data(args: argparse.Namespace, out: Path) -> Path:
    """The dataset: ``--data``, or the temporal synthetic world generated into
    OUT/synthetic_ag (kept and reused when already there)."""
    if args.data is not None:
        return Path(args.data)
    data = out / "synthetic_ag"
    if not (data / "annotations").is_dir():
        _tr2(
            [
                "make-synthetic",
                str(data),
                "--videos",
                str(args.videos),
                "--temporal",
                "--frames",
                "6",
                "12",
                "--size",
                "320x180",
                "--val-fraction",
                str(args.val_fraction),
                "--seed",
                "0",
                "--quiet",
            ]
        )
    return data


def split_sizes(data: Path) -> dict[str, int | None]:
    """Videos per split as the loader keeps them (it drops videos without a usable
    frame): ``train`` (AG's set, validation included), ``validation`` (those in the
    synthetic meta's list; None for AG, where the recipe holds out its
    ``val_fraction``), ``trained`` (train - validation), ``test`` and ``test_frames``."""
    from tr2_core.viz.run_plots import load_split_gt

    train = load_split_gt(data, "train").videos
    test_gt = load_split_gt(data, "test")
    meta = data / "annotations" / "synthetic_meta.json"
    val = None
    if meta.is_file():
        val = int(np.isin(train, json.loads(meta.read_text())["val_videos"]).sum())
    return {
        "train": len(train),
        "validation": val,
        "trained": len(train) - (val or 0),
        "test": test_gt.num_videos,
        "test_frames": test_gt.num_frames,
    }


def check_sizes(sizes: dict[str, int | None], small: bool) -> None:
    """Refuse a study below the minimum size (>= 300 trained, >= 100 test videos)
    unless ``--small`` says it is a smoke run."""
    trained, test = int(sizes["trained"] or 0), int(sizes["test"] or 0)
    print(
        f"data: {sizes['train']} training videos ({sizes['validation']} of them validation, "
        f"{trained} trained on), {test} test videos ({sizes['test_frames']} frames)"
    )
    if trained >= MIN_TRAINED and test >= MIN_TEST:
        return
    what = f"{trained} trained / {test} test videos (the study needs >= {MIN_TRAINED} / >= "
    what += f"{MIN_TEST})"
    if not small:
        raise SystemExit(f"ablations: {what}; pass --small for a smoke run that answers nothing")
    print(f"ablations: --small: {what}; a SMOKE RUN, its differences answer nothing")


def frozen_flags(args: argparse.Namespace, data: Path, out: Path) -> list[str]:
    """Training flags naming the frozen detector/CLIP: the given weight files, random
    ones (``--random-init``), or on synthetic data the weights ``tr2
    pretrain-synthetic`` fits to its world (cached; one set, seed 0, shared
    by every run so that seeds vary only the trained model)."""
    flags = []
    for flag in ("clip_weights", "detector_weights", "text_table"):
        if getattr(args, flag):
            flags += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    if args.random_init:
        return ["--random-init", *flags]
    if flags or not (data / "annotations" / "synthetic_meta.json").is_file():
        return flags
    weights_json = out / "pretrained" / "weights.json"
    weights_json.parent.mkdir(parents=True, exist_ok=True)
    _tr2(
        [
            "pretrain-synthetic",
            "--data",
            str(data),
            "--model",
            args.base,
            "--seed",
            "0",
            "--json",
            str(weights_json),
        ]
    )
    paths = json.loads(weights_json.read_text())
    return ["--detector-weights", paths["detector"], "--clip-weights", paths["clip"]]


def run_one(
    args: argparse.Namespace, data: Path, frozen: list[str], key: str, overrides, seed: int
) -> Path:
    """Train + test one configuration with one seed (reused when its
    ``test/metrics.json`` exists); returns the run's test folder."""
    run_dir = Path(args.out) / f"{key}-seed{seed}"
    test_dir = run_dir / "test"
    if (test_dir / "metrics.json").is_file():
        return test_dir
    progress = ["--no-progress"] if args.no_progress else []
    train = [
        "train",
        "--data",
        str(data),
        "--model",
        args.base,
        "--train-config",
        args.train_config,
        "--out",
        str(run_dir),
        "--device",
        args.device,
        *progress,
        *frozen,
    ]
    if args.epochs:
        train += ["--epochs", str(args.epochs)]
    # the KEY=VALUE overrides last: argparse takes them as one positional list
    train += [f"seed={seed}", *(f"model.{o}" for o in (*base_overrides(args), *overrides))]
    _tr2(train)
    checkpoint = run_dir / ("last.pt" if args.last else "best.pt")
    _tr2(
        [
            "test",
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(test_dir),
            "--device",
            args.device,
            *progress,
        ]
    )
    return test_dir


def base_overrides(args: argparse.Namespace) -> list[str]:
    """Overrides of every run: ``--base-override`` plus, unless ``--no-geometry``,
    STTran's union-box mask branch (as ``tr2 demo``: it hands every configuration the
    box layout, which the small backbones see poorly)."""
    geometry = [] if args.no_geometry else ["representation.geometry=true"]
    return [*geometry, *args.base_override]


# --------------------------------------------------------------------------
# Per-frame recalls and intervals


def per_frame_recalls(test_dir: Path, gt, changed: np.ndarray) -> dict[str, np.ndarray]:
    """A run's per-frame With recalls: ``'all'`` (F, len(KS)) and ``'changed'``
    (F, len(KS)) over the changed triplets only; NaN for frames that do not count.
    Checks that their means are the R@K of the run's metrics.json."""
    from tr2_core.evaluation.recall import evaluate_detailed
    from tr2_core.viz.run_plots import as_predictions

    preds, name = as_predictions(test_dir / "predictions.npz")
    result = evaluate_detailed(
        gt, preds, task="predcls", settings=["with"], ks=KS, validate=False, source=name
    )
    recall = {"all": result.frame_recall("with"), "changed": result.frame_recall("with", changed)}
    stored = json.loads((test_dir / "metrics.json").read_text())
    for col, k in enumerate(KS):
        here, there = np.nanmean(recall["all"][:, col]), stored["with"][f"R@{k}"]
        if abs(here - there) > 1e-9:
            print(f"warning: {test_dir}: R@{k} {here:.6f} here, {there:.6f} in metrics.json")
    return recall


def summarise(recalls: dict[str, list[dict]], frame_video, resamples: int) -> dict:
    """Every number of the report (percent): per key its R@K intervals and per-seed
    values (``rows``), every table's differences to its reference row
    (``differences``) and the changed group (``changed``)."""
    from tr2_core.evaluation.bootstrap import bootstrap_difference, bootstrap_recall

    def stack(key: str, group: str, col: int) -> np.ndarray:
        return np.stack([r[group][:, col] for r in recalls[key]])  # (S, F)

    def row(key: str, group: str) -> dict:
        out = {}
        for col, k in enumerate(KS):
            seeds = stack(key, group, col)
            cell = bootstrap_recall(seeds, frame_video, resamples=resamples).as_dict(100)
            cell["per_seed"] = [100 * float(np.nanmean(s)) for s in seeds]
            out[f"R@{k}"] = cell
        return out

    def difference(a: str, b: str, group: str) -> dict:
        return {
            f"R@{k}": bootstrap_difference(
                stack(a, group, col), stack(b, group, col), frame_video, resamples=resamples
            ).as_dict(100)
            for col, k in enumerate(KS)
        }

    rows = {key: row(key, "all") for key in recalls}
    differences = [
        {"table": title, "row": key, "reference": ref, **difference(key, ref, "all")}
        for title, ref, members in TABLES
        for key, _ in members
        if key != ref and key in recalls and ref in recalls
    ]
    any_changed = all(np.isfinite(r["changed"]).any() for runs in recalls.values() for r in runs)
    present = [key for key in CHANGED_ROWS if key in recalls and any_changed]
    changed = {"rows": {key: row(key, "changed") for key in present}, "differences": {}}
    if "tr2" in recalls:
        for key in present[1:]:
            changed["differences"][key] = difference("tr2", key, "changed")
    return {"rows": rows, "differences": differences, "changed": changed}


# --------------------------------------------------------------------------
# The report


def _cell(interval: dict, signed: bool = False) -> str:
    fmt = "{:+.1f}" if signed else "{:.1f}"
    low, high = fmt.format(interval["low"]), fmt.format(interval["high"])
    return f"{fmt.format(interval['estimate'])} [{low}, {high}]"


def _table_lines(title: str, ref: str, members, numbers: dict) -> list[str]:
    """One table: per row R@10/R@20 [95 % CI], R@10 per seed, the difference to the
    reference row [paired 95 % CI] and the paper's R@10/R@20."""
    diffs = {d["row"]: d for d in numbers["differences"] if d["table"] == title}
    ref_label = dict(members)[ref]
    head = f"{'':<32}" + "".join(f"{f'R@{k}':<20}" for k in SHOWN_KS)
    head += (
        f"{'R@10 per seed':<22}"
        + "".join(f"{f'R@{k} - ref':<20}" for k in SHOWN_KS)
        + "paper R@10/20"
    )
    lines = [f"{title} (reference: {ref_label})", head]
    for key, label in members:
        if key not in numbers["rows"]:
            continue
        row = numbers["rows"][key]
        line = f"{label:<32}" + "".join(f"{_cell(row[f'R@{k}']):<20}" for k in SHOWN_KS)
        line += f"{' / '.join(f'{v:.1f}' for v in row['R@10']['per_seed']):<22}"
        for k in SHOWN_KS:
            line += f"{_cell(diffs[key][f'R@{k}'], True) if key in diffs else '':<20}"
        paper = PAPER.get(key)
        line += f"{paper[0]:.1f} / {paper[1]:.1f}" if paper else ""
        lines.append(line.rstrip())
    return lines


def report(numbers: dict, sizes: dict, seeds: list[int]) -> str:
    """The human tables (percent; means over seeds, 95 % bootstrap intervals over
    test videos, paired for differences)."""
    lines = [
        f"PredCls, With constraints, %. Mean over seeds {' / '.join(map(str, seeds))}; "
        f"[95 % bootstrap interval over the {sizes['test']} test videos "
        f"({sizes['test_frames']} frames); differences paired on the same videos].",
    ]
    if int(sizes.get("trained") or 0) < MIN_TRAINED or sizes["test"] < MIN_TEST:
        lines.append("SMOKE RUN (--small): below the minimum size, the numbers answer nothing.")
    for title, ref, members in TABLES:
        if ref in numbers["rows"]:
            lines += ["", *_table_lines(title, ref, members, numbers)]
    changed = numbers["changed"]
    if changed["rows"]:
        lines += [
            "",
            '"changed" time-variant group (triplets whose relation changed), With R@10',
            f"{'':<32}{'R@10':<20}{'R@10 per seed':<22}TR² - row",
        ]
        labels = {key: label for key, label, _ in ABLATIONS}
        for key, row in changed["rows"].items():
            cell = row["R@10"]
            diff = changed["differences"].get(key)
            line = f"{labels[key]:<32}{_cell(cell):<20}"
            line += f"{' / '.join(f'{v:.1f}' for v in cell['per_seed']):<22}"
            lines.append((line + (_cell(diff["R@10"], True) if diff else "")).rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        help="AG root; default: generate the temporal synthetic world into OUT/synthetic_ag",
    )
    p.add_argument("--out", default="runs/ablations", help="output folder")
    p.add_argument("--base", default="tr2-small", help="base model config (tr2 = paper size)")
    p.add_argument("--train-config", default="small", help="training recipe (small | tr2)")
    p.add_argument(
        "--base-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override of the base model config for every run",
    )
    p.add_argument(
        "--no-geometry",
        action="store_true",
        help="without the union-box mask branch (default: with, as tr2 demo)",
    )
    p.add_argument("--epochs", type=int, default=8, help="epochs (8; 0: the recipe's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--videos", type=int, default=560, help="synthetic videos (560)")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.15,
        help="synthetic: share of ALL videos held out for selecting best.pt "
        "(0.15: 560 videos -> 318 trained on, 81 validation, 133 test, as loaded; the "
        "loader drops about 5 %% of the generated videos, so 500 would give 286 / 117)",
    )
    p.add_argument(
        "--small",
        action="store_true",
        help=f"allow fewer than {MIN_TRAINED} trained / {MIN_TEST} test videos (smoke runs)",
    )
    p.add_argument(
        "--random-init",
        action="store_true",
        help="random detector/CLIP (default on synthetic data: fitted to it)",
    )
    p.add_argument("--clip-weights")
    p.add_argument("--detector-weights")
    p.add_argument("--text-table")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (2; 0: torch's)")
    p.add_argument(
        "--last",
        action="store_true",
        help="test last.pt (default: best.pt, selected on the validation split)",
    )
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (1000)")
    p.add_argument("--only", nargs="+", help="run only these keys")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def run_study(args: argparse.Namespace, data: Path, out: Path) -> tuple[dict, dict]:
    """Every chosen configuration with every seed: key -> test folders (seed order),
    and what the JSON records of them (the frozen-part flags, seconds per run of
    this invocation, ``'reused'`` for runs tested before)."""
    frozen = frozen_flags(args, data, out)
    chosen = [a for a in ABLATIONS if not args.only or a[0] in args.only]
    tests: dict[str, list[Path]] = {}
    seconds: dict[str, float | str] = {}
    for key, label, overrides in chosen:
        for seed in args.seeds:
            t0 = time.perf_counter()
            reused = (Path(args.out) / f"{key}-seed{seed}" / "test" / "metrics.json").is_file()
            print(
                f"\n### {label} [{key}] seed {seed}: {' '.join(overrides) or '(base)'}", flush=True
            )
            tests.setdefault(key, []).append(run_one(args, data, frozen, key, overrides, seed))
            took = time.perf_counter() - t0
            seconds[f"{key}-seed{seed}"] = "reused" if reused else round(took, 1)
            print(f"### {key} seed {seed}: {took:.0f} s", flush=True)
    return tests, {"frozen_flags": frozen, "run_seconds": seconds}


def write_results(
    args: argparse.Namespace, out: Path, data: Path, sizes: dict, runs: dict, numbers: dict
) -> None:
    """OUT/ablations.json: the configuration, sizes, seconds, machine and every number."""
    summary = {
        "data": str(data),
        "base": args.base,
        "train_config": args.train_config,
        "base_overrides": base_overrides(args),
        "epochs": args.epochs or "recipe",
        "seeds": args.seeds,
        "checkpoint": "last.pt" if args.last else "best.pt (selected on validation)",
        "sizes": sizes,
        "bootstrap": {"resamples": args.resamples, "level": 0.95, "unit": "test video"},
        **runs,
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": args.threads,
            "device": args.device,
        },
        "percent": True,
        **numbers,
    }
    (out / "ablations.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")


def plot_fig5_runs(tests: dict[str, list[Path]], data: Path, out: Path, seed: int) -> None:
    """Fig. 5 for TR² against STTran-like (first seed), when both ran."""
    if "tr2" not in tests or "sttran-like" not in tests:
        return
    from tr2_core.viz.run_plots import plot_fig5

    fig5 = plot_fig5(
        tests["tr2"][0] / "predictions.npz",
        tests["sttran-like"][0] / "predictions.npz",
        out / "fig5_tr2_vs_sttran.png",
        data_root=data,
        label_a="TR²",
        label_b="STTran-like",
    )
    print(f"\nFig. 5 (seed {seed}) -> {fig5}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = make_data(args, out)
    sizes = split_sizes(data)
    check_sizes(sizes, args.small)
    tests, runs = run_study(args, data, out)

    from tr2_core.evaluation.changes import CHANGED, relation_changes
    from tr2_core.viz.run_plots import load_split_gt

    gt = load_split_gt(data, "test")  # PredCls: no small-box filter
    changed = relation_changes(gt).triplet_state == CHANGED
    recalls = {k: [per_frame_recalls(t, gt, changed) for t in v] for k, v in tests.items()}
    numbers = summarise(recalls, gt.frame_video, args.resamples)
    table = report(numbers, sizes, args.seeds)
    print("\n" + table)
    (out / "ablations.txt").write_text(table + "\n")
    plot_fig5_runs(tests, data, out, args.seeds[0])
    runs["seconds"] = round(time.perf_counter() - start, 1)
    write_results(args, out, data, sizes, runs, numbers)
    print(f"results -> {out / 'ablations.txt'}, {out / 'ablations.json'} ({runs['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
