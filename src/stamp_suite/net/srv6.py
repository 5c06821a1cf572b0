"""SRv6 from a UDP socket: a Segment Routing Header (RFC 8754, built by
:mod:`stamp_suite.wire.srh`) on a reply that must follow an RFC 9503 Return Path segment list.

Linux takes an SRH for a UDP socket only as the sticky ``IPV6_RTHDR`` socket option (a
per-packet control message of routing type 4 is refused with EINVAL, measured on 6.x), so
the reflector sets it for one send and clears it at once (:meth:`UdpEndpoint.send`); its
loop is single-threaded per socket, so no other reply leaves with it.  When sending, the
kernel writes the socket's destination into Segment List[0] and sends the datagram to
Segment List[Segments Left], the first segment.
"""

from __future__ import annotations

import ipaddress
import os
import socket

from ..wire.srh import segment_routing_header
from . import options as o

IPV6_RTHDR = getattr(socket, "IPV6_RTHDR", 57 if o.LINUX else None)


def probe() -> str | None:
    """None when this kernel takes an SRH on a UDP socket; else why not, in a few words."""
    if IPV6_RTHDR is None or not o.LINUX:
        return "this platform cannot put a Segment Routing Header on a UDP socket"
    srh = segment_routing_header((ipaddress.IPv6Address("fd00::1"),), ipaddress.IPv6Address("fd00::2"))
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RTHDR, srh)  # checked by the kernel, nothing sent
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RTHDR, b"")
    except OSError as exc:
        return f"the kernel refuses a Segment Routing Header ({exc.strerror}; is CONFIG_IPV6_SEG6 there?)"
    return None


def return_path_support() -> list[str]:
    """What a reflector here does with RFC 9503 Return Path segment lists (``-V --verbose``)."""
    why = probe()
    srv6 = "imposed (a Segment Routing Header on the reply)" if why is None else f"flagged U: {why}"
    # An MPLS label stack is pushed by a route (``ip route ... encap mpls``), not by a socket.
    mpls = ("the kernel routes MPLS here (/proc/sys/net/mpls): a route with MPLS encapsulation per label stack "
            "would be needed, set up outside this program" if os.path.isdir("/proc/sys/net/mpls")
            else "and this kernel has no MPLS routing (/proc/sys/net/mpls)")
    return [f"Return Path SRv6 segment list: {srv6}",
            f"Return Path SR-MPLS label stack: flagged U: a UDP socket cannot push MPLS labels, {mpls}"]
