"""Entities from the robot's own detector: ``vision_msgs/Detection2DArray`` in, the
boxes and Action Genome labels the engine takes in ``predcls`` / ``sgcls`` out.

ROS-free (reads message fields, so rclpy's messages, rosbags' and anything shaped
like them). Three parts:

* :class:`ClassMap`: the detector's class ids (``ObjectHypothesis.class_id``, a name
  such as ``cup`` or a number such as ``41``) -> Action Genome's 36 object classes,
  from a YAML file; classes the map does not name are dropped and counted.
* :func:`entities_from_detections`: one Detection2DArray -> :class:`GivenEntities`
  (axis-aligned ``x1 y1 x2 y2`` boxes, labels, scores; the person first).
* :class:`DetectionBuffer`: the recent Detection2DArray messages, matched to an image
  by stamp (exactly, or the nearest within a tolerance), waiting a bounded time for
  detections that arrive after their image.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tr2_core.errors import ConfigError
from tr2_core.vocab import OBJECT_CLASSES, OBJECT_INDEX

PERSON = OBJECT_INDEX["person"]


@dataclass(frozen=True)
class ClassMap:
    """Detector class id -> Action Genome object index (1..36).

    Attributes:
        classes: class id (as the detector writes it in ``class_id``) -> AG index;
            ids not in it are dropped.
        source: where the map came from, for log lines.
    """

    classes: Mapping[str, int]
    source: str

    @classmethod
    def action_genome(cls) -> ClassMap:
        """The map of a detector that already speaks Action Genome: its 36 class names
        (``person``, ``cup/glass/bottle``, ...) map to themselves."""
        return cls({name: i for i, name in enumerate(OBJECT_CLASSES) if i}, "Action Genome names")

    @classmethod
    def load(cls, path: str | Path) -> ClassMap:
        """Read a class map file: a YAML mapping of detector class ids (names or numbers)
        to Action Genome object class names; ``null`` drops a class explicitly.

        Raises:
            ConfigError: unreadable file, not a mapping, or a value that is not one of
                Action Genome's 36 object classes (file and class named).
        """
        path = Path(path).expanduser()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"class map {path}: cannot read: {e}") from None
        if not isinstance(data, Mapping) or not data:
            raise ConfigError(
                f"class map {path}: expected a mapping of detector class ids to Action Genome"
                " object classes, e.g. 'cup: cup/glass/bottle'"
            )
        classes: dict[str, int] = {}
        for key, value in data.items():
            if value is None:
                continue
            if not isinstance(value, str) or OBJECT_INDEX.get(value, 0) == 0:
                raise ConfigError(
                    f"class map {path}: class {str(key)!r} maps to {value!r}, which is not one"
                    " of Action Genome's 36 object classes (tr2_core.vocab.OBJECT_CLASSES)"
                )
            classes[str(key)] = OBJECT_INDEX[value]
        if not classes:
            raise ConfigError(f"class map {path}: every class is dropped (all values null)")
        return cls(classes, str(path))

    def lookup(self, class_id: Any) -> int | None:
        """The AG index of a detector class id, or None (dropped)."""
        return self.classes.get(str(class_id).strip())


@dataclass(frozen=True)
class GivenEntities:
    """What the engine takes from one Detection2DArray.

    Attributes:
        boxes: (N, 4) float32 ``x1 y1 x2 y2`` pixels (rotated boxes: their bounds).
        labels: (N,) int64 Action Genome object indices, persons first.
        scores: (N,) float32 the detector's scores.
        unmapped: detections dropped because the class map does not name their class.
        invalid: detections dropped for no hypothesis or a non-finite / empty box.
    """

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    unmapped: int
    invalid: int


def _box_xyxy(bbox: Any) -> tuple[float, float, float, float]:
    """``vision_msgs/BoundingBox2D`` (centre, size, rotation theta) -> its axis-aligned
    bounds."""
    cx, cy = float(bbox.center.position.x), float(bbox.center.position.y)
    theta = float(bbox.center.theta)
    c, s = abs(math.cos(theta)), abs(math.sin(theta))
    sx, sy = float(bbox.size_x), float(bbox.size_y)
    hx, hy = (c * sx + s * sy) / 2, (s * sx + c * sy) / 2
    return cx - hx, cy - hy, cx + hx, cy + hy


def entities_from_detections(msg: Any, class_map: ClassMap) -> GivenEntities:
    """The detections of one ``vision_msgs/Detection2DArray`` as given entities.

    Each detection takes its best-scoring hypothesis; one whose class the map does not
    name is dropped (``unmapped``), as is one without hypotheses or with a non-finite or
    empty box (``invalid``). Persons come first (the person is the subject of the pairs).
    """
    boxes, labels, scores = [], [], []
    unmapped = invalid = 0
    for detection in msg.detections:
        results = list(detection.results)
        if not results:
            invalid += 1
            continue
        best = max(results, key=lambda r: float(r.hypothesis.score))
        label = class_map.lookup(best.hypothesis.class_id)
        if label is None:
            unmapped += 1
            continue
        box = _box_xyxy(detection.bbox)
        if not all(math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
            invalid += 1
            continue
        boxes.append(box)
        labels.append(label)
        scores.append(float(best.hypothesis.score))
    labels_np = np.asarray(labels, np.int64)
    order = np.argsort(labels_np != PERSON, kind="stable")
    return GivenEntities(
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4)[order],
        labels=labels_np[order],
        scores=np.asarray(scores, np.float32)[order],
        unmapped=unmapped,
        invalid=invalid,
    )


def _stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class DetectionBuffer:
    """The newest ``capacity`` Detection2DArray messages, matched to images by stamp.

    Thread-safe: the subscription callback :meth:`put` s, the worker :meth:`match` es.

    Args:
        tolerance_ns: largest stamp difference accepted (0: the detector copied the
            image's header, the convention).
        capacity: messages kept (the oldest go first).
    """

    def __init__(self, tolerance_ns: int = 0, capacity: int = 64) -> None:
        self.tolerance_ns = int(tolerance_ns)
        self._messages: deque[tuple[int, Any]] = deque(maxlen=capacity)
        self._cond = threading.Condition()
        self._received = 0

    def put(self, msg: Any) -> None:
        """Store one Detection2DArray (callback side; constant time)."""
        with self._cond:
            self._messages.append((_stamp_ns(msg), msg))
            self._received += 1
            self._cond.notify_all()

    @property
    def received(self) -> int:
        with self._cond:
            return self._received

    def _nearest(self, stamp_ns: int) -> tuple[Any | None, bool]:
        """(the best match or None, whether a later one can no longer come)."""
        best, best_diff, later = None, None, False
        for stamp, msg in self._messages:
            diff = abs(stamp - stamp_ns)
            if diff <= self.tolerance_ns and (best_diff is None or diff < best_diff):
                best, best_diff = msg, diff
            later |= stamp > stamp_ns + self.tolerance_ns
        return best, later

    def match(self, stamp_ns: int, timeout: float = 0.0) -> Any | None:
        """The detections of the image stamped ``stamp_ns``: the message with the
        nearest stamp within the tolerance, waiting up to ``timeout`` seconds for it
        (detectors publish after their image). Stops waiting early once a message past
        the tolerance has arrived (detectors publish in order). The first match present
        is taken (the nearest of those present), so latency never waits for a better
        one. None: no match."""

        def settled() -> bool:
            best, later = self._nearest(stamp_ns)
            return best is not None or later

        with self._cond:
            self._cond.wait_for(settled, timeout)
            return self._nearest(stamp_ns)[0]


class DetectionIndex:
    """All Detection2DArray messages of a recording, sorted by stamp, for offline
    matching (``tr2 bag``): the nearest stamp within the tolerance, by binary search.

    Args:
        messages: the messages (any order).
        tolerance_ns: largest stamp difference accepted (0: exact).
    """

    def __init__(self, messages: list[Any], tolerance_ns: int = 0) -> None:
        stamps = np.array([_stamp_ns(m) for m in messages], np.int64)
        order = np.argsort(stamps, kind="stable")
        self._stamps = stamps[order]
        self._messages = [messages[i] for i in order]
        self.tolerance_ns = int(tolerance_ns)

    def __len__(self) -> int:
        return len(self._messages)

    def match(self, stamp_ns: int) -> Any | None:
        """The message nearest to ``stamp_ns`` within the tolerance, or None."""
        if not self._messages:
            return None
        i = int(np.searchsorted(self._stamps, stamp_ns))
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self._stamps)]
        best = min(candidates, key=lambda j: abs(int(self._stamps[j]) - stamp_ns))
        if abs(int(self._stamps[best]) - stamp_ns) > self.tolerance_ns:
            return None
        return self._messages[best]
