"""Continuous monitoring: one Session-Sender per target, all in one process, into Prometheus.

    stamp-suite monitor --config targets.toml

The file has an optional ``[monitor]`` table (``windows`` in seconds, ``jsonl`` path or
"-", ``metrics_addr``, ``snmp``, ``snmp_socket``), an optional ``[defaults]`` table of
sender settings, and one ``[[targets]]`` table per target: a ``name`` plus any sender
setting (``remote_addr``, ``remote_port``, ``send_delay``, ``padding``, ``dscp``, ``cos``,
``auth_mode``, ``hmac_key_file``, ...).  SIGHUP re-reads the file: new targets start,
removed ones stop, changed ones restart, the others keep their state.

Statistics: cumulative per target (Prometheus counters and histograms), and per window
(tumbling windows of each configured length: a packet belongs to the window it was sent
in, and a window is closed once its last packet's timeout has passed) as Prometheus
gauges and as one JSON line per target and window.
"""

from __future__ import annotations

import gc
import heapq
import json
import selectors
import signal
import sys
import time
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .build import load_keys, sender_config
from .config import FILE_KEYS, ConfigError, Settings, build_settings
from .endpoints import open_sender_endpoint
from .net.clock import read_clock_state
from .net.process import tighten_timer_slack
from .net.udp import SocketSetupError
from .sender.engine import ReplyEvent, SessionSender
from .sender.runner import COARSE_WAIT_NS, NS, PRECISE_WINDOW_NS, SenderSocket, wait_precisely
from .sender.stats import SessionStats

MONITOR_KEYS = {"windows", "jsonl", "metrics_addr", "snmp", "snmp_socket"}
DEFAULT_WINDOWS = (60, 300)
HOUSEKEEPING_NS = NS // 20


@dataclass(frozen=True)
class MonitorConfig:
    windows: tuple[int, ...]
    jsonl: str | None
    metrics_addr: str | None
    snmp_socket: str | None
    targets: dict[str, Settings]


def load_config(path: str) -> MonitorConfig:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: {exc}") from None
    mon = data.get("monitor", {})
    unknown = set(mon) - MONITOR_KEYS
    if unknown:
        raise ConfigError(f"--config {path}: unknown key {sorted(unknown)[0]!r} in [monitor]")
    windows = tuple(int(w) for w in mon.get("windows", DEFAULT_WINDOWS))
    if not windows or any(w < 1 for w in windows):
        raise ConfigError(f"--config {path}: windows must be whole seconds, 1 or more")
    defaults = data.get("defaults", {})
    targets: dict[str, Settings] = {}
    for i, t in enumerate(data.get("targets", [])):
        t = dict(t)
        name = str(t.pop("name", "") or "")
        if not name:
            raise ConfigError(f"--config {path}: target {i + 1} has no name")
        if name in targets:
            raise ConfigError(f"--config {path}: two targets are named {name!r}")
        merged = {**defaults, **t, "count": 0}
        bad = set(merged) - FILE_KEYS
        if bad:
            raise ConfigError(f"--config {path}: target {name!r}: unknown key {sorted(bad)[0]!r}")
        try:
            targets[name] = build_settings({k: tuple(v) if isinstance(v, list) else v for k, v in merged.items()})
        except ConfigError as exc:
            raise ConfigError(f"--config {path}: target {name!r}: {exc}") from None
    if not targets:
        raise ConfigError(f"--config {path}: no [[targets]]")
    snmp = mon.get("snmp", False)
    return MonitorConfig(windows, mon.get("jsonl"), mon.get("metrics_addr"),
                         mon.get("snmp_socket", "/var/agentx/master") if snmp else None, targets)


@dataclass
class Window:
    """Tumbling windows of one length for one target."""

    length_ns: int
    open: dict[int, SessionStats] = field(default_factory=dict)  # window index -> stats
    last: dict | None = None  # the latest closed window's summary
    last_index: int | None = None

    def stats_for(self, t_ns: int) -> SessionStats:
        i = t_ns // self.length_ns
        st = self.open.get(i)
        if st is None:
            st = self.open[i] = SessionStats()
        return st


