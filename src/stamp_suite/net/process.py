"""Process controls the loops need from Linux (prctl); no-ops elsewhere."""

from __future__ import annotations

import ctypes
import ctypes.util

from . import options as o

PR_SET_PDEATHSIG = 1
PR_SET_TIMERSLACK = 29


def _prctl(option: int, value: int) -> bool:
    if not o.LINUX:
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl(option, value, 0, 0, 0) == 0


def tighten_timer_slack() -> bool:
    """Ask for 1 ns timer slack (Linux's default is 50 us), so sleeps end when they should.

    The sender's schedule depends on it: with the default slack a sleep may overrun by up
    to 50 us.  Returns False where the platform has no such control.
    """
    return _prctl(PR_SET_TIMERSLACK, 1)


def die_with_parent() -> bool:
    """Have the kernel send SIGTERM to this process when its parent dies, so a forked
    reflector worker never outlives the process that started it."""
    return _prctl(PR_SET_PDEATHSIG, 15)
