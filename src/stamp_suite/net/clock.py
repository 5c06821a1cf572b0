"""The host clock as STAMP describes it: synchronised or not, by what, how well, and TAI - UTC.

On Linux the kernel's NTP state (``adjtimex`` with modes 0, read-only, no privilege
needed) gives the STA_UNSYNC flag, the estimated error and the TAI offset that chrony,
ntpd or ptp4l/phc2sys maintain.  Elsewhere the clock is reported as unsynchronised with
an unknown error, which is the truth as far as this program can know it.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from dataclasses import dataclass

from ..wire.timestamp import DEFAULT_TAI_UTC_OFFSET, ErrorEstimate, SyncSource, TimestampFormat
from . import options as o
from .process import libc

STA_UNSYNC = 0x0040
TIME_ERROR = 5
# Offsets in glibc's struct timex on 64-bit Linux (long = 8 octets).
_TIMEX_SIZE = 208
_OFF_MAXERROR, _OFF_ESTERROR, _OFF_STATUS, _OFF_TAI = 24, 32, 40, 160
UNSYNCHRONISED_ERROR_NS = 1_000_000_000  # what we state when nothing better is known
CLOCK_POLL_NS = 10_000_000_000  # the kernel's clock state is re-read this often


@dataclass(frozen=True)
class ClockState:
    synchronized: bool
    sync_source: int  # SyncSource code for the Timestamp Information TLV
    error_ns: int
    tai_offset_s: int
    how: str  # one line for the banner

    def error_estimate(self, fmt: TimestampFormat) -> ErrorEstimate:
        return ErrorEstimate.from_error(self.error_ns, self.synchronized, fmt)


def _adjtimex() -> tuple[int, int, int, int, int] | None:
    """(state, status, maxerror_us, esterror_us, tai) from the kernel, or None."""
    if not o.LINUX or ctypes.sizeof(ctypes.c_long) != 8:
        return None
    buf = ctypes.create_string_buffer(_TIMEX_SIZE + 64)  # modes = 0: read only
    state = libc().adjtimex(buf)
    if state < 0:
        return None
    raw = buf.raw

    def long_at(off: int) -> int:
        return int.from_bytes(raw[off:off + 8], "little", signed=True)

    status = int.from_bytes(raw[_OFF_STATUS:_OFF_STATUS + 4], "little", signed=True)
    tai = int.from_bytes(raw[_OFF_TAI:_OFF_TAI + 4], "little", signed=True)
    return state, status, long_at(_OFF_MAXERROR), long_at(_OFF_ESTERROR), tai


def _ptp_daemon_running() -> bool:
    """ptp4l or phc2sys discipline the clock: the sync source is PTP rather than NTP."""
    try:
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as f:
                        if f.read().strip() in ("ptp4l", "phc2sys", "ts2phc"):
                            return True
                except OSError:
                    continue
    except OSError:
        return False
    return False


def read_clock_state(tai_offset_override: int | None = None) -> ClockState:
    kernel = _adjtimex()
    if kernel is None:
        tai = DEFAULT_TAI_UTC_OFFSET if tai_offset_override is None else tai_offset_override
        return ClockState(False, SyncSource.LOCAL, UNSYNCHRONISED_ERROR_NS, tai,
                          "clock sync state unknown on this platform (S bit 0)")
    state, status, maxerror_us, esterror_us, kernel_tai = kernel
    tai = tai_offset_override if tai_offset_override is not None else (kernel_tai or DEFAULT_TAI_UTC_OFFSET)
    synced = state != TIME_ERROR and not status & STA_UNSYNC
    if not synced:
        return ClockState(False, SyncSource.LOCAL, max(maxerror_us, 1) * 1000, tai,
                          "clock not synchronised (kernel STA_UNSYNC): one-way delays are not meaningful")
    source = SyncSource.PTP if _ptp_daemon_running() else SyncSource.NTP
    return ClockState(True, source, max(esterror_us, 1) * 1000, tai,
                      f"clock synchronised by {'PTP' if source == SyncSource.PTP else 'NTP'}, "
                      f"estimated error {esterror_us} us")



class ClockWatcher:
    """Re-reads the clock state every ``interval_ns`` and hands every change to ``on_change``.

    A reflector started at boot before chrony synchronises, or a host whose clock loses its
    source, must say so in the replies that follow (S bit, sync source, Error Estimate).
    A change of synchronisation, source or TAI offset is logged once; the estimated error
    moves all the time and is applied silently.  ``read`` is injectable for tests.
    """

    def __init__(self, initial: ClockState, on_change: Callable[[ClockState], None] | None = None,
                 read: Callable[[], ClockState] = read_clock_state, log: Callable[[str], None] | None = None,
                 interval_ns: int = CLOCK_POLL_NS) -> None:
        self.state = initial
        self.on_change = on_change
        self.read = read
        self.log = log
        self.interval_ns = interval_ns
        self._next_ns: int | None = None

    def poll(self, now_ns: int) -> None:
        """Call often (monotonic ns); reads the clock only when the interval has passed."""
        if self._next_ns is None:
            self._next_ns = now_ns + self.interval_ns
            return
        if now_ns < self._next_ns:
            return
        self._next_ns = now_ns + self.interval_ns
        self.check()

    def check(self) -> None:
        """Read the clock state now (the reflector engine's timer says when)."""
        new, old = self.read(), self.state
        if new == old:
            return
        self.state = new
        if self.log is not None and _headline(new) != _headline(old):
            self.log(f"clock state changed: {new.how}")
        if self.on_change is not None:
            self.on_change(new)


def _headline(c: ClockState) -> tuple[bool, int, int]:
    return c.synchronized, c.sync_source, c.tai_offset_s
