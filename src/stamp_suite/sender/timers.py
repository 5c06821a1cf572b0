"""The timers of a coarse driver (a monitor of thousands of targets), at millisecond grain.

A heap of (due, session) tuples is what a precise sender needs, and what the monitor had: at
10,000 targets it pops 10,000 timers a second, and each pop cost 4 us in the running monitor
(measured: the heap is cold by the time the loop comes back to it, and each of its ~28
comparisons reaches a tuple and two ints).  Here a timer goes into the bucket of the
millisecond it is due in, and a heap holds only the milliseconds that have a bucket: a pop is
a step along a list, and the heap sees one push and one pop a millisecond.  A bucket comes up
at the start of its millisecond; the driver holds back what is due later in it (a send never
leaves early).
"""

from __future__ import annotations

import heapq

TICK_NS = 1_000_000


class TimerWheel:
    """Session ids by the tick their timer is due in.  Entries are never removed: a session
    whose timer moved leaves a stale entry, which the driver skips (its timer no longer due)."""

    def __init__(self) -> None:
        self._buckets: dict[int, list[int]] = {}
        self._ticks: list[int] = []  # a heap of the ticks in _buckets

    def __len__(self) -> int:
        return sum(map(len, self._buckets.values()))

    def push(self, due_ns: int, session_id: int) -> None:
        tick = due_ns // TICK_NS
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = [session_id]
            heapq.heappush(self._ticks, tick)
        else:
            bucket.append(session_id)

    def first(self) -> int | None:
        """When the earliest bucket comes up (the start of its millisecond, monotonic ns), or
        None when there is none."""
        return self._ticks[0] * TICK_NS if self._ticks else None

    def pop_due(self, now_ns: int, limit: int) -> list[int]:
        """The ids in the buckets that have come up by ``now_ns``, oldest first, at most
        ``limit`` of them (the rest stay for the next call)."""
        out: list[int] = []
        ticks, buckets = self._ticks, self._buckets
        while ticks and ticks[0] * TICK_NS <= now_ns and len(out) < limit:
            tick = ticks[0]
            bucket = buckets[tick]
            room = limit - len(out)
            if len(bucket) <= room:
                heapq.heappop(ticks)
                del buckets[tick]
                out += bucket
            else:
                out += bucket[:room]
                del bucket[:room]
        return out
