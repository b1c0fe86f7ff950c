"""Generating videos on every core: the generator is pure Python, NumPy and Pillow, one
core per process, and each video depends only on (seed, index), so the result does not
depend on how many processes made it."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

MIN_VIDEOS_PER_WORKER = 16
"""Below this many videos per extra process a worker's start (about 0.3 s) outweighs it."""


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(videos: int, workers: int | None = None) -> int:
    """``workers`` as given, or (None) every available core while each gets at least
    :data:`MIN_VIDEOS_PER_WORKER` videos; 1 = in this process."""
    if workers is not None:
        return max(1, int(workers))
    return max(1, min(available_cores(), videos // MIN_VIDEOS_PER_WORKER))


def ordered_map(work: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``work(item)`` for every item, yielded in order, on ``workers`` processes
    (``work`` must be a module-level function). Processes are spawned, not forked: the
    parent may hold torch's thread pools, which a forked child must not touch."""
    if workers <= 1 or len(items) < 2 or not _spawn_can_start():
        yield from map(work, items)
        return
    context = multiprocessing.get_context("spawn")
    chunk = max(1, len(items) // (8 * workers))
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(work, items, chunksize=chunk)


def _spawn_can_start() -> bool:
    """A spawned process re-imports the parent's main script: impossible when that was
    read from stdin (``python - < script``), so such a parent works alone."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or os.path.isfile(main_file)
