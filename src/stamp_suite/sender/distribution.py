"""A streaming distribution of nanosecond values with bounded memory.

Count, min, max, mean and standard deviation are exact: the moments are integer sums, which
Python keeps without rounding (no Welford steps, no cancellation).  Percentiles are exact
(nearest rank) while the run holds up to ``exact_limit`` values, then come from a DDSketch
(its logarithmic buckets, within the stated relative error): memory stays bounded on a
24-hour run, and bucket counts merge, so interim reports and several workers can be combined.
The sketch is started at SKETCH_FROM values and fed in parallel from then on, so dropping the
exact values at ``exact_limit`` costs no pause; small distributions (a monitor's windows)
never carry a sketch at all.  With ``keep_values=False`` only the moments are kept.

Values are settled in bulk: ``add`` only queues one (it is the queue's own list append, no
Python call), and every read settles the queue with builtins that run in C (``min``, ``max``,
``sum``) and counts it into the sketch's buckets a batch at a time (:func:`_keys`).  Whoever
adds also calls :meth:`settle` now and then (SessionStats does, every 128 replies), which
bounds the queue.  A sender at tens of thousands of replies a second feeds eight of these a
reply.  ``count``, ``min``, ``max``, ``mean`` and ``stddev`` change nothing and may be read from
another thread (the SNMP sub-agent's) while the owner adds and settles; the rest (settle,
percentiles, summary, merge) is the owner's.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from itertools import accumulate
from operator import mul

from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.005  # percentile values within 0.5 % once the sketch takes over
EXACT_LIMIT = 20_000
SKETCH_FROM = 2_000


class Distribution:
    __slots__ = ("add", "_queue", "_count", "_min", "_max", "_sum", "_sum2", "_exact", "_sketch", "_ranks",
                 "exact_limit", "_sketch_from", "_generation", "_settled")

    def __init__(self, exact_limit: int = EXACT_LIMIT, keep_values: bool = True) -> None:
        self._queue: list[int] = []
        self.add = self._queue.append  # the queue is only ever cut from its head (settle)
        self._count = 0
        self._min: int | None = None
        self._max: int | None = None
        self._sum = 0  # integers: exact moments at any count
        self._sum2 = 0
        self._exact: list[int] | None = [] if keep_values else None
        self._sketch: Counter | None = None  # the sketch's buckets: key -> values in it
        self._ranks: tuple[list[float], list[int]] | None = None  # bucket values and cumulative counts
        self.exact_limit = exact_limit
        self._sketch_from = min(SKETCH_FROM, exact_limit)
        self._generation = 0  # odd while a settle runs (see _moments)
        self._settled: tuple = (0, None, None, 0, 0)  # the moments as the last settle left them

    def settle(self) -> None:
        """Fold the queued values in (the owner's: it adds, and reads percentiles)."""
        queue = self._queue
        n = len(queue)
        if not n:
            return
        self._generation += 1
        values = queue[:n]
        lo, hi = min(values), max(values)
        if self._count == 0:
            self._min, self._max = lo, hi
        else:
            self._min, self._max = min(self._min, lo), max(self._max, hi)
        self._sum += sum(values)
        self._sum2 += sum(map(mul, values, values))
        self._count += n
        if self._sketch is not None:
            self._sketch.update(_keys(values, lo))
            self._ranks = None
        exact = self._exact
        if exact is not None:
            exact += values
            if self._sketch is None and len(exact) >= self._sketch_from:
                self._start_sketch()
            if len(exact) > self.exact_limit:
                self._exact = None
        del queue[:n]  # values added meanwhile stay queued
        self._publish()

    def _publish(self) -> None:
        """The moments as one tuple, for readers on other threads (_moments); ends a change."""
        self._settled = (self._count, self._min, self._max, self._sum, self._sum2)
        self._generation += 1

    def _start_sketch(self) -> None:
        exact = self._exact or []
        self._sketch = Counter(_keys(exact, min(exact, default=1)))
        self._ranks = None

    def _moments(self) -> tuple[int, int | None, int | None, int, int]:
        """(count, min, max, sum, sum of squares) of all values added, settled or queued, without
        changing anything, and whole from any thread: while a settle runs on the owner's (its
        generation odd or moved), the last settle's moments, a few values behind.  Neither a
        lock nor a retry: the engines touch no operating system facility (test_layers.py), and
        a reader spinning for the owner to finish would hold the GIL it needs, for milliseconds."""
        generation = self._generation
        settled = self._settled
        queue = self._queue[:]
        if generation & 1 or generation != self._generation:
            return settled
        n, lo, hi, total, squares = settled
        if queue:
            qlo, qhi = min(queue), max(queue)
            lo, hi = (qlo, qhi) if lo is None else (min(lo, qlo), max(hi, qhi))
            n, total, squares = n + len(queue), total + sum(queue), squares + sum(map(mul, queue, queue))
        return n, lo, hi, total, squares

    @property
    def count(self) -> int:
        return self._moments()[0]

    @property
    def min(self) -> int | None:
        return self._moments()[1]

    @property
    def max(self) -> int | None:
        return self._moments()[2]

    @property
    def exact(self) -> bool:
        self.settle()
        return self._exact is not None

    @property
    def mean(self) -> float | None:
        n, _, _, total, _ = self._moments()
        return total / n if n else None

    @property
    def stddev(self) -> float | None:
        """Sample standard deviation (n - 1); 0 for a single value."""
        n, _, _, total, squares = self._moments()
        if not n:
            return None
        # n * sum2 - sum^2 is exact in integers: one rounding, at the division
        return math.sqrt((n * squares - total * total) / (n * (n - 1))) if n > 1 else 0.0

    @property
    def keeps_values(self) -> bool:
        return self._exact is not None or self._sketch is not None

    def percentile(self, p: float, _ordered: list[int] | None = None) -> float | None:
        """The p-th percentile (0 < p <= 100), nearest rank: exact, or the value of the sketch
        bucket holding that rank (None when no values are kept)."""
        self.settle()
        if not self._count or not self.keeps_values:
            return None
        if self._exact is not None:
            ordered = _ordered if _ordered is not None else sorted(self._exact)
            rank = max(1, math.ceil(p / 100 * len(ordered)))
            return ordered[rank - 1]
        if self._ranks is None:
            buckets = sorted((_value_of(key), n) for key, n in self._sketch.items())
            self._ranks = ([v for v, _ in buckets], list(accumulate(n for _, n in buckets)))
        values, cumulative = self._ranks
        rank = max(1, math.ceil(p / 100 * cumulative[-1]))
        value = values[bisect_left(cumulative, rank)]
        return min(max(value, self._min), self._max)  # never outside what was seen

    def merge(self, other: Distribution) -> None:
        """Fold ``other`` in (both owned by the calling thread: a window's, an interval's)."""
        self.settle()
        other.settle()
        if not other._count:
            return
        n = self._count + other._count
        self._generation += 1
        self._min = other._min if self._min is None else min(self._min, other._min)
        self._max = other._max if self._max is None else max(self._max, other._max)
        self._count, self._sum, self._sum2 = n, self._sum + other._sum, self._sum2 + other._sum2
        self._publish()
        self._ranks = None
        if not (self.keeps_values and other.keeps_values):  # moments only, from now on
            self._exact = self._sketch = None
            return
        if self._exact is not None and other._exact is not None and n <= self.exact_limit:
            self._exact.extend(other._exact)
            if self._sketch is None and len(self._exact) >= self._sketch_from:
                self._start_sketch()
            elif self._sketch is not None:
                self._sketch.update(_keys(other._exact, other._min))
            return
        if self._sketch is None:
            self._start_sketch()
        if other._sketch is not None:
            self._sketch.update(other._sketch)
        else:
            self._sketch.update(_keys(other._exact, other._min))
        self._exact = None

    def summary(self, percentiles: tuple[float, ...] = (50, 90, 95, 99, 99.9)) -> dict:
        self.settle()
        ordered = sorted(self._exact) if self._exact is not None else None
        return {
            "count": self.count, "min": self._min, "max": self._max, "mean": self.mean, "stddev": self.stddev,
            "percentiles": {_pname(p): self.percentile(p, ordered) for p in percentiles},
            "percentile_method": "exact (nearest rank)" if self._exact is not None else
            f"DDSketch, relative error <= {RELATIVE_ACCURACY:.1%}" if self.keeps_values else "none (values not kept)",
        }


# The sketch is DDSketch's LogarithmicMapping: its buckets for the stated relative error, and
# the value it gives each.  The library's sketch adds one value at a time, at about 1.4 us
# each here, and has no bulk add: so its buckets are counted here, a queue at a time (a list
# of keys, then Counter.update, both in C), and a percentile is the value of the bucket that
# holds its rank.  A key is ceil(log2(v) * multiplier) as the mapping computes it (log2
# rather than its log(v, 2): one log instead of two; a value an ulp from a boundary may fall
# in the neighbouring bucket, whose value is as close to it, within the relative error).
# Negative values (IPDV, offsets between unsynchronised clocks) count under NEGATIVE - key(-v),
# zero under None.
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
_MULTIPLIER = 1 / math.log1p(_MAPPING.gamma - 1) * math.log(2)
NEGATIVE = -(1 << 40)


def _keys(values: list[int], lowest: int) -> list[int | None]:
    log2, ceil, m = math.log2, math.ceil, _MULTIPLIER
    if lowest > 0:
        return [ceil(log2(v) * m) for v in values]
    return [ceil(log2(v) * m) if v > 0 else NEGATIVE - ceil(log2(-v) * m) if v else None for v in values]


def _value_of(key: int | None) -> float:
    if key is None:
        return 0.0
    if key < NEGATIVE // 2:
        return -_MAPPING.value(NEGATIVE - key)
    return _MAPPING.value(key)


def _pname(p: float) -> str:
    return "p" + (str(int(p)) if float(p).is_integer() else str(p))
