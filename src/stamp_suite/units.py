"""Durations as an operator types them: ``10ms``, ``1.5s``, ``200us``, ``5m``, ``1h30m``.  A
bare number keeps the unit each setting has always had (the Rust tool's: milliseconds for -d,
seconds for -L and -w), so old command lines and files mean what they meant."""

from __future__ import annotations

import math
import re

# Seconds per unit (Go's time.ParseDuration names, in any case; "m" is minutes, "ms"
# milliseconds; micro as u, the micro sign or the Greek mu that keyboards type).
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# The settings that are durations, and the unit of a bare number in each.
DURATIONS = {"send_delay": "ms", "timeout": "s", "max_runtime": "s", "report_interval": "s",
             "access_report_timer": "s", "session_timeout": "s", "busy_poll": "us", "outage_threshold": "s",
             "errored_rtt": "ms"}
WHOLE = {"session_timeout", "busy_poll"}  # counted in whole units
_PART = re.compile(r"(?P<number>[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)(?P<unit>[a-zµμ]*)")
EXAMPLES = "200us, 10ms, 1.5s, 5m, 1h30m"


def parse_duration(text: str, unit: str) -> float:
    """``text`` in ``unit`` ("us", "ms" or "s"); ValueError in words when it is not a duration."""
    compact = text.strip().lower()
    parts = list(_PART.finditer(compact))
    if (not parts or "".join(m[0] for m in parts) != compact or any(m["unit"] not in UNITS for m in parts if m["unit"])
            or (len(parts) > 1 and not all(m["unit"] for m in parts))):
        raise ValueError(f"{text!r} is not a duration (a number, or with a unit: {EXAMPLES})")
    value = sum(float(m["number"]) * UNITS[m["unit"] or unit] for m in parts) / UNITS[unit]
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite duration")
    return value


def setting_duration(name: str, text: str) -> float | int:
    """A duration setting given as text, in its own unit (whole where it counts whole units)."""
    value = parse_duration(text, DURATIONS[name])
    if name in WHOLE:
        whole = round(value)
        if abs(value - whole) > 1e-6:  # 1ms in us is 999.9999999999999 in floating point
            raise ValueError(f"{text!r} is not a whole number of {'seconds' if DURATIONS[name] == 's' else 'us'}")
        return whole
    return value
