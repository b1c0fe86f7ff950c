"""``tr2 plot``: every picture is written as PNG and SVG with its labels, the
numbers behind the pictures agree with the evaluator, and bad inputs fail with
a Tr2Error that names the culprit."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tr2_core.cli import SUBCOMMAND_MODULES
from tr2_core.cli import plot as plot_cli
from tr2_core.cli import plot_frames as frames
from tr2_core.data.action_genome import load_split
from tr2_core.data.synthetic import SyntheticConfig, make_synthetic
from tr2_core.errors import ConfigError, DatasetError, PredictionsError, Tr2Error
from tr2_core.evaluation.breakdown import predicate_breakdown
from tr2_core.evaluation.changes import relation_changes, triplet_object_class
from tr2_core.evaluation.predictions import load_predictions, save_predictions
from tr2_core.evaluation.recall import evaluate, evaluate_detailed
from tr2_core.evaluation.report import compare_per_frame, save_per_frame
from tr2_core.frequency_baseline import fit_frequency, predict_frequency
from tr2_core.types import SceneGraphResult
from tr2_core.viz import run_plots
from tr2_core.viz.curves import TrainingLog, draw_training_curves
from tr2_core.viz.recall_bars import RunMetrics, draw_recall
from tr2_core.viz.scene_graph_figure import draw_scene_graph_result, frame_pairs_from_predictions
from tr2_core.vocab import CONTACTING, OBJECT_CLASSES, PERSON, PREDICATES, SPATIAL

CFG = SyntheticConfig(
    videos=8,
    min_frames=5,
    max_frames=9,
    width=160,
    height=90,
    test_fraction=0.5,
    seed=11,
    static_fraction=0.25,
    no_person_rate=0.0,
    short_video_rate=0.0,
    small_box_rate=0.0,
    portrait_rate=0.0,
)


@dataclasses.dataclass
class World:
    root: Path
    test: object  # ActionGenomeSplit
    freq: Path  # frequency baseline predictions
    mixed: Path  # predictions leaning on the GT labels (better than freq)
    metrics_json: Path
    runs: list[Path]
    tmp: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("plots")
    root = tmp / "ag"
    make_synthetic(root, CFG, progress=False)
    train = load_split(root, "train", show_progress=False, cache=False)
    test = load_split(root, "test", show_progress=False, cache=False)
    freq = predict_frequency(fit_frequency(train), test)
    rng = np.random.default_rng(0)
    attention = np.zeros_like(freq.attention)
    has = test.pair_attention >= 0
    attention[np.flatnonzero(has), test.pair_attention[has]] = 1.0

    def mix(labels: np.ndarray, base: np.ndarray) -> np.ndarray:
        v = 0.6 * labels + 0.4 * base + rng.normal(0.0, 0.1, base.shape)
        return np.clip(v, 0.0, 1.0).astype(np.float32)

    att = mix(attention, freq.attention) + 1e-3
    mixed = dataclasses.replace(
        freq,
        attention=(att / att.sum(axis=1, keepdims=True)).astype(np.float32),
        spatial=mix(test.pair_spatial, freq.spatial),
        contacting=mix(test.pair_contacting, freq.contacting),
    )
    save_predictions(tmp / "freq.npz", freq)
    save_predictions(tmp / "mixed.npz", mixed)
    metrics = evaluate(test.gt, freq, task="predcls")
    (tmp / "freq.json").write_text(json.dumps(metrics))

    # Two `tr2 train`-style run folders (the loop's record layout), validation
    # every second epoch with the evaluator's own metrics dict.
    val = evaluate(test.gt, mixed, task="predcls", breakdowns=False)
    runs = []
    for r, name in enumerate(("run_a", "run_b")):
        run = tmp / name
        run.mkdir()
        lines = []
        for epoch in range(1, 6):
            losses = {"attention": 1.0 / epoch, "contacting": 0.8 / epoch, "guidance": 0.1,
                      "object": 0.0, "spatial": (0.5 + r) / epoch}  # fmt: skip
            record = {
                "epoch": epoch, "lr": 1e-4 / (1 + epoch // 3), "loss": sum(losses.values()),
                "losses": losses, "train_frames": 46, "train_time_s": 2.0,
                "train_frames_per_s": 23.0, "val": val if epoch % 2 == 0 else None,
                "plateau_metric": "with/R@20", "best_metric": 0.5, "task": "predcls",
                "random_init": r == 1, "world_size": 1, "feature_cache": True,
            }  # fmt: skip
            lines.append(json.dumps(record))
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        runs.append(run)
    return World(root, test, tmp / "freq.npz", tmp / "mixed.npz", tmp / "freq.json", runs, tmp)


def _check_png(path: Path, min_size: tuple[int, int] = (600, 400)) -> None:
    assert path.is_file() and path.stat().st_size > 5000
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] >= min_size[0] and im.size[1] >= min_size[1]
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 5  # not a blank canvas


def _svg_text(path: Path) -> str:
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    return text


# --------------------------------------------------------------------------
# Output paths


def test_output_suffix_must_be_png_or_svg(world: World):
    with pytest.raises(ConfigError, match=r"curves\.jpg.*\.png or \.svg"):
        run_plots.plot_training_curves(world.runs, world.tmp / "curves.jpg")
    assert not (world.tmp / "curves.jpg").exists()


# --------------------------------------------------------------------------
# Training curves


def test_curves_png_and_svg(world: World):
    png = run_plots.plot_training_curves(world.runs, world.tmp / "c" / "curves.png")
    _check_png(png, (1000, 700))
    svg = _svg_text(
        run_plots.plot_training_curves(world.runs, world.tmp / "curves.svg", labels=["TR2", "base"])
    )
    for text in ("TR2", "base [random init]", "validation With R@20", "spatial loss",
                 "learning rate", "loss terms always 0: object"):  # fmt: skip
        assert text in svg, text


def test_read_run_log_keeps_last_record_of_a_rerun_epoch(world: World, tmp_path: Path):
    run = tmp_path / "rerun"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"epoch": 2, "loss": 5.0}\n{"epoch": 1, "loss": 9.0}\n\n{"epoch": 2, "loss": 4.0}\n'
    )
    log = run_plots.read_run_log(run)
    assert [r["epoch"] for r in log] == [1, 2] and log[1]["loss"] == 4.0


def test_curves_bad_inputs(world: World, tmp_path: Path):
    with pytest.raises(ConfigError, match="no such run directory"):
        run_plots.plot_training_curves([tmp_path / "missing"], tmp_path / "c.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no metrics.jsonl"):
        run_plots.plot_training_curves([empty], tmp_path / "c.png")
    (empty / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(ConfigError, match=r"metrics.jsonl:2: not a JSON line"):
        run_plots.plot_training_curves([empty], tmp_path / "c.png")
    with pytest.raises(ConfigError, match="'with/R@7' is in no record"):
        run_plots.plot_training_curves(world.runs, tmp_path / "c.png", val_metrics=["with/R@7"])
    with pytest.raises(ConfigError, match="1 label"):
        run_plots.plot_training_curves(world.runs, tmp_path / "c.png", labels=["one"])
    assert not (tmp_path / "c.png").exists()


def test_curves_are_drawn_from_records_alone(world: World, tmp_path: Path):
    """The drawing takes computed data: records in memory, no run folder."""
    records = run_plots.read_run_log(world.runs[0])
    svg = _svg_text(draw_training_curves([TrainingLog("in memory", records)], tmp_path / "c.svg"))
    assert "in memory" in svg and "validation With R@20" in svg
    assert not list(tmp_path.glob("*.jsonl"))


# --------------------------------------------------------------------------
# Recall per family and per predicate


def test_predicate_recall_averages_to_mean_recall(world: World):
    result = evaluate_detailed(world.test.gt, load_predictions(world.mixed), task="predcls")
    metrics = result.metrics(breakdowns=False)
    per = predicate_breakdown(result)
    counts = np.bincount(world.test.gt.triplet_predicate, minlength=len(PREDICATES))
    assert [per[p]["triplets"] for p in PREDICATES] == counts.tolist()
    for setting in result.settings:
        for k in result.ks:
            values = [per[p][setting][f"R@{k}"] for p in PREDICATES if per[p]["triplets"]]
            assert np.mean(values) == pytest.approx(metrics[setting][f"mR@{k}"])
            absent = [per[p][setting][f"R@{k}"] for p in PREDICATES if not per[p]["triplets"]]
            assert all(v is None for v in absent)
    # Recall is monotone in K.
    assert per["holding"]["no"]["R@10"] <= per["holding"]["no"]["R@50"]


def test_recall_png_and_svg(world: World):
    png = run_plots.plot_recall(
        [world.mixed, world.metrics_json], world.tmp / "recall.png", data_root=world.root,
        labels=["mixed", "frequency"],
    )  # fmt: skip
    _check_png(png, (1000, 900))
    svg = _svg_text(
        run_plots.plot_recall(
            [world.mixed, world.metrics_json],
            world.tmp / "recall.svg",
            data_root=world.root,
            setting="top6",
            k=50,
        )  # fmt: skip
    )
    for text in ("mixed", "freq", "mR@50", "Top-6", "contacting", "not contacting",
                 "no per-predicate recall in: freq"):  # fmt: skip
        assert text in svg, text


def test_recall_json_only_has_no_predicate_panel(world: World):
    svg = _svg_text(run_plots.plot_recall([world.metrics_json], world.tmp / "r1.svg"))
    assert "per predicate family" in svg and "Per predicate (mR view)" not in svg
    # A metrics file that carries 'predicates' (evaluate_for_plots) gets the panel.
    full = run_plots.evaluate_for_plots(world.test.gt, world.mixed)
    (world.tmp / "full.json").write_text(json.dumps(full))
    svg = _svg_text(run_plots.plot_recall([world.tmp / "full.json"], world.tmp / "r2.svg"))
    assert "Per predicate (mR view)" in svg and "no per-predicate recall" not in svg


def test_recall_is_drawn_from_metrics_alone(world: World, tmp_path: Path):
    """The drawing takes metrics dicts; evaluating predictions is the command's job."""
    metrics = run_plots.evaluate_for_plots(world.test.gt, world.mixed)
    svg = _svg_text(draw_recall([RunMetrics("mixed", metrics)], tmp_path / "r.svg", k=50))
    assert "mixed (mR@50" in svg and "Per predicate (mR view)" in svg
    with pytest.raises(ConfigError, match="mixed: no with/R@7"):
        draw_recall([RunMetrics("mixed", metrics)], tmp_path / "r.svg", k=7)


