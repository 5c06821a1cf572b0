"""Work another thread asks of the sending loop, done a slice at a time (sender/sliced.py)."""

from __future__ import annotations

import threading
import time

import pytest

from stamp_suite.sender.driver import SenderDriver
from stamp_suite.sender.sliced import LoopStopped, SlicedWork


def counting(n: int, log: list):
    for i in range(n):
        log.append(i)
        yield
    return n


def test_a_task_runs_one_slice_per_step_and_its_return_value_is_the_result():
    work, log = SlicedWork(), []
    future = work.submit(counting(3, log))
    steps = 0
    while work.pending:
        work.step()
        steps += 1
        assert log == list(range(min(steps, 3)))
    assert steps == 4 and future.result(0) == 3  # three slices, and the step that returns


def test_the_loops_own_work_runs_after_submitted_work_and_never_takes_a_busy_loops_time():
    """Background work (a monitor's window summaries) gets the loop's idle time only: after
    any submitted task, never as overdue, and a stop drops it."""
    work, log = SlicedWork(), []
    work.background(counting(3, log))
    assert work.pending and not work.overdue(time.monotonic_ns() + 10**12)
    future = work.submit(counting(2, []))
    while not future.done():
        work.step()
    assert log == []  # the submitted task first
    while work.pending:
        work.step()
    assert log == [0, 1, 2]
    work.background(counting(10, log))
    work.stop("stopped")
    assert not work.pending


def test_an_exception_in_a_task_goes_to_its_future_and_the_next_task_runs():
    def broken():
        yield
        raise ValueError("bad value")
    work = SlicedWork()
    bad, good = work.submit(broken()), work.submit(counting(1, []))
    while work.pending:
        work.step()
    with pytest.raises(ValueError, match="bad value"):
        bad.result(0)
    assert good.result(0) == 1


def test_no_more_than_max_tasks_wait_and_a_stop_fails_those_left_and_those_to_come():
    work = SlicedWork(max_tasks=2)
    first, second = work.submit(counting(5, [])), work.submit(counting(5, []))
    assert work.submit(counting(5, [])) is None
    work.step()
    work.stop("the sending loop has stopped")
    late = work.submit(counting(1, []))  # between the loop's end and the server's: answered, not left
    for f in (first, second, late):
        with pytest.raises(LoopStopped, match="stopped"):
            f.result(0)
    assert not work.pending
    work.start()
    assert work.submit(counting(1, [])) is not None


def test_a_cancelled_task_is_dropped_at_its_next_slice_and_frees_its_place():
    """A scrape that gave up (its future cancelled) costs the loop no more slices."""
    work, log = SlicedWork(max_tasks=1), []
    future = work.submit(counting(5, log))
    work.step()
    assert future.cancel()
    assert work.submit(counting(1, [])) is None  # still there until the loop looks
    work.step()
    assert log == [0] and not work.pending
    assert work.submit(counting(1, [])) is not None


def test_the_driver_wakes_for_a_task_and_does_it_between_its_timers():
    """A coarse driver asleep (nothing due for a second) wakes when a task comes from another
    thread, finishes it within milliseconds, and fails what is left when it stops."""
    driver = SenderDriver(precise=False)
    ticks: list[int] = []
    driver.every(5_000_000_000, lambda: ticks.append(time.monotonic_ns()))  # asleep for up to a second
    loop = threading.Thread(target=driver.run, kwargs={"until_finished": False})
    loop.start()
    try:
        time.sleep(0.1)
        t0 = time.monotonic()
        log: list[str] = []

        def task():
            for _ in range(50):
                log.append(threading.current_thread().name)
                yield
            return "done"
        assert driver.work.submit(task()).result(2) == "done"
        assert time.monotonic() - t0 < 0.9  # not after the second asleep: woken by the task
        assert set(log) == {loop.name}
        never = driver.work.submit(counting(10**9, []))
    finally:
        driver.stop_request.set()
        loop.join(5)
    with pytest.raises(LoopStopped, match="stopped"):
        never.result(2)


def test_a_coarse_driver_runs_a_moved_timer_once_at_its_new_time():
    """A timer that moved leaves a stale entry in the wheel: skipped; a timer is never run
    before its time (the wheel gives its millisecond early: it waits in the heap) nor twice."""
    from stamp_suite.sender.timers import TICK_NS

    class Engine:
        finished = False

        def __init__(self) -> None:
            self.due, self.calls = 5 * TICK_NS, []

        def next_timer(self):
            return self.due

        def handle_timer(self, now):
            self.calls.append(now)
            self.due = None
            return []

    class Session:
        id, timer, batched = 1, None, False

        def __init__(self) -> None:
            self.engine = Engine()

    driver = SenderDriver(precise=False)
    session = Session()
    driver.sessions[1] = session
    driver._reschedule(session)  # due at 5 ms
    session.engine.due = 8 * TICK_NS  # moved later (a reply came): the 5 ms entry goes stale
    driver._reschedule(session)
    driver._run_timers(6 * TICK_NS)
    assert session.engine.calls == []  # the stale 5 ms entry did not run it
    session.engine.due = 8 * TICK_NS + 500_000  # and again, to half way through the 8th ms
    driver._reschedule(session)
    driver._run_timers(8 * TICK_NS + 100_000)
    assert session.engine.calls == []  # its millisecond came up, but not its time: held back
    driver._run_timers(8 * TICK_NS + 500_000)
    assert len(session.engine.calls) == 1  # at its new time
    driver._run_timers(10 * TICK_NS)
    assert len(session.engine.calls) == 1  # and once
