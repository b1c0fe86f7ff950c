"""Newest-frame hand-over between the subscription callback and the inference
worker, and the worker's rate limit. Thread-safe, ROS-free.

The callback only :meth:`LatestSlot.put` s the newest message (constant time,
one slot of memory); the worker :meth:`LatestSlot.take` s whatever is newest
when it becomes free. A frame replaced before the worker took it is stale:
dropped and counted, so latency stays bounded by one inference.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class SlotStats:
    """Counters of a :class:`LatestSlot`; ``received == taken + dropped + pending``.

    Attributes:
        received: items put.
        taken: items handed to the consumer.
        dropped: items replaced by a newer one before anyone took them.
        pending: 1 if an item waits in the slot, else 0.
    """

    received: int
    taken: int
    dropped: int
    pending: int


class LatestSlot(Generic[T]):
    """A one-item mailbox that keeps only the newest item.

    Args:
        combine: ``combine(dropped, newest) -> stored``, called under the slot's lock
            when ``newest`` replaces an item nobody took, so that what the dropped
            item carried (the longest gap between received frames) is not lost.
            None: store ``newest`` as it is.
    """

    def __init__(self, combine: Callable[[T, T], T] | None = None) -> None:
        self._combine = combine
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._received = 0
        self._taken = 0
        self._dropped = 0

    def put(self, item: T) -> bool:
        """Store ``item`` as the newest; returns True when it replaced an item
        nobody took (that one is dropped and counted). Never blocks on the consumer."""
        with self._cond:
            replaced = self._full
            if replaced and self._combine is not None:
                item = self._combine(self._item, item)  # type: ignore[arg-type]
            self._item, self._full = item, True
            self._received += 1
            self._dropped += int(replaced)
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting up to ``timeout`` seconds (None: until one
        arrives or :meth:`close`). Returns None on timeout or when closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout):
                return None
            if not self._full:  # closed and empty
                return None
            item, self._item, self._full = self._item, None, False
            self._taken += 1
            return item

    def close(self) -> None:
        """Wake every waiting :meth:`take`; later takes return what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def stats(self) -> SlotStats:
        """A consistent snapshot of the counters."""
        with self._cond:
            return SlotStats(self._received, self._taken, self._dropped, int(self._full))


class RateLimiter:
    """Spaces the starts of inference at least ``1 / max_rate_hz`` apart.

    The worker sleeps :meth:`delay` seconds *before* taking a frame, so it
    always processes the newest frame after the pause. ``max_rate_hz <= 0``
    means no limit.
    """

    def __init__(self, max_rate_hz: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = 1.0 / max_rate_hz if max_rate_hz > 0 else 0.0
        self._clock = clock
        self._last: float | None = None

    def delay(self) -> float:
        """Seconds to wait until the next start is allowed (0.0 when it is)."""
        if self._last is None or self.period == 0.0:
            return 0.0
        return max(0.0, self._last + self.period - self._clock())

    def mark(self) -> None:
        """Record that an inference starts now."""
        self._last = self._clock()
