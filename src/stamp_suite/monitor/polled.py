"""A source of targets asked again and again on a thread (an HTTP SD endpoint, a DNS SRV name):
a slow answer must not hold the sending loop.  The loop takes each answer with ``take()`` and
reloads when its groups differ from the last good ones.  An answer that fails changes nothing:
the targets of the last good answer go on, the failure is said once until an answer is good
again (what Prometheus does with its http_sd and dns_sd), and it is asked again sooner.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any

from ..config import ConfigError

FIRST_WAIT_S = 10.0  # at the start, how long the first answer is waited for (then it comes later)

Fetch = Callable[[], tuple[list[Any], float]]  # the groups now, and the seconds until the next ask


class Polled:
    def __init__(self, where: str, fetch: Fetch, retry_s: float) -> None:
        """``where``: "http_sd URL" or "dns_sd NAME"; ``retry_s``: how soon after a failed answer
        it is asked again."""
        self.where, self.fetch, self.retry_s = where, fetch, retry_s
        self.groups: list[Any] = []
        self.answered = False  # a good answer came (its groups are these)
        self.error: str | None = None  # why the latest answer failed; None after a good one
        self.failures = 0  # answers that failed or were refused
        self.due = 0.0  # time.monotonic() of the next question
        self._asking: Future | None = None

    def carry(self, old: Polled) -> None:
        """Go on from ``old``'s answer: the same source asked another way (another refresh, or
        DNS server), whose targets stay until this one answers."""
        self.groups, self.answered, self.error = old.groups, old.answered, old.error

    def ask_first(self) -> str | None:
        """Ask and wait FIRST_WAIT_S at most (at the start, so that the first targets include
        these; a later answer reloads); returns what to say."""
        self.ask()
        wait([self._asking], timeout=FIRST_WAIT_S)
        return self.take()[1]

    def ask(self) -> None:
        """Ask again on a thread of its own, unless a question is under way.  A daemon thread: a
        question that hangs must not hold the program's exit."""
        if self._asking is None:
            asking = self._asking = Future()
            threading.Thread(target=self._ask, args=(asking,), name="stamp-sd", daemon=True).start()

    def _ask(self, asking: Future) -> None:
        try:
            asking.set_result(self.fetch())
        except BaseException as exc:  # noqa: BLE001 - the loop says it (take): a source never stops the monitor
            asking.set_exception(exc)

    def take(self) -> tuple[bool, str | None]:
        """The answer that came, if one did: (its groups differ from the last good ones, what to
        say: a new failure, or an answer good again)."""
        asking = self._asking
        if asking is None or not asking.done():
            return False, None
        self._asking = None
        exc = asking.exception()
        if exc is not None:
            self.failures += 1
            self.due = time.monotonic() + self.retry_s
            why = str(exc) if isinstance(exc, ConfigError) else f"{self.where}: {type(exc).__name__}: {exc}"
            kept = "keeping the targets of its last good answer" if self.answered else "no targets from it until a " \
                                                                                    "good answer"
            said = None if why == self.error else f"{why}; {kept}"
            self.error = why
            return False, said
        groups, next_s = asking.result()
        self.due = time.monotonic() + next_s
        recovered, self.error = self.error is not None, None
        changed, self.groups, self.answered = groups != self.groups, groups, True
        return changed, f"{self.where} answers again" if recovered else None
