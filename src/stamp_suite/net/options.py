"""Socket option numbers, with the values Python's ``socket`` module lacks on some versions.

This is the only module that knows platform-specific constants (Python 3.11 lacks some
Linux ones: IP_PKTINFO, IP_RECVTTL, SO_TIMESTAMPNS, SO_TIMESTAMPING among them).  Every name
is ``None`` where the platform has no such option, so callers test for it instead of guessing.
"""

from __future__ import annotations

import socket
import sys

LINUX = sys.platform.startswith("linux")
DARWIN = sys.platform == "darwin"
WINDOWS = sys.platform == "win32"


def _opt(name: str, linux: int | None = None, darwin: int | None = None) -> int | None:
    value = getattr(socket, name, None)
    if value is not None:
        return value
    if LINUX:
        return linux
    if DARWIN:
        return darwin
    return None


IPPROTO_IP = socket.IPPROTO_IP
IPPROTO_IPV6 = getattr(socket, "IPPROTO_IPV6", 41)
SOL_SOCKET = socket.SOL_SOCKET

IP_TOS = _opt("IP_TOS", 1, 3)
IP_TTL = _opt("IP_TTL", 2, 4)
IP_PKTINFO = _opt("IP_PKTINFO", 8, 26)
IP_RECVTTL = _opt("IP_RECVTTL", 12, 24)
IP_RECVTOS = _opt("IP_RECVTOS", 13, 27)
IP_RECVDSTADDR = _opt("IP_RECVDSTADDR", None, 7)  # BSD/macOS alternative to IP_PKTINFO
IPV6_V6ONLY = _opt("IPV6_V6ONLY", 26, 27)
IPV6_RECVPKTINFO = _opt("IPV6_RECVPKTINFO", 49, 61)
IPV6_PKTINFO = _opt("IPV6_PKTINFO", 50, 46)
IPV6_RECVHOPLIMIT = _opt("IPV6_RECVHOPLIMIT", 51, 37)
IPV6_HOPLIMIT = _opt("IPV6_HOPLIMIT", 52, 47)
IPV6_RECVTCLASS = _opt("IPV6_RECVTCLASS", 66, 35)
IPV6_TCLASS = _opt("IPV6_TCLASS", 67, 36)
SO_REUSEPORT = _opt("SO_REUSEPORT", 15, 0x0200)
SO_TIMESTAMP = _opt("SO_TIMESTAMP", 29, 0x0400)  # microseconds (struct timeval)
SO_TIMESTAMPNS = _opt("SO_TIMESTAMPNS", 35, None)  # nanoseconds (struct timespec), Linux
SO_TIMESTAMPING = _opt("SO_TIMESTAMPING", 37, None)
MSG_ERRQUEUE = _opt("MSG_ERRQUEUE", 0x2000, None)
IP_RECVERR = _opt("IP_RECVERR", 11, None)  # the error queue's messages: sock_extended_err
IPV6_RECVERR = _opt("IPV6_RECVERR", 25, None)
# The socket's memory counters (u32 each, linux/sock_diag.h): [SK_MEMINFO_DROPS] is how many
# datagrams the kernel dropped on it (a full receive buffer, mostly), Linux 4.6+.
SO_MEMINFO = _opt("SO_MEMINFO", 55, None)
SK_MEMINFO_DROPS = 8

# SO_TIMESTAMPING flags (linux/net_tstamp.h)
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
SOF_TIMESTAMPING_OPT_RX_FILTER = 1 << 17  # Linux 6.12+
