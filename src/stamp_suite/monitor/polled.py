"""A source of targets asked again and again on a thread (an HTTP SD endpoint, a DNS SRV name):
a slow answer must not hold the sending loop.  The loop takes each answer with ``take()`` and
reloads when its groups differ from the last good ones.  An answer that fails changes nothing:
the targets of the last good answer go on, the failure is said once until an answer is good
again (what Prometheus does with its http_sd and dns_sd), and it is asked again sooner.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from ..config import ConfigError

Fetch = Callable[[], tuple[list[Any], float]]  # the groups now, and the seconds until the next ask


class Polled:
    def __init__(self, where: str, fetch: Fetch, retry_s: float) -> None:
        """``where``: "http_sd URL" or "dns_sd NAME"; ``retry_s``: how soon after a failed answer
        it is asked again."""
        self.where, self.fetch, self.retry_s = where, fetch, retry_s
        self.groups: list[Any] = []
        self.error: str | None = None  # why the latest answer failed; None after a good one
        self.failures = 0  # answers that failed or were refused
        self.due = 0.0  # time.monotonic() of the next question
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="stamp-sd")
        self._asking: Future | None = None

    def ask_now(self) -> str | None:
        """Ask and wait (at the start, so that the first targets include these); returns what to say."""
        self.ask()
        wait([self._asking])
        return self.take()[1]

    def ask(self) -> None:
        """Ask again on the thread, unless a question is under way."""
        if self._asking is None:
            self._asking = self._pool.submit(self.fetch)

    def take(self) -> tuple[bool, str | None]:
        """The answer that came, if one did: (its groups differ from the last good ones, what to
        say: a new failure, or an answer good again)."""
        asking = self._asking
        if asking is None or not asking.done():
            return False, None
        self._asking = None
        try:
            groups, next_s = asking.result()
        except ConfigError as exc:
            self.failures += 1
            self.due = time.monotonic() + self.retry_s
            said = None if str(exc) == self.error else f"{exc}; keeping the targets of its last good answer"
            self.error = str(exc)
            return False, said
        self.due = time.monotonic() + next_s
        recovered, self.error = self.error is not None, None
        changed, self.groups = groups != self.groups, groups
        return changed, f"{self.where} answers again" if recovered else None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
