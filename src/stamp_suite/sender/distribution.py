"""A streaming distribution of nanosecond values with bounded memory.

Count, min, max, mean and standard deviation are exact: the moments are integer sums, which
Python keeps without rounding (no Welford steps, no cancellation).  Percentiles are exact
(nearest rank) while the run holds up to ``exact_limit`` values, then come from a DDSketch
with the stated relative error: memory stays bounded on a 24-hour run, and sketches merge, so
interim reports and several workers can be combined.  The sketch is started at SKETCH_FROM
values and fed in parallel from then on, so dropping the exact values at ``exact_limit``
costs no pause; small distributions (a monitor's windows) never carry a sketch at all.  With
``keep_values=False`` only the moments are kept (no percentiles).

Values are settled in bulk: ``add`` only queues one (it is the queue's own list append, no
Python call), and every read settles the queue with builtins that run in C (``min``, ``max``,
``sum``) and counts it into the sketch's buckets in bulk (:func:`_keys`).  Whoever adds also
calls :meth:`settle` at least every SETTLE_EVERY values (SessionStats does), which bounds the
queue.  A sender at tens of thousands of replies a second feeds eight of these a reply.
"""

from __future__ import annotations

import math
from collections import Counter
from operator import mul

from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.005  # percentile values within 0.5 % once the sketch takes over
EXACT_LIMIT = 20_000
SKETCH_FROM = 2_000
SETTLE_EVERY = 256  # queued values at most: a settle stays well under 100 us


class Distribution:
    __slots__ = ("add", "_queue", "_count", "_min", "_max", "_sum", "_sum2", "_exact", "_sketch", "_view",
                 "exact_limit", "_sketch_from")

    def __init__(self, exact_limit: int = EXACT_LIMIT, keep_values: bool = True) -> None:
        self._queue: list[int] = []
        self.add = self._queue.append  # see settle(): the queue is cleared, never replaced
        self._count = 0
        self._min: int | None = None
        self._max: int | None = None
        self._sum = 0  # integers: exact moments at any count
        self._sum2 = 0
        self._exact: list[int] | None = [] if keep_values else None
        self._sketch: Counter | None = None  # the sketch's buckets: key -> values in it
        self._view: DDSketch | None = None  # a DDSketch of them, made when a percentile is read
        self.exact_limit = exact_limit
        self._sketch_from = min(SKETCH_FROM, exact_limit)

    def settle(self) -> None:
        """Fold the queued values in (every reader calls this first)."""
        queue = self._queue
        if not queue:
            return
        lo, hi = min(queue), max(queue)
        if self._count == 0:
            self._min, self._max = lo, hi
        else:
            self._min, self._max = min(self._min, lo), max(self._max, hi)
        self._count += len(queue)
        self._sum += sum(queue)
        self._sum2 += sum(map(mul, queue, queue))
        if self._sketch is not None:
            self._sketch.update(_keys(queue, lo))
            self._view = None
        exact = self._exact
        if exact is not None:
            exact += queue
            if self._sketch is None and len(exact) >= self._sketch_from:
                self._start_sketch()
            if len(exact) > self.exact_limit:
                self._exact = None
        queue.clear()

    def _start_sketch(self) -> None:
        exact = self._exact or []
        self._sketch = Counter(_keys(exact, min(exact, default=1)))
        self._view = None

    @property
    def count(self) -> int:
        return self._count + len(self._queue)

    @property
    def min(self) -> int | None:
        self.settle()
        return self._min

    @property
    def max(self) -> int | None:
        self.settle()
        return self._max

    @property
    def exact(self) -> bool:
        self.settle()
        return self._exact is not None

    @property
    def mean(self) -> float | None:
        self.settle()
        return self._sum / self._count if self._count else None

    @property
    def stddev(self) -> float | None:
        """Sample standard deviation (n - 1); 0 for a single value."""
        self.settle()
        n = self._count
        if not n:
            return None
        # n * sum2 - sum^2 is exact in integers: one rounding, at the division
        return math.sqrt((n * self._sum2 - self._sum * self._sum) / (n * (n - 1))) if n > 1 else 0.0

    @property
    def keeps_values(self) -> bool:
        return self._exact is not None or self._sketch is not None

    def percentile(self, p: float, _ordered: list[int] | None = None) -> float | None:
        """The p-th percentile (0 < p <= 100): nearest rank when exact, sketch estimate otherwise
        (None when no values are kept)."""
        self.settle()
        if not self._count or not self.keeps_values:
            return None
        if self._exact is not None:
            ordered = _ordered if _ordered is not None else sorted(self._exact)
            rank = max(1, math.ceil(p / 100 * len(ordered)))
            return ordered[rank - 1]
        # The same nearest rank as above: DDSketch's own quantile is the value at rank q(n-1)
        # (0-based), a neighbour of ours, and in a heavy tail neighbours differ by far more
        # than the sketch's error.  Aiming at rank r - 0.5 picks the bucket holding the r-th.
        if self._view is None:
            self._view = _sketch_of(self._sketch)
        n = self._view.count
        rank = max(1, math.ceil(p / 100 * n))
        value = self._view.get_quantile_value(min(rank - 0.5, n - 1) / (n - 1))
        return min(max(value, self._min), self._max)  # never outside what was seen

    def merge(self, other: Distribution) -> None:
        self.settle()
        other.settle()
        if not other._count:
            return
        n = self._count + other._count
        self._min = other._min if self._min is None else min(self._min, other._min)
        self._max = other._max if self._max is None else max(self._max, other._max)
        self._count, self._sum, self._sum2 = n, self._sum + other._sum, self._sum2 + other._sum2
        if not (self.keeps_values and other.keeps_values):  # moments only, from now on
            self._exact = self._sketch = self._view = None
            return
        if self._exact is not None and other._exact is not None and n <= self.exact_limit:
            self._exact.extend(other._exact)
            if self._sketch is None and len(self._exact) >= self._sketch_from:
                self._start_sketch()
            elif self._sketch is not None:
                self._sketch.update(_keys(other._exact, other._min))
            self._view = None
            return
        if self._sketch is None:
            self._start_sketch()
        if other._sketch is not None:
            self._sketch.update(other._sketch)
        else:
            self._sketch.update(_keys(other._exact, other._min))
        self._exact = self._view = None

    def summary(self, percentiles: tuple[float, ...] = (50, 90, 95, 99, 99.9)) -> dict:
        self.settle()
        ordered = sorted(self._exact) if self._exact is not None else None
        return {
            "count": self.count, "min": self._min, "max": self._max, "mean": self.mean, "stddev": self.stddev,
            "percentiles": {_pname(p): self.percentile(p, ordered) for p in percentiles},
            "percentile_method": "exact (nearest rank)" if self._exact is not None else
            f"DDSketch, relative error <= {RELATIVE_ACCURACY:.1%}" if self.keeps_values else "none (values not kept)",
        }


