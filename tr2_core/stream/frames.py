"""One frame through the engine, the same way for every frame loop.

``tr2 video``, ``tr2 bag`` and the ROS node all feed frames they did not make
to the streaming engine. A frame the model cannot take (1x600 pixels: a
resize error deep inside torch) must cost that frame only: the loop rejects
it, counts it and goes on, and the results already computed are kept.
:func:`run_frame` is that rule; :class:`SkipLog` counts and logs the skips.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tr2_core.errors import Tr2Error, clip
from tr2_core.stream.engine_contract import SceneGraphEngine
from tr2_core.types import SceneGraphResult

LOGGED_SKIPS = 20
"""Skipped frames logged one by one; later ones are only counted."""


class FrameFailed(Tr2Error):
    """The engine could not produce a result for one frame (reason in the message)."""


def run_frame(
    engine: SceneGraphEngine, image: np.ndarray, stamp_ns: int, **inputs: Any
) -> SceneGraphResult:
    """``engine.process(image, stamp_ns, **inputs)``, checked to answer this frame.

    Args:
        engine: a streaming engine (:class:`~tr2_core.stream.engine_contract.SceneGraphEngine`).
        image: (H, W, 3) uint8 RGB.
        stamp_ns: the frame's time in nanoseconds.
        **inputs: further keyword arguments of ``process`` (``boxes``, ``labels``,
            ``gap_ns``), passed only when given.

    Raises:
        FrameFailed: any error of the engine on this frame (the engine runs arbitrary
            torch code: a shape it cannot resize, a device error ...), or a result for
            another stamp. The caller skips the frame; the engine stays usable.
    """
    try:
        result = engine.process(image, stamp_ns, **inputs)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as e:
        shape = "x".join(str(n) for n in np.shape(image))
        raise FrameFailed(
            f"inference failed on this {shape} frame: {type(e).__name__}: {clip(str(e))}"
        ) from e
    if int(result.stamp_ns) != int(stamp_ns):
        raise FrameFailed(
            f"the engine answered for stamp {int(result.stamp_ns)} ns, "
            f"not for this frame's {int(stamp_ns)} ns"
        )
    return result


@dataclass
class SkipLog:
    """Skipped frames of an offline run: counted per reason, the first
    :data:`LOGGED_SKIPS` logged one by one.

    Attributes:
        reasons: reason -> number of frames.
    """

    logger: logging.Logger
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def skip(self, where: str, reason: str) -> None:
        """Count one skipped frame (``where``: which frame, for the log line)."""
        self.reasons[reason] += 1
        if self.total <= LOGGED_SKIPS:
            self.logger.warning("frame %s skipped: %s", where, reason)
            if self.total == LOGGED_SKIPS:
                self.logger.warning("further skipped frames are counted, not logged")
