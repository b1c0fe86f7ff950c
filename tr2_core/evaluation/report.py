"""Human-readable tables, the JSON metrics file and the per-frame recall file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tr2_core.errors import PredictionsError
from tr2_core.evaluation.breakdown import change_gain_curve
from tr2_core.evaluation.changes import RelationChanges, relation_changes
from tr2_core.evaluation.result import EvaluationResult
from tr2_core.npz import read_npz
from tr2_core.outputs import atomic_write, atomic_write_text
from tr2_core.vocab import FAMILIES

__all__ = [
    "format_table",
    "format_report",
    "format_temporal_effects",
    "write_metrics_json",
    "save_per_frame",
    "load_per_frame",
    "compare_per_frame",
    "is_per_frame_file",
    "setting_label",
    "task_label",
]

_TASK_NAMES = {"predcls": "PredCls", "sgcls": "SGCls", "sgdet": "SGDet"}
_SETTING_NAMES = {"with": "With", "semi": "Semi", "no": "No"}


def setting_label(name: str) -> str:
    """``'with'`` -> ``'With'``, ``'top6'`` -> ``'Top-6'``."""
    return _SETTING_NAMES.get(name, f"Top-{name[3:]}" if name.startswith("top") else name)


def task_label(name: str | None) -> str:
    """``'predcls'`` -> ``'PredCls'``."""
    return _TASK_NAMES.get(str(name), str(name or ""))


def _settings_of(metrics: Mapping[str, Any]) -> list[str]:
    return [k for k, v in metrics.items() if isinstance(v, dict) and any(
        key.startswith("R@") for key in v
    )]  # fmt: skip


def format_table(rows: Sequence[tuple[str, Mapping[str, float | None]]], first: str) -> str:
    """A percent table: one row per ``(label, {'R@K': fraction, ...})``."""
    if not rows:
        return ""
    keys = list(rows[0][1])
    width = max(len(first), *(len(label) for label, _ in rows))
    head = first.ljust(width) + "".join(f"{k:>9}" for k in keys)
    lines = [head, "-" * len(head)]
    for label, values in rows:
        cells = "".join(
            f"{'-':>9}" if values.get(k) is None else f"{100.0 * values[k]:>9.1f}" for k in keys
        )
        lines.append(label.ljust(width) + cells)
    return "\n".join(lines)


def format_report(metrics: Mapping[str, Any]) -> str:
    """The text ``tr2 eval`` prints: main table, then the two breakdowns (percent)."""
    settings = _settings_of(metrics)
    task = task_label(metrics.get("task"))
    parts = [
        f"{task}: {metrics.get('frames', 0):,} frames, {metrics.get('triplets', 0):,} "
        "ground-truth triplets (R@K and mR@K in %)",
        format_table([(setting_label(s), metrics[s]) for s in settings], "Setting"),
    ]
    families = metrics.get("families")
    if families:
        rows = []
        for fam in FAMILIES:
            entry = families.get(fam.name, {})
            for s in settings:
                if s in entry:
                    rows.append((f"{fam.name} / {setting_label(s)}", entry[s]))
        counts = ", ".join(f"{fam.name} {families[fam.name]['triplets']:,}" for fam in FAMILIES)
        parts += ["", f"Per predicate family (triplets: {counts})", format_table(rows, "Family")]
    tv = metrics.get("time_variant")
    if tv:
        rows = []
        for group in ("changed", "unchanged"):
            for s in settings:
                rows.append((f"{group} / {setting_label(s)}", tv[group][s]))
        parts += [
            "",
            "Time-variant relations: triplets whose (person, object class) relation set of "
            "their family changed since the previous frame",
            f"(changed {tv['changed']['triplets']:,}, unchanged {tv['unchanged']['triplets']:,}, "
            f"first frames {tv['first_frame_triplets']:,} not counted; "
            f"{tv['changed_frames']:,} of {tv['frames_after_first']:,} frames after the first "
            "have a change)",
            format_table(rows, "Group"),
        ]
    effects = format_temporal_effects(metrics)
    if effects:
        parts += ["", effects]
    return "\n".join(parts)


def format_temporal_effects(metrics: Mapping[str, Any]) -> str:
    """The short table of ``metrics['temporal_effects']`` (synthetic data only;
    ``''`` without it): per group, R@10 and R@20 of the With setting (the first
    setting and R@K keys present when those are missing), in percent."""
    effects = metrics.get("temporal_effects")
    settings = _settings_of(metrics)
    if not effects or not settings:
        return ""
    setting = "with" if "with" in settings else settings[0]
    keys = [k for k in ("R@10", "R@20") if k in metrics[setting]] or [
        k for k in metrics[setting] if k.startswith("R@")
    ][:2]
    rows = [(name, {k: entry[setting][k] for k in keys}) for name, entry in effects.items()]
    counts = ", ".join(
        f"{name} {entry['triplets']:,} in {entry['frames']:,}" for name, entry in effects.items()
    )
    return "\n".join(
        [
            f"Temporal effects of the synthetic world ({setting_label(setting)}): GT triplets of "
            "frames drawn occluded, motion-blurred or in a halfway pose; clean: none of them",
            f"(triplets in frames: {counts}; groups may overlap)",
            format_table(rows, "Group"),
        ]
    )


def write_metrics_json(path: str | os.PathLike[str], metrics: Mapping[str, Any]) -> Path:
    """Write the metrics (fractions in [0, 1]) as JSON, atomically."""
    return atomic_write_text(path, json.dumps(metrics, indent=2) + "\n")


def save_per_frame(
    path: str | os.PathLike[str],
    result: EvaluationResult,
    changes: RelationChanges | None = None,
) -> Path:
    """Save per-frame recalls and change flags so that two runs can be compared
    (:func:`compare_per_frame`, the paper's Fig. 5).

    Arrays: ``frame_keys`` (F,), ``frame_video`` (F,), ``videos`` (V,),
    ``video_change`` (V,), ``frame_changed`` (F,), ``settings`` (S,),
    ``ks`` (K,), ``recall`` (S, F, K) float64 (NaN for frames without GT
    triplets). Written atomically; loads with ``allow_pickle=False``.
    """
    gt = result.gt
    changes = changes if changes is not None else relation_changes(gt)
    recall = np.stack([result.frame_recall(s) for s in result.settings]) if result.settings else (
        np.zeros((0, gt.num_frames, len(result.ks)))
    )  # fmt: skip
    return atomic_write(
        path,
        lambda f: np.savez(
            f,
            frame_keys=np.asarray(gt.frame_keys, dtype=str),
            frame_video=np.asarray(gt.frame_video, dtype=np.int64),
            videos=np.asarray(gt.videos, dtype=str),
            video_change=changes.video_change,
            frame_changed=changes.frame_changed,
            settings=np.asarray(result.settings, dtype=str),
            ks=np.asarray(result.ks, dtype=np.int64),
            recall=recall,
            task=np.asarray(result.task),
        ),
    )


def load_per_frame(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a file written by :func:`save_per_frame` (no unpickling)."""
    return read_npz(path)


def is_per_frame_file(path: str | os.PathLike[str]) -> bool:
    """True for a file of :func:`save_per_frame`, False for any other ``.npz``
    (a predictions file): told apart by the arrays only a per-frame file holds
    (``recall`` and ``frame_video``).

    Raises:
        PredictionsError: no such file, or not a readable ``.npz``.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: no such predictions file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return "recall" in npz.files and "frame_video" in npz.files
    except (OSError, ValueError) as e:
        raise PredictionsError(f"{path}: not a readable .npz file ({e})") from None


def compare_per_frame(
    base: Mapping[str, np.ndarray] | str | os.PathLike[str],
    model: Mapping[str, np.ndarray] | str | os.PathLike[str],
    *,
    setting: str = "with",
    k: int = 20,
    bins: int = 10,
    merge_zero_change: bool = True,
) -> dict[str, np.ndarray]:
    """Fig. 5 data for two runs on the same split: gain in R@k of ``model``
    over ``base`` vs. proportion of videos sorted by change degree
    (:func:`~tr2_core.evaluation.breakdown.change_gain_curve`).

    Raises:
        ValueError: the runs are on different frames, or lack the setting / k.
    """
    a = load_per_frame(base) if not isinstance(base, Mapping) else base
    b = load_per_frame(model) if not isinstance(model, Mapping) else model
    if a["frame_keys"].shape != b["frame_keys"].shape or not np.array_equal(
        a["frame_keys"], b["frame_keys"]
    ):
        raise ValueError("the two per-frame files are not on the same frames")

    def column(run: Mapping[str, np.ndarray]) -> np.ndarray:
        settings = [str(s) for s in run["settings"].tolist()]
        ks = [int(v) for v in run["ks"].tolist()]
        if setting not in settings or k not in ks:
            raise ValueError(f"per-frame file has settings {settings} and ks {ks}")
        return run["recall"][settings.index(setting), :, ks.index(k)]

    return change_gain_curve(
        column(a),
        column(b),
        a["frame_video"],
        a["video_change"],
        bins=bins,
        merge_zero_change=merge_zero_change,
    )
