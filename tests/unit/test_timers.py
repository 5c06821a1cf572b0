"""The coarse driver's timers at millisecond grain (sender/timers.py)."""

from __future__ import annotations

from stamp_suite.sender.timers import TICK_NS, TimerWheel

MS = TICK_NS


def test_a_bucket_comes_up_at_the_start_of_its_millisecond():
    wheel = TimerWheel()
    wheel.push(10 * MS + 400_000, 7)  # due 0.4 ms into the 10th millisecond
    wheel.push(11 * MS, 8)
    assert wheel.first() == 10 * MS
    assert wheel.pop_due(10 * MS - 1, 100) == []
    assert wheel.pop_due(10 * MS, 100) == [7]  # the driver holds it back until it is due
    assert wheel.first() == 11 * MS and wheel.pop_due(11 * MS, 100) == [8]
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
