"""The coarse driver's timers at millisecond grain (sender/timers.py)."""

from __future__ import annotations

from stamp_suite.sender.timers import TICK_NS, TimerWheel, tick_time

MS = TICK_NS


def test_a_timer_never_comes_up_before_it_is_due():
    wheel = TimerWheel()
    wheel.push(10 * MS + 1, 7)  # due just after 10 ms: comes up at 11 ms
    wheel.push(10 * MS, 8)  # due at 10 ms exactly
    assert tick_time(10 * MS + 1) == 11 * MS and tick_time(10 * MS) == 10 * MS
    assert wheel.first() == 10 * MS
    assert wheel.pop_due(10 * MS, 100) == [8]
    assert wheel.pop_due(11 * MS - 1, 100) == []
    assert wheel.pop_due(11 * MS, 100) == [7]
    assert wheel.first() is None


def test_due_timers_come_oldest_tick_first_and_a_limit_leaves_the_rest():
    wheel = TimerWheel()
    for sid, due_ms in enumerate((5, 3, 3, 9, 4, 3)):
        wheel.push(due_ms * MS, sid)
    assert wheel.pop_due(9 * MS, 2) == [1, 2]  # the 3 ms bucket, in the order pushed
    assert wheel.first() == 3 * MS  # its rest still there
    assert wheel.pop_due(9 * MS, 3) == [5, 4, 0]
    assert wheel.pop_due(9 * MS, 10) == [3]
    assert len(wheel) == 0
