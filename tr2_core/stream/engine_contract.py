"""What a frame loop relies on in a streaming engine: :class:`SceneGraphEngine`.

The ROS node (``tr2_ros/node.py``, ``tr2_ros/pipeline.py``), ``tr2 video`` and
``tr2 bag`` drive an engine only through this contract;
:class:`~tr2_core.stream.engine.StreamingEngine` implements it, and so do the
stand-in engines of the tests. Importing this module costs no torch, so the node and
the runners can name the contract before a model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tr2_core.types import SceneGraphResult

ONLINE = "online"
OFFLINE_RUN_CAUSALLY = "offline-run-causally"


@dataclass
class EngineStats:
    """Counters a node or tool reports."""

    frames: int = 0
    resets: int = 0
    rejected: int = 0
    reset_reasons: list[str] = field(default_factory=list)
    protocol: str = ""
    """``online`` (an online model: the engine's output is what ``tr2 test`` scored) or
    ``offline-run-causally`` (a bidirectional model: expect lower quality than its test
    figures)."""


@runtime_checkable
class SceneGraphEngine(Protocol):
    """A streaming scene-graph engine as its callers see it.

    Attributes:
        protocol: how its model sees time: :data:`ONLINE` or
            :data:`OFFLINE_RUN_CAUSALLY` (docs/protocols.md).
        model_name: the name of the model config it runs (``tr2-small`` ...).
        window: frames ``W`` it keeps (an online model keeps its own).
        stats: its counters (frames, resets, rejected entities).
    """

    protocol: str
    model_name: str
    window: int
    stats: EngineStats

    def process(
        self,
        image: np.ndarray,
        stamp_ns: int,
        boxes: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        *,
        scores: np.ndarray | None = None,
        gap_ns: int | None = None,
    ) -> SceneGraphResult:
        """One (H, W, 3) uint8 RGB frame at ``stamp_ns`` -> its scene graph (``boxes``,
        ``labels``, ``scores``: the given entities of predcls / sgcls)."""
        ...

    def tune(self, **changes: Any) -> None:
        """Change the options that may change between frames (live parameters)."""
        ...

    def close(self) -> None:
        """Drop what the engine holds between frames (the node releases it next)."""
        ...
