"""Prometheus text exposition (format 0.0.4) written straight from numbers.

Written by hand because prometheus_client renders through a Metric and a Sample object per
line and escapes every label of every line on every scrape: 8 us a line, 6.5 s for a
monitor of 10,000 targets (770,000 lines), measured, and all of it holding the GIL that the
sending loop needs.  A session's label text is escaped once, when it is added; a scrape only
formats numbers (bench/README.md has the figures).  The reflector's few dozen lines still go
through prometheus_client.
"""

from __future__ import annotations

import math
from itertools import accumulate
from collections.abc import Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CHUNK_LINES = 250  # lines per piece of a render done in slices (under a millisecond, cache cold)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def label_text(names: Sequence[str], values: Sequence[str]) -> str:
    """``a="x",b="y"``, escaped as the exposition format wants."""
    return ",".join(f'{n}="{_escape(str(v))}"' for n, v in zip(names, values))


def number(value: float) -> str:
    """A sample value as Prometheus parses it (Go's ParseFloat: ints, reprs, +Inf, NaN)."""
    if type(value) is int:
        return str(value)
    if math.isfinite(value):
        return repr(float(value))
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


class Exposition:
    """Lines of one scrape, joined at the end, or taken a piece at a time by a render done in
    slices (:meth:`full`, :meth:`take`)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, doc: str) -> None:
        doc = doc.replace("\\", r"\\").replace("\n", r"\n")
        self.lines += (f"# HELP {name} {doc}", f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: str, value: float) -> None:
        self.lines.append(f"{name}{{{labels}}} {number(value)}" if labels else f"{name} {number(value)}")

    def histogram(self, name: str, labels: str, bounds: Sequence[str], counts: Sequence[int], sum_s: float) -> None:
        """One series of a histogram family: ``counts`` per bucket (the last is +Inf), so
        ``bounds`` are the upper bounds as text, "+Inf" last."""
        sep, braced = ("," , f"{{{labels}}}") if labels else ("", "")
        head = f"{name}_bucket{{{labels}{sep}le="
        cumulative = list(accumulate(counts))
        self.lines += [f'{head}"{bound}"}} {n}' for bound, n in zip(bounds, cumulative)]
        self.lines += (f"{name}_count{braced} {cumulative[-1] if cumulative else 0}",
                       f"{name}_sum{braced} {number(sum_s)}")

    def full(self) -> bool:
        """Enough lines for a piece (CHUNK_LINES)."""
        return len(self.lines) >= CHUNK_LINES

    def take(self) -> bytes:
        """The lines so far, as text (each line ended), and none kept."""
        if not self.lines:
            return b""
        self.lines.append("")
        text = "\n".join(self.lines).encode()
        self.lines = []
        return text

    def text(self) -> bytes:
        return self.take()
