"""Continuous monitoring: one Session-Sender per target, all on one driver, into Prometheus,
JSON lines and SNMP.

Per target: cumulative statistics (Prometheus counters and histograms, the same as a single
sender's), and tumbling windows of each configured length (:mod:`.windows`), published as
gauges and as one JSON line per target and window.  SIGHUP re-reads the file as one
transaction: it is checked whole, new and changed targets start before removed ones stop,
and changes of windows, jsonl and metrics_addr are applied; a file with an error changes
nothing.  A target whose name has no address (at the start or a reload) is down and looked
up again until it has one (:mod:`.unresolved`): what the DNS says never stops the monitor.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from ..config import ConfigError, Settings
from ..net.capabilities import detect_capabilities
from ..net.clock import ClockWatcher, read_clock_state
from ..net.resolve import NameNotResolved, format_address
from ..net.signals import StopRequest
from ..net.udp import SocketSetupError
from ..observability.metrics import DELAY_BUCKETS_S, WINDOWS, BucketHistogram, SenderMetrics
from ..say import count, say
from ..sender.availability import availability_of
from ..sender.driver import SenderDriver
from ..sender.report import rfc3339
from ..sender.stats import SessionStats
from .config import MonitorConfig
from .discovery import Discovery
from .exposition import MonitorExposition
from .gc_policy import FREEZE_NS, SWEEP_NS, freeze_survivors, sweep
from .metrics import SOURCES, SUMMARIES_PER_SLICE, window_row
from .state_lines import StateLines
from .targets import Sessions, Target, shard
from .unresolved import LOOKUP_THREADS, RetrySchedule, Unresolved
from .windows import ClosedWindow, WindowedStats

NS = 1_000_000_000
RELOAD_CHECK_NS = NS // 20
RETRY_CHECK_NS = NS // 10  # lookups of unresolved names handed out, and their answers taken
OVERLOAD_CHECK_NS = 60 * NS
OVERLOAD_SHARE = 0.01  # of the scheduled sends skipped in a check's minute: said in the log


def _open_jsonl(path: str) -> TextIO:
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"jsonl {path}: {exc.strerror or exc}") from None


def _shown(value: Any) -> str:
    """A monitor setting in the reload line: windows as 10s/60s; an unset output as off."""
    if isinstance(value, tuple):
        return "/".join(f"{w}s" for w in value)
    return str(value) if value else "off"



def answered(stats: SessionStats) -> bool:
    """A target is up in a window with a reply in it, even one whose timestamps cannot be."""
    return stats.received + stats.invalid > 0

class Monitor:
    def __init__(self, config_path: str, stop: StopRequest, sessions: Sessions, log: TextIO | None = None,
                 metrics_addr: str | None = None, shard: tuple[int, int] = (1, 1), name: str | None = None,
                 jsonl: str | None = None, retry: RetrySchedule = RetrySchedule(), watch: bool = False) -> None:
        """``watch``: reload when the file changes, as on SIGHUP (a Kubernetes ConfigMap is
        updated in place, and nothing there sends a signal)."""
        self.config_path = config_path
        self.sessions = sessions
        # --metrics-addr and --jsonl win over the file's, on every reload too (one file, N shards)
        self.overrides = {k: v for k, v in (("metrics_addr", metrics_addr), ("jsonl", jsonl)) if v}
        self.shard = shard  # (K, N): this monitor runs the targets of shard K of N
        # The vantage point, a label on every metric and a field of every window line.
        self.name = name or (socket.gethostname() + (f"-{shard[0]}" if shard[1] > 1 else ""))
        self.log_to = log or sys.stderr
        self.discovery = Discovery(config_path, watch, self.log)
        self.config = self._load(first=True)
        self.discovery.settle(self.config)
        self.clock = read_clock_state()
        # Targets at a packet a second need millisecond, not microsecond, timing.
        self.driver = SenderDriver(stop, ClockWatcher(self.clock, log=self.log), record_schedule=True, precise=False)
        self.metrics = SenderMetrics(("monitor", "target"))
        # How late the sends leave: the monitor's own health (a core too small for its targets)
        self.schedule_error = BucketHistogram(DELAY_BUCKETS_S)
        self.driver.on_schedule_error = self.schedule_error.observe
        self.metrics_server = None
        self._unsummarised: deque[tuple[str, ClosedWindow]] = deque()  # closed, for _summarise
        self.agent = None
        self.jsonl: TextIO | None = None
        self._jsonl_failed = False
        self.targets: dict[str, Target] = {}
        self._rows: dict[str, int] = {}  # target name -> SNMP row index
        # Targets whose name has no address yet, when each is looked up again, and the lookups
        # that have ended (appended by the lookup threads, taken by the loop).
        self.unresolved: dict[str, Unresolved] = {}
        self.retry = retry
        self._retry_due: list[tuple[int, str]] = []  # a heap of (due, name); stale entries skipped
        self._looked_up: deque[Unresolved] = deque()
        self._lookups: ThreadPoolExecutor | None = None
        self._reload = False
        self.reloads = (0, 0)  # (applied, failed), for stamp_monitor_reloads_total
        self.driver.every(RELOAD_CHECK_NS, self._check_reload)
        self.driver.every(RETRY_CHECK_NS, self._retry_unresolved)
        self.driver.every(RETRY_CHECK_NS, lambda: self.discovery.poll() and self.request_reload())
        self.driver.every(FREEZE_NS, freeze_survivors)
        self.driver.every(SWEEP_NS, sweep)
        self.driver.every(OVERLOAD_CHECK_NS, self._check_overload)
        self.state_lines = StateLines(self.log)
        self.driver.every(60 * NS, self.state_lines.minute)
        self._skipped_by_removed = 0  # sends skipped by targets no longer running (a counter never falls)
        self._skipped_said = self._sent_said = 0
        self._dropped_unread_by_removed = 0  # likewise, replies dropped unread
        self._counts_dropped_unread = detect_capabilities().dropped_unread
        self._dropped_unread_by_target: dict[str, int] = {}  # what _say_dropped_unread has said of each

    def _load(self, first: bool = False) -> MonitorConfig:
        return dataclasses.replace(shard(self.discovery.load(first), *self.shard), **self.overrides)

    def log(self, line: str) -> None:
        say(f"stamp-suite monitor: {line}", self.log_to)

    # -- targets ------------------------------------------------------------------------------
    def _open(self, name: str, s: Settings, windows: tuple[int, ...],
              destination: tuple[str, int] | None = None) -> Target:
        """A target's session, to ``destination`` or its name resolved now.  Raises
        NameNotResolved (down: looked up again), ConfigError or SocketSetupError."""
        windows_ns = tuple(w * NS for w in windows)
        # Lifetime statistics feed counters, means and jitter; percentiles, IPDV, one-way
        # delays and path facts are the windows' (and the histograms').
        stats = SessionStats.lifetime_counters(s.sender.dscp, s.sender.ecn)
        # a fixed local port may still be held by the session this one replaces: shared (reuseport)
        local = (s.common.local_addr, s.common.local_port)
        replacing = bool(local[1]) and any((t.settings.common.local_addr, t.settings.common.local_port) == local
                                           for t in list(self.targets.values()))
        session = self.sessions.open(s, self.clock, name, windows_ns, stats,
                                     destination or self.sessions.destination(s), replacing=replacing)
        win = WindowedStats(windows_ns, s.sender.dscp, s.sender.ecn,
                            on_close=lambda rec: self._window_closed(name, rec))
        session.consumers.append(win)
        return Target(name, s, session, stats, win, self._rows.setdefault(name, len(self._rows) + 1))

    def _run(self, target: Target) -> None:
        """Measure ``target`` from now on (its metrics, its schedule on the driver)."""
        target.session.consumers.append(self.metrics.add_session(
            (self.name, target.name), target.stats, availability_of(target.settings),
            self.config.exposure[target.name], labelled=(self.name, self.config.labelled(target.name))))
        target.windows.full = self.jsonl is not None  # a window's statistics in full only for JSON lines
        self.targets[target.name] = target
        self.driver.add(target.session, target.phase_ns())

    def _stop(self, target: Target) -> None:
        self.driver.remove(target.session)
        self._skipped_by_removed += target.session.engine.skipped
        self._dropped_unread_by_removed += target.stats.dropped_unread or 0
        target.close()

    def apply(self, config: MonitorConfig) -> tuple[list[str], list[str], list[str]]:
        """Make ``config`` the running one, or change nothing and raise (ConfigError,
        SocketSetupError, OSError).  New and changed targets start before removed ones stop;
        a target whose name has no address is down and waits for one (not an error), and one
        waiting already is looked up again now.  Returns the names added, removed and changed."""
        windows_changed = config.windows != self.config.windows
        known = self.targets.keys() | self.unresolved.keys()
        added = [n for n in config.targets if n not in known]
        removed = [n for n in known if n not in config.targets]
        unresolvable: list[tuple[Target, str]] = []  # running, name without an address now: kept
        changed = [n for n in config.targets if n in self.targets
                   and self._changed(self.targets[n], config.targets[n], windows_changed, unresolvable)]
        # only what its series show changed (labels, sets, buckets): the session goes on, counted
        relabelled = [n for n in config.targets if n in self.targets and n not in changed
                      and config.exposure[n] != self.config.exposure[n]]
        waiting_before = [n for n in config.targets if n in self.unresolved]
        changed += [n for n in waiting_before if self.unresolved[n].settings != config.targets[n]]
        waited = [n for n in waiting_before if n not in changed]  # looked up again now, as at a start
        opened: dict[str, Target] = {}
        waiting: dict[str, str] = {}  # name -> why it has no address
        outputs = None
        try:
            for name in added + changed + waited:
                try:
                    opened[name] = self._open(name, config.targets[name], config.windows)
                except NameNotResolved as exc:
                    waiting[name] = str(exc)
                except (ConfigError, SocketSetupError) as exc:
                    raise ConfigError(f"target {name!r}: {exc}") from None
            outputs = self._prepare_outputs(config)
        except BaseException:
            for t in opened.values():
                t.close()
            raise
        # from here on nothing can fail
        self._switch_outputs(config, outputs)
        self.config = config
        for name in relabelled:
            self.metrics.expose((self.name, name), config.exposure[name], (self.name, config.labelled(name)))
            for window in self.targets[name].windows.last.values():
                window.exposed = None  # its series are made again, with the new labels
        for name, target in opened.items():
            old = self.targets.get(name)
            if self.unresolved.pop(name, None) is not None:
                self._resolved(target)
            self._run(target)
            if old is not None:
                self._stop(old)
        for name, reason in waiting.items():
            old = self.targets.pop(name, None)
            if old is not None:  # changed, to a name without an address: down until it has one
                self._stop(old)
                self.metrics.remove_session((self.name, name))
            self._wait(name, config.targets[name], reason)
        for name in removed:
            self.unresolved.pop(name, None)
            if name in self.targets:
                self._stop(self.targets.pop(name))
                self.metrics.remove_session((self.name, name))
        for target in self.targets.values():  # a window's statistics in full only for JSON lines
            target.windows.full = self.jsonl is not None
        if unresolvable:
            target, why = unresolvable[0]
            more = len(unresolvable) - 1
            self.log(f"target {target.name!r} goes on at {format_address(target.destination)}: {why}"
                     + (f"; so {'does' if more == 1 else 'do'} {count(more, 'more target')} whose name has no "
                        "address now" if more else ""))
        for pattern in config.unmatched:
            self.log(f"file_sd {pattern!r} names no file now (in {config.folder})")
        for line in config.skipped:
            self.log(line)
        return added, removed, changed + relabelled

    def _changed(self, target: Target, s: Settings, windows_changed: bool,
                 unresolvable: list[tuple[Target, str]]) -> bool:
        """Restart a target when its settings changed, its key file now holds another key
        (a rotation needs only a reload), or its name resolves elsewhere now.  A name without
        an address now is not a change: the target goes on at the address it has (noted in
        ``unresolvable``), rather than stop because the DNS fails for a moment."""
        if windows_changed or target.settings != s:
            return True
        try:
            if self.sessions.key(s) != target.session.engine.config.key:
                return True
            return not self.sessions.still_at(s, target.destination)
        except NameNotResolved as exc:
            unresolvable.append((target, str(exc)))
            return False
        except ConfigError as exc:
            raise ConfigError(f"target {target.name!r}: {exc}") from None

    # -- targets whose name has no address yet ----------------------------------------------------
    def _wait(self, name: str, s: Settings, reason: str) -> None:
        """``name`` has no address now: down, looked up again later.  One waiting already with
        these settings goes on from where it was (its count of failures, what was said)."""
        entry = self.unresolved.get(name)
        if entry is None or entry.settings != s:
            entry = self.unresolved[name] = Unresolved(name, s)
        self._failed(entry, reason)

    def _failed(self, entry: Unresolved, reason: str) -> None:
        """Another lookup (or start) failed: the next one later still; the reason said once."""
        entry.failures += 1
        delay = self.retry.delay_ns(entry.failures)
        entry.due_ns = time.monotonic_ns() + delay
        heapq.heappush(self._retry_due, (entry.due_ns, entry.name))
        if reason != entry.said:  # said when it is new, never again at every retry
            entry.said = reason
            self.state_lines.say(f"target {entry.name!r} is down: {reason}; trying again in {delay / NS:g} s, "
                                 f"then less and less often (every {self.retry.most_s:g} s at most)", "down")

    def _resolved(self, target: Target) -> None:
        """A target that waited for its name starts: down until a window says it answers."""
        target.up = False
        self.state_lines.say(f"target {target.name!r} resolves now, to {format_address(target.destination)}: "
                             "measuring it", "resolved")

    def _retry_unresolved(self) -> None:
        """Hand out the lookups that are due (to threads: a lookup can take seconds), and start
        the targets whose name now has an address."""
        due = self._retry_due
        now = time.monotonic_ns()
        while due and due[0][0] <= now:
            at, name = heapq.heappop(due)
            entry = self.unresolved.get(name)
            if entry is None or entry.due_ns != at or entry.lookup is not None:
                continue  # started, removed or rescheduled since, or a lookup under way
            if self._lookups is None:
                self._lookups = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="stamp-lookup")
            entry.lookup = self._lookups.submit(self.sessions.destination, entry.settings)
            entry.lookup.add_done_callback(lambda _, e=entry: self._looked_up.append(e))
        while self._looked_up:
            entry = self._looked_up.popleft()
            if self.unresolved.get(entry.name) is entry:  # not started, removed or changed by a reload since
                self._lookup_ended(entry)

    def _lookup_ended(self, entry: Unresolved) -> None:
        lookup, entry.lookup = entry.lookup, None
        try:
            target = self._open(entry.name, entry.settings, self.config.windows, lookup.result())
        except (NameNotResolved, ConfigError, SocketSetupError) as exc:  # down still, for this reason
            self._failed(entry, str(exc))
            return
        del self.unresolved[entry.name]
        self._resolved(target)
        self._run(target)

    def _prepare_outputs(self, config: MonitorConfig) -> dict[str, Any]:
        """The metrics server and JSON-lines file a new file asks for, opened before anything
        changes (a port in use or an unwritable file refuses the reload)."""
        old, new = self.config, {}
        fresh = self.metrics_server is None and self.jsonl is None and not self.targets
        try:
            if (fresh or config.metrics_addr != old.metrics_addr) and config.metrics_addr:
                from ..observability.http import serve
                new["metrics_server"] = serve(MonitorExposition(self), config.metrics_addr)
            if config.jsonl and (fresh or config.jsonl != old.jsonl or config.jsonl != "-"):
                # reopened on every reload: after logrotate moved it, lines go to the new file
                new["jsonl"] = sys.stdout if config.jsonl == "-" else _open_jsonl(config.jsonl)
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
            self._close_jsonl()
            self.jsonl = new.get("jsonl")
            self._jsonl_failed = False
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

    def _close_jsonl(self) -> None:
        if self.jsonl in (None, sys.stdout):
            return
        try:
            self.jsonl.close()
        except OSError:  # lines it could not write: said when they failed (_write_window)
            pass

    def _window_closed(self, name: str, window: ClosedWindow) -> None:
        target = self.targets.get(name)
        st = window.stats
        if target is not None and window.length_ns == min(target.windows.lengths_ns) and st.sent:
            up = answered(st)
            if up != target.up and (target.up is not None or not up):  # said when it changes (and a dead start)
                state = "up again" if up else "down"
                self.state_lines.say(f"target {name!r} is {state}: {st.received} of {st.sent} answered in the "
                                     f"{window.length_s} s window to {rfc3339((window.index + 1) * window.length_ns)}",
                                     state)
            target.up = up
        if self.metrics_server is not None and self._shows_windows(name):  # summarised in the loop's idle time
            self._unsummarised.append((name, window))
            if len(self._unsummarised) == 1:
                self.driver.work.background(self._summarise())
        if self.jsonl is not None and window.full:  # not a window opened before jsonl was on
            self._write_window(name, window.record())

    def _summarise(self) -> Iterator[None]:
        """Closed windows' series (window_row), made SUMMARIES_PER_SLICE at a time in the time the
        loop would sleep: made as each window closed, they made a busy loop's sends later."""
        while self._unsummarised:
            for _ in range(min(SUMMARIES_PER_SLICE, len(self._unsummarised))):
                name, window = self._unsummarised.popleft()
                window_row(window, self.metrics.labels((self.name, name)))
            yield

    def _write_window(self, name: str, record: dict[str, Any]) -> None:
        try:
            target, *flow = self.config.flow_of.get(name, (name,))
            print(json.dumps({"type": "window", "monitor": self.name, "target": target,
                              **({"flow": flow[0]} if flow else {}), **record}), file=self.jsonl, flush=True)
        except OSError as exc:  # a full disk must not stop the measurements: said once, lines dropped
            if not self._jsonl_failed:
                self._jsonl_failed = True
                self.log(f"jsonl {self.config.jsonl}: {exc.strerror or exc}; window lines are dropped until "
                         "a reload reopens it")
        else:
            self._jsonl_failed = False

    def target_sources(self) -> tuple[int, ...]:
        """This monitor's targets (running or waiting for an address; each flow one), by where
        they come from: SOURCES."""
        config = self.config
        found = Counter(config.discovered.get(t, "file") for t in config.targets)
        return tuple(found[source] for source in SOURCES)

    def timestamping(self) -> tuple[int, int]:
        """Running targets with kernel receive timestamps, and with user-space ones."""
        kernel = sum(t.session.endpoint.caps.kernel_rx_timestamp for t in list(self.targets.values()))
        return kernel, len(self.targets) - kernel

    def skipped_sends(self) -> int:
        """Scheduled sends skipped for being over an interval late, by all targets ever run."""
        return self._skipped_by_removed + sum(t.session.engine.skipped for t in list(self.targets.values()))

    def dropped_unread(self) -> int | None:
        """Replies the kernel dropped at the targets' sockets before this process read them (full
        receive buffers: it fell behind), by all targets ever run, as last read (the driver reads
        each socket's count every ten seconds at most: DroppedUnread); None where the platform
        does not count them."""
        if not self._counts_dropped_unread:
            return None
        running = sum(t.stats.dropped_unread or 0 for t in list(self.targets.values()))
        return self._dropped_unread_by_removed + running

    def _check_overload(self) -> None:
        skipped = self.skipped_sends()
        sent = sum(t.stats.sent for t in list(self.targets.values()))
        new_skipped, new_sent = skipped - self._skipped_said, max(0, sent - self._sent_said)  # reloads remove
        if new_skipped > OVERLOAD_SHARE * (new_skipped + new_sent):
            self.log(f"overloaded: {new_skipped:,} of {new_skipped + new_sent:,} scheduled sends "
                     f"({new_skipped / (new_skipped + new_sent):.0%}) skipped in the last {OVERLOAD_CHECK_NS // NS} s "
                     f"for being late: more targets than this process measures at their rate (split them over "
                     f"processes with --shard K/N)")
        self._skipped_said, self._sent_said = skipped, sent
        self._say_dropped_unread()

    def _say_dropped_unread(self) -> None:
        """The replies dropped unread since the last check, and the targets that lost most."""
        said, counts = self._dropped_unread_by_target, {}
        for name, t in list(self.targets.items()):
            n = (t.stats.dropped_unread or 0) - said.get(name, 0)
            if n > 0:
                counts[name] = n
            said[name] = t.stats.dropped_unread or 0
        for name in [name for name in said if name not in self.targets]:
            del said[name]
        if counts:
            worst = ", ".join(f"{name} {n:,}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1])[:3])
            self.log(f"overloaded: {sum(counts.values()):,} replies dropped by this host before it read them in the "
                     f"last {OVERLOAD_CHECK_NS // NS} s (full socket receive buffers; most for {worst}): counted "
                     f"lost for their targets, though the paths did not lose them")

    # -- running -------------------------------------------------------------------------------
    def start(self) -> None:
        current, self.config = self.config, MonitorConfig((), None, None, None, {}, folder=self.config.folder)
        self.apply(current)
        sweep()

    def run(self) -> None:
        self.driver.run(until_finished=False)

    def request_reload(self) -> None:
        self._reload = True

    def _check_reload(self) -> None:
        if not self._reload:
            return
        self._reload = False
        before = self.config
        try:
            added, removed, changed = self.apply(self._load())
        except (ConfigError, SocketSetupError, OSError) as exc:
            self.reloads = (self.reloads[0], self.reloads[1] + 1)
            self.log(f"reload failed, keeping the running targets: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a reload never stops the monitor; said, with its type
            self.reloads = (self.reloads[0], self.reloads[1] + 1)
            self.log(f"reload failed, keeping the running targets: {type(exc).__name__}: {exc}")
            return
        self.reloads = (self.reloads[0] + 1, self.reloads[1])
        self.discovery.settle(self.config)  # a SIGHUP may have named other file_sd files
        now = self.config
        outputs = [f"{key.split('_')[0]} {_shown(getattr(now, key))}" for key in ("windows", "jsonl", "metrics_addr",
                                                                                  "snmp_socket")
                   if getattr(now, key) != getattr(before, key)]
        waiting = f", {len(self.unresolved):,} not resolved yet" if self.unresolved else ""
        self.log(f"reloaded: {len(added):,} added, {len(removed):,} removed, {len(changed):,} changed, "
                 f"{len(self.targets):,} running{waiting}" + "".join(f"; {o}" for o in outputs))

    def close(self) -> None:
        for part in (self.agent, self.metrics_server):  # first: no scrape waits on a loop that is gone
            if part is not None:
                part.stop()
        for target in list(self.targets.values()):
            self._stop(target)
        if self._lookups is not None:  # lookups not begun are dropped; one under way ends by itself
            self._lookups.shutdown(wait=False, cancel_futures=True)
        self.state_lines.minute()  # what was held back is said before the end
        self._close_jsonl()
        self.driver.close()

    def _shows_windows(self, name: str) -> bool:
        exposure = self.config.exposure.get(name)
        return exposure is not None and bool(exposure.sets & WINDOWS)

    def windows(self) -> Iterator[tuple[str, ClosedWindow]]:
        """(target, its latest closed window) for every window length of every target whose
        series show its windows (the "windows" set)."""
        for t in list(self.targets.values()):
            if self._shows_windows(t.name):
                for window in list(t.windows.last.values()):
                    yield t.name, window

    def targets_up(self) -> Iterator[tuple[str, bool]]:
        """(target, up): up when its latest closed shortest window had a reply; a target with
        no closed window yet, or none it sent in, is not listed (unknown, not down), unless it
        was down before it started: its name had no address (as one that still has none)."""
        for t in list(self.targets.values()):
            window = t.windows.last.get(min(t.windows.lengths_ns))
            if window is not None and window.stats.sent:
                yield t.name, answered(window.stats)
            elif t.up is False:
                yield t.name, False
        for name in list(self.unresolved):
            yield name, False