def test_viz_drawing_does_not_load_or_evaluate():
    """viz/'s drawing modules draw computed data: they import no data loading and no
    evaluator (only the evaluation's label helpers and the shared types); reading run
    files and evaluating is viz/run_plots.py's job alone."""
    import ast

    import tr2_core.viz

    root = Path(tr2_core.viz.__file__).parent
    allowed_evaluation = {"tr2_core.evaluation.report": {"setting_label", "task_label"}}
    bad = []
    drawing = sorted(p for p in root.glob("*.py") if p.name != "run_plots.py")
    assert len(drawing) >= 7  # the glob found the drawing modules
    for path in drawing:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {a.name for a in node.names}
                module = node.module
            elif isinstance(node, ast.Import):
                names, module = set(), ",".join(a.name for a in node.names)
            else:
                continue
            if module.startswith(("tr2_core.data", "tr2_core.evaluation", "tr2_core.cli")):
                if not names or not names <= allowed_evaluation.get(module, set()):
                    bad.append(f"{path.name}: {module} {sorted(names)}")
    assert bad == []


def test_recall_bad_inputs(world: World, tmp_path: Path):
    with pytest.raises(ConfigError, match="need the ground truth"):
        run_plots.plot_recall([world.mixed], tmp_path / "r.png")
    with pytest.raises(ConfigError, match="no such metrics file"):
        run_plots.plot_recall([tmp_path / "nope.json"], tmp_path / "r.png")
    (tmp_path / "bad.json").write_text('{"frames": 3}')
    with pytest.raises(ConfigError, match="no R@K metrics"):
        run_plots.plot_recall([tmp_path / "bad.json"], tmp_path / "r.png")
    with pytest.raises(ConfigError, match="no semi/R@7"):
        run_plots.plot_recall([world.metrics_json], tmp_path / "r.png", setting="semi", k=7)
    with pytest.raises(PredictionsError, match="no such predictions file"):
        run_plots.plot_recall([tmp_path / "none.npz"], tmp_path / "r.png", data_root=world.root)


