"""Where a monitor's targets come from, and when to read them again: the targets file (watched
with --watch), its file_sd files (watched always, as Prometheus watches them), its http_sd
endpoint (asked every refresh interval) and its dns_sd names (looked up again at their TTL).
The monitor polls it and reloads when it says so."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable

from . import dns_sd, file_sd, http_sd
from .config import MonitorConfig, load_config
from .metrics import POLLED
from .polled import Polled

WATCH_S = 2.0  # how often the files are looked at (a ConfigMap takes a minute or so to change)

Signature = tuple[int, int, int, int] | None


class Discovery:
    def __init__(self, path: str, watch: bool, log: Callable[[str], None]) -> None:
        self.path, self.watch, self.log = path, watch, log
        self.polled: dict[str, tuple[tuple, Polled]] = {}  # name -> (how it is asked, its source)
        self._config: MonitorConfig | None = None
        self._seen: dict[str, Signature] = {}
        self._files_due = 0.0
        self._failures: Counter[str] = Counter()  # of sources no longer asked, by kind

    def load(self, first: bool = False) -> MonitorConfig:
        """The targets file read now, with the targets of the last good answers of its http_sd
        and dns_sd sources.  A source that is new is asked now; the ``first`` load waits a
        while for its answer (its targets then start with the others), a reload does not (the
        loop sends meanwhile; the answer reloads when it comes).  Raises ConfigError."""
        config = load_config(self.path, self._answers())
        wanted = {name: _how(config, name) for name in config.polled()}
        new = []
        for name, how in wanted.items():
            old = self.polled.get(name)
            if old is not None and old[0] == how:
                continue
            source = Polled(name, *_asker(how))
            if old is not None:  # asked another way: its targets stay until it answers
                source.carry(old[1])
                self._failures[name.split()[0]] += old[1].failures  # a counter never falls
            self.polled[name] = (how, source)
            new.append(source)
        for name in [n for n in self.polled if n not in wanted]:
            self._failures[name.split()[0]] += self.polled.pop(name)[1].failures
        for source in new:
            if not first:
                source.ask()
            elif said := source.ask_first():
                self.log(said)
        return load_config(self.path, self._answers()) if new and first else config

    def _answers(self) -> dict[str, list]:
        return {name: source.groups for name, (_, source) in self.polled.items()}

    def settle(self, config: MonitorConfig) -> None:
        """``config`` runs now: the files it names, as they are now, are the ones to watch."""
        self._config = config
        self._seen = self._signatures()

    def poll(self) -> bool:
        """True when the targets should be read again: a watched file changed, or the endpoint
        gave other targets (each said in the log)."""
        now = time.monotonic()
        reload = False
        for name, (_, source) in self.polled.items():
            if now >= source.due:
                source.ask()
            changed, said = source.take()
            if said:
                self.log(said)
            if changed:
                self.log(f"{name} gives other targets: reloading")
                reload = True
        if now >= self._files_due:
            self._files_due = now + WATCH_S
            seen, before = self._signatures(), self._seen
            if seen != before and (not self.watch or seen[self.path] is not None):  # a file swapped in: later
                self._seen = seen
                changed = sorted(path for path in seen.keys() | before.keys() if seen.get(path) != before.get(path))
                self.log(f"{', '.join(changed)} changed: reloading")
                reload = True
        return reload

    def _signatures(self) -> dict[str, Signature]:
        """The watched files' (identity, times, size)."""
        config = self._config
        files = [self.path] if self.watch else []
        if config is not None:
            files += file_sd.paths(config.file_sd, config.folder)
        return {path: _signature(path) for path in files}

    def failures(self) -> tuple[int, ...]:
        """Answers that failed or were refused since the start, of each kind of POLLED."""
        found = self._failures.copy()
        for name, (_, source) in self.polled.items():
            found[name.split()[0]] += source.failures
        return tuple(found[kind] for kind in POLLED)


def _signature(path: str) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def _how(config: MonitorConfig, name: str) -> tuple:
    """How the source ``name`` is asked: a change of it is another source."""
    kind, _, what = name.partition(" ")
    return (kind, what, config.http_sd_refresh_s) if kind == "http_sd" else (kind, what, config.dns_sd_server)


def _asker(how: tuple) -> tuple[Callable[[], tuple[list, float]], float]:
    """The question a source asks, and how soon it asks again after a failed answer."""
    kind, what, setting = how
    if kind == "http_sd":
        return (lambda: http_sd.fetch(what, setting)), setting
    r = dns_sd.resolver(setting)
    return (lambda: dns_sd.lookup(what, r)), dns_sd.RETRY_S
