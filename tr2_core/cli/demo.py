"""``tr2 demo``: the whole pipeline on synthetic data, in one command.

Every step is the same code a user runs by hand (the equivalent ``tr2``
command is printed before each step), so the demo doubles as an end-to-end
check of the project on a fresh machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "demo"
HELP = "synthetic AG -> baseline -> train -> test -> eval -> stream -> plots, in one folder"
DESCRIPTION = """\
Runs the whole project on SYNTHETIC Action Genome data (no downloads, no weights), in
about three minutes on a 2-core CPU:

  1. tr2 make-synthetic   rendered videos in the real AG layout (--temporal world:
                          occlusion, motion blur, halfway poses)
  2. tr2 baseline         frequency baseline (the floor), evaluated
  3. tr2 pretrain-synthetic  the small detector and CLIP fitted to fresh videos of
                          the same world rendered in memory (--world-videos), saved
                          as a torchvision state dict and an open_clip checkpoint
                          (cached; --random-init: skip, random)
  4. tr2 train            the small TR² configuration, briefly, loading those files
                          through --detector-weights / --clip-weights, with STTran's
                          union-box mask branch (--no-geometry: without); best.pt
                          selected on the held-out validation videos
  5. tr2 test             predictions.npz + metrics.json on the test split
  6. R@K table            model beside the baseline (with / semi / no / top-6)
  7. streaming            the held-out video whose pair changes most, through the
                          streaming engine
                          (scene graphs per frame as JSONL, an annotated frame strip)
  8. tr2 plot             training curves, recall per family/predicate, Fig. 5,
                          a frame's scene graph, a pair's timeline

The numbers are NOT TR² results: the detector and CLIP know only the synthetic world,
the data is synthetic. For the real benchmark see the README ("Training and evaluating on
Action Genome").
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", nargs="?", default="runs/demo", help="output folder (runs/demo)")
    parser.add_argument("--videos", type=int, default=240, help="synthetic videos (240)")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs (6)")
    parser.add_argument(
        "--no-geometry",
        action="store_true",
        help="train without the union-box mask branch (see below)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.15,
        help="share of the videos held out to select best.pt on (0.15: fewer make it noisy)",
    )
    parser.add_argument(
        "--lr", type=float, default=None, help="learning rate (default: the small recipe's)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch CPU threads (2; 0: torch's choice): the same count whatever the "
        "machine's load (two runs measured still differ slightly)",
    )
    parser.add_argument("--seed", type=int, default=0, help="data and training seed (0)")
    parser.add_argument(
        "--model", default="tr2-small", help="model config (tr2-small; small configs only on CPU)"
    )
    parser.add_argument("--window", type=int, default=4, help="streaming window W (4)")
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="random detector / CLIP instead of the synthetic-world weights (step 3)",
    )
    parser.add_argument(
        "--pretrain-steps",
        type=int,
        nargs=2,
        default=(100, 600),
        metavar=("DETECTOR", "CLIP"),
        help="steps of tr2 pretrain-synthetic (100 600)",
    )
    parser.add_argument(
        "--world-videos",
        type=int,
        default=1000,
        help="short videos of the synthetic world rendered for step 3 (1000; see "
        "tr2 pretrain-synthetic --help)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing demo folder")


def _step(number: int, title: str, command: str | None = None) -> None:
    print(f"\n== {number}. {title}", flush=True)
    if command:
        print(f"   $ {command}", flush=True)


def _tr2(argv: list[str]) -> None:
    from tr2_core.cli import main
    from tr2_core.errors import Tr2Error

    code = main(argv)
    if code:
        raise Tr2Error(f"step `tr2 {' '.join(argv)}` failed with exit code {code}")


def run(args: argparse.Namespace) -> int:
    import torch

    threads_before = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run_steps(args)
    finally:  # the caller's (a test's) thread count, back
        torch.set_num_threads(threads_before)