# --------------------------------------------------------------------------
# Fig. 5


def test_fig5_curve_matches_per_frame_comparison(world: World):
    curve = run_plots.fig5_curve(world.mixed, world.freq, data_root=world.root, k=20, bins=4)
    files = []
    for name, path in (("a", world.mixed), ("b", world.freq)):
        result = evaluate_detailed(world.test.gt, load_predictions(path), task="predcls")
        files.append(save_per_frame(world.tmp / f"per_frame_{name}.npz", result))
    expected = compare_per_frame(files[1], files[0], setting="with", k=20, bins=4)
    for key in expected:
        np.testing.assert_allclose(curve[key], expected[key], equal_nan=True)
    # Same curve from the per-frame files alone (no annotations needed).
    again = run_plots.fig5_curve(files[0], files[1], k=20, bins=4)
    np.testing.assert_allclose(again["gain"], curve["gain"], equal_nan=True)
    # The GT-leaning run beats the frequency baseline; a run never gains over itself.
    assert curve["gain_cumulative"][-1] > 0.05
    same = run_plots.fig5_curve(world.freq, world.freq, data_root=world.root, bins=4)
    assert np.all(same["gain"][np.isfinite(same["gain"])] == 0.0)


def test_fig5_png_svg_and_json(world: World):
    png = run_plots.plot_fig5(
        world.mixed, world.freq, world.tmp / "fig5.png", data_root=world.root,
        label_a="TR2", label_b="STTran-like", curve_json=world.tmp / "fig5.json",
    )  # fmt: skip
    _check_png(png, (1000, 600))
    data = json.loads((world.tmp / "fig5.json").read_text())
    assert data["label_a"] == "TR2" and data["proportion"][-1] == pytest.approx(1.0)
    assert sum(data["videos"]) == world.test.gt.num_videos
    svg = _svg_text(
        run_plots.plot_fig5(
            world.mixed,
            world.freq,
            world.tmp / "fig5.svg",
            data_root=world.root,
            label_a="TR2",
            label_b="STTran-like",
            setting="no",
            k=50,
        )  # fmt: skip
    )
    assert "Gain of TR2 over STTran-like in R@50 (PredCls, No)" in svg
    assert "proportion of videos" in svg and "100%" in svg


