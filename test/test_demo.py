"""`tr2 demo` end to end at a tiny budget: every promised output exists and is sane."""

import json

from tr2_core.cli import main


def test_demo_writes_everything_it_promises(tmp_path, capsys, monkeypatch, one_torch_thread):
    monkeypatch.setenv("TR2_CACHE_DIR", str(tmp_path / "cache"))  # fresh caches
    out = tmp_path / "demo"
    # tiny pretraining budget: the weight files are built, cached and loaded through
    # --detector-weights / --clip-weights like real weights
    argv = ["demo", str(out), "--videos", "12", "--epochs", "1", "--window", "2",
            "--pretrain-steps", "2", "2", "--world-videos", "6", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC data and synthetic-world-trained" in printed
    summary = json.loads((out / "demo.json").read_text())
    assert summary["random_init"] is False and summary["synthetic_data"] is True
    weights = summary["frozen_weights"]
    assert str(tmp_path / "cache" / "pretrained") in weights["detector"]
    assert "--detector-weights" in printed and "--clip-weights" in printed
    for key in ("model_metrics", "baseline_metrics"):
        metrics = json.loads(open(summary[key]).read())
        assert 0.0 <= metrics["with"]["R@20"] <= 1.0 and metrics["frames"] > 0
    lines = (out / "stream" / "scene_graphs.jsonl").read_text().splitlines()
    assert lines and all("entities" in json.loads(line) for line in lines)
    assert len(summary["plots"]) == 6
    for path in [*summary["plots"], summary["stream"]["strip"]]:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
    table = (out / "table.txt").read_text()
    assert "frequency baseline" in table and "95 % bootstrap interval" in table
    # the printed gain is the metrics files' difference, inside its own interval
    model, base = (
        json.loads(open(summary[k]).read()) for k in ("model_metrics", "baseline_metrics")
    )
    gain = summary["gain_over_baseline"]["all"]
    expected = 100 * (model["with"]["R@10"] - base["with"]["R@10"])
    assert abs(gain["estimate"] - expected) < 1e-6
    assert gain["low"] <= gain["estimate"] <= gain["high"]
    # A second run refuses to overwrite without --force, and --force works on its own folder.
    assert main(["demo", str(out), "--videos", "12", "--epochs", "1"]) == 2
