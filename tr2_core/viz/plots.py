"""Pictures of training runs and evaluation results (matplotlib, PNG or SVG).

* :func:`plot_training_curves`: loss per term, learning rate and validation
  metrics per epoch of one or more ``tr2 train`` run folders (``metrics.jsonl``).
* :func:`plot_recall`: R@K / mR@K per predicate family and recall per
  predicate (the terms whose mean is mR@K) of one or more runs side by side.
* :func:`plot_fig5`: the TR² paper's Fig. 5 for any two runs: gain of run A
  over run B in R@K as a function of the proportion of videos sorted by
  relation-change degree (:func:`~tr2_core.evaluation.breakdown.change_gain_curve`).

Scene graphs of one frame and predicate timelines of one entity pair are in
:mod:`tr2_core.viz.graph`. Figures are built with :class:`matplotlib.figure.Figure`
(no pyplot, no global backend switch, safe in threads); the output suffix
picks the format: ``.png`` (Agg, 150 dpi by default) or ``.svg``.
Every function returns the path it wrote; bad inputs raise a
:class:`~tr2_core.errors.Tr2Error` subclass naming the file or parameter.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tr2_core.errors import ConfigError, PredictionsError
from tr2_core.types import GroundTruth, Predictions
from tr2_core.vocab import FAMILIES, NUM_PREDICATES, PREDICATES, readable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tr2_core.evaluation.recall import EvaluationResult

__all__ = [
    "OUTPUT_SUFFIXES",
    "FAMILY_COLOURS",
    "RUN_COLOURS",
    "DEFAULT_VAL_METRICS",
    "check_output_path",
    "save_figure",
    "read_run_log",
    "plot_training_curves",
    "predicate_breakdown",
    "load_metrics",
    "evaluate_for_plots",
    "plot_recall",
    "fig5_curve",
    "plot_change_gain",
    "plot_fig5",
]

OUTPUT_SUFFIXES: tuple[str, ...] = (".png", ".svg")
DEFAULT_DPI: int = 150

FAMILY_COLOURS: dict[str, str] = {
    "attention": "#4C72B0",
    "spatial": "#55A868",
    "contacting": "#DD8452",
}
"""One colour per predicate family, shared by every picture."""

RUN_COLOURS: tuple[str, ...] = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
)  # fmt: skip
"""Colours of runs A, B, C... (distinct from the family colours' role)."""

_RUN_MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")

DEFAULT_VAL_METRICS: tuple[str, ...] = ("with/R@20", "no/R@20", "with/mR@20")
"""Validation metrics drawn by :func:`plot_training_curves` (``setting/KEY`` paths)."""

_SETTING_NAMES = {"with": "With", "semi": "Semi", "no": "No"}
_TASK_NAMES = {"predcls": "PredCls", "sgcls": "SGCls", "sgdet": "SGDet"}


def setting_label(name: str) -> str:
    """``'with'`` -> ``'With'``, ``'top6'`` -> ``'Top-6'``."""
    return _SETTING_NAMES.get(name, f"Top-{name[3:]}" if name.startswith("top") else name)


def task_label(name: str | None) -> str:
    """``'predcls'`` -> ``'PredCls'``."""
    return _TASK_NAMES.get(str(name), str(name or ""))


# --------------------------------------------------------------------------
# Output


def check_output_path(out: str | os.PathLike[str]) -> Path:
    """The output path, checked to end in ``.png`` or ``.svg``.

    Raises:
        ConfigError: another suffix.
    """
    path = Path(out)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(
            f"{path}: output must end in {' or '.join(OUTPUT_SUFFIXES)} (the suffix picks the "
            "format)"
        )
    return path


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure with constrained layout (no overlapping labels)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, out: str | os.PathLike[str], dpi: int = DEFAULT_DPI) -> Path:
    """Write ``fig`` as PNG or SVG (by suffix), atomically; parents are created.

    Returns:
        The path written.
    """
    import matplotlib

    path = check_output_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lower()[1:]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    metadata = {"Date": None} if fmt == "svg" else None  # reproducible SVG
    # SVG keeps its text as text (searchable, editable), with stable ids.
    rc = {"svg.fonttype": "none", "svg.hashsalt": "tr2"}
    try:
        with matplotlib.rc_context(rc):
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata, facecolor="white")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _percent(value: float | None) -> float:
    return math.nan if value is None else 100.0 * float(value)


