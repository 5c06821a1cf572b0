"""Continuous monitoring: one Session-Sender per target, all on one driver, into Prometheus,
JSON lines and SNMP.

Per target: cumulative statistics (Prometheus counters and histograms, the same as a single
sender's), and tumbling windows of each configured length (:mod:`.windows`), published as
gauges and as one JSON line per target and window.  SIGHUP re-reads the file as one
transaction: it is checked whole, new and changed targets start before removed ones stop,
and changes of windows, jsonl and metrics_addr are applied; a file with an error changes
nothing.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
import zlib
from collections.abc import Iterator
from typing import Any, TextIO

from ..config import ConfigError, Settings
from ..net.clock import ClockWatcher, read_clock_state
from ..net.signals import StopRequest
from ..net.udp import SocketSetupError
from ..observability.metrics import SenderMetrics
from ..say import say
from ..sender.driver import SenderDriver, SenderSession
from ..sender.session import open_session, sender_destination
from ..sender.stats import SessionStats
from .config import MonitorConfig, load_config
from .windows import WindowedStats

NS = 1_000_000_000
RELOAD_CHECK_NS = NS // 20


class Target:
    """One monitored reflector: its session, cumulative statistics and windows."""

    def __init__(self, name: str, settings: Settings, session: SenderSession, stats: SessionStats,
                 windows: WindowedStats, index: int) -> None:
        self.name = name
        self.settings = settings
        self.session = session
        self.stats = stats
        self.windows = windows
        self.index = index  # SNMP row, stable while the monitor runs

    @property
    def destination(self) -> tuple[str, int]:
        return self.session.destination

    def phase_ns(self) -> int:
        """Targets are spread over their interval (a fixed phase per name), so that a thousand
        of them are not measured in one burst every second."""
        return zlib.crc32(self.name.encode()) % 1000 * self.session.engine.config.interval_ns // 1000

    def close(self) -> None:
        self.session.endpoint.close()


class Monitor:
    def __init__(self, config_path: str, stop: StopRequest, log: TextIO | None = None,
                 metrics_addr: str | None = None) -> None:
        self.config_path = config_path
        self.metrics_addr = metrics_addr  # --metrics-addr: wins over the file's, on every reload too
        self.config = self._load()
        self.log_to = log or sys.stderr
        self.clock = read_clock_state()
        # Targets at a packet a second need millisecond, not microsecond, timing: no spin.
        self.driver = SenderDriver(stop, ClockWatcher(self.clock, log=self.log), record_schedule=True, spin_ns=0)
        self.metrics = SenderMetrics(("target",))
        self.metrics_server = None
        self.agent = None
        self.jsonl: TextIO | None = None
        self.targets: dict[str, Target] = {}
        self._rows: dict[str, int] = {}  # target name -> SNMP row index
        self._reload = False
        self.driver.every(RELOAD_CHECK_NS, self._check_reload)

    def _load(self) -> MonitorConfig:
        config = load_config(self.config_path)
        return dataclasses.replace(config, metrics_addr=self.metrics_addr) if self.metrics_addr else config

    def log(self, line: str) -> None:
        say(f"stamp-suite monitor: {line}", self.log_to)

    # -- targets ------------------------------------------------------------------------------
    def _open(self, name: str, s: Settings, windows: tuple[int, ...]) -> Target:
        windows_ns = tuple(w * NS for w in windows)
        session, stats = open_session(s, self.clock, name=name, windows_ns=windows_ns)
        win = WindowedStats(windows_ns, s.dscp, s.ecn, on_close=lambda rec: self._write_window(name, rec))
        session.consumers.append(win)
        return Target(name, s, session, stats, win, self._rows.setdefault(name, len(self._rows) + 1))

    def _stop(self, target: Target) -> None:
        self.driver.remove(target.session)
        target.close()

    def apply(self, config: MonitorConfig) -> tuple[list[str], list[str], list[str]]:
        """Make ``config`` the running one, or change nothing and raise (ConfigError,
        SocketSetupError, OSError).  New and changed targets start before removed ones stop."""
        windows_changed = config.windows != self.config.windows
        added = [n for n in config.targets if n not in self.targets]
        removed = [n for n in self.targets if n not in config.targets]
        # A target is changed when its settings are, or its name now resolves elsewhere.
        changed = [n for n in config.targets if n in self.targets
                   and (windows_changed or self.targets[n].settings != config.targets[n]
                        or sender_destination(config.targets[n]) != self.targets[n].destination)]
        opened: dict[str, Target] = {}
        outputs = None
        try:
            for name in added + changed:
                opened[name] = self._open(name, config.targets[name], config.windows)
            outputs = self._prepare_outputs(config)
        except BaseException:
            for t in opened.values():
                t.close()
            raise
        for name, target in opened.items():  # from here on nothing can fail
            old = self.targets.get(name)
            target.session.consumers.append(self.metrics.add_session((name,), target.stats))
            self.targets[name] = target
            self.driver.add(target.session, target.phase_ns())
            if old is not None:
                self._stop(old)
        for name in removed:
            self._stop(self.targets.pop(name))
            self.metrics.remove_session((name,))
        self._switch_outputs(config, outputs)
        self.config = config
        return added, removed, changed

    def _prepare_outputs(self, config: MonitorConfig) -> dict[str, Any]:
        """The metrics server and JSON-lines file a new file asks for, opened before anything
        changes (a port in use or an unwritable file refuses the reload)."""
        old, new = self.config, {}
        fresh = self.metrics_server is None and self.jsonl is None and not self.targets
        try:
            if (fresh or config.metrics_addr != old.metrics_addr) and config.metrics_addr:
                from ..observability.http import serve
                new["metrics_server"] = serve(MonitorCollector(self), config.metrics_addr)
            if (fresh or config.jsonl != old.jsonl) and config.jsonl:
                new["jsonl"] = sys.stdout if config.jsonl == "-" else open(config.jsonl, "a", encoding="utf-8")
        except BaseException:
            if "metrics_server" in new:
                new["metrics_server"].stop()
            raise
        return new

    def _switch_outputs(self, config: MonitorConfig, new: dict[str, Any]) -> None:
        old = self.config
        if config.metrics_addr != old.metrics_addr or "metrics_server" in new:
            if self.metrics_server is not None:
                self.metrics_server.stop()
            self.metrics_server = new.get("metrics_server")
        if config.jsonl != old.jsonl or "jsonl" in new:
            if self.jsonl not in (None, sys.stdout):
                self.jsonl.close()
            self.jsonl = new.get("jsonl")
        if config.snmp_socket != old.snmp_socket:
            if self.agent is not None:
                self.agent.stop()
                self.agent = None
            if config.snmp_socket:
                from ..observability.mib_values import monitor_objects
                from ..observability.snmp import SENDER_SUBTREE, SubAgent
                self.agent = SubAgent(config.snmp_socket, SENDER_SUBTREE, lambda: monitor_objects(self),
                                      "stamp-suite monitor")
                self.agent.start()

    def _write_window(self, name: str, record: dict[str, Any]) -> None:
        if self.jsonl is not None:
            print(json.dumps({"type": "window", "target": name, **record}), file=self.jsonl, flush=True)

    # -- running -------------------------------------------------------------------------------
    def start(self) -> None:
        current, self.config = self.config, MonitorConfig((), None, None, None, {})
        self.apply(current)
        gc.freeze()  # the targets' long-lived objects: keep them out of every collection's scan

    def run(self) -> None:
        self.driver.run(until_finished=False)

    def request_reload(self) -> None:
        self._reload = True

    def _check_reload(self) -> None:
        if not self._reload:
            return
        self._reload = False
        try:
            added, removed, changed = self.apply(self._load())
        except (ConfigError, SocketSetupError, OSError) as exc:
            self.log(f"reload failed, keeping the running targets: {exc}")
            return
        self.log(f"reloaded: {len(added)} added, {len(removed)} removed, {len(changed)} changed, "
                 f"{len(self.targets)} running")

    def close(self) -> None:
        for target in list(self.targets.values()):
            self._stop(target)
        for part in (self.agent, self.metrics_server):
            if part is not None:
                part.stop()
        if self.jsonl not in (None, sys.stdout):
            self.jsonl.close()

    def windows(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        """(target, window length in s, the latest closed window) for every target and length."""
        for t in list(self.targets.values()):
            for length, record in list(t.windows.last.items()):
                yield t.name, length // NS, record

    def targets_up(self) -> Iterator[tuple[str, bool]]:
        """(target, up): up when its latest closed shortest window had a reply (a target with
        no closed window yet is not listed)."""
        for t in list(self.targets.values()):
            record = t.windows.last.get(min(t.windows.lengths_ns))
            if record is not None:
                yield t.name, record["packets"]["received"] > 0


class MonitorCollector:
    """The monitor's Prometheus view: cumulative per target, plus the latest closed windows."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self):
        from ..observability.metrics import window_families
        yield from self.monitor.metrics.collect()
        yield from window_families(self.monitor.windows(), self.monitor.targets_up())
