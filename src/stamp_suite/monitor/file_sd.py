"""Targets from Prometheus file_sd files: a JSON or YAML list of ``{"targets": ["host:port",
...], "labels": {...}}`` groups, the format Prometheus's own file_sd_configs read, so that the
inventory that feeds Prometheus feeds the monitor as it is.

Each target string is a target's name and its reflector's address (the [defaults]' port, or
862, when it has none); a group's labels are the targets' own labels, on top of [defaults]'.
Names beginning ``__`` (Prometheus's meta labels) are left out, as relabelling leaves them, and
names of the monitor's own (``job``, ``instance``, ...) become ``exported_NAME``, as a scrape
renames a clash.  Files end .json, .yml or .yaml, as Prometheus wants; YAML is read with every
value a string (``rack: 012`` is "012", as Prometheus has it).  A change of a file is a reload:
a file with an error refuses the reload as a whole, and the running targets go on (what
Prometheus does with a broken file_sd file).
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import yaml

from ..config import MAX_SETTINGS_FILE, ConfigError
from ..files import FileRefused, read_regular_file
from ..net.resolve import ResolveError, split_host_port
from .series import RESERVED_LABELS, check_label

EXTENSIONS = (".json", ".yml", ".yaml")
_HOST = re.compile(r"[A-Za-z0-9._:%-]+\Z")  # a name, or an IPv4 or IPv6 address (with a zone)


def paths(patterns: tuple[str, ...], base: str) -> list[str]:
    """The files ``patterns`` name now (globs, relative to the targets file's folder), sorted."""
    return sorted({path for pattern in patterns for path in matches(pattern, base)})


def matches(pattern: str, base: str) -> list[str]:
    return glob.glob(os.path.join(base, os.path.expanduser(pattern)))


Target = tuple[str, str, int | None, dict[str, str], str]  # name, host, port or None, labels, where


def targets(patterns: tuple[str, ...], base: str) -> Iterator[Target]:
    """Every target of the files ``patterns`` name now."""
    for path in paths(patterns, base):
        where = f"file_sd {path}"
        if not path.endswith(EXTENSIONS):
            raise ConfigError(f"{where}: a file_sd file ends {', '.join(EXTENSIONS)} (as Prometheus reads them)")
        yield from group_targets(_groups(path, where), where)


def group_targets(groups: list[Any], where: str) -> Iterator[Target]:
    """The targets of a list of file_sd groups (a file's, or an HTTP SD answer's)."""
    if not isinstance(groups, list):
        raise ConfigError(f'{where}: expected a list of groups such as [{{"targets": ["host:port"]}}]')
    for i, group in enumerate(groups):
        here = f"{where}: group {i + 1}"
        if not isinstance(group, dict) or not isinstance(group.get("targets"), list):
            raise ConfigError(f'{here}: expected {{"targets": ["host:port", ...], "labels": {{...}}}}')
        labels = group.get("labels") or {}
        if not isinstance(labels, dict):
            raise ConfigError(f"{here}: labels: expected a table of names and strings")
        mine = dict(check_label(f"exported_{n}" if n in RESERVED_LABELS else n, v, here)
                    for n, v in labels.items() if not str(n).startswith("__"))
        for text in group["targets"]:
            if not isinstance(text, str):
                raise ConfigError(f"{here}: {text!r} is not host:port")
            try:
                host, port = split_host_port(text)
            except ResolveError as exc:
                raise ConfigError(f"{here}: {exc}") from None
            if not _HOST.match(host):
                raise ConfigError(f"{here}: {text!r} is not host:port")
            yield text, host, port, mine, here


def _groups(path: str, where: str) -> Any:
    try:
        text = read_regular_file(path, MAX_SETTINGS_FILE)[0].decode("utf-8")
        # BaseLoader: every scalar a string, as Prometheus reads labels (no 012 -> 10, no yes -> True)
        data = json.loads(text) if path.endswith(".json") else yaml.load(text, Loader=yaml.BaseLoader)
    except FileRefused as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror}") from None
    except (ValueError, RecursionError, yaml.YAMLError) as exc:  # JSON and Unicode errors are ValueErrors
        raise ConfigError(f"{where}: {' '.join(str(exc).split())}") from None
    if data is None or data == "":  # an empty YAML file: no targets (as Prometheus takes it)
        return []
    return data
