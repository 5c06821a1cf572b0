"""Where a reflector is: a host name or an address, with or without a port.

Accepted everywhere a remote address is taken (the command line, monitor targets, the
API): ``reflector.example.net``, ``localhost``, ``192.0.2.1``, ``192.0.2.1:8620``,
``2001:db8::1``, ``[2001:db8::1]:8622``; ``::1:8620`` (a port, or the last group of an
address?) is refused as ambiguous, ``[::1]:8620`` and ``[::1:8620]`` are not.  A name is resolved once, when the session
starts (the monitor again on every reload, and again and again while it has no address:
:class:`NameNotResolved`), in the address family -4 or -6 asks for.
"""

from __future__ import annotations

import ipaddress
import socket


class ResolveError(ValueError):
    """The address cannot be used; the message is one line."""


class NameNotResolved(ResolveError):
    """The resolver has no address for a name now: it may have one later (a name not yet in
    the DNS, a resolver that does not answer), unlike a malformed address."""


def split_host_port(text: str) -> tuple[str, int | None]:
    """``(host, port or None)`` from HOST, HOST:PORT, [V6] or [V6]:PORT, or a bare IPv6 address."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ResolveError(f"{text!r} is not HOST, HOST:PORT or [IPv6]:PORT")
        return host, _port(rest[1:], text) if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(port, text)
    head, _, last = text.rpartition(":")
    if 3 <= len(last) <= 5 and last.isdigit() and _is_ipv6(head):
        raise ResolveError(f"{text!r} is ambiguous: write [{head}]:{last} for port {last} of {head}, "
                           f"or [{text}] for that address")
    return text, None


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise ResolveError(f"{whole!r}: the port must be 1..65535")
    return int(text)


def addresses(host: str, port: int, family: int = socket.AF_UNSPEC) -> list[str]:
    """Every address a name has (a literal: itself), in the resolver's order."""
    first = resolve(host, port, family)[0]
    if first == host:
        return [host]
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    except socket.gaierror as exc:  # it resolved a moment ago: the resolver has just failed
        raise NameNotResolved(f"cannot resolve {host!r}: {exc.strerror}") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def resolve(host: str, port: int, family: int = socket.AF_UNSPEC) -> tuple[str, int]:
    """The address to send to: a literal as it is (checked against ``family``), a name
    looked up (the first address the resolver prefers, RFC 6724)."""
    literal = host.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(literal)
    except ValueError:
        ip = None
    if ip is not None:
        want = {socket.AF_INET: 4, socket.AF_INET6: 6}.get(family)
        if want and ip.version != want:
            raise ResolveError(f"{host} is an IPv{ip.version} address, but IPv{want} is asked for "
                               f"(-{want}, or a --local-addr of that family)")
        return host, port
    if literal.count(":") >= 2:  # not an IPv6 address, and no name has colons
        raise ResolveError(f"{host!r} is not an IPv6 address (with a port, write [ADDRESS]:PORT)")
    as_family = {socket.AF_INET: " as IPv4 (-4)", socket.AF_INET6: " as IPv6 (-6)"}.get(family, "")
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise NameNotResolved(f"cannot resolve {host!r}{as_family}: {exc.strerror}") from None
    except UnicodeError:  # the IDNA codec: a label over 63 characters, or an empty one
        raise ResolveError(f"{host!r} is not a host name (a label is empty or over 63 characters)") from None
    if not infos:
        raise NameNotResolved(f"cannot resolve {host!r}: no address")
    return infos[0][4][0], port


def format_address(addr: tuple[str, int]) -> str:
    """``host:port``, an IPv6 host in brackets: ``[2001:db8::1]:862``."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