def _prepare_out(out: Path, force: bool) -> Path:
    """The demo's folder, empty: an existing one is replaced only with ``force`` and
    only when a previous ``tr2 demo`` wrote it (its demo.json)."""
    import shutil

    from tr2_core.errors import ConfigError

    if out.exists() and any(out.iterdir()):
        if not force:
            raise ConfigError(f"{out} exists and is not empty; pass --force to overwrite it")
        if not (out / "demo.json").is_file():
            raise ConfigError(f"{out} was not written by `tr2 demo`; refusing to delete it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _frozen_weights(args: argparse.Namespace, data: Path, weights_json: Path) -> list[str]:
    """Step 3: the training flags naming the frozen parts: weight files fitted to the
    synthetic world (``tr2 pretrain-synthetic``, cached), or ``--random-init``."""
    import json

    if args.random_init:
        return ["--random-init"]
    pre = ["pretrain-synthetic", "--data", str(data), "--model", args.model]
    pre += ["--seed", str(args.seed), "--detector-steps", str(args.pretrain_steps[0])]
    pre += ["--clip-steps", str(args.pretrain_steps[1]), "--world-videos", str(args.world_videos)]
    pre += ["--json", str(weights_json)]
    title = "detector and CLIP fitted to the synthetic world (cached)"
    _step(3, title, "tr2 " + " ".join(pre))
    weights_json.parent.mkdir(parents=True, exist_ok=True)
    _tr2(pre)
    paths = json.loads(weights_json.read_text())
    return ["--detector-weights", paths["detector"], "--clip-weights", paths["clip"]]


def _run_steps(args: argparse.Namespace) -> int:
    """The demo's eight steps in order, each a ``tr2`` command or one helper call, in one
    function so that it reads top to bottom as the script it is."""
    import json
    import time
    from pathlib import Path

    out = _prepare_out(Path(args.out), args.force)
    start = time.perf_counter()
    frozen_kind = "RANDOMLY INITIALISED" if args.random_init else "synthetic-world-trained"
    print(
        f"tr2 demo: SYNTHETIC data and {frozen_kind} detector/CLIP. The numbers show "
        "that the pipeline works and learns; they are not TR² results.",
        flush=True,
    )
    data, run_dir, test_dir = out / "synthetic_ag", out / "run", out / "test"
    plots = out / "plots"
    seed = str(args.seed)

    synth = ["make-synthetic", str(data), "--videos", str(args.videos), "--seed", seed]
    synth += ["--frames", "6", "12", "--size", "320x180", "--temporal", "--quiet"]
    synth += ["--val-fraction", str(args.val_fraction)]
    _step(1, "synthetic Action Genome", "tr2 " + " ".join(synth))
    _tr2(synth)

    baseline_pred = out / "baseline" / "predictions.npz"
    baseline_json = out / "baseline" / "metrics.json"
    base = ["baseline", "--data", str(data), "--out", str(baseline_pred)]
    _step(2, "frequency baseline", "tr2 " + " ".join(base))
    _tr2(base)
    evaluate_base = ["eval", "--data", str(data), "--predictions", str(baseline_pred)]
    evaluate_base += ["--task", "predcls", "--json", str(baseline_json)]
    print("   $ tr2 " + " ".join(evaluate_base))
    _tr2(evaluate_base)

    weights_json = out / "pretrained" / "weights.json"
    frozen = _frozen_weights(args, data, weights_json)
    train = _train_command(args, data, run_dir, frozen)
    _step(4, f"train {args.model} ({args.epochs} epochs, CPU)", "tr2 " + " ".join(train))
    _tr2(train)

    # best.pt: selected on the held-out validation videos (never on the test split)
    test = ["test", "--checkpoint", str(run_dir / "best.pt"), "--out", str(test_dir)]
    test += ["--device", "cpu"]
    _step(5, "test", "tr2 " + " ".join(test))
    _tr2(test)
    model_pred, model_json = test_dir / "predictions.npz", test_dir / "metrics.json"

    _step(6, "R@K on the synthetic test split (PredCls, %)")
    table = _comparison_table(model_json, baseline_json, args.model, args.random_init)
    gains = _gains_over_baseline(data, model_pred, baseline_pred)
    table += "\n\n" + _format_gains(gains)
    print(table)
    (out / "table.txt").write_text(table + "\n")

    _step(7, f"stream one held-out video (window {args.window})")
    streamed = _stream_video(data, run_dir / "best.pt", out / "stream", args.window)

    _step(8, "pictures", f"tr2 plot ... --out {plots}/...")
    pictures = _plots(data, run_dir, model_pred, model_json, baseline_pred, baseline_json,
                      streamed, plots, _model_label(args.model, args.random_init))  # fmt: skip

    seconds = time.perf_counter() - start
    summary = {
        "synthetic_data": True,
        "random_init": args.random_init,
        "frozen_weights": "random" if args.random_init else json.loads(weights_json.read_text()),
        "model": args.model,
        "epochs": args.epochs,
        "videos": args.videos,
        "val_fraction": args.val_fraction,
        "torch_threads": args.threads,
        "seconds": round(seconds, 1),
        "model_metrics": str(model_json),
        "baseline_metrics": str(baseline_json),
        "gain_over_baseline": gains,
        "stream": {k: str(v) for k, v in streamed.items()},
        "plots": [str(p) for p in pictures],
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=1) + "\n")
    _print_outputs(out, seconds, [
        ("R@K table", out / "table.txt"),
        ("model metrics", model_json),
        ("baseline metrics", baseline_json),
        ("predictions", model_pred),
        ("checkpoints, metrics.jsonl", run_dir),
        ("scene graphs per frame", streamed["jsonl"]),
        ("annotated frame strip", streamed["strip"]),
        *[(p.stem.replace("_", " "), p) for p in pictures],
    ])  # fmt: skip
    return 0


