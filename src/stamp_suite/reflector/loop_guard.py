"""The loop guards: recognise our own replies when another reflector sends them back, and
never send a reply to our own socket (docs/security.md, reflection loops).

A reflector that answers one of our replies as if it were a test packet copies that reply's
Timestamp (our T3) and Error Estimate into its own reply's Session-Sender Timestamp and
Error Estimate (RFC 8762 §4.3.1): octets 28-37 of an open reply, 64-73 of an authenticated
one.  So any loop that passes through this reflector brings one of our T3s back in those
octets within one round, whatever the other reflector is and whatever its clock says.

We write a keyed tag into the lowest ten bits of every T3 (under a microsecond: below the
accuracy of a T3 read in Python) and refuse a packet that carries, in those octets, a T3 with
our tag, within a day of our clock, beside our own Error Estimate.  A test packet has zeros
there (MBZ); random octets pass all three tests by chance once in about 2^10 * 2^16 *
2^32 / (2 * 86,400) = 1.7 * 10^12 packets, so a TWAMP-Light sender's random padding is answered.
The key is random per reflector (shared by its workers), so no one can make a sender's
packets look like our replies without having seen them.
"""

from __future__ import annotations

import functools
import ipaddress
import secrets

from ..tlvs import unmapped_address
from ..tlvs.base import HostAddresses

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

TAG_BITS = 10
TAG_MASK = (1 << TAG_BITS) - 1
WINDOW_S = 86_400  # a T3 of ours that comes back is at most this old (or this far ahead)
_U32 = 0xFFFF_FFFF
_U64 = (1 << 64) - 1
_NS = 1_000_000_000


def new_key() -> int:
    return secrets.randbits(128)


class LoopTag:
    """The tag for a reflector's key: :meth:`mark` a T3, and tell whether a copied one
    :meth:`is_ours`.  ``ptp``: the timestamps are PTP (their low word counts nanoseconds)."""

    __slots__ = ("_k1", "_k2", "_ptp", "_secs", "_tag")

    def __init__(self, key: int, ptp: bool = False) -> None:
        self._k1 = key & _U64
        self._k2 = (key >> 64) & _U64 | 1  # odd: the multiplication is a bijection
        self._ptp = ptp
        self._secs = -1  # the latest seconds tagged, and their tag: one T3 a second is typical
        self._tag = 0

    def tag(self, secs: int) -> int:
        """A keyed function of the timestamp's seconds: its top ten bits of a multiply-xor."""
        if secs == self._secs:
            return self._tag
        tag = (((secs ^ self._k1) * self._k2) & _U64) >> (64 - TAG_BITS)
        self._secs, self._tag = secs, tag
        return tag

    def mark(self, wire: int) -> int:
        """``wire`` (a 64-bit NTP or PTP timestamp) with its lowest bits replaced by our tag."""
        secs = wire >> 32
        tag = self._tag if secs == self._secs else self.tag(secs)  # every reply: the call only once a second
        low = (wire & _U32 & ~TAG_MASK) | tag
        if self._ptp and low >= _NS:  # keep a valid nanosecond count; the low bits stay the tag
            low -= TAG_MASK + 1
        return (secs << 32) | low

    def is_ours(self, wire: int, now_secs: int) -> bool:
        """Is ``wire`` a T3 we marked, within :data:`WINDOW_S` of ``now_secs`` (the seconds of
        a timestamp of ours taken now, in the same format)?"""
        secs = wire >> 32
        if wire & TAG_MASK != self.tag(secs):
            return False
        return abs(((secs - now_secs + (1 << 31)) & _U32) - (1 << 31)) <= WINDOW_S


_unmapped = functools.lru_cache(maxsize=4096)(unmapped_address)  # Rust senders send from 862 too


def same_host(address: str, local_address: str | bytes | None, bound: Address | None,
              host: HostAddresses) -> bool:
    """True when a reply to ``address`` on our own port would come back to our socket: the
    unspecified address (which reaches this host), the address the packet came in on, the
    bound address, or (bound to the wildcard) any address of this host."""
    try:
        ip = _unmapped(address)
    except ValueError:
        return False
    if ip.is_unspecified:
        return True
    if local_address and ip == _unmapped(local_address):
        return True
    if bound is not None:
        return ip == bound
    return host.is_local(ip)
