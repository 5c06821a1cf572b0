"""Python API for scripts and notebooks: start a reflector, run a session, get the results.

Settings are the same as the command line's, by their snake_case names (``count``,
``send_delay``, ``auth_mode``, ``hmac_key``, ``cos``, ...), validated the same way.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from .build import load_keys, reflector_config, sender_config
from .config import build_settings
from .net.clock import read_clock_state
from .endpoints import open_reflector_endpoint, open_sender_endpoint
from .reflector.engine import Reflector, ReflectorCounters
from .reflector.server import ReflectorServer
from .sender.engine import Sample, SessionSender
from .sender.runner import SenderRunner
from .sender.stats import SessionStats


@dataclass
class SessionResult:
    """What a session measured: the summary (as in the JSON report) and every sample."""

    summary: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)  # sequence numbers without a reply

    @property
    def sent(self) -> int:
        return self.summary["packets"]["sent"]

    @property
    def received(self) -> int:
        return self.summary["packets"]["received"]

    @property
    def loss_ratio(self) -> float | None:
        return self.summary["packets"]["loss_ratio"]

    def rtt_ms(self, statistic: str = "p50") -> float | None:
        """A round-trip statistic in ms: min, max, mean, stddev or a percentile (p50, p99, ...)."""
        rtt = self.summary["rtt_ns"]
        value = rtt["percentiles"].get(statistic) if statistic.startswith("p") else rtt.get(statistic)
        return None if value is None else value / 1e6


class ReflectorHandle:
    """A Session-Reflector running in a background thread of this process."""

    def __init__(self, server: ReflectorServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def address(self) -> tuple[str, int]:
        return self._server.endpoint.local

    @property
    def counters(self) -> ReflectorCounters:
        return self._server.engine.counters

    def stop(self) -> None:
        self._server.stop()
        self._thread.join(2)
        self._server.endpoint.close()

    def __enter__(self) -> ReflectorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_reflector(local_addr: str = "127.0.0.1", local_port: int = 0, **settings: Any) -> ReflectorHandle:
    """Start a reflector on ``local_addr:local_port`` (0: any free port; see ``.address``)."""
    s = build_settings({"is_reflector": True, "local_addr": local_addr, "local_port": local_port, **settings})
    engine = Reflector(reflector_config(s, read_clock_state(s.tai_offset), load_keys(s)))
    endpoint = open_reflector_endpoint(s, local_port)
    server = ReflectorServer(engine, endpoint)
    thread = threading.Thread(target=server.serve, name="stamp-reflector", daemon=True)
    thread.start()
    return ReflectorHandle(server, thread)


def run_session(remote_addr: str, remote_port: int = 862, **settings: Any) -> SessionResult:
    """Run one Session-Sender session to completion (blocking) and return its results."""
    s = build_settings({"remote_addr": remote_addr, "remote_port": remote_port, **settings})
    engine = SessionSender(sender_config(s, read_clock_state(s.tai_offset), load_keys(s)))
    dest = (remote_addr, remote_port)
    endpoint = open_sender_endpoint(s, dest)
    stats = SessionStats(s.dscp, s.ecn)
    samples: list[Sample] = []
    runner = SenderRunner(engine, endpoint, dest, count=s.count, interval_ns=int(s.send_delay * 1e6),
                          timeout_ns=int(s.timeout * 1e9), stats=stats,
                          on_event=lambda ev: samples.append(ev.sample) if ev.kind == "sample" else None)
    try:
        result = runner.run()
    finally:
        endpoint.close()
    return SessionResult(stats.to_dict(), samples, [seq for seq, _ in result.unanswered])


async def run_session_async(remote_addr: str, remote_port: int = 862, **settings: Any) -> SessionResult:
    """The same, without blocking the event loop (the session runs in a worker thread)."""
    return await asyncio.to_thread(run_session, remote_addr, remote_port, **settings)