def _train_command(
    args: argparse.Namespace, data: Path, run_dir: Path, frozen: list[str]
) -> list[str]:
    """Step 4's ``tr2 train`` arguments (small recipe, CPU, the demo's seed and options)."""
    train = ["train", "--data", str(data), "--model", args.model, "--train-config", "small"]
    train += ["--out", str(run_dir), *frozen, "--epochs", str(args.epochs)]
    train += ["--device", "cpu", f"seed={args.seed}"]
    if args.lr is not None:
        train += [f"lr={args.lr}"]
    if not args.no_geometry:
        # Random-init backbones carry little of the synthetic scenes' cues; STTran's
        # union-box masks hand the model the box layout (bench/learning_check.py).
        train += ["model.representation.geometry=true"]
    return train


def _print_outputs(out: Path, seconds: float, rows: list[tuple[str, Path]]) -> None:
    """The closing lines: where each output is, and the reminder of what it is not."""
    print(f"\n== done in {seconds:.0f} s. Everything is in {out}/:")
    for what, path in rows:
        print(f"   {what:<28} {path}")
    print(
        "\nReminder: synthetic data and weights fitted to it (or random ones). To train and "
        "evaluate on the real Action Genome release with real CLIP / Faster R-CNN weights, "
        "see the README."
    )


def _model_label(model_name: str, random_init: bool) -> str:
    return f"{model_name} ({'random init' if random_init else 'synthetic weights'})"


def _comparison_table(model_json, baseline_json, model_name: str, random_init: bool) -> str:
    import json

    from tr2_core.evaluation.report import format_table

    model = json.loads(model_json.read_text())
    base = json.loads(baseline_json.read_text())
    rows = []
    label = _model_label(model_name, random_init)
    for setting in ("with", "semi", "no", "top6"):
        for name, metrics in ((label, model), ("frequency baseline", base)):
            values = {k: v for k, v in metrics[setting].items() if k.startswith("R@")}
            rows.append((f"{setting:<5} {name}", values))
    return format_table(rows, "setting / model")


