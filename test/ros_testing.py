"""Shared helpers for the ROS-side tests: rosbags message classes, image
messages in every encoding, and scene-graph results."""

from __future__ import annotations

import functools

import numpy as np

from tr2_core.types import SceneGraphResult
from tr2_core.vocab import ATTENTION, CONTACTING, SPATIAL
from tr2_ros.conversions import ENCODINGS
from tr2_ros.messages import MessageClasses, make_typestore, rosbags_classes


@functools.cache
def classes() -> MessageClasses:
    return rosbags_classes(make_typestore("humble"))


def header(sec: int = 12, nanosec: int = 345, frame_id: str = "camera"):
    c = classes()
    return c.Header(stamp=c.Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def random_rgb(height: int = 6, width: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W, C) pixels as stored in ``encoding``."""
    if encoding == "mono8":
        return rgb[..., :1]
    channels, order = ENCODINGS[encoding]
    out = np.empty(rgb.shape[:2] + (channels,), dtype=np.uint8)
    out[..., list(order)] = rgb
    if channels == 4:
        out[..., 3] = 200  # alpha
    return out


def image_msg(
    rgb: np.ndarray, stored_as: str = "rgb8", *, pad: int = 0, stamp=(12, 345), data=None, **fields
):
    """A rosbags ``sensor_msgs/msg/Image`` holding ``rgb`` stored as ``stored_as``,
    rows padded with ``pad`` garbage bytes; ``fields`` override message fields."""
    pixels = encode(rgb, stored_as)
    height, width, channels = pixels.shape
    step = width * channels + pad
    rows = np.full((height, step), 0xAB, dtype=np.uint8)
    rows[:, : width * channels] = pixels.reshape(height, -1)
    values = dict(
        header=header(*stamp),
        height=height,
        width=width,
        encoding=stored_as,
        is_bigendian=0,
        step=step,
        data=rows.reshape(-1) if data is None else data,
    )
    values.update(fields)
    return classes().Image(**values)


def compressed_msg(payload: bytes, fmt: str = "jpeg", stamp=(12, 345)):
    return classes().CompressedImage(
        header=header(*stamp), format=fmt, data=np.frombuffer(payload, dtype=np.uint8)
    )


def make_result(
    num_entities: int = 4,
    num_pairs: int | None = None,
    *,
    seed: int = 0,
    stamp_ns: int = 12_000_000_345,
    width: float = 64.0,
    height: float = 48.0,
) -> SceneGraphResult:
    """A plausible result: entity 0 is the person, pairs (0, k)."""
    rng = np.random.default_rng(seed)
    n = num_entities
    p = max(n - 1, 0) if num_pairs is None else num_pairs
    assert n > 1 or p == 0, "pairs need a person and an object"
    xy = rng.uniform(0, [width / 2, height / 2], (n, 2))
    wh = rng.uniform(0.1, 1.0, (n, 2)) * [width / 2, height / 2]
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    labels = np.concatenate([[1], rng.integers(2, 37, max(n - 1, 0))]).astype(np.int64)[:n]
    attention = rng.random((p, ATTENTION.size)).astype(np.float32)
    attention /= attention.sum(axis=1, keepdims=True)
    return SceneGraphResult(
        stamp_ns=stamp_ns,
        entity_track=np.arange(100, 100 + n, dtype=np.int64),
        entity_labels=labels,
        entity_scores=rng.uniform(0.2, 1.0, n).astype(np.float32),
        entity_boxes=boxes,
        pair_subject=np.zeros(p, dtype=np.int64),
        pair_object=1 + np.arange(p, dtype=np.int64) % max(n - 1, 1),
        attention=attention,
        spatial=rng.random((p, SPATIAL.size)).astype(np.float32),
        contacting=rng.random((p, CONTACTING.size)).astype(np.float32),
        window_stamps_ns=np.array([stamp_ns - 2_000_000_000, stamp_ns - 1_000_000_000, stamp_ns]),
    )


class FakeEngine:
    """Stands in for ``tr2_core.stream.StreamingEngine``: records its inputs,
    returns ``make_result`` sized to the image, optionally waits or fails."""

    def __init__(self, delay: float = 0.0, fail_on: set[int] | None = None, result=None):
        self.delay = delay
        self.fail_on = fail_on or set()
        self.result = result
        self.calls: list[tuple[tuple[int, ...], int]] = []
        self.closed = False

    def process(self, image: np.ndarray, stamp_ns: int) -> SceneGraphResult:
        import time

        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.calls.append((image.shape, stamp_ns))
        if self.delay:
            time.sleep(self.delay)
        if stamp_ns in self.fail_on:
            raise RuntimeError("CUDA out of memory (fake)")
        if self.result is not None:
            return self.result
        return make_result(
            4, stamp_ns=stamp_ns, width=float(image.shape[1]), height=float(image.shape[0])
        )

    def close(self) -> None:
        self.closed = True
