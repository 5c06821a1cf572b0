"""The monitor's log: lines that start with their time, counts with their noun in the right
number, and the retry schedule of a name without an address (issue 29 item 6)."""

import io
import re

from stamp_suite.monitor.state_lines import STATE_LINES_PER_MINUTE, StateLines
from stamp_suite.monitor.unresolved import RetrySchedule
from stamp_suite.say import count, say, time_lines

# 2026-12-07T12:30:01.123+00:00: RFC 3339, milliseconds, the UTC offset
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")


def test_a_name_is_looked_up_again_after_5_s_then_twice_as_long_up_to_300_s():
    delays = [RetrySchedule().delay_ns(failures) / 1e9 for failures in range(1, 10)]
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert RetrySchedule().delay_ns(10**6) == 300 * 10**9  # a year of failures: no huge number
    assert [RetrySchedule(0.1, 0.3).delay_ns(f) for f in (1, 2, 3)] == [100_000_000, 200_000_000, 300_000_000]


def test_lines_start_with_their_time_when_asked_to():
    out = io.StringIO()
    say("plain", out)
    time_lines(True)
    try:
        say("stamp-suite monitor: timed", out)
    finally:
        time_lines(False)
    plain, timed = out.getvalue().splitlines()
    assert plain == "plain"
    assert STAMP.match(timed) and timed.endswith(" stamp-suite monitor: timed"), timed


def test_counts_have_their_noun_in_the_right_number():
    assert [count(n, "target") for n in (0, 1, 2, 1000)] == ["0 targets", "1 target", "2 targets", "1,000 targets"]
    assert count(1, "more target") == "1 more target"
    assert count(3, "entry", "entries") == "3 entries"
    lines: list[str] = []
    states = StateLines(lines.append)
    for i in range(STATE_LINES_PER_MINUTE):  # this minute's lines, said
        states.say(f"target 't{i}' is down", "down")
    states.say("target 'a' resolves now", "resolved")
    states.minute()
    assert lines[-1] == ("and 1 more target changed state since the last such line (1 resolved): "
                         "stamp_monitor_target_up has each")