def _gains_over_baseline(data: Path, model_pred: Path, baseline_pred: Path) -> dict:
    """PredCls With R@10 of the model minus the frequency baseline, overall and in the
    "changed" time-variant group, each with its paired 95 % bootstrap interval over
    the test videos (percent; :mod:`tr2_core.evaluation.bootstrap`): how far one run's
    margin is from noise."""
    from tr2_core.data.action_genome import load_split
    from tr2_core.evaluation.bootstrap import bootstrap_difference
    from tr2_core.evaluation.changes import CHANGED, relation_changes
    from tr2_core.evaluation.recall import evaluate_detailed
    from tr2_core.viz.run_plots import as_predictions

    gt = load_split(data, "test", show_progress=False).gt
    changed = relation_changes(gt).triplet_state == CHANGED
    recalls = []
    for path in (model_pred, baseline_pred):
        preds, name = as_predictions(path)
        result = evaluate_detailed(gt, preds, task="predcls", settings=["with"], ks=[10],
                                   validate=False, source=name)  # fmt: skip
        recalls.append({"all": result.frame_recall("with")[:, 0],
                        "changed": result.frame_recall("with", changed)[:, 0]})  # fmt: skip
    return {
        group: bootstrap_difference(
            recalls[0][group], recalls[1][group], gt.frame_video, resamples=2000
        ).as_dict(100)
        for group in ("all", "changed")
    }


def _format_gains(gains: dict) -> str:
    videos = gains["all"]["videos"]
    lines = [f"model - baseline, With R@10 (95 % bootstrap interval over {videos} test videos):"]
    for group, cell in gains.items():
        lines.append(
            f"  {group:<8} {cell['estimate']:+5.1f}  [{cell['low']:+.1f}, {cell['high']:+.1f}]"
        )
    return "\n".join(lines)


def _most_changing_pair(gt) -> tuple[int, int]:
    """(video row, object class) of the test pair whose GT contacting relations change
    most often while the object stays in view (ties: the longer video, then the first):
    the pair whose timeline can show the model following change. Flicker of an object
    that leaves and re-enters the frame is not counted."""
    from collections import defaultdict

    from tr2_core.evaluation.changes import triplet_object_class
    from tr2_core.vocab import CONTACTING

    family = (gt.triplet_predicate >= CONTACTING.start) & (gt.triplet_predicate < CONTACTING.stop)
    classes = triplet_object_class(gt)
    sets: dict[tuple[int, int], set] = defaultdict(set)  # (frame, class) -> predicates
    for t in range(gt.triplet_predicate.shape[0]):
        if family[t]:
            sets[int(gt.triplet_frame[t]), int(classes[t])].add(int(gt.triplet_predicate[t]))
    best, best_key = (-1, -1, 0), (0, -1)
    for v in range(len(gt.videos)):
        f0, f1 = int(gt.video_start[v]), int(gt.video_start[v + 1])
        for c in {c for (f, c) in sets if f0 <= f < f1}:
            seen = [sets.get((f, c)) for f in range(f0, f1)]
            if any(x is None for x in seen):
                continue  # the object leaves the frame at some point
            changes = sum(a != b for a, b in zip(seen, seen[1:], strict=False))
            if (changes, f1 - f0, -v) > best:
                best, best_key = (changes, f1 - f0, -v), (v, c)
    return best_key


