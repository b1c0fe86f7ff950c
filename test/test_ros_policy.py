"""Newest-frame slot and rate limiter: bounded memory, exact drop counters,
newest frame always taken, thread safety."""

from __future__ import annotations

import threading
import time

from tr2_ros.policy import LatestSlot, RateLimiter, SlotStats


def test_put_take_and_counters():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.take(timeout=0) is None
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never taken: dropped
    assert slot.put(3) is True
    assert slot.stats() == SlotStats(received=3, taken=0, dropped=2, pending=1)
    assert slot.take(timeout=0) == 3  # always the newest
    assert slot.take(timeout=0) is None
    assert slot.put(4) is False
    assert slot.stats() == SlotStats(received=4, taken=1, dropped=2, pending=1)


def test_close_wakes_a_waiting_consumer():
    slot: LatestSlot[int] = LatestSlot()
    got = []
    consumer = threading.Thread(target=lambda: got.append(slot.take()))
    consumer.start()
    time.sleep(0.05)
    slot.close()
    consumer.join(timeout=2)
    assert not consumer.is_alive() and got == [None]
    assert slot.closed


def test_close_still_hands_out_the_pending_item():
    slot: LatestSlot[str] = LatestSlot()
    slot.put("last")
    slot.close()
    assert slot.take() == "last"
    assert slot.take() is None


def test_take_times_out():
    slot: LatestSlot[int] = LatestSlot()
    start = time.monotonic()
    assert slot.take(timeout=0.05) is None
    assert time.monotonic() - start >= 0.04


def test_fast_producer_slow_consumer_drops_stale_and_takes_newest():
    """Producer 3x faster than the consumer: memory stays one slot, every
    frame is either taken or dropped exactly once, taken frames are in order
    and each one was the newest at the moment it was taken."""
    slot: LatestSlot[int] = LatestSlot()
    frames = 90
    produced_upto = [-1]  # newest frame put so far (written by the producer only)
    taken: list[tuple[int, int]] = []  # (frame, newest frame put when taken)
    done = threading.Event()

    def producer():
        for i in range(frames):
            with lock:
                slot.put(i)
                produced_upto[0] = i
            time.sleep(0.001)
        done.set()

    def consumer():
        while True:
            with lock:
                item = slot.take(timeout=0)
                newest = produced_upto[0]
            if item is not None:
                taken.append((item, newest))
                # "inference" lasts at least 3 input frames: 3x slower than the producer
                while produced_upto[0] < item + 3 and not done.is_set():
                    time.sleep(0.0005)
            elif done.is_set() and slot.stats().pending == 0:
                return
            else:
                time.sleep(0.0005)

    lock = threading.Lock()  # only to observe "newest at take time" atomically
    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    stats = slot.stats()
    items = [item for item, _ in taken]
    assert all(item == newest for item, newest in taken)  # never a stale frame
    assert items == sorted(set(items))  # in order, no duplicates
    assert items[-1] == frames - 1  # the last frame is processed
    assert stats.received == frames
    assert stats.taken == len(items)
    assert stats.dropped == frames - len(items)  # exact: everything else was dropped
    assert stats.pending == 0
    assert len(items) <= frames // 3 + 1  # the consumer really was 3x slower
    assert stats.dropped >= frames - (frames // 3 + 1)


def test_many_producers_counters_stay_consistent():
    slot: LatestSlot[int] = LatestSlot()
    per_thread, producers = 2000, 4
    stop = threading.Event()
    taken = []

    def produce(base):
        for i in range(per_thread):
            slot.put(base + i)

    def consume():
        while not stop.is_set() or slot.stats().pending:
            item = slot.take(timeout=0.001)
            if item is not None:
                taken.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    threads = [threading.Thread(target=produce, args=(k * per_thread,)) for k in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    consumer.join(timeout=10)
    stats = slot.stats()
    assert stats.received == per_thread * producers
    assert stats.taken == len(taken) == len(set(taken))
    assert stats.received == stats.taken + stats.dropped + stats.pending
    assert stats.pending == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_spacing():
    clock = FakeClock()
    limiter = RateLimiter(4.0, clock)  # 0.25 s apart
    assert limiter.delay() == 0.0  # first frame goes at once
    limiter.mark()
    clock.now += 0.1
    assert abs(limiter.delay() - 0.15) < 1e-9
    clock.now += 0.2
    assert limiter.delay() == 0.0
    limiter.mark()
    assert abs(limiter.delay() - 0.25) < 1e-9


def test_rate_limiter_off():
    clock = FakeClock()
    limiter = RateLimiter(0.0, clock)
    limiter.mark()
    assert limiter.delay() == 0.0
    assert limiter.period == 0.0


def test_combine_merges_what_a_dropped_item_carried():
    slot: LatestSlot[tuple[str, int]] = LatestSlot(lambda old, new: (new[0], max(old[1], new[1])))
    slot.put(("a", 5))
    slot.put(("b", 1))  # replaces a: keeps a's 5
    assert slot.take(timeout=0) == ("b", 5)
    slot.put(("c", 2))  # nothing pending: stored as is
    assert slot.take(timeout=0) == ("c", 2)
    assert slot.stats().dropped == 1
