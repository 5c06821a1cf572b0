"""Lines saying a target went down, came up again or resolved, kept to a readable number a minute."""

from __future__ import annotations

from collections.abc import Callable

from ..say import count

STATE_LINES_PER_MINUTE = 20  # target up/down lines a minute; the rest are summed up


class StateLines:
    """Lines saying a target went down, came up again or (its name) resolved: the first
    STATE_LINES_PER_MINUTE of a minute as they come, the rest counted and said in one line at
    the minute's end.  When the
    monitor's own uplink fails, ten thousand targets go down in one window: ten thousand lines
    would bury everything else in the log, and stamp_monitor_target_up has each of them."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self._said = 0
        self._held = {"down": 0, "up again": 0, "resolved": 0}

    def say(self, line: str, state: str) -> None:
        if self._said < STATE_LINES_PER_MINUTE:
            self._said += 1
            self.log(line)
        else:
            self._held[state] += 1

    def minute(self) -> None:
        held = sum(self._held.values())
        if held:
            states = ", ".join(f"{n:,} {state}" for state, n in self._held.items() if n)
            self.log(f"and {count(held, 'more target')} changed state since the last such line ({states}): "
                     "stamp_monitor_target_up has each")
        self._said = 0
        self._held = dict.fromkeys(self._held, 0)
