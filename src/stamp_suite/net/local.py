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


def host_addresses() -> tuple[frozenset[Address], frozenset[Address]]:
    """This host's interfaces' unicast addresses, and their broadcast addresses."""
    local: set[Address] = set()
    broadcast: set[Address] = set()
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family not in _FAMILIES:
                continue
            for text, into in ((a.address, local), (a.broadcast, broadcast)):
                if text:
                    try:
                        into.add(ipaddress.ip_address(text.split("%", 1)[0]))
                    except ValueError:  # not an address (some platforms list odd entries)
                        continue
    return frozenset(local), frozenset(broadcast)


class LocalAddresses:
    """This host's addresses as last read (the reflector engine's HostAddresses)."""

    __slots__ = ("_local", "_broadcast")

    def __init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        self._local, self._broadcast = host_addresses()

    def is_local(self, ip: Address) -> bool:
        return ip.is_loopback or ip in self._local or ip in self._broadcast

    def is_broadcast(self, ip: Address) -> bool:
        return ip in self._broadcast