def _run_labels(names: Sequence[str], labels: Sequence[str] | None, what: str) -> list[str]:
    if labels is None:
        return list(names)
    if len(labels) != len(names):
        raise ConfigError(f"got {len(labels)} label(s) for {len(names)} {what}")
    return [str(v) for v in labels]


# --------------------------------------------------------------------------
# Training curves


def read_run_log(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The per-epoch records of ``RUN_DIR/metrics.jsonl`` (written by ``tr2 train``),
    sorted by epoch; a re-run epoch keeps its last record.

    Raises:
        ConfigError: no such folder, no ``metrics.jsonl``, a line that is not a
            JSON object with an ``epoch``, or no record at all.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(f"{run}: no such run directory")
    log = run / "metrics.jsonl"
    if not log.is_file():
        raise ConfigError(f"{run}: no metrics.jsonl (not a `tr2 train` run directory?)")
    by_epoch: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(log.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{log}:{number}: not a JSON line ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            raise ConfigError(f"{log}:{number}: a record needs an integer 'epoch'")
        by_epoch[record["epoch"]] = record
    if not by_epoch:
        raise ConfigError(f"{log}: no epoch recorded yet")
    return [by_epoch[e] for e in sorted(by_epoch)]


def _metric_path(metrics: Any, path: str) -> float | None:
    node = metrics
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return None if node is None else float(node)


def _unique_run_names(paths: Sequence[Path]) -> list[str]:
    names = [p.resolve().name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.resolve().parent.name}/{p.resolve().name}" for p in paths]


def plot_training_curves(
    run_dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    val_metrics: Sequence[str] = DEFAULT_VAL_METRICS,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Training curves of one or more runs, overlaid (one colour per run).

    Panels: the total loss, each loss term that is non-zero in some run
    (``losses`` of the records), each validation metric of ``val_metrics``
    (percent; epochs without validation are skipped) and the learning rate
    (log scale).

    Args:
        run_dirs: ``tr2 train`` output folders.
        out: ``.png`` or ``.svg`` path.
        labels: legend names (default: the folder names); a run trained from
            random CLIP weights gets ``[random init]`` appended.
        val_metrics: ``setting/KEY`` paths into the validation metrics, e.g.
            ``'with/R@20'``, ``'top6/mR@50'``.

    Raises:
        ConfigError: a bad run folder (:func:`read_run_log`), a metric path
            found in no run, labels that do not match the runs, or a bad suffix.
    """
    out = check_output_path(out)
    if not run_dirs:
        raise ConfigError("plot curves: give at least one run directory")
    paths = [Path(p) for p in run_dirs]
    logs = [read_run_log(p) for p in paths]
    names = _run_labels(_unique_run_names(paths), labels, "run directories")
    names = [
        f"{n} [random init]" if any(r.get("random_init") for r in log) else n
        for n, log in zip(names, logs, strict=True)
    ]
    terms = sorted({t for log in logs for r in log for t in (r.get("losses") or {})})
    nonzero = [
        t for t in terms
        if any(abs(float((r.get("losses") or {}).get(t, 0.0))) > 0 for log in logs for r in log)
    ]  # fmt: skip
    always_zero = [t for t in terms if t not in nonzero]
    for m in val_metrics:
        if not any(_metric_path(r.get("val"), m) is not None for log in logs for r in log):
            if not any(r.get("val") for log in logs for r in log):
                continue  # no validation at all: the panels say so
            raise ConfigError(
                f"validation metric {m!r} is in no record (expected 'setting/KEY' such as "
                "'with/R@20')"
            )

    panels: list[tuple[str, str]] = [("loss", "total loss")]
    panels += [(f"losses/{t}", f"{t} loss") for t in nonzero]
    panels += [(f"val/{m}", f"validation {setting_label(m.split('/')[0])} {m.split('/', 1)[-1]}")
               for m in val_metrics]  # fmt: skip
    panels.append(("lr", "learning rate"))
    ncols = min(4, math.ceil(math.sqrt(len(panels))))
    nrows = math.ceil(len(panels) / ncols)
    fig = new_figure(3.6 * ncols, 2.9 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)

    for ax, (key, title) in zip(axes, panels, strict=False):
        drawn = False
        for i, log in enumerate(logs):
            epochs, values = [], []
            for r in log:
                if key.startswith("val/"):
                    v = _metric_path(r.get("val"), key[4:])
                    v = None if v is None else 100.0 * v
                else:
                    v = _metric_path(r, key)
                if v is not None and math.isfinite(v):
                    epochs.append(r["epoch"])
                    values.append(v)
            if epochs:
                drawn = True
                # Earlier runs drawn wider, so identical curves stay visible.
                wide = max(len(logs) - 1 - i, 0)
                ax.plot(epochs, values, marker=_RUN_MARKERS[i % len(_RUN_MARKERS)],
                        markersize=4 + 1.5 * wide, linewidth=1.4 + 1.2 * wide, alpha=0.9,
                        color=RUN_COLOURS[i % len(RUN_COLOURS)], label=names[i])  # fmt: skip
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        if key.startswith("val/"):
            ax.set_ylabel("%")
        elif key == "lr":
            ax.set_ylabel("lr")
            if drawn:
                ax.set_yscale("log")
        else:
            ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if not drawn:
            ax.text(0.5, 0.5, "no value recorded", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")  # fmt: skip

    handles, legend_labels = [], []
    for ax in axes[: len(panels)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in legend_labels:
                handles.append(h)
                legend_labels.append(lab)
    title = "Training curves"
    tasks = sorted({str(r.get("task")) for log in logs for r in log if r.get("task")})
    if tasks:
        title += f" ({', '.join(task_label(t) for t in tasks)})"
    if always_zero:
        title += f"; loss terms always 0: {', '.join(always_zero)}"
    fig.suptitle(title, fontsize=12)
    fig.legend(handles, legend_labels, loc="outside lower center",
               ncols=min(len(handles), 4), frameon=False)  # fmt: skip
    return save_figure(fig, out, dpi)


# --------------------------------------------------------------------------
# Recall per family and per predicate


def predicate_breakdown(result: EvaluationResult) -> dict[str, Any]:
    """Recall of each predicate: the terms whose mean over the predicates present
    in the ground truth is mR@K.

    Uses the evaluator's per-triplet ranks (:class:`EvaluationResult`) and its
    :func:`~tr2_core.evaluation.metrics.recall_tables`; no matching is redone.

    Returns:
        ``{predicate: {'triplets': n, setting: {'R@K': matched / n or None}}}``
        for the 26 predicates in AG order (``None`` where ``n == 0``).
    """
    from tr2_core.evaluation.metrics import recall_tables

    gt = result.gt
    out: dict[str, Any] = {name: {"triplets": 0} for name in PREDICATES}
    for setting in result.settings:
        tables = recall_tables(
            result.ranks[setting], gt.triplet_frame, gt.triplet_predicate, gt.num_frames,
            result.ks,
        )  # fmt: skip
        counts = tables.pred_hist.sum(axis=1)  # (26, L)
        total = counts.sum(axis=1)
        cols = [tables.ks_sorted.index(k) for k in tables.ks]
        hits = np.cumsum(counts, axis=1)[:, cols]  # (26, K)
        for p, name in enumerate(PREDICATES):
            n = int(total[p])
            out[name]["triplets"] = n
            out[name][setting] = {
                f"R@{k}": (float(hits[p, c] / n) if n else None) for c, k in enumerate(result.ks)
            }
    return out


def load_metrics(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A metrics JSON file of ``tr2 eval --json``.

    Raises:
        ConfigError: missing or unreadable file, or not a metrics object.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such metrics file")
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a JSON metrics file ({e})") from None
    if not isinstance(metrics, dict) or not any(
        isinstance(v, dict) and any(str(k).startswith("R@") for k in v) for v in metrics.values()
    ):
        raise ConfigError(f"{path}: no R@K metrics in it (expected `tr2 eval --json` output)")
    return metrics


def _is_per_frame_file(path: Path) -> bool:
    """True for a ``tr2 eval --per-frame`` file, False for a predictions file."""
    if not path.is_file():
        raise PredictionsError(f"{path}: no such predictions file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return "recall" in npz.files and "frame_video" in npz.files
    except (OSError, ValueError) as e:
        raise PredictionsError(f"{path}: not a readable .npz file ({e})") from None


def _load_split_gt(
    data_root: str | os.PathLike[str], split: str, filter_small_boxes: bool
) -> GroundTruth:
    from tr2_core.data.action_genome import load_split

    return load_split(
        data_root, split, filter_small_boxes=filter_small_boxes, show_progress=False
    ).gt


def _as_predictions(predictions: Predictions | str | os.PathLike[str]) -> tuple[Predictions, str]:
    from tr2_core.evaluation.predictions import load_predictions, validate_predictions

    if isinstance(predictions, Predictions):
        return validate_predictions(predictions), "predictions"
    return load_predictions(predictions), str(predictions)


def evaluate_for_plots(
    gt: GroundTruth,
    predictions: Predictions | str | os.PathLike[str],
    *,
    task: str = "predcls",
    settings: Sequence[str] = ("with", "semi", "no", "top6"),
    ks: Sequence[int] = (10, 20, 50, 100),
) -> dict[str, Any]:
    """Evaluate predictions and return the metrics dict of ``tr2 eval --json``
    plus ``'predicates'`` (:func:`predicate_breakdown`)."""
    from tr2_core.evaluation.recall import evaluate_detailed

    preds, source = _as_predictions(predictions)
    result = evaluate_detailed(
        gt, preds, task=task, settings=settings, ks=ks, validate=False, source=source
    )
    metrics = result.metrics()
    metrics["predicates"] = predicate_breakdown(result)
    return metrics


def _bar_label(ax: Any, bars: Any, values: Sequence[float], fontsize: float) -> None:
    ax.bar_label(
        bars,
        labels=["" if not math.isfinite(v) else f"{v:.0f}" for v in values],
        fontsize=fontsize,
        padding=1,
    )


def plot_recall(
    metrics: Sequence[Mapping[str, Any] | Predictions | str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    setting: str = "with",
    k: int = 20,
    data_root: str | os.PathLike[str] | None = None,
    gt: GroundTruth | None = None,
    task: str = "predcls",
    split: str = "test",
    filter_small_boxes: bool = False,
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Recall per predicate family and per predicate, several runs side by side.

    Top panel: R@K (solid) and mR@K (hatched) overall and per family. Bottom
    panel (when a run carries ``'predicates'``, see :func:`evaluate_for_plots`):
    recall of each predicate, grouped by family, with each run's mR@K as a
    dashed line; predicates absent from the ground truth are marked ``n/a``.

    Args:
        metrics: per run a metrics dict, a ``tr2 eval --json`` file, or
            predictions (:class:`Predictions` or ``.npz``, evaluated here on
            ``gt`` or the ``split`` of ``data_root`` with ``task``; only these
            give the per-predicate panel).
        out: ``.png`` or ``.svg`` path.
        labels: run names (default: the file stems, or ``run 1``...).
        setting: ``'with'``, ``'semi'``, ``'no'`` or ``'top<k>'``.
        k: the K of R@K.

    Raises:
        ConfigError: bad file, predictions without ground truth, or a run
            without ``setting`` / ``R@k``.
        PredictionsError, DatasetError: bad predictions or annotations.
    """
    out = check_output_path(out)
    if not metrics:
        raise ConfigError("plot recall: give at least one metrics file")
    runs: list[dict[str, Any]] = []
    default_names = []
    for i, m in enumerate(metrics):
        is_predictions = isinstance(m, Predictions) or (
            not isinstance(m, Mapping) and Path(m).suffix.lower() == ".npz"
        )
        if is_predictions:
            if gt is None:
                if data_root is None:
                    raise ConfigError(f"{m}: predictions need the ground truth (--data AG_ROOT)")
                gt = _load_split_gt(data_root, split, filter_small_boxes)
            runs.append(evaluate_for_plots(gt, m, task=task))  # type: ignore[arg-type]
        elif isinstance(m, Mapping):
            runs.append(dict(m))
        else:
            runs.append(load_metrics(m))
        default_names.append(
            f"run {i + 1}" if isinstance(m, (Mapping, Predictions)) else Path(m).stem
        )
    names = _run_labels(default_names, labels, "runs")
    key_r, key_m = f"R@{k}", f"mR@{k}"
    for name, run in zip(names, runs, strict=True):
        entry = run.get(setting)
        if not isinstance(entry, Mapping) or key_r not in entry:
            have = [s for s, v in run.items() if isinstance(v, Mapping) and key_r in v]
            raise ConfigError(
                f"{name}: no {setting}/{key_r} in the metrics (settings with {key_r}: "
                f"{', '.join(have) or 'none'})"
            )

    with_predicates = [i for i, r in enumerate(runs) if isinstance(r.get("predicates"), Mapping)]
    nrows = 2 if with_predicates else 1
    n = len(runs)
    fig = new_figure(max(9.0, 5.0 + 0.9 * n), 4.2 + (5.0 if nrows == 2 else 0.0))
    if nrows == 2:
        ax_fam, ax_pred = fig.subplots(2, 1, height_ratios=(1.0, 1.25))
    else:
        ax_fam, ax_pred = fig.subplots(1, 1), None

    # ---- families
    groups = ["all"] + [f.name for f in FAMILIES]
    x = np.arange(len(groups), dtype=np.float64)
    width = 0.8 / (2 * n)
    small = 7 if n <= 3 else 6
    for i, run in enumerate(runs):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        fams = run.get("families") or {}
        r_vals, m_vals = [], []
        for g in groups:
            entry = run.get(setting) if g == "all" else (fams.get(g) or {}).get(setting)
            entry = entry or {}
            r_vals.append(_percent(entry.get(key_r)))
            m_vals.append(_percent(entry.get(key_m)))
        offset = (2 * i - n) * width + width / 2
        b1 = ax_fam.bar(x + offset, r_vals, width, color=colour, label=f"{names[i]} {key_r}")
        b2 = ax_fam.bar(x + offset + width, m_vals, width, color=colour, alpha=0.45,
                        hatch="//", edgecolor=colour, label=f"{names[i]} {key_m}")  # fmt: skip
        _bar_label(ax_fam, b1, r_vals, small)
        _bar_label(ax_fam, b2, m_vals, small)
    counts = []
    for g in groups:
        if g == "all":
            t = runs[0].get("triplets")
        else:
            t = ((runs[0].get("families") or {}).get(g) or {}).get("triplets")
        counts.append("" if t is None else f"\n{int(t):,} GT triplets")
    ax_fam.set_xticks(x, [f"{g}{c}" for g, c in zip(groups, counts, strict=True)])
    for tick, g in zip(ax_fam.get_xticklabels(), groups, strict=True):
        tick.set_color(FAMILY_COLOURS.get(g, "black"))
    ax_fam.set_ylim(0, 109)
    ax_fam.set_ylabel("recall (%)")
    ax_fam.set_title(f"{key_r} (solid) and {key_m} (hatched) per predicate family", fontsize=10)
    ax_fam.grid(True, axis="y", alpha=0.3)
    ax_fam.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)

    # ---- predicates
    if ax_pred is not None:
        xp = np.arange(NUM_PREDICATES, dtype=np.float64)
        m = len(with_predicates)
        pw = 0.8 / m
        for f_index, fam in enumerate(FAMILIES):
            ax_pred.axvspan(fam.start - 0.5, fam.stop - 0.5, color=FAMILY_COLOURS[fam.name],
                            alpha=0.08 if f_index % 2 == 0 else 0.14, linewidth=0)  # fmt: skip
            ax_pred.text((fam.start + fam.stop - 1) / 2, 1.01, fam.name, ha="center",
                         va="bottom", transform=ax_pred.get_xaxis_transform(),
                         color=FAMILY_COLOURS[fam.name], fontsize=9, fontweight="bold")  # fmt: skip
        absent = np.ones(NUM_PREDICATES, dtype=bool)
        for j, i in enumerate(with_predicates):
            run = runs[i]
            colour = RUN_COLOURS[i % len(RUN_COLOURS)]
            preds = run["predicates"]
            vals = []
            for p, pname in enumerate(PREDICATES):
                entry = preds.get(pname) or {}
                if entry.get("triplets"):
                    absent[p] = False
                vals.append(_percent((entry.get(setting) or {}).get(key_r)))
            mean_recall = _percent((run.get(setting) or {}).get(key_m))
            offset = (j - (m - 1) / 2) * pw
            ax_pred.bar(xp + offset, vals, pw, color=colour,
                        label=f"{names[i]} ({key_m} = {mean_recall:.1f})")  # fmt: skip
            if math.isfinite(mean_recall):
                ax_pred.axhline(mean_recall, color=colour, linestyle="--", linewidth=1.0)
        for p in np.flatnonzero(absent):
            ax_pred.text(p, 2, "n/a", ha="center", va="bottom", fontsize=7, color="0.45",
                         rotation=90)  # fmt: skip
        ax_pred.set_xticks(xp, [readable(p) for p in PREDICATES], rotation=55, ha="right",
                           rotation_mode="anchor", fontsize=8)  # fmt: skip
        for tick, p in zip(ax_pred.get_xticklabels(), range(NUM_PREDICATES), strict=True):
            fam = next(f for f in FAMILIES if f.start <= p < f.stop)
            tick.set_color(FAMILY_COLOURS[fam.name] if not absent[p] else "0.55")
        ax_pred.set_xlim(-0.6, NUM_PREDICATES - 0.4)
        ax_pred.set_ylim(0, 105)
        ax_pred.set_ylabel(f"recall of the predicate at K = {k} (%)")
        ax_pred.set_title(
            f"Per predicate (mR view): matched / GT triplets of each predicate; dashed: {key_m}",
            fontsize=10,
            pad=16,
        )
        ax_pred.grid(True, axis="y", alpha=0.3)
        ax_pred.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        missing = [names[i] for i in range(n) if i not in with_predicates]
        if missing:
            ax_pred.text(
                0.0, -0.42, f"no per-predicate recall in: {', '.join(missing)} (pass a "
                "predictions .npz with --data instead of its metrics JSON)",
                transform=ax_pred.transAxes, fontsize=8, color="0.35",
            )  # fmt: skip
    task = task_label(runs[0].get("task"))
    where = f"{task}, {setting_label(setting)}" if task else setting_label(setting)
    fig.suptitle(title or f"Recall per family and predicate ({where}, K = {k})", fontsize=12)
    return save_figure(fig, out, dpi)


# --------------------------------------------------------------------------
# The paper's Fig. 5


def _per_frame_recall(
    source: Predictions | str | os.PathLike[str],
    gt: GroundTruth | None,
    *,
    task: str,
    setting: str,
    k: int,
    what: str,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(F,) R@k per GT frame, and the frame keys when read from a per-frame file."""
    from tr2_core.evaluation.recall import evaluate_detailed

    if not isinstance(source, Predictions) and _is_per_frame_file(Path(source)):
        from tr2_core.evaluation.report import load_per_frame

        run = load_per_frame(source)
        settings = [str(s) for s in run["settings"].tolist()]
        ks = [int(v) for v in run["ks"].tolist()]
        if setting not in settings or k not in ks:
            raise ConfigError(
                f"{source}: per-frame file has settings {settings} and ks {ks}, not {setting}/R@{k}"
            )
        return run["recall"][settings.index(setting), :, ks.index(k)], run["frame_keys"]
    if gt is None:
        raise ConfigError(f"{what} {source}: a predictions file needs --data AG_ROOT")
    preds, name = _as_predictions(source)
    result = evaluate_detailed(
        gt, preds, task=task, settings=[setting], ks=[k], validate=False, source=name
    )
    return result.frame_recall(result.settings[0])[:, 0], None


def fig5_curve(
    run_a: Predictions | str | os.PathLike[str],
    run_b: Predictions | str | os.PathLike[str],
    *,
    data_root: str | os.PathLike[str] | None = None,
    gt: GroundTruth | None = None,
    task: str = "predcls",
    setting: str = "with",
    k: int = 20,
    bins: int = 10,
    split: str = "test",
    filter_small_boxes: bool = False,
    merge_zero_change: bool = True,
) -> dict[str, np.ndarray]:
    """Fig. 5 data: gain of run A over run B in R@k vs. the proportion of videos
    sorted by change degree (ascending: the most-changing videos last).

    Each run is a predictions ``.npz`` / :class:`Predictions` (evaluated here on
    ``gt`` or the ``split`` of ``data_root``) or a ``tr2 eval --per-frame``
    file. The ground truth (for the change degrees) is needed unless both are
    per-frame files.

    Returns:
        :func:`~tr2_core.evaluation.breakdown.change_gain_curve`'s arrays
        (fractions; ``gain = R_A - R_B``).

    Raises:
        ConfigError / DatasetError / PredictionsError: bad inputs, or runs on
            different frames.
    """
    from tr2_core.evaluation.breakdown import change_gain_curve, relation_changes
    from tr2_core.evaluation.recall import parse_settings

    setting = parse_settings([setting])[0]
    if k < 1 or bins < 1:
        raise ConfigError(f"need k >= 1 and bins >= 1, got k={k}, bins={bins}")
    if gt is None and data_root is not None:
        gt = _load_split_gt(data_root, split, filter_small_boxes)
    rec_a, keys_a = _per_frame_recall(run_a, gt, task=task, setting=setting, k=k, what="--a")
    rec_b, keys_b = _per_frame_recall(run_b, gt, task=task, setting=setting, k=k, what="--b")
    if gt is not None:
        gt_keys = np.asarray(gt.frame_keys)
        for keys, name in ((keys_a, run_a), (keys_b, run_b)):
            if keys is not None and not np.array_equal(np.asarray(keys), gt_keys):
                raise ConfigError(
                    f"{name}: per-frame file is not on the frames of the ground truth "
                    f"({len(keys)} vs {len(gt_keys)} frames; other split or small-box filter?)"
                )
        changes = relation_changes(gt)
        frame_video, video_change = np.asarray(gt.frame_video), changes.video_change
    else:  # both per-frame files
        from tr2_core.evaluation.report import load_per_frame

        if keys_a is None or keys_b is None or not np.array_equal(keys_a, keys_b):
            raise ConfigError(f"{run_a} and {run_b} are not on the same frames")
        first = load_per_frame(run_a)
        frame_video, video_change = first["frame_video"], first["video_change"]
    if rec_a.shape != rec_b.shape:
        raise ConfigError("the two runs are not on the same frames")
    return change_gain_curve(
        rec_b, rec_a, frame_video, video_change, bins=bins, merge_zero_change=merge_zero_change
    )


def plot_change_gain(
    curve: Mapping[str, np.ndarray],
    out: str | os.PathLike[str],
    *,
    label_a: str = "A",
    label_b: str = "B",
    k: int = 20,
    setting: str = "with",
    task: str = "predcls",
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw a :func:`fig5_curve` in the paper's layout: x = proportion of videos
    sorted by change degree (ascending), bars = R@K gain of the videos of each
    group (percentage points; the leading change-0 groups merged into one
    bar), line = gain over all videos up to that proportion; the top axis gives
    each group's mean change degree."""
    out = check_output_path(out)
    proportion = 100.0 * np.asarray(curve["proportion"], dtype=np.float64)
    gain = 100.0 * np.asarray(curve["gain"], dtype=np.float64)
    cumulative = 100.0 * np.asarray(curve["gain_cumulative"], dtype=np.float64)
    degree = np.asarray(curve["change_degree"], dtype=np.float64)
    videos = np.asarray(curve["videos"])
    frames = np.asarray(curve["frames"])
    left = np.r_[0.0, proportion[:-1]]
    centre = (left + proportion) / 2
    widths = proportion - left

    fig = new_figure(8.5, 5.0)
    ax = fig.subplots()
    colours = ["#2a9d8f" if (math.isfinite(g) and g >= 0) else "#e76f51" for g in gain]
    bars = ax.bar(centre, np.nan_to_num(gain), widths * 0.92, color=colours, edgecolor="0.25",
                  linewidth=0.6, label="gain on the group's videos")  # fmt: skip
    finite = np.concatenate([gain[np.isfinite(gain)], cumulative[np.isfinite(cumulative)], [0.0]])
    span = max(float(finite.max() - finite.min()), 1.0)
    # Values inside tall bars (clear of the cumulative line), above short ones.
    tall = np.isfinite(gain) & (np.abs(gain) > 0.15 * span)
    text = [f"{g:+.1f}" if math.isfinite(g) else "no frames" for g in gain]
    ax.bar_label(bars, labels=[t if big else "" for t, big in zip(text, tall, strict=True)],
                 label_type="center", fontsize=8, color="white", fontweight="bold")  # fmt: skip
    ax.bar_label(bars, labels=[t if not big else "" for t, big in zip(text, tall, strict=True)],
                 fontsize=8, padding=2)  # fmt: skip
    ax.plot(proportion, cumulative, color="0.15", marker="o", markersize=4, linewidth=1.4,
            clip_on=False, label="gain on all videos up to the proportion")  # fmt: skip
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    ax.set_xlim(0, 100)
    edges = np.r_[0.0, proportion]
    ax.set_xticks(edges, [f"{p:.0f}%" for p in edges], fontsize=8)
    ax.set_xlabel("proportion of videos, sorted by relation-change degree (most-changing last)")
    ax.set_ylabel(f"gain in R@{k} (percentage points)")
    ax.set_ylim(float(finite.min()) - 0.18 * span, float(finite.max()) + 0.18 * span)
    ax.grid(True, axis="y", alpha=0.3)
    top = ax.secondary_xaxis("top")
    merged = videos.shape[0] > 1 and degree[0] == 0 and widths[0] > widths[-1] + 1e-9
    top.set_xticks(
        centre,
        [f"{d:.2f}" + (" (merged)" if merged and i == 0 else "") for i, d in enumerate(degree)],
        fontsize=7,
    )
    top.set_xlabel("mean change degree of the group's videos", fontsize=8)
    handles, names = ax.get_legend_handles_labels()
    if cumulative.shape[0]:
        from matplotlib.patches import Patch

        handles.append(Patch(visible=False))
        names.append(
            f"{int(videos.sum()):,} videos, {int(frames.sum()):,} frames; "
            f"overall gain {cumulative[-1]:+.2f}"
        )
    fig.legend(handles, names, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    ax.set_title(
        f"Gain of {label_a} over {label_b} in R@{k} ({task_label(task)}, "
        f"{setting_label(setting)}) vs. relation change",
        fontsize=11,
    )
    return save_figure(fig, out, dpi)


def plot_fig5(
    run_a: Predictions | str | os.PathLike[str],
    run_b: Predictions | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    data_root: str | os.PathLike[str] | None = None,
    label_a: str = "A",
    label_b: str = "B",
    task: str = "predcls",
    setting: str = "with",
    k: int = 20,
    bins: int = 10,
    split: str = "test",
    filter_small_boxes: bool = False,
    curve_json: str | os.PathLike[str] | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """The paper's Fig. 5 for any two runs (:func:`fig5_curve` + :func:`plot_change_gain`).

    ``curve_json``: also write the curve's arrays (fractions) as JSON.
    """
    out = check_output_path(out)
    curve = fig5_curve(
        run_a, run_b, data_root=data_root, task=task, setting=setting, k=k, bins=bins,
        split=split, filter_small_boxes=filter_small_boxes,
    )  # fmt: skip
    if curve_json is not None:
        path = Path(curve_json)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            name: [None if not math.isfinite(v) else v for v in np.asarray(a, float).tolist()]
            for name, a in curve.items()
        }
        data.update(label_a=label_a, label_b=label_b, k=k, setting=setting, task=task)
        path.write_text(json.dumps(data, indent=1) + "\n")
    return plot_change_gain(
        curve, out, label_a=label_a, label_b=label_b, k=k, setting=setting, task=task, dpi=dpi
    )
