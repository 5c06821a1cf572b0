"""One line to stderr, written in one call: lines from several threads (the SNMP
sub-agent, the main loop) never run into each other."""

from __future__ import annotations

import sys
from typing import TextIO


def say(line: str, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    stream.write(line + "\n")
    stream.flush()


def note(line: str) -> None:
    """Something the operator should know once: what this platform cannot measure, a clock change."""
    say(f"note: {line}")
