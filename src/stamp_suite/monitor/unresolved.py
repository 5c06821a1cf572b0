"""Targets whose name has no address yet: down (stamp_monitor_target_up 0, the resolver's error
said once in the log) and looked up again, less and less often, until it has one; then the
target starts as the others did.  One name the DNS does not know yet never keeps the monitor
or its other targets from running.

The lookups run in threads of their own (LOOKUP_THREADS): a resolver that does not answer
holds a lookup for seconds, which the sending loop must not wait through.  The loop hands
them out when due and takes their answers (Monitor._retry_unresolved)."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

from ..config import Settings

NS = 1_000_000_000
LOOKUP_THREADS = 4


@dataclass(frozen=True)
class RetrySchedule:
    """How long a target waits before its name is looked up again: ``first_s`` after the first
    failure, twice as long after each further one, never more than ``most_s``."""

    first_s: float = 5
    most_s: float = 300

    def delay_ns(self, failures: int) -> int:
        """The wait after ``failures`` (1 or more) lookups in a row have failed."""
        doublings = min(failures - 1, 32)  # past 300 s long before; keeps the number small
        return int(min(self.first_s * 2 ** doublings, self.most_s) * NS)


@dataclass(eq=False)
class Unresolved:
    """A target waiting for its name to resolve."""

    name: str
    settings: Settings
    failures: int = 0  # lookups in a row that found no address
    said: str | None = None  # the reason last logged: a new one is said, the same one not again
    due_ns: int = 0  # monotonic: when it is looked up again
    lookup: Future | None = None  # the lookup under way
