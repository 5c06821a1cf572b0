"""Work another thread asks of the sending loop, done a slice at a time (sender/sliced.py)."""

from __future__ import annotations

import threading
import time

import pytest

from stamp_suite.sender.driver import SenderDriver
from stamp_suite.sender.sliced import SlicedWork


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


def test_no_more_than_max_tasks_wait_and_a_stop_fails_those_left():
    work = SlicedWork(max_tasks=2)
    first, second = work.submit(counting(5, [])), work.submit(counting(5, []))
    assert work.submit(counting(5, [])) is None
    work.step()
    work.cancel_all("the sending loop has stopped")
    for f in (first, second):
        with pytest.raises(RuntimeError, match="stopped"):
            f.result(0)
    assert not work.pending and work.submit(counting(1, [])) is not None


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
    with pytest.raises(RuntimeError, match="stopped"):
        never.result(2)


def test_a_coarse_driver_runs_a_moved_timer_once_at_its_new_time():
    """A timer that moved leaves a stale entry in the wheel: skipped, never run early or twice."""
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
        id, timer = 1, None

        def __init__(self) -> None:
            self.engine = Engine()

    driver = SenderDriver(precise=False)
    session = Session()
    driver.sessions[1] = session
    driver._reschedule(session)  # due at 5 ms
    session.engine.due = 8 * TICK_NS  # moved later (a reply came): the 5 ms entry goes stale
    driver._reschedule(session)
    driver._run_timers(6 * TICK_NS)
    assert session.engine.calls == []
    driver._run_timers(9 * TICK_NS)
    driver._run_timers(10 * TICK_NS)
    assert len(session.engine.calls) == 1 and session.engine.calls[0] >= 8 * TICK_NS
