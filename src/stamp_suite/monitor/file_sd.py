"""Targets from Prometheus file_sd files: a JSON or YAML list of ``{"targets": ["host:port",
...], "labels": {...}}`` groups, the format Prometheus's own file_sd_configs read, so that the
inventory that feeds Prometheus feeds the monitor as it is.

Each target string is a target's name and its reflector's address (port 862 when it has none);
a group's labels are the targets' own labels, on top of [defaults]' (names beginning ``__``,
Prometheus's meta labels, are left out, as relabelling leaves them).  The files are looked at
as the targets file is, and a change is a reload: a file with an error refuses the reload as a
whole, and the running targets go on (what Prometheus does with a broken file_sd file).
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator
from typing import Any

import yaml

from ..config import MAX_SETTINGS_FILE, ConfigError
from ..files import FileRefused, read_regular_file
from ..net.resolve import ResolveError, split_host_port
from .series import check_label

STAMP_PORT = 862


def paths(patterns: tuple[str, ...], base: str) -> list[str]:
    """The files ``patterns`` name now (globs, relative to the targets file's folder), sorted."""
    found: set[str] = set()
    for pattern in patterns:
        found.update(glob.glob(os.path.join(base, os.path.expanduser(pattern))))
    return sorted(found)


def targets(patterns: tuple[str, ...], base: str) -> Iterator[tuple[str, str, int, dict[str, str]]]:
    """(name, host, port, labels) of every target of the files ``patterns`` name now."""
    for path in paths(patterns, base):
        where = f"file_sd {path}"
        for i, group in enumerate(_groups(path, where)):
            here = f"{where}: group {i + 1}"
            if not isinstance(group, dict) or not isinstance(group.get("targets"), list):
                raise ConfigError(f'{here}: expected {{"targets": ["host:port", ...], "labels": {{...}}}}')
            labels = group.get("labels") or {}
            if not isinstance(labels, dict):
                raise ConfigError(f"{here}: labels: expected a table of names and strings")
            mine = dict(check_label(n, v, here) for n, v in labels.items() if not str(n).startswith("__"))
            for text in group["targets"]:
                if not isinstance(text, str) or not text:
                    raise ConfigError(f"{here}: {text!r} is not host:port")
                try:
                    host, port = split_host_port(text)
                except ResolveError as exc:
                    raise ConfigError(f"{here}: {exc}") from None
                yield text, host, port or STAMP_PORT, mine


def _groups(path: str, where: str) -> list[Any]:
    try:
        text = read_regular_file(path, MAX_SETTINGS_FILE)[0].decode("utf-8")
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except FileRefused as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror}") from None
    except (ValueError, yaml.YAMLError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ConfigError(f"{where}: {' '.join(str(exc).split())}") from None
    if data is None:  # an empty YAML file: no targets (as Prometheus takes it)
        return []
    if not isinstance(data, list):
        raise ConfigError(f'{where}: expected a list of groups such as [{{"targets": ["host:port"]}}]')
    return data
