"""Where a monitor's targets come from, and when to read them again: the targets file (watched
with --watch), its file_sd files (watched always, as Prometheus watches them) and its http_sd
endpoint (asked every refresh interval).  The monitor polls it and reloads when it says so."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from . import file_sd
from .config import MonitorConfig, load_config
from .http_sd import HttpSd

WATCH_S = 2.0  # how often the files are looked at (a ConfigMap takes a minute or so to change)

Signature = tuple[int, int, int, int] | None


class Discovery:
    def __init__(self, path: str, watch: bool, log: Callable[[str], None]) -> None:
        self.path, self.watch, self.log = path, watch, log
        self.http_sd: HttpSd | None = None
        self._http_due = 0.0
        self._config: MonitorConfig | None = None
        self._seen: dict[str, Signature] = {}
        self._files_due = 0.0
        self._failures = 0  # of endpoints no longer asked

    def load(self) -> MonitorConfig:
        """The targets file read now, with the targets of its http_sd endpoint's last good
        answer (asked now, and waited for, when the endpoint is new: its targets start with the
        others).  Raises ConfigError."""
        config = load_config(self.path, self.http_sd.groups if self.http_sd else None)
        endpoint = (config.http_sd, config.http_sd_refresh_s)
        if self.http_sd is not None and endpoint != (self.http_sd.url, self.http_sd.refresh_s):
            self._failures += self.http_sd.failures  # a counter never falls
            self.http_sd.close()
            self.http_sd = None
        if config.http_sd and self.http_sd is None:
            self.http_sd = HttpSd(*endpoint)
            said = self.http_sd.fetch_now()
            if said:
                self.log(said)
            self._http_due = time.monotonic() + config.http_sd_refresh_s
            config = load_config(self.path, self.http_sd.groups)
        return config

    def settle(self, config: MonitorConfig) -> None:
        """``config`` runs now: the files it names, as they are now, are the ones to watch."""
        self._config = config
        self._seen = self._signatures()

    def poll(self) -> bool:
        """True when the targets should be read again: a watched file changed, or the endpoint
        gave other targets (each said in the log)."""
        now = time.monotonic()
        reload = False
        if self.http_sd is not None:
            if now >= self._http_due:
                self._http_due = now + self.http_sd.refresh_s
                self.http_sd.refresh()
            changed, said = self.http_sd.take()
            if said:
                self.log(said)
            if changed:
                self.log(f"http_sd {self.http_sd.url} gives other targets: reloading")
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

    def failures(self) -> int:
        """Answers of http_sd endpoints that failed or were refused, since the start."""
        return self._failures + (self.http_sd.failures if self.http_sd is not None else 0)

    def close(self) -> None:
        if self.http_sd is not None:
            self.http_sd.close()


def _signature(path: str) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size
