"""Shared helpers for the tests of ``tr2 bag`` / ``tr2 video``: a tiny real engine,
stand-in engines, and small generated bags and frames.

The tiny engine is ``tr2-small`` with random weights (seeded), shrunk to
48x64 inputs, its detector's classifier made image-independent so that every
proposal scores person 0.16, cup and book 0.42 (all other classes ~0): each
frame then has one person and a few objects (a random detector rarely calls
anything a person, and without a person there are no pairs). Boxes still come
from the random RPN. The numbers mean nothing; the code path is the real one.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
import torch

from tr2_core.run import build_model
from tr2_core.stream.engine import StreamingEngine
from tr2_core.stream.engine_contract import ONLINE, EngineStats
from tr2_core.types import SceneGraphResult
from tr2_core.vocab import OBJECT_INDEX

H, W = 48, 64
TINY_OVERRIDES = (
    "detector.score_thresh=0.01",
    "detector.min_size=48",
    "detector.max_size=64",
    "detector.detections_per_image=100",
    "detector.rpn_post_nms_top_n=5",
)
TINY_ARGS = [
    "--model", "tr2-small", "--random-init", "--score-threshold", "0", "--window", "3",
    "--override", "detector.min_size=48", "--override", "detector.max_size=64",
    "--override", "detector.rpn_post_nms_top_n=5", "--no-progress", "--threads", "1",
]  # fmt: skip
"""``tr2 video`` / ``tr2 bag`` flags for a small random-init model on one thread."""
CLASS_LOGITS = {"person": 2.0, "cup/glass/bottle": 3.0, "book": 3.0}


@functools.cache
def tiny_model():
    torch.manual_seed(0)
    model = build_model("tr2-small", random_init=True, overrides=TINY_OVERRIDES)
    cls = model.extractor.detector.roi_heads.box_predictor.cls_score
    with torch.no_grad():
        cls.weight.zero_()
        cls.bias.fill_(-20.0)
        for name, logit in CLASS_LOGITS.items():
            cls.bias[OBJECT_INDEX[name]] = logit
    return model


def tiny_engine(window: int = 4) -> StreamingEngine:
    """A fresh engine (empty window, no tracks) over the shared tiny model."""
    model = tiny_model()
    return StreamingEngine(model.extractor, model.relation, window=window, score_threshold=0.0)


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` random (H, W, 3) uint8 RGB frames."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def write_frames(folder: Path, images: list[np.ndarray], names: list[str] | None = None) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"{i + 1:06d}.png" for i in range(len(images))]
    for name, rgb in zip(names, images, strict=True):
        Image.fromarray(rgb).save(folder / name)


def write_mp4(
    path: Path, images: list[np.ndarray], fps: int = 10, options: dict[str, str] | None = None
) -> None:
    """A tiny H.264 video (needs PyAV); ``options``: muxer options (``movflags``)."""
    import av

    with av.open(str(path), mode="w", options=options or {}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for rgb in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


# --------------------------------------------------------------------------
# Stand-in engines (they implement tr2_core.stream.engine_contract.SceneGraphEngine).


def empty_result(stamp_ns: int) -> SceneGraphResult:
    """A scene graph with no entity and no pair, answering ``stamp_ns``."""
    z = np.zeros
    return SceneGraphResult(
        stamp_ns, z(0, np.int64), z(0, np.int64), z(0, np.float32), z((0, 4), np.float32),
        z(0, np.int64), z(0, np.int64), z((0, 3), np.float32), z((0, 6), np.float32),
        z((0, 17), np.float32), np.array([stamp_ns]),
    )  # fmt: skip


class EmptyEngine:
    """Stand-in engine: an empty scene graph per frame (fast), records stamps;
    raises ``error`` on the calls listed in ``fail_on``; ``shape``: the shape every
    image must have (None: any (H, W, 3) uint8 RGB image)."""

    protocol, model_name, window = ONLINE, "empty", 4

    def __init__(
        self,
        fail_on: tuple[int, ...] = (),
        error: type[BaseException] = RuntimeError,
        shape: tuple[int, int, int] | None = None,
    ):
        self.stamps: list[int] = []
        self.fail_on, self.error, self.shape, self.calls = fail_on, error, shape, 0
        self.stats = EngineStats(protocol=ONLINE)
        self.tuned: list[dict] = []
        self.closed = False

    def process(self, image, stamp_ns, boxes=None, labels=None, *, scores=None, gap_ns=None):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert self.shape is None or image.shape == self.shape
        self.calls += 1
        if self.calls - 1 in self.fail_on:
            raise self.error("engine exploded")
        self.stamps.append(stamp_ns)
        self.stats.frames += 1
        return empty_result(stamp_ns)

    def tune(self, **changes) -> None:
        self.tuned.append(changes)

    def close(self) -> None:
        self.closed = True


class RecordingEngine:
    """Wraps an engine; keeps each (image, stamp, result); raises ``error`` instead of
    answering call number ``fail_on`` (0-based; None: never)."""

    def __init__(self, engine, fail_on: int | None = None, error: type = RuntimeError):
        self.engine, self.fail_on, self.error = engine, fail_on, error
        self.calls: list[tuple[np.ndarray, int, SceneGraphResult]] = []
        self.protocol, self.model_name = engine.protocol, engine.model_name
        self.window, self.stats = engine.window, engine.stats

    def process(self, image, stamp_ns, boxes=None, labels=None, *, scores=None, gap_ns=None):
        if len(self.calls) == self.fail_on:
            raise self.error("engine exploded")
        result = self.engine.process(image, stamp_ns)
        self.calls.append((image.copy(), stamp_ns, result))
        return result

    def tune(self, **changes) -> None:
        self.engine.tune(**changes)

    def close(self) -> None:
        self.engine.close()
