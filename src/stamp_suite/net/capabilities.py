"""What this platform's UDP sockets can report and set, detected once by trying each option
on a throwaway socket; what is missing is said at start-up (:meth:`Capabilities.notes`)."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass, fields, replace

from . import options as o

# TX timestamps are asked for per packet (a cmsg); the socket only sets how they come back:
# with a counter (OPT_ID) and without the packet itself (OPT_TSONLY).
TX_OPT_FLAGS = o.SOF_TIMESTAMPING_OPT_ID | o.SOF_TIMESTAMPING_OPT_TSONLY


@dataclass(frozen=True)
class Capabilities:
    """What this platform's UDP sockets can report and set, per address family."""

    recvmsg: bool = False
    ttl: bool = False
    tos: bool = False
    destination_address: bool = False
    kernel_rx_timestamp: bool = False
    kernel_tx_timestamp: bool = False
    set_tos_per_packet: bool = False
    set_source_per_packet: bool = False
    reuseport: bool = False
    dropped_unread: bool = False  # the kernel's count of datagrams a socket dropped unread (SO_MEMINFO)

    def missing(self) -> list[str]:
        return [f.name for f in fields(self) if not getattr(self, f.name)]

    def describe(self) -> str:
        on = [f.name for f in fields(self) if getattr(self, f.name)]
        return "capabilities: " + (", ".join(on) if on else "none")

    def notes(self) -> list[str]:
        """What this platform cannot measure, and what is reported instead (said once at start)."""
        notes = []
        if not self.ttl:
            notes.append("TTL/hop limit cannot be read here: reflector reports 255 (RFC 5357 §4.2), sender 'unknown'")
        if not self.tos:
            notes.append("DSCP/ECN of received packets cannot be read here: CoS TLV reports 0")
        if not self.destination_address:
            notes.append("destination address cannot be read here: Location and Destination Node Address "
                         "use the bound address")
        if not self.kernel_rx_timestamp:
            notes.append("no kernel receive timestamps: taken in user space right after recvmsg "
                         "(Timestamp Information says Control Plane)")
        if not self.dropped_unread:
            notes.append("datagrams the kernel drops before this program reads them (a full receive buffer) "
                         "cannot be counted here: loss may include this host's own drops")
        if not self.set_tos_per_packet:
            notes.append("DSCP cannot be set per packet here: CoS-requested DSCP is not applied to replies")
        return notes

    def without(self, *names: str) -> Capabilities:
        """A copy with the named capabilities switched off (tests, and --timestamping user)."""
        return replace(self, **{n: False for n in names})


def try_option(sock: socket.socket, level: int, opt: int | None, value: int = 1) -> bool:
    if opt is None:
        return False
    try:
        sock.setsockopt(level, opt, value)
        return True
    except OSError:
        return False


def enable_tx_timestamps(sock: socket.socket) -> bool:
    """SO_TIMESTAMPING for the TX timestamps a send asks for.  Its SOFTWARE report flag would
    also put a second receive timestamp (SCM_TIMESTAMPING, 48 octets) on every datagram read,
    beside SO_TIMESTAMPNS's: OPT_RX_FILTER (Linux 6.12+) keeps that one off."""
    flags = o.SOF_TIMESTAMPING_SOFTWARE | TX_OPT_FLAGS
    return (try_option(sock, o.SOL_SOCKET, o.SO_TIMESTAMPING, flags | o.SOF_TIMESTAMPING_OPT_RX_FILTER)
            or try_option(sock, o.SOL_SOCKET, o.SO_TIMESTAMPING, flags))


def detect_capabilities(family: int = socket.AF_INET) -> Capabilities:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        has_recvmsg = hasattr(s, "recvmsg")
        if family == socket.AF_INET6:
            ttl = try_option(s, o.IPPROTO_IPV6, o.IPV6_RECVHOPLIMIT)
            tos = try_option(s, o.IPPROTO_IPV6, o.IPV6_RECVTCLASS)
            dst = try_option(s, o.IPPROTO_IPV6, o.IPV6_RECVPKTINFO)
        else:
            ttl = try_option(s, o.IPPROTO_IP, o.IP_RECVTTL)
            tos = try_option(s, o.IPPROTO_IP, o.IP_RECVTOS)
            dst = try_option(s, o.IPPROTO_IP, o.IP_PKTINFO) or try_option(s, o.IPPROTO_IP, o.IP_RECVDSTADDR)
        ts = try_option(s, o.SOL_SOCKET, o.SO_TIMESTAMPNS) or try_option(s, o.SOL_SOCKET, o.SO_TIMESTAMP)
        tx_ts = o.MSG_ERRQUEUE is not None and enable_tx_timestamps(s)
        reuse = try_option(s, o.SOL_SOCKET, o.SO_REUSEPORT)
        send_cmsg = has_recvmsg and hasattr(s, "sendmsg") and o.LINUX
        drops = socket_dropped_unread(s) is not None
    return Capabilities(has_recvmsg, ttl and has_recvmsg, tos and has_recvmsg, dst and has_recvmsg,
                        ts and has_recvmsg, tx_ts and send_cmsg, send_cmsg, send_cmsg and dst, reuse, drops)


def socket_dropped_unread(sock: socket.socket) -> int | None:
    """How many datagrams the kernel dropped for ``sock`` before they were read, since it was
    opened: its receive buffer full (the program fell behind), or, rarely, a bad UDP checksum.
    A 32-bit count that wraps; None where the platform does not say."""
    if o.SO_MEMINFO is None:
        return None
    try:
        meminfo = sock.getsockopt(o.SOL_SOCKET, o.SO_MEMINFO, 4 * (o.SK_MEMINFO_DROPS + 1))
    except OSError:
        return None
    if len(meminfo) < 4 * (o.SK_MEMINFO_DROPS + 1):
        return None
    return int.from_bytes(meminfo[4 * o.SK_MEMINFO_DROPS:4 * o.SK_MEMINFO_DROPS + 4], sys.byteorder)
