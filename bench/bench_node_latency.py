"""Benchmark: the node's image-in to message-out latency, ROS-free.

Runs the node's own per-frame path, :class:`tr2_ros.pipeline.ScenePipeline.process`
(decode the ``sensor_msgs/Image`` or ``CompressedImage``, the streaming engine, the
scene-graph decoding and the ``tr2/SceneGraph`` message build), with rosbags message
classes instead of rclpy, and reports per frame (median over ``--iterations`` after
the window is full):

* **total**: ``ScenePipeline.process`` end to end, nothing instrumented;
* a breakdown from a second, instrumented pass (on CUDA each part is synchronised, so
  the parts add up to a little more than the total): image decode, extractor,
  relation encode, tracker, relation decode (temporal pass), result building in the
  engine, and the message build.

Entities: the engine is run PredCls-style with ``--entities`` given boxes (a person
and objects), as in bench/bench_stream.py, so that the work per frame is fixed.

Usage::

    .venv/bin/python bench/bench_node_latency.py --model tr2-small --iterations 20
    .venv/bin/python bench/bench_node_latency.py --device cuda --iterations 50
    .venv/bin/python bench/bench_node_latency.py --transport compressed
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class GivenBoxes:
    """The node's engine interface (image, stamp) over a PredCls engine with fixed boxes."""

    def __init__(self, engine: Any, boxes: np.ndarray, labels: np.ndarray) -> None:
        self.engine, self.boxes, self.labels = engine, boxes, labels

    def process(self, image: np.ndarray, stamp_ns: int):
        return self.engine.process(image, stamp_ns, self.boxes, self.labels)


def instrument(obj: Any, name: str, label: str, times: dict, device: torch.device) -> None:
    """Replace ``obj.name`` by a timed call (per-instance attribute)."""
    inner: Callable = getattr(obj, name)

    def timed(*args, **kwargs):
        _sync(device)
        t0 = time.perf_counter()
        out = inner(*args, **kwargs)
        _sync(device)
        times[label].append(time.perf_counter() - t0)
        return out

    setattr(obj, name, timed)


def scene_boxes(height: int, width: int, entities: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 0.7, (entities, 2)) * [width, height]
    wh = rng.uniform(0.1, 0.3, (entities, 2)) * [width, height]
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    labels = np.concatenate([[1], rng.integers(2, 37, entities - 1)]).astype(np.int64)
    return boxes, labels


def messages(classes, height: int, width: int, transport: str, count: int) -> list:
    rng = np.random.default_rng(1)
    out = []
    for i in range(count):
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        header = classes.Header(stamp=classes.Time(sec=1 + i // 30, nanosec=(i % 30) * 33_000_000),
                                frame_id="camera")  # fmt: skip
        if transport == "compressed":
            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
            data = np.frombuffer(buf.getvalue(), np.uint8)
            out.append(classes.CompressedImage(header=header, format="jpeg", data=data))
        else:
            out.append(classes.Image(header=header, height=height, width=width, encoding="rgb8",
                                     is_bigendian=0, step=width * 3,
                                     data=rgb.reshape(-1)))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tr2", help="model config (default: paper size)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--entities", type=int, default=10)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--transport", choices=("raw", "compressed"), default="raw")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--engine-option", action="append", default=[], metavar="NAME=VALUE",
                        help="EngineOptions field, e.g. tf32=true (repeatable)")  # fmt: skip
    parser.add_argument("--json", metavar="OUT.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from _common import parse_engine_options

    from tr2_core.run import build_model
    from tr2_core.stream.engine import StreamingEngine
    from tr2_core.stream.engine_options import EngineOptions
    from tr2_ros.messages import make_typestore, rosbags_classes
    from tr2_ros.params import NodeParams
    from tr2_ros.pipeline import ScenePipeline

    device = torch.device(args.device)
    changes = parse_engine_options(args.engine_option)
    model = build_model(args.model, random_init=True, device=device)
    options = EngineOptions(device=args.device, window=args.window, mode="predcls",
                            score_threshold=0.0, **changes)  # fmt: skip
    classes = rosbags_classes(make_typestore("humble"))
    msgs = messages(classes, args.height, args.width, args.transport,
                    args.window + 2 * args.iterations)  # fmt: skip
    boxes, labels = scene_boxes(args.height, args.width, args.entities)
    results: dict[str, Any] = {}

    def pipeline_for(engine: Any) -> tuple[ScenePipeline, list]:
        published: list = []
        params = NodeParams(input_transport=args.transport, checkpoint="unused.pt")
        pipe = ScenePipeline(GivenBoxes(engine, boxes, labels), classes, params,
                             publish_graph=published.append)  # fmt: skip
        return pipe, published

    # 1. end to end, nothing instrumented
    engine = StreamingEngine(model.extractor, model.relation, options)
    pipe, published = pipeline_for(engine)
    for msg in msgs[: args.window]:
        pipe.process(msg)
    totals = []
    for msg in msgs[args.window : args.window + args.iterations]:
        _sync(device)
        t0 = time.perf_counter()
        pipe.process(msg)
        _sync(device)
        totals.append(time.perf_counter() - t0)
    assert len(published) == args.window + args.iterations, "a frame was not published"
    results["total_ms"] = 1e3 * statistics.median(totals)

    # 2. breakdown, instrumented
    times: dict[str, list[float]] = defaultdict(list)
    engine = StreamingEngine(model.extractor, model.relation, options)
    pipe, _ = pipeline_for(engine)
    instrument(pipe, "decode", "image decode", times, device)
    instrument(engine.extractor, "extract", "extractor", times, device)
    instrument(engine.relation, "encode", "relation encode", times, device)
    instrument(engine.tracker, "update", "tracker", times, device)
    instrument(engine, "_temporal", "temporal decode", times, device)
    instrument(engine, "_result", "engine result", times, device)
    import tr2_ros.pipeline as pipeline_module

    for name, label in (("decode_result", "graph decode"), ("scene_graph_message", "message")):
        instrument(pipeline_module, name, label, times, device)
    try:
        for msg in msgs[args.window + args.iterations :]:
            pipe.process(msg)
    finally:
        import importlib

        importlib.reload(pipeline_module)  # undo the module-level instrumentation
    for label, values in times.items():
        results[f"{label} ms"] = 1e3 * statistics.median(values[-args.iterations :])
    results.update(model=args.model, device=args.device, threads=torch.get_num_threads(),
                   size=f"{args.width}x{args.height}", entities=args.entities,
                   window=args.window, transport=args.transport,
                   options={k: v for k, v in vars(options).items() if k in changes})  # fmt: skip

    print(f"node latency, {args.model} on {args.device} ({torch.get_num_threads()} threads), "
          f"{args.width}x{args.height} {args.transport}, {args.entities} entities, "
          f"W={args.window}, median of {args.iterations}")  # fmt: skip
    print(f"  image in -> message out : {results['total_ms']:8.2f} ms")
    for label in times:
        print(f"    {label:<22}: {results[f'{label} ms']:8.2f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
