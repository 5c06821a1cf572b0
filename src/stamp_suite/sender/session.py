"""Settings to a running Session-Sender, in one place for the CLI, the monitor, the API and
the self-test: the engine's configuration, the socket, the statistics, the clock, and the
session's Prometheus and SNMP exports."""

from __future__ import annotations

import socket
from typing import Protocol

from ..build import error_estimate, load_keys, sender_config
from ..config import ConfigError, Settings
from ..endpoints import open_sender_endpoint
from ..net.clock import ClockState
from ..net.resolve import ResolveError, addresses, resolve
from ..net.udp import format_address
from .driver import SenderSession
from .engine import SessionSender
from .stats import SessionStats


class Stoppable(Protocol):
    def stop(self) -> None: ...


def address_family(s: Settings) -> int:
    """The family a name is resolved in: -4 or -6, else that of --local-addr, else any."""
    if s.force_ipv4 or s.force_ipv6:
        return socket.AF_INET if s.force_ipv4 else socket.AF_INET6
    if s.local_addr:
        return socket.AF_INET6 if ":" in s.local_addr else socket.AF_INET
    return socket.AF_UNSPEC


def sender_destination(s: Settings) -> tuple[str, int]:
    """The reflector's address and port: a name resolved now, in the family asked for."""
    try:
        return resolve(*s.remote(), address_family(s))
    except ResolveError as exc:
        raise ConfigError(str(exc)) from None


def destination_still(s: Settings, destination: tuple[str, int]) -> bool:
    """Is ``destination`` still one of the addresses the settings' reflector has (round-robin
    DNS answers in turn: any of them keeps a running session)?"""
    host, port = s.remote()
    try:
        return port == destination[1] and destination[0] in addresses(host, port, address_family(s))
    except (ResolveError, OSError) as exc:
        raise ConfigError(str(getattr(exc, "strerror", None) or exc)) from None


def open_session(s: Settings, clock: ClockState, *, name: str | None = None, destination: tuple[str, int] | None = None,
                 windows_ns: tuple[int, ...] = (), reuseport: bool = False, stats: SessionStats | None = None,
                 skip_missed: bool = False) -> tuple[SenderSession, SessionStats]:
    """A session ready for the driver, with its statistics (``stats``, or full ones) as the first
    consumer of its events; ``windows_ns`` and ``skip_missed``: see SenderConfig."""
    keys = load_keys(s)
    engine = SessionSender(sender_config(s, clock, keys, windows_ns, skip_missed))
    destination = destination or sender_destination(s)
    endpoint = open_sender_endpoint(s, destination, reuseport)
    stats = stats or SessionStats(s.dscp, s.ecn)
    session = SenderSession(name or format_address(destination), engine, endpoint, destination, [stats.on_event],
                            on_clock=lambda state: engine.update_clock(error_estimate(s, state)))
    return session, stats


def observe(s: Settings, session: SenderSession, stats: SessionStats) -> list[Stoppable]:
    """--metrics and --snmp for one session; returns what to stop at the end."""
    parts: list[Stoppable] = []
    try:
        if s.metrics:
            from ..observability.http import serve
            from ..observability.metrics import SenderMetrics
            metrics = SenderMetrics()
            session.consumers.append(metrics.add_session((format_address(session.destination), str(s.ssid or 0)),
                                                         stats))
            parts.append(serve(metrics, s.metrics_addr))
        if s.snmp:
            from ..observability.mib_values import sender_objects
            from ..observability.snmp import SENDER_SUBTREE, SubAgent
            local_port = session.endpoint.local[1]
            agent = SubAgent(s.snmp_socket, SENDER_SUBTREE,
                             lambda: sender_objects(stats, s, session.destination, local_port), "stamp-suite sender")
            agent.start()
            parts.append(agent)
    except BaseException:
        for part in parts:
            part.stop()
        raise
    return parts
