"""A received datagram and what the kernel said about it: what the socket layer hands both
engines, in the layout the optional C extension's recvmmsg gives each datagram too."""

from __future__ import annotations

from typing import NamedTuple


class Received(NamedTuple):
    data: bytes
    source: tuple[str, int]
    ttl: int | None  # TTL or Hop Limit; None where the platform cannot read it
    tos: int | None  # DSCP << 2 | ECN as received
    destination: bytes | None  # the address it was sent to, packed 4 or 16 octets
    kernel_ns: int | None  # the kernel's receive time (POSIX ns), where it gives one
    user_ns: int  # the clock read right after the datagram was read
    truncated: bool = False  # larger than the buffer: ``data`` is only its beginning



class Outgoing(NamedTuple):
    """A datagram to send: what the socket layer's batched send reads of each item, by
    position (the reflector's Reflection begins with these four fields, so its replies go to
    the socket as they are, nothing copied per reply)."""

    data: bytes | bytearray
    destination: tuple[str, int]
    source_address: str | bytes | None  # pinned on a wildcard-bound socket (packed or text)
    tos: int | None  # DSCP << 2 | ECN for this datagram; None: the socket's