def test_fig5_bad_inputs(world: World, tmp_path: Path):
    with pytest.raises(ConfigError, match="needs --data"):
        run_plots.plot_fig5(world.mixed, world.freq, tmp_path / "f.png")
    with pytest.raises(PredictionsError, match="no such predictions file"):
        run_plots.plot_fig5(
            tmp_path / "x.npz", world.freq, tmp_path / "f.png", data_root=world.root
        )
    with pytest.raises(ConfigError, match="unknown constraint setting"):
        run_plots.plot_fig5(world.mixed, world.freq, tmp_path / "f.png", data_root=world.root,
                        setting="loose")  # fmt: skip
    with pytest.raises(DatasetError, match="annotations"):
        run_plots.plot_fig5(world.mixed, world.freq, tmp_path / "f.png", data_root=tmp_path)
    # Predictions of the train split do not fit the test ground truth.
    with pytest.raises(PredictionsError, match="not frames of the ground-truth split"):
        run_plots.plot_fig5(world.mixed, world.freq, tmp_path / "f.png", data_root=world.root,
                        split="train")  # fmt: skip


# --------------------------------------------------------------------------
# Scene graph of one frame


def _busiest_frame(world: World) -> str:
    counts = np.bincount(world.test.pair_frame, minlength=world.test.gt.num_frames)
    return str(world.test.gt.frame_keys[int(np.argmax(counts))])


def test_gt_predicates_of_pairs_are_the_pair_labels(world: World):
    preds = load_predictions(world.freq)  # PredCls: GT boxes, one pair per GT object
    split = world.test
    checked = 0
    for f in range(split.gt.num_frames):
        key = str(split.gt.frame_keys[f])
        fp = frame_pairs_from_predictions(preds, key)
        got = frames.gt_pair_predicates(fp, split.gt, f)
        pairs = np.flatnonzero(split.pair_frame == f)
        expected = np.zeros_like(got)
        att = split.pair_attention[pairs]
        expected[np.flatnonzero(att >= 0), att[att >= 0]] = True
        expected[:, SPATIAL.slice] = split.pair_spatial[pairs]
        expected[:, CONTACTING.slice] = split.pair_contacting[pairs]
        np.testing.assert_array_equal(got, expected, err_msg=key)
        checked += pairs.shape[0]
    assert checked > 10


def test_graph_png_and_svg(world: World):
    key = _busiest_frame(world)
    png = frames.plot_scene_graph(world.root, world.mixed, key, world.tmp / "graph.png")
    _check_png(png, (1000, 600))
    svg = _svg_text(frames.plot_scene_graph(world.root, world.mixed, key, world.tmp / "graph.svg"))
    assert key in svg and "0 person" in svg and "test split" in svg
    assert "looking at" in svg or "not looking at" in svg or "unsure" in svg
    assert "✓" in svg  # GT-confirmed predicates are ticked
    no_gt = _svg_text(
        frames.plot_scene_graph(world.root, world.mixed, key, world.tmp / "g2.svg", show_gt=False)
    )
    assert "✓" not in no_gt


