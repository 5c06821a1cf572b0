"""Targets from an HTTP service discovery endpoint, as Prometheus's http_sd_configs read it: a
GET every refresh interval answered 200 with a JSON list of file_sd groups
(``[{"targets": [...], "labels": {...}}]``).  An answer that fails (no connection, another
status, not such a list) changes nothing: the targets of the last good answer go on, and the
failure is said once until an answer is good again (what Prometheus does).

The GET runs on a thread of its own (a slow endpoint must not hold the sending loop); the loop
takes its answer with ``take()`` and reloads when it differs from the last.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from ..config import MAX_SETTINGS_FILE, ConfigError
from .file_sd import group_targets

TIMEOUT_S = 10.0


# No proxy from the environment (as Prometheus's http_sd_configs, unless told): an endpoint is
# usually inside the network it describes.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, refresh_s: float, timeout_s: float = TIMEOUT_S) -> list[Any]:
    """The groups the endpoint gives now, checked (group_targets); ConfigError saying why not."""
    where = f"http_sd {url}"
    try:
        request = urllib.request.Request(url, headers={"Accept": "application/json",
                                                       "X-Prometheus-Refresh-Interval-Seconds": f"{refresh_s:g}"})
        with _OPENER.open(request, timeout=timeout_s) as answer:
            body = answer.read(MAX_SETTINGS_FILE + 1)
    except urllib.error.HTTPError as exc:
        raise ConfigError(f"{where}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:  # ValueError: a URL urllib cannot use
        raise ConfigError(f"{where}: {getattr(exc, 'reason', None) or exc}") from None
    if len(body) > MAX_SETTINGS_FILE:
        raise ConfigError(f"{where}: an answer over {MAX_SETTINGS_FILE:,} octets")
    try:
        groups = json.loads(body)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for _ in group_targets(groups, where):  # checked whole now: a bad answer is refused, not half taken
        pass
    return groups


class HttpSd:
    """One endpoint's latest good answer, fetched again on a thread when asked."""

    def __init__(self, url: str, refresh_s: float) -> None:
        self.url, self.refresh_s = url, refresh_s
        self.groups: list[Any] = []
        self.error: str | None = None  # why the latest fetch failed; None after a good one
        self.failures = 0  # fetches that failed or were refused
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="stamp-http-sd")
        self._fetching: Future | None = None

    def fetch_now(self) -> str | None:
        """Fetch and wait (at the start, so that the first targets include these); returns
        what to say."""
        self.refresh()
        wait([self._fetching])
        return self.take()[1]

    def refresh(self) -> None:
        """Fetch again on the thread, unless a fetch is under way."""
        if self._fetching is None:
            self._fetching = self._pool.submit(fetch, self.url, self.refresh_s)

    def take(self) -> tuple[bool, str | None]:
        """The fetch that ended, if one did: (its groups differ from the last good ones, what
        to say: a new failure, or an answer good again)."""
        fetching = self._fetching
        if fetching is None or not fetching.done():
            return False, None
        self._fetching = None
        try:
            groups = fetching.result()
        except ConfigError as exc:
            self.failures += 1
            said = None if str(exc) == self.error else f"{exc}; keeping the targets of its last good answer"
            self.error = str(exc)
            return False, said
        recovered, self.error = self.error is not None, None
        changed, self.groups = groups != self.groups, groups
        return changed, f"http_sd {self.url} answers again" if recovered else None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
