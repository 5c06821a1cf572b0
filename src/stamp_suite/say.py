"""One line to stderr, written in one call: lines from several threads (the SNMP
sub-agent, the main loop) never run into each other."""

from __future__ import annotations

import datetime
import sys
from typing import TextIO

_timed = False  # each line starts with the time it was written (time_lines)


def time_lines(on: bool) -> None:
    """Start every line with its time, RFC 3339 with milliseconds and the UTC offset: the log
    of a process that runs for months (the monitor), read from a file or a terminal.  Not under
    systemd's journal (the caller's choice), which stamps each line itself."""
    global _timed
    _timed = on


def now_rfc3339() -> str:
    """This instant in local time with its offset: 2026-12-07T12:30:01.123+00:00."""
    return datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")


def say(line: str, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    if _timed:
        line = f"{now_rfc3339()} {line}"
    stream.write(line + "\n")
    stream.flush()


def note(line: str) -> None:
    """Something the operator should know once: what this platform cannot measure, a clock change."""
    say(f"note: {line}")


def count(n: int, noun: str, nouns: str | None = None) -> str:
    """``n`` and its noun, singular or plural: 1 target, 2 targets, 1,000 targets."""
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"
