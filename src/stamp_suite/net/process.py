"""Process controls the loops need from Linux (prctl); no-ops elsewhere."""

from __future__ import annotations

import ctypes
import functools

from . import options as o

PR_SET_PDEATHSIG = 1
PR_SET_TIMERSLACK = 29


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library already loaded in this process (dlopen(NULL)): no search, no subprocess,
    unlike ctypes.util.find_library, which runs ldconfig."""
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> bool:
    if not o.LINUX:
        return False
    return libc().prctl(option, value, 0, 0, 0) == 0


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
