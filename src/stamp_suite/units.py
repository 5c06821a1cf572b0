"""Durations as an operator types them: ``10ms``, ``1.5s``, ``200us``, ``5m``.  A bare number
keeps the unit each setting has always had (the Rust tool's: milliseconds for -d, seconds
for -L and -w), so old command lines and files mean what they meant."""

from __future__ import annotations

import math
import re

# Seconds per unit (Go's time.ParseDuration names; "m" is minutes, "ms" milliseconds).
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# The settings that are durations, and the unit of a bare number in each.
DURATIONS = {"send_delay": "ms", "timeout": "s", "max_runtime": "s", "report_interval": "s",
             "access_report_timer": "s"}
_DURATION = re.compile(r"^\s*(?P<number>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?P<unit>[a-zµ]*)\s*$")


def parse_duration(text: str, unit: str) -> float:
    """``text`` in ``unit`` ("ms" or "s"); ValueError in words when it is not a duration."""
    m = _DURATION.match(text)
    if not m or (m["unit"] and m["unit"] not in UNITS):
        raise ValueError(f"{text!r} is not a duration (a number, or with a unit: 200us, 10ms, 1.5s, 5m, 1h)")
    value = float(m["number"]) * UNITS[m["unit"] or unit] / UNITS[unit]
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite duration")
    return value
