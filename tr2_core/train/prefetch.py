"""Training inputs loaded ahead, off the training thread.

With the feature cache a step's input is one safetensors read, a cast to float32 and a
host-to-device copy. :func:`prefetched` runs that in a background thread ``depth``
steps ahead; on CUDA the tensors are pinned there, so the copy is asynchronous and the
training thread only launches kernels. Items come out in order, and ``load`` is called
in order from one thread, so anything it draws from a generator (the frame windows)
is drawn exactly as without prefetching: results are unchanged.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

import torch

Item = TypeVar("Item")
Loaded = TypeVar("Loaded")

_DONE = object()


def pin(value: Any) -> Any:
    """A copy of a dataclass of tensors (or a tensor) in pinned host memory; other
    values unchanged. Only called when the target is a CUDA device."""
    if isinstance(value, torch.Tensor):
        return value.pin_memory() if value.device.type == "cpu" else value
    if is_dataclass(value) and not isinstance(value, type):
        return type(value)(**{f.name: pin(getattr(value, f.name)) for f in fields(value)})
    return value


def prefetched(
    items: Iterable[Item], load: Callable[[Item], Loaded], depth: int
) -> Iterator[Loaded]:
    """``load(item)`` for each item, in order, computed up to ``depth`` items ahead in a
    background thread (``depth`` 0: in the caller's thread, nothing ahead).

    An exception in ``load`` is raised in the caller at the item that raised. Closing
    the iterator early (``break``, an exception in the caller) stops the thread after
    its current item.
    """
    if depth <= 0:
        for item in items:
            yield load(item)
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                ready.put((load(item), None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            ready.put((None, e))
            return
        ready.put((_DONE, None))

    thread = threading.Thread(target=produce, name="tr2-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value, error = ready.get()
            if error is not None:
                raise error
            if value is _DONE:
                return
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get(timeout=0.05)
            except queue.Empty:
                pass
