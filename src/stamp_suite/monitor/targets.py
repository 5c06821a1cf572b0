"""A monitor's targets: each one's session, statistics and windows, and the shard it is in."""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from typing import Protocol

from ..config import Settings
from ..net.clock import ClockState
from ..sender.driver import Probe
from ..sender.stats import SessionStats
from .config import MonitorConfig
from .windows import WindowedStats


class Sessions(Protocol):
    """How the monitor makes its targets' sessions from their settings (the assembly's
    TargetSessions; injected, so that this service does not build what is above it)."""

    def destination(self, s: Settings) -> tuple[str, int]:
        """The reflector's address now (a name looked up: it may block for seconds); raises
        net.resolve.NameNotResolved when the name has none now, ConfigError when it can never
        be used."""
        ...

    def open(self, s: Settings, clock: ClockState, name: str, windows_ns: tuple[int, ...],
             stats: SessionStats, destination: tuple[str, int], replacing: bool = False) -> Probe:
        """``replacing``: a running target of this monitor holds its fixed local port (shared
        with it until it stops); else the port must be free."""
        ...

    def key(self, s: Settings) -> bytes | None: ...

    def still_at(self, s: Settings, destination: tuple[str, int]) -> bool: ...


class Target:
    """One monitored reflector: its session, cumulative statistics and windows."""

    def __init__(self, name: str, settings: Settings, session: Probe, stats: SessionStats,
                 windows: WindowedStats, index: int) -> None:
        self.name = name
        self.settings = settings
        self.session = session
        self.stats = stats
        self.windows = windows
        self.index = index  # SNMP row, stable while the monitor runs
        # as of its latest closed shortest window; False before the first for a target that
        # was down before it started (its name had no address)
        self.up: bool | None = None

    @property
    def destination(self) -> tuple[str, int]:
        return self.session.destination

    def phase_ns(self) -> int:
        """Targets are spread over their interval (a fixed phase per name), so that a thousand
        of them are not measured in one burst every second."""
        return zlib.crc32(self.name.encode()) % 1000 * self.session.engine.config.interval_ns // 1000

    def close(self) -> None:
        self.session.endpoint.close()


def shard(config: MonitorConfig, k: int, n: int) -> MonitorConfig:
    """``config`` with only the targets of shard ``k`` of ``n`` (a target's flows together)."""
    if n == 1:
        return config
    return dataclasses.replace(config, targets={t: s for t, s in config.targets.items()
                                                if shard_of(config.labelled(t), n) == k})


def shard_of(target: str, shards: int) -> int:
    """The shard (1..``shards``) a target belongs to: highest random weight (rendezvous)
    hashing of its name, so each target's shard depends only on its name and the shard count,
    adding targets moves none, and going from N to N+1 shards moves about 1/(N+1) of them."""
    def weight(k: int) -> bytes:
        return hashlib.blake2b(f"{k}\0{target}".encode(), digest_size=8).digest()
    return max(range(1, shards + 1), key=weight)
