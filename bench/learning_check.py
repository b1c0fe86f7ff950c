"""Learning check: does training the small TR² on synthetic Action Genome learn?

Generates a synthetic AG dataset (``tr2_core.data.synthetic``: rendered scenes whose
relation labels are derived from the drawn geometry), scores the frequency baseline
(``tr2 baseline``: each predicate by its training frequency per object class) on the test
split, then trains ``tr2-small`` with the ``small`` recipe (random-init frozen detector and
CLIP: no weight files needed) for a CPU time budget, evaluating every
epoch. Prints, per epoch, the training loss and PredCls With R@10 / R@20 / No R@20 on the
test split next to the baseline's, and a verdict:

* the loss must fall (last epoch clearly below the first);
* the best With R@10 must beat the frequency baseline by ``--margin`` (points).

``--variants plain geometry`` also trains the configuration with STTran's union-box mask
branch (``representation.geometry=true``), which hands the model the box layout explicitly.

Usage::

    .venv/bin/python bench/learning_check.py                  # ~5 CPU minutes
    .venv/bin/python bench/learning_check.py --minutes 2 --variants plain geometry
    .venv/bin/python bench/learning_check.py --data /path/to/synthetic_ag

The test suite runs :func:`run_training` on a tiny dataset and asserts the loss falls.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def make_data(root: Path, videos: int, seed: int, width: int, height: int) -> None:
    from tr2_core.data.synthetic import SyntheticConfig, make_synthetic

    if (root / "annotations").is_dir():
        return
    cfg = SyntheticConfig(
        videos=videos, min_frames=6, max_frames=12, width=width, height=height, seed=seed
    )
    make_synthetic(root, cfg, progress=True)


def baseline_metrics(data: Path) -> dict[str, Any]:
    """The frequency baseline's evaluator result on the test split (PredCls)."""
    from tr2_core.data.action_genome import load_split
    from tr2_core.evaluation.recall import evaluate
    from tr2_core.frequency_baseline import fit_frequency, predict_frequency

    train = load_split(data, "train", show_progress=False)
    test = load_split(data, "test", show_progress=False)
    preds = predict_frequency(fit_frequency(train), test, task="predcls")
    return evaluate(test.gt, preds, task="predcls", breakdowns=False)


def run_training(
    data: Path,
    out: Path,
    *,
    epochs: int,
    minutes: float | None = None,
    model_overrides: tuple[str, ...] = (),
    train_overrides: tuple[str, ...] = (),
    cache_dir: Path | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train tr2-small (random init) on ``data`` for ``epochs``, or fewer to fit the time
    budget: one epoch is timed, then the run is resumed for as many epochs as fit. Returns
    the per-epoch records of ``metrics.jsonl``."""
    from tr2_core.models import load_model_config
    from tr2_core.run_spec import RunSpec
    from tr2_core.train.loop import train
    from tr2_core.train.recipe import load_train_config

    model_cfg = load_model_config("tr2-small", model_overrides)
    train_cfg = load_train_config("small", ("epochs=1", *train_overrides))
    run = RunSpec(
        data=str(data),
        model="tr2-small",
        task="predcls",
        random_init=True,
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    first = train(out, run, model_cfg, train_cfg, device="cpu", progress=progress)
    total = epochs
    if minutes is not None:  # the first epoch also filled the feature cache: time epoch 1
        per_epoch = first["train_time_s"] + first["val_time_s"]
        total = max(1, min(epochs, int(60 * minutes / max(per_epoch, 1e-3))))
    if total > 1:
        train(out, resume=True, epochs=total, device="cpu", progress=progress)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def report(name: str, records: list[dict[str, Any]], base: dict[str, Any], margin: float) -> bool:
    print(f"\n== {name}")
    print(f"{'epoch':>5} {'loss':>8} {'With R@10':>10} {'With R@20':>10} {'No R@20':>8}  lr")
    for r in records:
        v = r["val"]
        print(
            f"{r['epoch']:5d} {r['loss']:8.4f} {100 * v['with']['R@10']:10.1f} "
            f"{100 * v['with']['R@20']:10.1f} {100 * v['no']['R@20']:8.1f}  {r['lr']:.1e}"
        )
    print(
        f"{'freq':>5} {'':8} {100 * base['with']['R@10']:10.1f} {100 * base['with']['R@20']:10.1f} "
        f"{100 * base['no']['R@20']:8.1f}  (frequency baseline)"
    )
    losses = [r["loss"] for r in records]
    best = max(r["val"]["with"]["R@10"] for r in records)
    loss_falls = len(losses) > 1 and losses[-1] < 0.8 * losses[0]
    beats = 100 * (best - base["with"]["R@10"]) >= margin
    print(
        f"loss {losses[0]:.4f} -> {losses[-1]:.4f} ({'falls' if loss_falls else 'DOES NOT FALL'}); "
        f"best With R@10 {100 * best:.1f} vs baseline {100 * base['with']['R@10']:.1f} "
        f"({'beats' if beats else 'DOES NOT BEAT'} it by >= {margin} points)"
    )
    return loss_falls and beats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="synthetic AG root (default: generate one)")
    parser.add_argument("--videos", type=int, default=80)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=270)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30, help="upper bound on epochs")
    parser.add_argument("--minutes", type=float, default=5.0, help="training time budget")
    parser.add_argument("--margin", type=float, default=3.0, help="points over the baseline")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=("plain", "geometry"),
        default=["plain"],
        help="plain: tr2-small as configured; geometry: + union-box mask branch",
    )
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--cache-dir", type=Path, help="feature cache (default: WORK/cache)")
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. lr=0.001")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    work = args.work or Path(tempfile.mkdtemp(prefix="tr2_learning_"))
    data = args.data or work / "data"
    if args.data is None:
        make_data(data, args.videos, args.seed, args.width, args.height)
    base = baseline_metrics(data)
    variants = {
        "plain": ("tr2-small (random-init detector + CLIP)", ()),
        "geometry": (
            "tr2-small + union-box masks (representation.geometry=true)",
            ("representation.geometry=true",),
        ),
    }
    configs = [variants[v] for v in args.variants]
    ok = True
    results = {}
    for i, (name, model_over) in enumerate(configs):
        t0 = time.perf_counter()
        records = run_training(
            data, work / f"run{i}", epochs=args.epochs, minutes=args.minutes,
            model_overrides=model_over, train_overrides=tuple(args.overrides),
            cache_dir=args.cache_dir or work / "cache", progress=False,
        )  # fmt: skip
        print(f"\n{name}: {len(records)} epochs in {time.perf_counter() - t0:.0f} s")
        ok &= report(name, records, base, args.margin)
        results[name] = {
            "loss": [r["loss"] for r in records],
            "with_R@10": [r["val"]["with"]["R@10"] for r in records],
        }
    results["frequency_baseline_with_R@10"] = base["with"]["R@10"]
    (work / "learning_check.json").write_text(json.dumps(results, indent=1))
    print(f"\nwork folder: {work}; {'PASS' if ok else 'FAIL'}")
    print(f"test split: {base['frames']} frames")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