class Target:
    def __init__(self, name: str, s: Settings, windows: tuple[int, ...], clock) -> None:
        self.name = name
        self.settings = s
        self.engine = SessionSender(sender_config(s, clock, load_keys(s)))
        self.destination = (s.remote_addr, s.remote_port)
        self.endpoint = open_sender_endpoint(s, self.destination)
        self.stats = SessionStats(s.dscp, s.ecn)
        self.windows = [Window(w * NS) for w in windows]
        self.sent_at: dict[int, int] = {}  # sequence number -> wall-clock send time, for window attribution
        self.interval_ns = max(1, int(s.send_delay * 1e6))
        self.timeout_ns = int(s.timeout * NS)
        self.seq = 0
        self.hooks: list = []
        self.index = 0  # SNMP row index, set by the monitor
        self.socket = SenderSocket(self.engine, self.endpoint, self.stats, self._on_event)
        self.pending = self.engine.prepare(0)

    def send(self) -> None:
        now = time.time_ns()
        self.sent_at[self.pending.sequence_number] = now
        for w in self.windows:
            w.stats_for(now).on_sent()
        self.socket.send(self.pending)
        self.seq += 1
        self.pending = self.engine.prepare(self.seq)

    def _on_event(self, ev: ReplyEvent) -> None:
        sent = self.sent_at.get(ev.sample.sequence_number) if ev.sample is not None else None
        t = sent if sent is not None else time.time_ns()
        for w in self.windows:
            w.stats_for(t).on_event(ev)
        for hook in self.hooks:
            hook(ev)

    def close_windows(self, now_ns: int) -> list[dict]:
        """Windows whose last packet's timeout has passed: summarise and drop them."""
        closed = []
        for w in self.windows:
            for i in sorted(w.open):
                if (i + 1) * w.length_ns + self.timeout_ns > now_ns:
                    break
                summary = w.open.pop(i).to_dict()
                w.last, w.last_index = summary, i
                closed.append({"type": "window", "target": self.name, "window_s": w.length_ns // NS,
                               "start_ns": i * w.length_ns, "end_ns": (i + 1) * w.length_ns, **summary})
        horizon = now_ns - max(w.length_ns for w in self.windows) - 2 * self.timeout_ns
        for seq in [q for q, t in self.sent_at.items() if t < horizon]:
            del self.sent_at[seq]
        self.engine.forget_before(now_ns - 2 * self.timeout_ns)
        return closed

    def close(self) -> None:
        self.endpoint.close()


