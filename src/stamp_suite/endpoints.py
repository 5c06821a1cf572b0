"""The sockets the settings ask for: a reflector's listening socket, a sender's connected one."""

from __future__ import annotations

import socket

from .config import Settings
from .net.udp import SocketSetupError, UdpEndpoint


def _check_timestamping(endpoint: UdpEndpoint, s: Settings) -> UdpEndpoint:
    if s.timestamping == "kernel" and not endpoint.caps.kernel_rx_timestamp:
        endpoint.close()
        raise SocketSetupError("--timestamping kernel: this platform gives no kernel receive timestamps")
    return endpoint


def reflector_port(s: Settings) -> int:
    return 862 if s.local_port is None else s.local_port


def open_reflector_endpoint(s: Settings, port: int, reuseport: bool = False) -> UdpEndpoint:
    """Bound to --local-addr, or to the dual-stack wildcard (IPv4 only with -4 or no IPv6)."""
    host, dual = s.local_addr, False
    if host is None:
        host, dual = ("0.0.0.0", False) if s.force_ipv4 or not socket.has_ipv6 else ("::", not s.force_ipv6)
    return _check_timestamping(UdpEndpoint(host, port, dual_stack=dual, kernel_timestamps=s.timestamping != "user",
                                           reuseport=reuseport), s)


def open_sender_endpoint(s: Settings, destination: tuple[str, int], reuseport: bool = False) -> UdpEndpoint:
    """Connected to the reflector (so ICMP errors reach us), with --dscp/--ecn on every packet.
    ``reuseport``: a fixed --local-port that a session being replaced still holds (monitor)."""
    host = s.local_addr or ("::" if ":" in destination[0] else "0.0.0.0")
    ep = _check_timestamping(UdpEndpoint(host, s.local_port or 0, kernel_timestamps=s.timestamping != "user",
                                         connect=destination, reuseport=reuseport), s)
    if s.dscp or s.ecn:
        ep.set_default_tos((s.dscp << 2) | s.ecn)
    return ep
