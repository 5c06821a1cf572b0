"""This host's own addresses, for the reflector's loop guards: a reply to one of them on the
reflector's own port would come back to its own socket, and no Return Address may name one
there (docs/security.md).

The interfaces' addresses (and their broadcast addresses, which reach this host too) come
from psutil, which reads them the same way on Linux, macOS and Windows.  They are read once
and again on :meth:`LocalAddresses.refresh` (the reflector's housekeeping), never while a
packet waits.
"""

from __future__ import annotations

import ipaddress
import socket

import psutil

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
REFRESH_S = 30  # how often the reflector re-reads them: an address added meanwhile is missed that long
_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def host_addresses() -> frozenset[Address]:
    """Every unicast and broadcast address of this host's interfaces."""
    out: set[Address] = set()
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family not in _FAMILIES:
                continue
            for text in (a.address, a.broadcast):
                if text:
                    try:
                        out.add(ipaddress.ip_address(text.split("%", 1)[0]))
                    except ValueError:  # not an address (some platforms list odd entries)
                        continue
    return frozenset(out)


class LocalAddresses:
    """A callable ``ip -> bool``: is ``ip`` one of this host's addresses (as last read)?"""

    __slots__ = ("_addresses",)

    def __init__(self) -> None:
        self._addresses = host_addresses()

    def refresh(self) -> None:
        self._addresses = host_addresses()

    def __call__(self, ip: Address) -> bool:
        return ip in self._addresses
