"""The IPv6 Segment Routing Header (RFC 8754 §2), as a reflector puts it on a reply that must
follow an RFC 9503 Return Path segment list (sent by :mod:`stamp_suite.net.srv6`)."""

from __future__ import annotations

import ipaddress
import struct

ROUTING_TYPE_SRH = 4  # RFC 8754 §2
MAX_SEGMENTS = 127  # Hdr Ext Len is one octet of 8-octet units: 2 per segment
_FIXED = struct.Struct("!BBBBBBH")  # Next Header, Hdr Ext Len, Routing Type, Segments Left, Last Entry, Flags, Tag


def segment_routing_header(segments: tuple[ipaddress.IPv6Address, ...],
                           destination: ipaddress.IPv6Address) -> bytes:
    """The SRH that takes a packet through ``segments`` in order, then to ``destination``.

    RFC 8754 §2 keeps the list in reverse: Segment List[0] is the last segment (here the
    reply's destination; the kernel writes it there too), Segment List[n] the first one to
    visit, and Segments Left = Last Entry = n.  A list that already ends at the destination
    (RFC 9503 allows the sender to name its own address last) does not visit it twice.
    """
    route = list(segments)
    if route and route[-1] == destination:
        route.pop()
    if not route:
        raise ValueError("the segment list names no segment before the reply's destination")
    entries = [destination, *reversed(route)]
    if len(entries) > MAX_SEGMENTS:
        raise ValueError(f"{len(entries)} segments: an SRH holds at most {MAX_SEGMENTS}")
    last = len(entries) - 1
    # Next Header is written by the kernel; Flags and Tag are 0 (RFC 8754 §2).
    return _FIXED.pack(0, 2 * len(entries), ROUTING_TYPE_SRH, last, last, 0, 0) + b"".join(e.packed for e in entries)