class Monitor:
    def __init__(self, config_path: str, out: TextIO | None = None) -> None:
        self.config_path = config_path
        self.config = load_config(config_path)
        self.clock = read_clock_state()
        self.targets: dict[str, Target] = {}
        self.sel = selectors.DefaultSelector()
        self._due: list[tuple[int, str, int]] = []  # (monotonic due, target name, generation)
        self._generation: dict[str, int] = {}
        self._index: dict[str, int] = {}  # stable SNMP row index per target name
        self._reload = False
        self._stop = False
        self.metrics = None
        self.out = out
        self.jsonl: TextIO | None = None
        self.schedule_error_ns: list[int] = []
        self._housekeeping_at = 0

    # -- targets ------------------------------------------------------------------------
    def _start(self, name: str, s: Settings) -> None:
        t = Target(name, s, self.config.windows, self.clock)
        t.index = self._index.setdefault(name, len(self._index) + 1)
        self.targets[name] = t
        self.sel.register(t.endpoint.sock, selectors.EVENT_READ, t)
        if self.metrics is not None:
            t.hooks.append(self.metrics.add_session((name,), t.stats))
        gen = self._generation.get(name, 0) + 1
        self._generation[name] = gen
        heapq.heappush(self._due, (time.monotonic_ns() + self._phase(name, t), name, gen))

    @staticmethod
    def _phase(name: str, t: Target) -> int:
        """Spread the targets over their interval (a fixed phase per name), so that a thousand
        targets are not measured in one burst every second."""
        return zlib.crc32(name.encode()) % 1000 * t.interval_ns // 1000

    def _stop_target(self, name: str) -> None:
        t = self.targets.pop(name)
        self.sel.unregister(t.endpoint.sock)
        t.close()
        self._generation[name] = self._generation.get(name, 0) + 1  # its heap entries go stale
        if self.metrics is not None:
            self.metrics.remove_session((name,))

    def apply(self, config: MonitorConfig) -> tuple[list[str], list[str], list[str]]:
        """Start new targets, stop removed ones, restart changed ones; keep the rest."""
        added = [n for n in config.targets if n not in self.targets]
        removed = [n for n in self.targets if n not in config.targets]
        changed = [n for n in config.targets if n in self.targets and self.targets[n].settings != config.targets[n]]
        for name in removed + changed:
            self._stop_target(name)
        self.config = MonitorConfig(self.config.windows, self.config.jsonl, self.config.metrics_addr,
                                    self.config.snmp_socket, config.targets)
        for name in added + changed:
            self._start(name, config.targets[name])
        return added, removed, changed

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        tighten_timer_slack()
        self.apply(self.config)
        # Starting many targets takes a while: count their phases from now, not from each start.
        now = time.monotonic_ns()
        self._due = [(now + self._phase(n, self.targets[n]), n, g) for _, n, g in self._due if n in self.targets]
        heapq.heapify(self._due)
        gc.freeze()  # the targets' long-lived objects: keep them out of every collection's scan
        next_housekeeping = time.monotonic_ns() + HOUSEKEEPING_NS
        while not self._stop:
            if self._reload:
                self._reload = False
                self._do_reload()
            now = time.monotonic_ns()
            while self._due and self._due[0][0] <= now:
                due, name, gen = heapq.heappop(self._due)
                if self._generation.get(name) != gen or name not in self.targets:
                    continue
                t = self.targets[name]
                if t.seq:  # a target's first send waits for its start-up: not a schedule error
                    self.schedule_error_ns.append(now - due)
                if len(self.schedule_error_ns) > 100_000:
                    del self.schedule_error_ns[:50_000]
                t.send()
                heapq.heappush(self._due, (due + t.interval_ns, name, gen))
                now = time.monotonic_ns()
            deadline = min(self._due[0][0] if self._due else now + NS, next_housekeeping)
            if deadline - now < COARSE_WAIT_NS and self._due and deadline == self._due[0][0]:
                wait_precisely(self.sel, deadline, self._ready)
            else:
                ready = self.sel.select(max(0, deadline - now - PRECISE_WINDOW_NS) / NS)
                if ready:
                    self._ready(ready)
            if time.monotonic_ns() >= next_housekeeping:
                next_housekeeping += HOUSEKEEPING_NS
                self._housekeeping()

    def _ready(self, ready: list) -> None:
        for key, _ in ready:
            key.data.socket.drain()

    def _housekeeping(self) -> None:
        """Close finished windows, a slice of the targets at a time: summarising a thousand
        targets at once would stall their schedule at every window boundary."""
        now = time.time_ns()
        names = sorted(self.targets)
        if not names:
            return
        per_call = -(-len(names) * HOUSEKEEPING_NS // NS)  # every target once a second
        start = self._housekeeping_at % len(names)
        self._housekeeping_at = start + per_call
        for name in (names + names)[start:start + min(per_call, len(names))]:
            t = self.targets[name]
            for record in t.close_windows(now):
                if self.jsonl is not None:
                    print(json.dumps(record), file=self.jsonl, flush=True)

    def _do_reload(self) -> None:
        try:
            config = load_config(self.config_path)
            added, removed, changed = self.apply(config)
        except (ConfigError, SocketSetupError) as exc:
            print(f"stamp-suite monitor: reload failed, keeping the running targets: {exc}", file=sys.stderr)
            return
        print(f"stamp-suite monitor: reloaded: {len(added)} added, {len(removed)} removed, {len(changed)} changed, "
              f"{len(self.targets)} running", file=sys.stderr, flush=True)

    def request_reload(self) -> None:
        self._reload = True

    def stop(self) -> None:
        self._stop = True


def _raise_fd_limit(needed: int) -> None:
    """One socket per target: make room for them under the soft open-files limit (POSIX)."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main(argv: list[str]) -> int:
    from .cli import OneLineParser
    ap = OneLineParser(prog="stamp-suite monitor", description="Measure many reflectors continuously.")
    ap.add_argument("--config", required=True, help="TOML file with [monitor], [defaults] and [[targets]]")
    ap.add_argument("--metrics-addr", help="serve Prometheus metrics here (overrides [monitor] metrics_addr)")
    args = ap.parse_args(argv)
    monitor = Monitor(args.config)
    cfg = monitor.config
    _raise_fd_limit(len(cfg.targets) + 256)
    addr = args.metrics_addr or cfg.metrics_addr
    agent = None
    if addr:
        from .observability.http import serve
        from .observability.metrics import SenderMetrics
        monitor.metrics = SenderMetrics(("target",), one_way_histograms=False)
        serve(MonitorCollector(monitor), addr)
    if cfg.jsonl == "-":
        monitor.jsonl = sys.stdout
    elif cfg.jsonl:
        monitor.jsonl = open(cfg.jsonl, "a", encoding="utf-8")  # noqa: SIM115 - open for the run
    if cfg.snmp_socket:
        from .observability.mib_values import monitor_objects
        from .observability.snmp import SENDER_SUBTREE, SubAgent
        agent = SubAgent(cfg.snmp_socket, SENDER_SUBTREE, lambda: monitor_objects(monitor), "stamp-suite monitor")
        agent.start()
    # A /metrics scrape renders tens of thousands of lines in the HTTP thread; hand the GIL
    # back to the sending loop every 0.1 ms (not 5 ms) so sends are not held up meanwhile.
    sys.setswitchinterval(0.0001)
    signal.signal(signal.SIGHUP, lambda *_: monitor.request_reload())
    signal.signal(signal.SIGTERM, lambda *_: monitor.stop())
    signal.signal(signal.SIGINT, lambda *_: monitor.stop())
    print(f"stamp-suite monitor: {len(cfg.targets)} targets, windows {', '.join(f'{w}s' for w in cfg.windows)}"
          + (f", metrics on {addr}" if addr else ""), file=sys.stderr, flush=True)
    try:
        monitor.run()
    finally:
        for name in list(monitor.targets):
            monitor._stop_target(name)
        if agent is not None:
            agent.stop()
    errs = sorted(monitor.schedule_error_ns)
    if errs:
        print(f"stamp-suite monitor: stopped; schedule error over the last {len(errs)} sends: "
              f"p50 {errs[len(errs) // 2] / 1e3:.1f} us, p99 {errs[int(len(errs) * 0.99)] / 1e3:.1f} us",
              file=sys.stderr)
    return 0


class MonitorCollector:
    """The monitor's Prometheus view: cumulative per target, plus the latest closed window."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        yield from self.monitor.metrics.collect()
        labels = ["target", "window"]
        fams = {k: GaugeMetricFamily(f"stamp_monitor_window_{k}", doc, labels=labels) for k, doc in (
            ("loss_ratio", "Lost / sent in the latest closed window"),
            ("packets_sent", "Test packets sent in the latest closed window"),
            ("packets_lost", "Test packets lost in the latest closed window"),
            ("duplicates", "Duplicate replies in the latest closed window"),
            ("reordered", "Reordered replies in the latest closed window"),
            ("rtt_p50_seconds", "Round-trip delay p50 in the latest closed window"),
            ("rtt_p99_seconds", "Round-trip delay p99 in the latest closed window"),
            ("forward_delay_p50_seconds", "One-way forward delay p50 in the latest closed window"),
            ("backward_delay_p50_seconds", "One-way backward delay p50 in the latest closed window"),
            ("jitter_seconds", "RFC 3550 round-trip jitter at the end of the latest closed window"))}
        for t in list(self.monitor.targets.values()):
            for w in t.windows:
                d = w.last
                if d is None:
                    continue
                lv = [t.name, f"{w.length_ns // NS}s"]
                p = d["packets"]
                fams["loss_ratio"].add_metric(lv, p["loss_ratio"] or 0.0)
                fams["packets_sent"].add_metric(lv, p["sent"])
                fams["packets_lost"].add_metric(lv, p["lost"])
                fams["duplicates"].add_metric(lv, p["duplicates"])
                fams["reordered"].add_metric(lv, p["reordered"])
                for key, src in (("rtt_p50_seconds", d["rtt_ns"]["percentiles"]["p50"]),
                                 ("rtt_p99_seconds", d["rtt_ns"]["percentiles"]["p99"]),
                                 ("forward_delay_p50_seconds", d["one_way"]["forward_ns"]["percentiles"]["p50"]),
                                 ("backward_delay_p50_seconds", d["one_way"]["backward_ns"]["percentiles"]["p50"]),
                                 ("jitter_seconds", d["delay_variation"]["ipdv_rtt_ns"]["jitter_rfc3550"])):
                    if src is not None:
                        fams[key].add_metric(lv, src / 1e9)
        yield from fams.values()