def _stream_video(data, checkpoint, out, window: int) -> dict:
    """The test video with the most changing pair through :class:`StreamingEngine`
    with its GT boxes (PredCls, as the test step): JSONL + frame strip."""
    import dataclasses
    import json

    import numpy as np
    from PIL import Image

    from tr2_core.data.action_genome import load_split
    from tr2_core.runners.records import result_record
    from tr2_core.stream.engine import StreamingEngine
    from tr2_core.viz.overlay import draw_scene_graph

    split = load_split(data, "test", show_progress=False)
    gt = split.gt
    video, object_class = _most_changing_pair(gt)
    frames = range(int(gt.video_start[video]), int(gt.video_start[video + 1]))
    # AG key frames are ~1 s apart (sparse samples of 24 fps videos): allow gaps.
    engine = StreamingEngine.from_checkpoint(
        checkpoint, window=window, mode="predcls", max_gap_s=10.0, device="cpu"
    )
    out.mkdir(parents=True, exist_ok=True)
    jsonl, drawn, results = out / "scene_graphs.jsonl", [], []
    with open(jsonl, "w") as f:
        for i, frame in enumerate(frames):
            key = str(gt.frame_keys[frame])
            image = np.asarray(Image.open(split.frame_image_path(key)).convert("RGB"))
            rows = slice(int(gt.box_start[frame]), int(gt.box_start[frame + 1]))
            stamp = int(split.frame_numbers[frame]) * 1_000_000_000 // 24  # AG: 24 fps videos
            result = engine.process(image, stamp, gt.boxes[rows], gt.box_labels[rows])
            size = (image.shape[1], image.shape[0])
            f.write(json.dumps(result_record(result, i, image_size=size, source=key)) + "\n")
            # Drawn at 3x: the synthetic frames are small and captions need room.
            big = np.asarray(Image.fromarray(image).resize((size[0] * 3, size[1] * 3)))
            scaled = dataclasses.replace(result, entity_boxes=result.entity_boxes * 3)
            drawn.append(draw_scene_graph(big, scaled))
            results.append((image, result, key))
    strip = out / "frame_strip.png"
    shown = drawn[:: max(1, len(drawn) // 4)][:4]
    rows = [np.concatenate(shown[i : i + 2], axis=1) for i in range(0, len(shown), 2)]
    if len(rows) > 1 and rows[-1].shape != rows[0].shape:
        rows[-1] = np.pad(rows[-1], ((0, 0), (0, rows[0].shape[1] - rows[-1].shape[1]), (0, 0)))
    Image.fromarray(np.concatenate(rows, axis=0)).save(strip)
    print(f"   {len(drawn)} frames of {gt.videos[video]} -> {jsonl}")
    return {"jsonl": jsonl, "strip": strip, "video": str(gt.videos[video]),
            "object_class": object_class, "_results": results}  # fmt: skip


def _plots(data, run_dir, model_pred, model_json, baseline_pred, baseline_json, streamed,
           plots, label: str) -> list:  # fmt: skip
    from tr2_core.cli.plot_frames import plot_scene_graph, plot_timeline
    from tr2_core.viz.run_plots import plot_fig5, plot_recall, plot_training_curves
    from tr2_core.viz.scene_graph_figure import draw_scene_graph_result

    plots.mkdir(parents=True, exist_ok=True)
    made = [
        plot_training_curves([run_dir], plots / "training_curves.png", labels=[label]),
        plot_recall(
            [model_pred, baseline_pred],
            plots / "recall_per_predicate.png",
            labels=[label, "frequency baseline"],
            data_root=data,
        ),
        plot_fig5(
            model_pred,
            baseline_pred,
            plots / "fig5_gain_vs_change.png",
            data_root=data,
            label_a=label,
            label_b="frequency baseline",
        ),
    ]
    image, result, key = streamed.pop("_results")[-1]
    made.append(
        draw_scene_graph_result(
            image, result, plots / "stream_scene_graph.png", title=f"streamed {key}"
        )
    )
    made.append(plot_scene_graph(data, model_pred, key, plots / "scene_graph.png"))
    made.append(plot_timeline(data, model_pred, streamed["video"], plots / "timeline.png",
                              object_class=streamed.pop("object_class")))  # fmt: skip
    return made
