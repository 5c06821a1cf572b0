"""Targets from an HTTP service discovery endpoint, as Prometheus's http_sd_configs read it: a
GET every refresh interval answered 200 with a JSON list of file_sd groups
(``[{"targets": [...], "labels": {...}}]``).  Asked on a thread (monitor/polled.py)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

from ..config import MAX_SETTINGS_FILE, ConfigError
from .file_sd import group_targets

TIMEOUT_S = 10.0


# No proxy from the environment (as Prometheus's http_sd_configs, unless told): an endpoint is
# usually inside the network it describes.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, refresh_s: float, timeout_s: float = TIMEOUT_S) -> tuple[list[Any], float]:
    """The groups the endpoint gives now, checked (group_targets), and when to ask again (its
    refresh interval); ConfigError saying why not."""
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
    except http.client.HTTPException as exc:  # not HTTP at all (another service on that port)
        raise ConfigError(f"{where}: not an HTTP answer ({type(exc).__name__})") from None
    if len(body) > MAX_SETTINGS_FILE:
        raise ConfigError(f"{where}: an answer over {MAX_SETTINGS_FILE:,} octets")
    try:
        groups = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than Python's stack
        raise ConfigError(f"{where}: not JSON: {exc}") from None
    for _ in group_targets(groups, where):  # checked whole now: a bad answer is refused, not half taken
        pass
    return groups, refresh_s