def test_graph_of_a_streaming_result(world: World):
    contacting = np.zeros((2, CONTACTING.size), np.float32)
    contacting[0, CONTACTING.predicates.index("holding")] = 0.9
    contacting[1, CONTACTING.predicates.index("sitting_on")] = 0.3
    spatial = np.zeros((2, SPATIAL.size), np.float32)
    spatial[:, SPATIAL.predicates.index("in_front_of")] = 0.8
    result = SceneGraphResult(
        stamp_ns=1_500_000_000,
        entity_track=np.array([7, 3, 12]),
        entity_labels=np.array(
            [PERSON, OBJECT_CLASSES.index("cup/glass/bottle"), OBJECT_CLASSES.index("chair")]
        ),  # fmt: skip
        entity_scores=np.array([0.99, 0.8, 0.7], np.float32),
        entity_boxes=np.array([[10, 10, 60, 90], [50, 40, 70, 60], [5, 50, 70, 95]], np.float32),
        pair_subject=np.array([0, 0]),
        pair_object=np.array([1, 2]),
        attention=np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], np.float32),
        spatial=spatial,
        contacting=contacting,
        window_stamps_ns=np.array([1_500_000_000]),
    )
    image = np.full((100, 160, 3), 90, np.uint8)
    svg = _svg_text(draw_scene_graph_result(image, result, world.tmp / "stream.svg"))
    for text in ("7 person", "3 cup/glass/bottle", "12 chair", "holding 0.90",
                 "sitting on 0.30", "in front of 0.80", "not looking at 0.80"):  # fmt: skip
        assert text in svg, text
    _check_png(draw_scene_graph_result(None, result, world.tmp / "stream.png"), (800, 400))


def test_graph_bad_inputs(world: World, tmp_path: Path):
    with pytest.raises(PredictionsError, match=r"frame 'ZZZZZ.mp4/000001.png' is not in"):
        frames.plot_scene_graph(world.root, world.mixed, "ZZZZZ.mp4/000001.png", tmp_path / "g.png")
    key = _busiest_frame(world)
    with pytest.raises(DatasetError, match="no such frame image"):
        frames.plot_scene_graph(tmp_path, world.mixed, key, tmp_path / "g.png")
    with pytest.raises(ConfigError, match="threshold"):
        frames.plot_scene_graph(world.root, world.mixed, key, tmp_path / "g.png", threshold=2.0)
    assert not (tmp_path / "g.png").exists()


# --------------------------------------------------------------------------
# Timeline of one pair


def _video_with_changes(world: World) -> str:
    gt = world.test.gt
    changes = relation_changes(gt)
    v = int(np.argmax(np.bincount(gt.frame_video, weights=changes.frame_changed,
                                  minlength=gt.num_videos)))  # fmt: skip
    return str(gt.videos[v])


def test_timeline_data_matches_ground_truth(world: World):
    gt = world.test.gt
    preds = load_predictions(world.freq)
    video = _video_with_changes(world)
    v = int(np.flatnonzero(gt.videos == video)[0])
    f0, f1 = int(gt.video_start[v]), int(gt.video_start[v + 1])
    cls_of_triplet = triplet_object_class(gt)
    in_video = (gt.triplet_frame >= f0) & (gt.triplet_frame < f1)
    classes = sorted(set(cls_of_triplet[in_video].tolist()))
    any_change = np.zeros(f1 - f0, dtype=bool)
    for cls in classes:
        data = frames.timeline_data(gt, preds, video, int(cls))
        assert data.frame_keys.tolist() == gt.frame_keys[f0:f1].tolist()
        assert np.all(np.diff(data.frame_numbers) > 0)
        expected = np.zeros((len(PREDICATES), f1 - f0), dtype=bool)
        sel = in_video & (cls_of_triplet == cls)
        expected[gt.triplet_predicate[sel], gt.triplet_frame[sel] - f0] = True
        np.testing.assert_array_equal(data.gt, expected)
        # the frequency baseline scores the pair the same in every frame it is present
        present = ~np.isnan(data.scores[0])
        assert present.any()
        assert np.allclose(data.scores[:, present], data.scores[:, present][:, :1])
        any_change |= data.change
    # A frame changes (evaluator's definition) iff the relations of some class change.
    np.testing.assert_array_equal(any_change, relation_changes(gt).frame_changed[f0:f1])
    assert any_change.any()
    auto = frames.timeline_data(gt, preds, video)
    best = max(int(frames.timeline_data(gt, preds, video, int(c)).change.sum()) for c in classes)
    assert int(auto.change.sum()) == best


