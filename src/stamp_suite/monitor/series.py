"""What a monitor target's series show: the keys ``metrics``, ``rtt_buckets`` and ``labels`` of
[defaults], a group or the target, checked as the rest of the file is (one line naming the key).

A target's labels are its group's and [defaults]' with its own on top; ``metrics`` and
``rtt_buckets`` are taken whole from the most specific table that has them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..config import ConfigError
from ..observability.metrics import DEFAULT, MONITOR_RTT_BUCKETS_S, SETS, Exposure
from ..units import parse_duration

EXPOSURE_KEYS = frozenset({"metrics", "rtt_buckets", "labels"})
# The labels our own series carry, and Prometheus's own: a target's label of one of these
# names would shadow ours (or be renamed exported_job by the scrape).
RESERVED_LABELS = frozenset({"monitor", "target", "window", "end", "le", "result", "flow", "job", "instance",
                             "quantile"})
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
MAX_BUCKETS = 40


def check_label(name: Any, value: Any, where: str) -> tuple[str, str]:
    """One label of the operator's own, as (name, value); ConfigError naming it when it is not."""
    if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
        raise ConfigError(f"{where}: label {name!r}: a name is letters, digits and _, not starting with a digit "
                          "or __")
    if name in RESERVED_LABELS:
        raise ConfigError(f"{where}: label {name!r} is one of the monitor's own "
                          f"({', '.join(sorted(RESERVED_LABELS))})")
    if not isinstance(value, str):  # as Prometheus's are: "012" stays "012"
        raise ConfigError(f'{where}: label {name!r}: expected a string, such as "{value}"')
    return name, value


def merged_labels(tables: list[Mapping[str, Any]], where: str) -> dict[str, str]:
    """The ``labels`` of ``tables``, least specific first, the later winning per name."""
    labels: dict[str, str] = {}
    for table in tables:
        given = table.get("labels", {})
        if not isinstance(given, Mapping):
            raise ConfigError(f"{where}: labels: expected a table such as {{site = \"fra\", tier = \"core\"}}")
        labels.update(check_label(name, value, where) for name, value in given.items())
    return labels


def exposure(merged: Mapping[str, Any], labels: dict[str, str], where: str) -> Exposure:
    """A target's Exposure from its merged settings (``metrics``, ``rtt_buckets``) and labels."""
    return Exposure(_sets(merged.get("metrics", ()), where), _buckets(merged.get("rtt_buckets"), where),
                    tuple(sorted(labels.items())))


def _sets(names: Any, where: str) -> int:
    if not isinstance(names, (list, tuple)):
        raise ConfigError(f'{where}: metrics: expected a list such as ["one_way", "windows"]')
    mask = DEFAULT
    for name in names:
        if name == "all":
            mask |= sum(SETS.values())
        elif name in SETS:
            mask |= SETS[name]
        else:
            raise ConfigError(f"{where}: metrics: {name!r} is not a set of series (expected "
                              f"{', '.join(SETS)} or all)")
    return mask


def _buckets(given: Any, where: str) -> tuple[float, ...]:
    """Upper bounds in seconds: durations ("2.5ms") or bare numbers (seconds), increasing."""
    if given is None:
        return MONITOR_RTT_BUCKETS_S
    if not isinstance(given, (list, tuple)) or not 1 <= len(given) <= MAX_BUCKETS:
        raise ConfigError(f'{where}: rtt_buckets: expected a list of 1 to {MAX_BUCKETS} upper bounds such as '
                          '["1ms", "5ms", "20ms"]')
    bounds = []
    for b in given:
        try:
            seconds = parse_duration(b, "s") if isinstance(b, str) else float(b)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: rtt_buckets: {exc}") from None
        if isinstance(b, bool) or not 0 < seconds < math.inf:
            raise ConfigError(f"{where}: rtt_buckets: {b!r} is not a positive duration (+Inf is always the last)")
        bounds.append(seconds)
    if any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ConfigError(f"{where}: rtt_buckets: the bounds must increase")
    return tuple(bounds)
