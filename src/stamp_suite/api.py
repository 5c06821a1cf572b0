"""Python API for scripts and notebooks: start a reflector, run a session, get the results.

Settings are the same as the command line's, by their snake_case names (``count``,
``send_delay``, ``auth_mode``, ``hmac_key``, ``cos``, ...), validated the same way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .assembly import ReflectorThread, collect, open_session
from .assembly import run_session as run_to_end
from .config import Settings, build_settings
from .net.clock import read_clock_state
from .net.signals import StopRequest
from .sender.events import Lost, Reply, Sample


@dataclass
class SessionResult:
    """What a session measured: the summary (as in the JSON report) and every sample."""

    summary: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)  # sequence numbers without a reply (the summary's "lost")

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


ReflectorHandle = ReflectorThread  # a reflector in a background thread: .address, .counters, .stop()


def start_reflector(local_addr: str = "127.0.0.1", local_port: int = 0, **settings: Any) -> ReflectorThread:
    """Start a reflector on ``local_addr:local_port`` (0: any free port; see ``.address``)."""
    return ReflectorThread(_settings(is_reflector=True, local_addr=local_addr, local_port=local_port, **settings))


def _settings(**settings: Any) -> Settings:
    """Keyword settings checked as the command line's are (None: the default)."""
    return build_settings({k: v for k, v in settings.items() if v is not None}, where="setting")


def run_session(remote_addr: str, remote_port: int | None = None, *, stop: StopRequest | None = None,
                **settings: Any) -> SessionResult:
    """Run one Session-Sender session to completion (blocking) and return its results.

    Every sender setting of the command line is honoured (``window``, ``max_runtime``,
    ``metrics``, ``force_ipv6``, TLVs, keys, ...), through the same driver the CLI uses;
    ``stop.set()`` (from any thread) ends it early."""
    s = _settings(remote_addr=remote_addr, remote_port=remote_port, **settings)
    session, stats = open_session(s, read_clock_state(s.common.tai_offset))
    events = collect(session, (Reply, Lost))
    run_to_end(s, session, stats, stop or StopRequest())
    return SessionResult(stats.to_dict(), [ev.sample for ev in events if isinstance(ev, Reply)],
                         sorted(ev.sequence_number for ev in events if isinstance(ev, Lost)))


async def run_session_async(remote_addr: str, remote_port: int | None = None, **settings: Any) -> SessionResult:
    """The same, without blocking the event loop (the session runs in a worker thread, which
    a cancellation stops too)."""
    stop = StopRequest()
    try:
        return await asyncio.to_thread(run_session, remote_addr, remote_port, stop=stop, **settings)
    except asyncio.CancelledError:
        stop.set()
        raise
