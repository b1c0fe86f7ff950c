"""Where temporal fusion should matter: TR² against the variants of an ablation study
(bench/ablations.py) on the frames the synthetic world drew occluded, motion-blurred
or in a halfway pose, and on the clean frames, with paired bootstrap 95 % intervals
over test videos (seeds averaged per frame first).

    .venv/bin/python bench/ablation_effects.py runs/ablations [--against fusion-none ...]

Reads each run's ``test/predictions.npz`` (every seed found) and the study's
``synthetic_ag``; writes ``ablation_effects.json`` next to them and prints a table
of With R@10 per group and TR² - variant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def group_recalls(test_dir: Path, gt, groups: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(F,) per-frame With R@10 of one run over the GT triplets of each frame group
    (``groups``: name -> (F,) bool); NaN for frames outside the group."""
    from tr2_core.evaluation.recall import evaluate_detailed
    from tr2_core.viz.run_plots import as_predictions

    preds, name = as_predictions(test_dir / "predictions.npz")
    result = evaluate_detailed(gt, preds, task="predcls", settings=["with"], ks=[10],
                               validate=False, source=name)  # fmt: skip
    return {g: result.frame_recall("with", mask[gt.triplet_frame])[:, 0]
            for g, mask in groups.items()}  # fmt: skip


def frame_groups(data: Path, gt) -> dict[str, np.ndarray]:
    """name -> (F,) bool over the test frames: each temporal effect, then ``clean``."""
    from tr2_core.data.synthetic.meta import temporal_effect_frames

    keys = np.asarray(gt.frame_keys).astype(str)
    groups = {name: np.isin(keys, sorted(frames))
              for name, frames in temporal_effect_frames(data).items()}  # fmt: skip
    groups["clean"] = ~np.any(list(groups.values()), axis=0) if groups else np.ones_like(keys, bool)
    return groups


def main(argv: list[str] | None = None) -> int:
    from tr2_core.evaluation.bootstrap import bootstrap_difference, bootstrap_recall
    from tr2_core.viz.run_plots import load_split_gt

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("study", help="bench/ablations.py output folder")
    p.add_argument("--against", nargs="+", default=["fusion-none", "sttran-like", "tr2-minus"],
                   help="variants to compare TR² with (those with test runs)")  # fmt: skip
    p.add_argument("--resamples", type=int, default=1000)
    args = p.parse_args(argv)
    study = Path(args.study)
    data = study / "synthetic_ag"
    gt = load_split_gt(data, "test")
    groups = frame_groups(data, gt)
    keys = ["tr2", *args.against]
    runs = {k: sorted(study.glob(f"{k}-seed*/test")) for k in keys}
    runs = {k: v for k, v in runs.items() if v}
    if "tr2" not in runs:
        raise SystemExit(f"{study}: no tested tr2 run")
    recalls = {k: [group_recalls(t, gt, groups) for t in v] for k, v in runs.items()}
    out: dict = {
        "groups": {g: int(m.sum()) for g, m in groups.items()},
        "rows": {},
        "tr2_minus": {},
    }
    for g in groups:
        stacked = {k: np.stack([r[g] for r in v]) for k, v in recalls.items()}  # (S, F)
        if not np.isfinite(stacked["tr2"]).any():
            continue
        out["rows"][g] = {k: bootstrap_recall(s, gt.frame_video, resamples=args.resamples)
                          .as_dict(100) for k, s in stacked.items()}  # fmt: skip
        out["tr2_minus"][g] = {
            k: bootstrap_difference(
                stacked["tr2"], s, gt.frame_video, resamples=args.resamples
            ).as_dict(100)  # fmt: skip
            for k, s in stacked.items()
            if k != "tr2"
        }
    (study / "ablation_effects.json").write_text(json.dumps(out, indent=1) + "\n")
    print(
        "With R@10 (%) by frame group; seeds: "
        + ", ".join(f"{k} {len(v)}" for k, v in runs.items())
    )
    for g, row in out["rows"].items():
        cells = "  ".join(f"{k} {c['estimate']:.1f}" for k, c in row.items())
        diffs = "  ".join(f"TR²-{k} {d['estimate']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]"
                          for k, d in out["tr2_minus"][g].items())  # fmt: skip
        print(f"{g:<9} ({out['groups'][g]} frames)  {cells}  |  {diffs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
