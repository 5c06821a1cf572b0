"""Timestamps and the Error Estimate field (RFC 8762 §4.2.1, RFC 4656 §4.1.2, RFC 8877).

Time is integer nanoseconds on the POSIX (UTC) scale everywhere in the package; the
conversion to and from the two 64-bit wire formats happens here and only here.
Never floats: a float of seconds since 1970 has ~240 ns resolution.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import IntEnum

NS = 1_000_000_000
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
DEFAULT_TAI_UTC_OFFSET = 37  # TAI - UTC in seconds since 2017-01-01 (IERS)
_U32 = 0xFFFF_FFFF
_U64 = (1 << 64) - 1
_NTP_UNIX_OFFSET_HIGH = NTP_UNIX_OFFSET << 32
_HALF_ERA = 1 << 31


class TimestampFormat(IntEnum):
    """The Z bit of the Error Estimate (RFC 8186 §2.3)."""

    NTP = 0
    PTP = 1


class SyncSource(IntEnum):
    """Synchronization Sources registry (RFC 8972 §5.4)."""

    RESERVED = 0
    NTP = 1
    PTP = 2
    SSU_BITS = 3
    GNSS = 4  # GPS/GLONASS/LORAN-C/BDS/Galileo
    LOCAL = 5  # local free-running


class TimestampMethod(IntEnum):
    """Timestamping Methods registry (RFC 8972 §5.5)."""

    RESERVED = 0
    HW_ASSIST = 1
    SW_LOCAL = 2
    CONTROL_PLANE = 3


def ntp_from_ns(unix_ns: int) -> int:
    """POSIX ns -> NTP 64-bit (seconds since 1900 mod 2^32, 2^-32 s fraction).

    The fraction is truncated (RFC 8877 leaves it open: our choice, docs/protocol.md), so a
    round trip loses at most 1 ns.
    """
    # One division: (s * 10^9 + ns) << 32 // 10^9 is s << 32 plus the truncated fraction; the
    # mask keeps seconds mod 2^32.  Half the cost of divmod, on every reply's T2 and T3.
    return ((unix_ns << 32) // NS + _NTP_UNIX_OFFSET_HIGH) & _U64


def ntp_to_ns(ts: int, pivot_ns: int | None = None) -> int:
    """NTP 64-bit -> POSIX ns.

    NTP seconds wrap every 2^32 s (next in 2036).  The era is chosen so the result lies
    within ±68 years of ``pivot_ns`` (the local clock, normally); without a pivot era 0
    before 1968 is treated as era 1, which is right from 1968 to 2104.
    """
    secs = ts >> 32
    frac_ns = ((ts & _U32) * NS) >> 32
    if pivot_ns is None:
        era_secs = secs if secs >= _HALF_ERA else secs + (1 << 32)
    else:
        pivot = (pivot_ns // NS + NTP_UNIX_OFFSET)
        era_secs = pivot + (((secs - pivot) + _HALF_ERA) & _U32) - _HALF_ERA
    return (era_secs - NTP_UNIX_OFFSET) * NS + frac_ns


def ptp_from_ns(unix_ns: int, tai_offset_s: int = DEFAULT_TAI_UTC_OFFSET) -> int:
    """POSIX (UTC) ns -> PTPv2 truncated: TAI seconds mod 2^32 and nanoseconds (RFC 8877 §4.3)."""
    secs, ns = divmod(unix_ns + tai_offset_s * NS, NS)
    return ((secs & _U32) << 32) | ns


def ptp_to_ns(ts: int, tai_offset_s: int = DEFAULT_TAI_UTC_OFFSET, pivot_ns: int | None = None) -> int:
    """PTPv2 truncated -> POSIX (UTC) ns.  Nanoseconds above 999,999,999 are clamped."""
    secs = ts >> 32
    ns = min(ts & _U32, NS - 1)
    if pivot_ns is not None:
        pivot = pivot_ns // NS + tai_offset_s
        secs = pivot + (((secs - pivot) + _HALF_ERA) & _U32) - _HALF_ERA
    return secs * NS + ns - tai_offset_s * NS


def to_wire(unix_ns: int, fmt: TimestampFormat, tai_offset_s: int = DEFAULT_TAI_UTC_OFFSET) -> int:
    return ntp_from_ns(unix_ns) if fmt is TimestampFormat.NTP else ptp_from_ns(unix_ns, tai_offset_s)


def from_wire(ts: int, fmt: TimestampFormat | int, tai_offset_s: int = DEFAULT_TAI_UTC_OFFSET,
              pivot_ns: int | None = None) -> int:
    if fmt == TimestampFormat.NTP:
        return ntp_to_ns(ts, pivot_ns)
    return ptp_to_ns(ts, tai_offset_s, pivot_ns)


@dataclass(frozen=True, slots=True)
class ErrorEstimate:
    """The 16-bit Error Estimate: S | Z | Scale(6) | Multiplier(8) (RFC 4656 §4.1.2)."""

    synchronized: bool = False
    timestamp_format: TimestampFormat = TimestampFormat.NTP
    scale: int = 0
    multiplier: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.scale <= 63:
            raise ValueError(f"Error Estimate scale {self.scale} is outside 0..63")
        if not 0 <= self.multiplier <= 255:
            raise ValueError(f"Error Estimate multiplier {self.multiplier} is outside 0..255")

    @property
    def valid(self) -> bool:
        """Multiplier 0 is forbidden; such a packet SHOULD be discarded (RFC 4656 §4.1.2)."""
        return self.multiplier != 0

    @property
    def error_ns(self) -> float:
        """The estimate in nanoseconds: Multiplier * 2^(Scale-32) s."""
        return self.multiplier * 2.0 ** (self.scale - 32) * NS

    def with_format(self, timestamp_format: TimestampFormat) -> ErrorEstimate:
        """The same estimate describing timestamps of another format (the Z bit)."""
        if timestamp_format == self.timestamp_format:
            return self
        return ErrorEstimate(self.synchronized, timestamp_format, self.scale, self.multiplier)

    def to_int(self) -> int:
        return (self.synchronized << 15) | (int(self.timestamp_format) << 14) | (self.scale << 8) | self.multiplier

    @classmethod
    def from_int(cls, value: int) -> ErrorEstimate:
        return _error_estimate(value & 0xFFFF)

    @classmethod
    def from_error(cls, error_ns: int, synchronized: bool,
                   timestamp_format: TimestampFormat = TimestampFormat.NTP) -> ErrorEstimate:
        """The smallest encodable estimate that is not below ``error_ns``.

        Picks the least Scale whose Multiplier (1..255) can cover the error, rounding the
        Multiplier up so the stated bound is never optimistic.
        """
        units = max(1, -(-(error_ns << 32) // NS))  # error in 2^-32 s, rounded up
        for scale in range(64):
            mult = -(-units // (1 << scale))
            if mult <= 255:
                return cls(synchronized, timestamp_format, scale, mult)
        return cls(synchronized, timestamp_format, 63, 255)


@functools.lru_cache(maxsize=1024)  # a session sees one or two values: decoded once, shared (frozen)
def _error_estimate(value: int) -> ErrorEstimate:
    return ErrorEstimate(bool(value & 0x8000), TimestampFormat((value >> 14) & 1), (value >> 8) & 0x3F, value & 0xFF)


@functools.lru_cache(maxsize=1024)
def error_estimate_fields(value: int) -> tuple[TimestampFormat, bool, float]:
    """(timestamp format, S bit, error in ns) of a 16-bit Error Estimate: what a sender reads of
    the two in every reply, decoded once per value."""
    ee = _error_estimate(value & 0xFFFF)
    return ee.timestamp_format, ee.synchronized, ee.error_ns
