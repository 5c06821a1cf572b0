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
from collections.abc import Iterator, Sequence
from itertools import accumulate

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


Family = tuple[str, str, str]  # (name, type, help)


class Families:
    """The lines of an exposition's metric families, added a batch of series at a time and
    written out family by family: the text format wants each family's lines together, and a
    render from rows copied out in slices meets its series a slice at a time."""

    def __init__(self, families: Sequence[Family]) -> None:
        self.families = families
        self.lines: dict[str, list[str]] = {name: [] for name, _, _ in families}

    def sample(self, name: str, labels: str, value: float) -> None:
        self.lines[name].append(f"{name}{{{labels}}} {number(value)}" if labels else f"{name} {number(value)}")

    def histogram(self, name: str, labels: str, bounds: Sequence[str], counts: Sequence[int], sum_s: float) -> None:
        """One series of a histogram family: ``counts`` per bucket (the last is +Inf), so
        ``bounds`` are the upper bounds as text, "+Inf" last."""
        sep, braced = ("," , f"{{{labels}}}") if labels else ("", "")
        head = f"{name}_bucket{{{labels}{sep}le="
        cumulative = list(accumulate(counts))
        lines = self.lines[name]
        lines += [f'{head}"{bound}"}} {n}' for bound, n in zip(bounds, cumulative)]
        lines += (f"{name}_count{braced} {cumulative[-1] if cumulative else 0}", f"{name}_sum{braced} {number(sum_s)}")

    def pieces(self, chunk_lines: int = CHUNK_LINES) -> Iterator[bytes]:
        """The text, in pieces of about ``chunk_lines`` lines (each line ended)."""
        out: list[str] = []
        for name, kind, doc in self.families:
            doc = doc.replace("\\", r"\\").replace("\n", r"\n")
            out += (f"# HELP {name} {doc}", f"# TYPE {name} {kind}")
            lines, i = self.lines[name], 0
            while i < len(lines):
                take = max(1, chunk_lines - len(out))
                out += lines[i:i + take]
                i += take
                if len(out) >= chunk_lines:
                    yield _text(out)
                    out = []
        if out:
            yield _text(out)

    def text(self) -> bytes:
        return b"".join(self.pieces())


def _text(lines: list[str]) -> bytes:
    lines.append("")
    return "\n".join(lines).encode()
