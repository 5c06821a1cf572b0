"""A streaming distribution of nanosecond values with bounded memory.

Count, min, max, mean and standard deviation are exact (Welford).  Percentiles are exact
(nearest rank) while the run holds up to ``exact_limit`` values, then come from a
DDSketch with the stated relative error: memory stays bounded on a 24-hour run, and
sketches merge, so interim reports and several workers can be combined.  The sketch is
started at SKETCH_FROM values (a 1-2 ms catch-up, once) and fed in parallel from then on,
so dropping the exact values at ``exact_limit`` costs no pause; small distributions (a
monitor's windows) never carry a sketch at all.  With ``keep_values=False`` only the moments
are kept (no percentiles): a monitor's lifetime statistics, where ten thousand targets would
otherwise hold up to 20,000 values a series each.
"""

from __future__ import annotations

import math

from ddsketch import DDSketch

RELATIVE_ACCURACY = 0.005  # percentile values within 0.5 % once the sketch takes over
EXACT_LIMIT = 20_000
SKETCH_FROM = 2_000


class Distribution:
    __slots__ = ("count", "min", "max", "_mean", "_m2", "_exact", "_sketch", "exact_limit", "_sketch_from")

    def __init__(self, exact_limit: int = EXACT_LIMIT, keep_values: bool = True) -> None:
        self.count = 0
        self.min: int | None = None
        self.max: int | None = None
        self._mean = 0.0
        self._m2 = 0.0
        self._exact: list[int] | None = [] if keep_values else None
        self._sketch: DDSketch | None = None
        self.exact_limit = exact_limit
        self._sketch_from = min(SKETCH_FROM, exact_limit)

    def add(self, value: int) -> None:
        n = self.count = self.count + 1
        if n == 1:
            self.min = self.max = value
        elif value < self.min:
            self.min = value
        elif value > self.max:
            self.max = value
        delta = value - self._mean
        self._mean += delta / n
        self._m2 += delta * (value - self._mean)
        if self._sketch is not None:
            self._sketch.add(value)
        exact = self._exact
        if exact is not None:
            exact.append(value)
            if len(exact) >= self._sketch_from:
                self._grown(len(exact))

    def _grown(self, n: int) -> None:
        """Past SKETCH_FROM exact values: the sketch starts, and past the limit takes over."""
        if n == self._sketch_from:
            self._start_sketch()
        if n > self.exact_limit:
            self._exact = None

    def _start_sketch(self) -> None:
        self._sketch = DDSketch(relative_accuracy=RELATIVE_ACCURACY)
        for v in self._exact or ():
            self._sketch.add(v)

    @property
    def exact(self) -> bool:
        return self._exact is not None

    @property
    def mean(self) -> float | None:
        return self._mean if self.count else None

    @property
    def stddev(self) -> float | None:
        """Sample standard deviation (n - 1); 0 for a single value."""
        if not self.count:
            return None
        return math.sqrt(self._m2 / (self.count - 1)) if self.count > 1 else 0.0

    @property
    def keeps_values(self) -> bool:
        return self._exact is not None or self._sketch is not None

    def percentile(self, p: float, _ordered: list[int] | None = None) -> float | None:
        """The p-th percentile (0 < p <= 100): nearest rank when exact, sketch estimate otherwise
        (None when no values are kept)."""
        if not self.count or not self.keeps_values:
            return None
        if self._exact is not None:
            ordered = _ordered if _ordered is not None else sorted(self._exact)
            rank = max(1, math.ceil(p / 100 * len(ordered)))
            return ordered[rank - 1]
        # The same nearest rank as above: DDSketch's own quantile is the value at rank q(n-1)
        # (0-based), a neighbour of ours, and in a heavy tail neighbours differ by far more
        # than the sketch's error.  Aiming at rank r - 0.5 picks the bucket holding the r-th.
        n = self._sketch.count
        rank = max(1, math.ceil(p / 100 * n))
        value = self._sketch.get_quantile_value(min(rank - 0.5, n - 1) / (n - 1))
        return min(max(value, self.min), self.max)  # never outside what was seen

    def merge(self, other: Distribution) -> None:
        if not other.count:
            return
        n = self.count + other.count
        delta = other._mean - self._mean
        self._m2 += other._m2 + delta * delta * self.count * other.count / n
        self._mean += delta * other.count / n
        self.count = n
        self.min = other.min if self.min is None else min(self.min, other.min)
        self.max = other.max if self.max is None else max(self.max, other.max)
        if not (self.keeps_values and other.keeps_values):  # moments only, from now on
            self._exact = self._sketch = None
            return
        if self._exact is not None and other._exact is not None and n <= self.exact_limit:
            self._exact.extend(other._exact)
            if self._sketch is None and len(self._exact) >= SKETCH_FROM:
                self._start_sketch()
            elif self._sketch is not None:
                for v in other._exact:
                    self._sketch.add(v)
            return
        if self._sketch is None:
            self._start_sketch()
        if other._sketch is not None:
            self._sketch.merge(other._sketch)
        else:
            for v in other._exact or ():
                self._sketch.add(v)
        self._exact = None

    def summary(self, percentiles: tuple[float, ...] = (50, 90, 95, 99, 99.9)) -> dict:
        ordered = sorted(self._exact) if self._exact is not None else None
        return {
            "count": self.count, "min": self.min, "max": self.max, "mean": self.mean, "stddev": self.stddev,
            "percentiles": {_pname(p): self.percentile(p, ordered) for p in percentiles},
            "percentile_method": "exact (nearest rank)" if self.exact else
            f"DDSketch, relative error <= {RELATIVE_ACCURACY:.1%}" if self.keeps_values else "none (values not kept)",
        }


def _pname(p: float) -> str:
    return "p" + (str(int(p)) if float(p).is_integer() else str(p))
