"""What the kernel says on a connected UDP socket when an ICMP error came back for an
earlier packet: an OSError from the next send or receive, one per ICMP message, after which
the socket works as before (Linux icmp_err_convert and icmpv6_err_convert; Windows reports a
port unreachable as WSAECONNRESET)."""

from __future__ import annotations

import errno

_WSAECONNRESET = 10054

_MEANING = {
    errno.ECONNREFUSED: "port unreachable",
    errno.ECONNRESET: "port unreachable",
    _WSAECONNRESET: "port unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.EHOSTDOWN: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.EACCES: "administratively prohibited",
    errno.EMSGSIZE: "packet too big",
    errno.EPROTO: "parameter problem",
    errno.ENOPROTOOPT: "protocol unreachable",
    errno.EOPNOTSUPP: "source route failed",
}


def icmp_error(exc: OSError) -> str | None:
    """The ICMP error ``exc`` reports ("port unreachable", "host unreachable", ...), or None
    for an error of the socket itself."""
    return _MEANING.get(getattr(exc, "winerror", None) or exc.errno)