def test_timeline_png_and_svg(world: World):
    video = _video_with_changes(world)
    png = frames.plot_timeline(world.root, world.mixed, video, world.tmp / "timeline.png")
    _check_png(png, (1000, 800))
    svg = _svg_text(
        frames.plot_timeline(
            world.root, world.mixed, video.removesuffix(".mp4"), world.tmp / "timeline.svg"
        )  # fmt: skip
    )
    for text in (video, "person —", "ground-truth predicate", "predicted score",
                 "have it on the back", "attention", "contacting"):  # fmt: skip
        assert text in svg, text


def test_timeline_bad_inputs(world: World, tmp_path: Path):
    video = _video_with_changes(world)
    with pytest.raises(PredictionsError, match="video 'NOPE.mp4' is not in the predictions"):
        frames.plot_timeline(world.root, world.mixed, "NOPE.mp4", tmp_path / "t.png")
    with pytest.raises(ConfigError, match="unknown object class 'unicorn'"):
        frames.plot_timeline(world.root, world.mixed, video, tmp_path / "t.png",
                            object_class="unicorn")  # fmt: skip
    with pytest.raises(ConfigError, match=f"no 'vacuum' in video '{video}'"):
        frames.plot_timeline(world.root, world.mixed, video, tmp_path / "t.png",
                            object_class="vacuum")  # fmt: skip
    with pytest.raises(DatasetError, match="in no train split"):
        frames.plot_timeline(world.root, world.mixed, video, tmp_path / "t.png", split="train")
    assert not (tmp_path / "t.png").exists()


def test_object_class_spellings():
    cup = OBJECT_CLASSES.index("cup/glass/bottle")
    for name in ("cup/glass/bottle", "cupglassbottle", "cup or glass or bottle", "Cup", "glass"):
        assert frames.object_class_index(name) == cup, name
    with pytest.raises(ConfigError, match="unknown object class 'person'"):
        frames.object_class_index("person")


# --------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tr2 plot")
    plot_cli.add_arguments(parser)
    return parser


def test_plot_is_a_registered_subcommand():
    assert "plot" in SUBCOMMAND_MODULES and plot_cli.NAME == "plot"


def test_cli_writes_every_picture(world: World, capsys: pytest.CaptureFixture[str]):
    out = world.tmp / "cli"
    key = _busiest_frame(world)
    video = _video_with_changes(world)
    commands = [
        ["curves", *map(str, world.runs), "--labels", "A", "B", "--val-metric", "top6/R@20"],
        ["recall", str(world.mixed), str(world.metrics_json), "--data", str(world.root)],
        ["fig5", "--data", str(world.root), "--a", str(world.mixed), "--b", str(world.freq),
         "--label-a", "TR2", "--label-b", "STTran-like", "--bins", "3"],
        ["graph", "--data", str(world.root), "--predictions", str(world.mixed), "--frame", key],
        ["timeline", "--data", str(world.root), "--predictions", str(world.mixed), "--video",
         video],
    ]  # fmt: skip
    for i, argv in enumerate(commands):
        path = out / f"{argv[0]}{i}.svg"
        args = _parser().parse_args([*argv, "--out", str(path)])
        assert plot_cli.run(args) == 0
        assert f"wrote {path}" in capsys.readouterr().out
        _svg_text(path)


def test_cli_errors_are_tr2_errors(world: World, tmp_path: Path):
    args = _parser().parse_args(
        ["timeline", "--data", str(world.root), "--predictions", str(world.mixed),
         "--video", "NOPE.mp4", "--out", str(tmp_path / "t.png")]
    )  # fmt: skip
    with pytest.raises(Tr2Error, match="NOPE.mp4"):
        plot_cli.run(args)
    args = _parser().parse_args(
        ["curves", str(tmp_path / "gone"), "--out", str(tmp_path / "c.png")]
    )
    with pytest.raises(Tr2Error, match="gone: no such run directory"):
        plot_cli.run(args)
