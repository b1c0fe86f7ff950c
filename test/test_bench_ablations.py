"""bench/ablations.py: sizes, commands and the report (no training here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ablations():
    spec = importlib.util.spec_from_file_location("ablations", ROOT / "bench" / "ablations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_default_study_has_the_minimum_size(ablations, tmp_path: Path) -> None:
    from tr2_core.cli import main

    args = ablations.parse_args([])
    assert args.seeds == [0, 1, 2] and args.epochs == 8 and not args.last
    data = tmp_path / "synthetic_ag"
    code = main(["make-synthetic", str(data), "--videos", str(args.videos), "--temporal",
                 "--frames", "6", "12", "--val-fraction", str(args.val_fraction), "--seed", "0",
                 "--no-images", "--quiet"])  # fmt: skip
    assert code == 0
    sizes = ablations.split_sizes(data)
    assert sizes["trained"] >= ablations.MIN_TRAINED and sizes["test"] >= ablations.MIN_TEST
    assert sizes["validation"] > 0
    ablations.check_sizes(sizes, small=False)  # no refusal


def test_small_sizes_are_refused_without_small(ablations) -> None:
    sizes = {"train": 374, "validation": 75, "trained": 299, "test": 125, "test_frames": 900}
    with pytest.raises(SystemExit, match="--small"):
        ablations.check_sizes(sizes, small=False)
    with pytest.raises(SystemExit, match="--small"):
        ablations.check_sizes({**sizes, "trained": 300, "test": 99}, small=False)
    ablations.check_sizes(sizes, small=True)


def test_train_and_test_commands(ablations, tmp_path: Path, monkeypatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(ablations, "_tr2", calls.append)
    args = ablations.parse_args(["--out", str(tmp_path), "--threads", "1"])
    frozen = ["--detector-weights", "d.pt", "--clip-weights", "c.pt"]
    ablations.run_one(args, tmp_path / "data", frozen, "sttran-like", ("guidance.mode=none",), 2)
    train, test = calls
    assert train[0] == "train" and {"--detector-weights", "--clip-weights"} <= set(train)
    assert train[train.index("--epochs") + 1] == "8"
    # KEY=VALUE overrides after every option (argparse's positional list)
    first = next(i for i, a in enumerate(train) if "=" in a)
    assert all("=" in a for a in train[first:])
    assert train[first:] == [
        "seed=2",
        "model.representation.geometry=true",
        "model.guidance.mode=none",
    ]
    assert test[test.index("--checkpoint") + 1].endswith("sttran-like-seed2/best.pt")
    no_geometry = ablations.parse_args(["--no-geometry", "--last"])
    assert ablations.base_overrides(no_geometry) == []


def _fake_recalls(ablations, seeds: int = 2) -> tuple[dict, np.ndarray]:
    """Per key and seed ``{'all', 'changed'}`` (F, len(KS)) recalls on 30 frames of 6
    videos; every key a little better than the one before."""
    rng = np.random.default_rng(0)
    frame_video = np.repeat(np.arange(6), 5)
    counted = rng.uniform(size=30) > 0.2
    recalls = {}
    for i, (key, _, _) in enumerate(ablations.ABLATIONS):
        runs = []
        for _ in range(seeds):
            value = np.clip(rng.uniform(0.2, 0.6, (30, len(ablations.KS))) + 0.03 * i, 0, 1)
            value[~counted] = np.nan
            changed = value.copy()
            changed[::3] = np.nan
            runs.append({"all": value, "changed": changed})
        recalls[key] = runs
    return recalls, frame_video


def test_summary_has_every_row_and_difference(ablations) -> None:
    recalls, frame_video = _fake_recalls(ablations)
    numbers = ablations.summarise(recalls, frame_video, resamples=100)
    assert set(numbers["rows"]) == {key for key, _, _ in ablations.ABLATIONS}
    expected = sum(len(rows) - 1 for _, _, rows in ablations.TABLES)
    assert len(numbers["differences"]) == expected == 9
    for diff in numbers["differences"]:
        row, ref = numbers["rows"][diff["row"]], numbers["rows"][diff["reference"]]
        for k in ablations.KS:
            cell = diff[f"R@{k}"]
            assert cell["estimate"] == pytest.approx(
                row[f"R@{k}"]["estimate"] - ref[f"R@{k}"]["estimate"]
            )
            assert cell["low"] <= cell["estimate"] <= cell["high"]
    tr2 = numbers["rows"]["tr2"]["R@10"]
    seeds = [100 * np.nanmean(r["all"][:, 0]) for r in recalls["tr2"]]
    assert tr2["per_seed"] == pytest.approx(seeds)
    assert tr2["estimate"] == pytest.approx(np.mean(seeds))  # same frames in every seed
    assert set(numbers["changed"]["differences"]) == {"fusion-none", "sttran-like"}


def test_report_prints_tables_intervals_and_paper(ablations) -> None:
    recalls, frame_video = _fake_recalls(ablations)
    numbers = ablations.summarise(recalls, frame_video, resamples=100)
    sizes = {"test": 6, "test_frames": 30}
    text = ablations.report(numbers, sizes, [0, 1])
    for title, _, rows in ablations.TABLES:
        assert title in text
        for _, label in rows:
            assert label in text
    assert '"changed" time-variant group' in text
    assert "70.9 / 73.8" in text  # the paper's TR² column
    tr2 = numbers["rows"]["tr2"]["R@10"]
    assert f"{tr2['estimate']:.1f} [{tr2['low']:.1f}, {tr2['high']:.1f}]" in text
    line = next(x for x in text.splitlines() if x.startswith("STTran-like"))
    diff = next(d for d in numbers["differences"] if d["row"] == "sttran-like")["R@10"]
    assert f"{diff['estimate']:+.1f} [{diff['low']:+.1f}, {diff['high']:+.1f}]" in line
    assert text.startswith("PredCls") and "SMOKE RUN" in text  # 6 test videos
    full = {"trained": 318, "test": 133, "test_frames": 1147}
    assert "SMOKE RUN" not in ablations.report(numbers, full, [0, 1])
