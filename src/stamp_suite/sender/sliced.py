"""Work done by the sending loop in slices between its sends, asked for by other threads.

Work on the loop's own data (a monitor's /metrics rows) done in another thread would hold the
interpreter lock that the sending loop needs for every send; done by the loop itself, a slice
(well under a millisecond) at a time, no lock changes hands (bench/README.md has the figures).

A task is a generator: each ``next()`` is one slice, and its return value is the result.
The loop gives tasks the time it would otherwise sleep (up to STEP_BUDGET_NS a pass), so a
render holds back no send that is due by more than a slice; a task that has waited
FAIR_AFTER_NS also gets STEP_BUDGET_NS of every pass of a busy loop, so that a loop with no
time to spare still finishes a render within a scrape's timeout.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future
from typing import Any

MAX_TASKS = 2  # tasks waiting or running at once; a submit beyond them is refused
STEP_BUDGET_NS = 1_000_000  # slices per pass of the loop until this much time is spent
FAIR_AFTER_NS = 3_000_000_000


class LoopStopped(RuntimeError):
    """The loop that would have done the task has stopped (or is stopping)."""


class SlicedWork:
    """Tasks submitted from any thread, stepped one slice at a time by the loop's thread."""

    def __init__(self, max_tasks: int = MAX_TASKS) -> None:
        self.max_tasks = max_tasks
        self._tasks: deque[tuple[Generator[Any, None, Any], Future, int]] = deque()  # ..., submitted at
        self._background: deque[Generator[Any, None, Any]] = deque()  # the loop's own, for its idle time
        self._lock = threading.Lock()
        self._stopped: str | None = None  # why tasks are refused: the loop is not running
        # Wakes a loop asleep in its readiness wait when a task comes (fileno() is watched).
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    def fileno(self) -> int:
        return self._wake_r.fileno()

    def submit(self, task: Generator[Any, None, Any]) -> Future | None:
        """Run ``task`` in the loop; its future has the task's return value, or its exception
        (LoopStopped when the loop is not running).  None when MAX_TASKS are there already
        (the caller says busy).  Cancelling the future drops the task at its next slice."""
        future: Future = Future()
        with self._lock:
            if self._stopped is not None:
                task.close()
                future.set_exception(LoopStopped(self._stopped))
                return future
            if len(self._tasks) >= self.max_tasks:
                task.close()
                return None
            self._tasks.append((task, future, time.monotonic_ns()))
        try:
            self._wake_w.send(b"\0")
        except OSError:  # the pair's buffer is full: the loop has wake-ups waiting already
            pass
        return future

    def background(self, task: Generator[Any, None, Any]) -> None:
        """Run ``task`` in the loop's idle time only, after any submitted task (the loop's
        thread only; nobody waits for it, and an exception in it is the loop's)."""
        self._background.append(task)

    @property
    def pending(self) -> bool:
        return bool(self._tasks or self._background)

    def overdue(self, now_ns: int) -> bool:
        """The oldest task has waited FAIR_AFTER_NS: it gets time even from a busy loop."""
        return bool(self._tasks) and now_ns - self._tasks[0][2] >= FAIR_AFTER_NS

    def woken(self) -> None:
        """The wake socket was readable: empty it (level-triggered, it would wake the loop again)."""
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:  # BlockingIOError: empty
            pass

    def step(self, budget_ns: int = 0) -> None:
        """Slices of the oldest tasks until ``budget_ns`` is spent (at least one slice), or no
        task is left (the loop's thread only).  A task whose future was cancelled (its scrape
        gave up) is dropped, not finished."""
        until = time.monotonic_ns() + budget_ns
        while self._tasks:
            task, future, _ = self._tasks[0]
            if future.cancelled():
                task.close()
                self._finish(future, None, None)
                continue
            try:
                next(task)
            except StopIteration as done:
                self._finish(future, done.value, None)
            except Exception as exc:  # noqa: BLE001 - handed to whoever waits for the result, not lost
                self._finish(future, None, exc)
            if time.monotonic_ns() >= until:
                return
        while self._background:
            try:
                next(self._background[0])
            except StopIteration:
                self._background.popleft()
            if time.monotonic_ns() >= until:
                return

    def _finish(self, future: Future, value: Any, exc: BaseException | None) -> None:
        with self._lock:
            self._tasks.popleft()
        if future.set_running_or_notify_cancel():
            if exc is None:
                future.set_result(value)
            else:
                future.set_exception(exc)

    def start(self) -> None:
        """The loop runs (again): tasks are taken."""
        self._stopped = None

    def stop(self, why: str) -> None:
        """The loop is ending: every task still there, and every one submitted from now on
        until :meth:`start`, fails with LoopStopped(``why``)."""
        with self._lock:
            self._stopped = why
        while self._tasks:
            task, future, _ = self._tasks[0]
            task.close()
            self._finish(future, None, LoopStopped(why))
        while self._background:
            self._background.popleft().close()

    def close(self) -> None:
        self.stop("closed")
        self._wake_r.close()
        self._wake_w.close()