# The sketch is DDSketch's: its LogarithmicMapping's buckets for the stated relative error,
# its quantile.  Its add takes one value, at about 1.4 us each here, and it has no bulk add:
# so the buckets are counted here, a queue at a time (a list of keys, then Counter.update,
# both in C), and a DDSketch is made from the counts when a percentile is read.  A key is
# ceil(log2(v) * multiplier) as the mapping computes it (log2 rather than its log(v, 2): one
# log instead of two; a value an ulp from a boundary may fall in the neighbouring bucket,
# whose value is as close to it, within the relative error).  Negative values (IPDV, offsets
# between unsynchronised clocks) count under NEGATIVE - key(-v), zero under None.
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
_MULTIPLIER = 1 / math.log1p(_MAPPING.gamma - 1) * math.log(2)
NEGATIVE = -(1 << 40)


def _keys(values: list[int], lowest: int) -> list[int | None]:
    log2, ceil, m = math.log2, math.ceil, _MULTIPLIER
    if lowest > 0:
        return [ceil(log2(v) * m) for v in values]
    return [ceil(log2(v) * m) if v > 0 else NEGATIVE - ceil(log2(-v) * m) if v else None for v in values]


def _sketch_of(buckets: Counter) -> DDSketch:
    """A DDSketch holding the counted buckets: one weighted add per bucket, of a value in its
    middle (on the log scale), which the sketch's own mapping puts in that bucket."""
    sketch = DDSketch(relative_accuracy=RELATIVE_ACCURACY)
    for key, weight in buckets.items():
        if key is None:
            sketch.add(0, weight)
        elif key < NEGATIVE // 2:
            sketch.add(-_middle(NEGATIVE - key), weight)
        else:
            sketch.add(_middle(key), weight)
    return sketch


def _middle(key: int) -> float:
    return 2 ** ((key - 0.5) / _MULTIPLIER)


def _pname(p: float) -> str:
    return "p" + (str(int(p)) if float(p).is_integer() else str(p))
