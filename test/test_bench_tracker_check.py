"""bench/tracker_check.py: breaks of the engine's tracker between key frames."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tr2_core.testing.eval_fixtures import ground_truth_from_frames
from tr2_core.vocab import PERSON

ROOT = Path(__file__).resolve().parents[1]
CUP = 11


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "tracker_check", ROOT / "bench" / "tracker_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _frame(key: str, boxes: list, labels: list) -> dict:
    return {"key": key, "boxes": boxes, "labels": labels}


def test_counts_a_jump_as_a_break_and_a_small_move_not(bench):
    # Video A: the person stays put; the cup jumps across the frame between frames 1 and 2.
    # Video B: two cups in frame 1 (ambiguous: not counted), one in frames 0 and 2.
    person = [10, 10, 40, 100]
    gt = ground_truth_from_frames([
        _frame("A.mp4/1.png", [person, [50, 50, 60, 60]], [PERSON, CUP]),
        _frame("A.mp4/2.png", [person, [51, 50, 61, 60]], [PERSON, CUP]),
        _frame("A.mp4/3.png", [[12, 10, 42, 100], [200, 50, 210, 60]], [PERSON, CUP]),
        _frame("B.mp4/1.png", [person, [50, 50, 60, 60]], [PERSON, CUP]),
        _frame("B.mp4/2.png", [person, [50, 50, 60, 60], [90, 50, 100, 60]], [PERSON, CUP, CUP]),
        _frame("B.mp4/3.png", [person, [50, 50, 60, 60]], [PERSON, CUP]),
    ])  # fmt: skip
    result = bench.track_breaks(gt)
    # A: person 2 + cup 2 continuations, the cup's jump broken; B: person 2, cups none
    assert result["continuations"] == 6
    assert result["breaks"] == 1
    assert result["person_continuations"] == 4 and result["person_breaks"] == 0
    assert result["break_rate"] == round(1 / 6, 4)
    # a threshold no IoU reaches breaks every continuation
    assert bench.track_breaks(gt, iou_threshold=1.01)["breaks"] == 6


def test_main_prints_json_for_a_written_dataset(bench, tmp_path, capsys):
    from tr2_core.cli import main as tr2_main

    data = tmp_path / "ag"
    assert tr2_main(["make-synthetic", str(data), "--videos", "4", "--seed", "0",
                     "--frames", "3", "4", "--size", "96x64", "--quiet"]) == 0  # fmt: skip
    assert bench.main(["--data", str(data)]) == 0
    import json

    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["videos"] >= 1 and 0 <= out["breaks"] <= out["continuations"]
