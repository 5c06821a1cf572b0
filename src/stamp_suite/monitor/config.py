"""The monitor's targets file, read and checked whole before anything changes.

    [monitor]            windows, jsonl, metrics_addr, snmp, snmp_socket, file_sd, http_sd,
                         http_sd_refresh, dns_sd, dns_sd_server
    [defaults]           any target setting: a sender setting (the long flag names in snake_case),
                         metrics, rtt_buckets, labels (monitor/series.py)
    [groups.NAME]        target settings shared by the targets that say group = "NAME"
                         (and flows = N: N flows to the target, one source port each)
    [[targets]]          a name, and any target setting
    file_sd files        more targets, with [defaults]' settings (monitor/file_sd.py)
    http_sd, dns_sd      more targets, from an HTTP SD endpoint's answer (monitor/http_sd.py) and
                         DNS SRV records (monitor/dns_sd.py)

Every error is one line naming the file, the target and the key; a file with an error is
refused as a whole (at start-up: exit 2; on reload: the running targets go on).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

import msgspec

from ..config import ConfigError, Settings, build_settings, check_metrics_addr, read_toml
from ..net.resolve import ResolveError, split_host_port
from ..observability.metrics import Exposure
from ..units import parse_duration
from . import file_sd
from .series import EXPOSURE_KEYS, exposure, merged_labels

DEFAULT_WINDOWS = (60, 300)
# What a target may set: where and how it measures (the sender's packet, TLV, key, clock and
# address settings).  Run-shaping settings of the command line (count, window, max_runtime,
# output, metrics, the reflector's own) are refused: ``window = 5``, a slip for ``windows``,
# would otherwise turn a target into a capacity test at 5,000 packets/s.
TARGET_KEYS = frozenset({
    "remote_addr", "remote_port", "local_addr", "local_port", "force_ipv4", "force_ipv6",
    "send_delay", "timeout", "padding", "dscp", "ecn", "ssid", "auth_mode", "hmac_key_file", "hmac_key_dir",
    "hmac_tlv", "clock_source", "tai_offset", "clock_synchronized", "error_scale", "error_multiplier",
    "timestamping", "cos", "location", "timestamp_info", "direct_measurement", "follow_up_telemetry",
    "access_report", "access_return_code", "access_report_timer", "access_report_retries", "dest_node_addr",
    "return_path_cc", "return_address", "return_sr_mpls_labels", "return_srv6_sids", "micro_session_id",
    "outage_threshold", "errored_rtt"})
SNMP_SOCKET = "/var/agentx/master"
MAX_FLOWS = 64
MONITOR_KEYS = EXPOSURE_KEYS | {"flows"}  # a target's keys that are the monitor's, not its sender's


@dataclass(frozen=True)
class MonitorConfig:
    windows: tuple[int, ...]
    jsonl: str | None
    metrics_addr: str | None
    snmp_socket: str | None  # None: no SNMP
    targets: dict[str, Settings]
    exposure: dict[str, Exposure] = field(default_factory=dict)  # per target: what its series show
    file_sd: tuple[str, ...] = ()  # as the file gave them: globs relative to its folder
    discovered: dict[str, str] = field(default_factory=dict)  # target -> "file_sd", "http_sd" or "dns_sd"
    unmatched: tuple[str, ...] = ()  # file_sd patterns that name no file now (said in the log)
    skipped: list[str] = field(default_factory=list)  # http_sd and dns_sd targets left out (said in the log)
    flow_of: dict[str, tuple[str, int]] = field(default_factory=dict)  # "fra1#2" -> ("fra1", 2)
    folder: str = "."  # the targets file's
    http_sd: str | None = None  # the URL
    http_sd_refresh_s: float = 60.0
    dns_sd: tuple[str, ...] = ()  # SRV names
    dns_sd_server: str | None = None  # HOST[:PORT]; None: the system's resolver

    def polled(self) -> list[str]:
        """The sources asked again and again (monitor/polled.py), as load_config names their
        answers: "http_sd URL", "dns_sd NAME"."""
        return [f"http_sd {self.http_sd}"] * bool(self.http_sd) + [f"dns_sd {name}" for name in self.dns_sd]

    def labelled(self, name: str) -> str:
        """The ``target`` label of a target (a flow's is its target's name)."""
        return self.flow_of.get(name, (name,))[0]


class _MonitorTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[monitor]: checked by its types, as a sender's settings are (config.py)."""

    windows: Annotated[tuple[Annotated[int, msgspec.Meta(ge=1)], ...], msgspec.Meta(min_length=1)] = DEFAULT_WINDOWS
    jsonl: str | None = None
    metrics_addr: str | None = None
    snmp: bool = False
    snmp_socket: str = SNMP_SOCKET
    file_sd: tuple[str, ...] = ()
    http_sd: str | None = None
    http_sd_refresh: float | str | None = None  # seconds, or a duration; None: 60 s
    dns_sd: tuple[str, ...] = ()
    dns_sd_server: str | None = None

    def __post_init__(self) -> None:
        if self.metrics_addr is not None:
            check_metrics_addr(self.metrics_addr)
        url = urllib.parse.urlsplit(self.http_sd or "")
        if self.http_sd is not None and (url.scheme not in ("http", "https") or not url.hostname):
            raise ValueError(f"http_sd: {self.http_sd!r} is not an http:// or https:// URL with a host")
        if not 1 <= self.refresh_s() <= 86400:
            raise ValueError("http_sd_refresh: expected 1s to 24h")
        if self.http_sd_refresh is not None and not self.http_sd:  # a slip: said, not ignored
            raise ValueError("http_sd_refresh is set but http_sd is not")
        if self.dns_sd_server is not None:
            try:
                split_host_port(self.dns_sd_server)
            except ResolveError as exc:
                raise ValueError(f"dns_sd_server: {exc}") from None

    def refresh_s(self) -> float:
        given = 60.0 if self.http_sd_refresh is None else self.http_sd_refresh
        try:
            return parse_duration(given, "s") if isinstance(given, str) else float(given)
        except ValueError as exc:
            raise ValueError(f"http_sd_refresh: {exc}") from None


class _TargetsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    monitor: _MonitorTable = _MonitorTable()
    defaults: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    targets: tuple[dict[str, Any], ...] = ()


# what each [monitor] key takes, said when it is given something else
_EXPECTED = {"windows": "a list of whole seconds, 1 or more, such as [60, 300]", "jsonl": 'a file name or "-"',
             "metrics_addr": "ADDRESS:PORT", "snmp": "true or false", "snmp_socket": "a path",
             "file_sd": 'a list of files or globs, such as ["targets/*.json"]', "http_sd": "a URL",
             "http_sd_refresh": 'a duration such as "60s"', "dns_sd": 'a list of SRV names, such as '
             '["_stamp._udp.example.net"]', "dns_sd_server": "HOST[:PORT]"}
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]*)`")


def _explain(message: str, where: str) -> str:
    """msgspec's complaint about the file as one line naming the table and key."""
    what, _, path = message.partition(" - at `$")
    path = path.rstrip("`")
    unknown = _UNKNOWN.match(what)
    if path in ("", ".") and unknown:
        return (f"{where}: unknown table {unknown['name']!r} (expected [monitor], [defaults], [groups.NAME], "
                "[[targets]])")
    if path == ".monitor" and unknown:
        return f"{where}: unknown key {unknown['name']!r} in [monitor]"
    if path == ".monitor" and not what.startswith("Expected"):  # a rule of the table's own
        return f"{where}: [monitor] {what}"
    if path.startswith(".monitor."):
        key = path.removeprefix(".monitor.").split("[")[0]
        return f"{where}: [monitor] {key}: expected {_EXPECTED[key]}" if "Expected" in what else f"{where}: {what}"
    if path.startswith(".targets["):
        return f"{where}: target {int(path[9:].split(']')[0]) + 1}: expected a table"
    if path.startswith(".groups"):
        return f"{where}: [groups]: expected tables such as [groups.core]"
    if path == ".monitor" or path == ".defaults" or path == ".targets":
        return f"{where}: [{path[1:]}]: expected {'[[targets]] tables' if path == '.targets' else 'a table'}"
    return f"{where}: {what}"


def load_config(path: str, answers: dict[str, list[Any]] | None = None) -> MonitorConfig:
    """``path`` and the groups of the last good answers of its http_sd and dns_sd sources, by
    MonitorConfig.polled()'s names (a source without one has no targets yet)."""
    where = f"--config {path}"
    try:
        data = msgspec.convert(read_toml(path, where), _TargetsFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), where)) from None
    _known_keys(data.defaults, f"{where}: [defaults]", group=False)
    for name, group in data.groups.items():
        _known_keys(group, f"{where}: [groups.{name}]", group=False)
    found = _Targets(where)
    for i, t in enumerate(data.targets):
        name = t.get("name")
        if not name:
            raise ConfigError(f"{where}: target {i + 1} has no name")
        if not isinstance(name, str):
            raise ConfigError(f"{where}: target {i + 1}: name: expected a string")
        here = f"{where}: target {name!r}"
        own = {k: v for k, v in t.items() if k != "name"}
        _known_keys(own, here)
        group = own.get("group")
        if group is not None and group not in data.groups:
            raise ConfigError(f"{here}: group {group!r} is not a [groups.NAME] table "
                              f"(there are {', '.join(data.groups) or 'none'})")
        found.add(name, [data.defaults, data.groups.get(group, {}), own], here, f"target {name!r}")
    folder = os.path.dirname(os.path.abspath(path))
    mon = data.monitor  # the config whose dicts the loop below fills
    config = MonitorConfig(mon.windows, mon.jsonl, mon.metrics_addr, mon.snmp_socket if mon.snmp else None,
                           found.settings, found.exposure, file_sd=mon.file_sd, folder=folder,
                           discovered=found.discovered, skipped=found.skipped,
                           unmatched=tuple(p for p in mon.file_sd if not file_sd.matches(p, folder)),
                           flow_of=found.flow_of, http_sd=mon.http_sd, http_sd_refresh_s=mon.refresh_s(),
                           dns_sd=mon.dns_sd, dns_sd_server=mon.dns_sd_server)
    sd: list[tuple[str, Any]] = [("file_sd", file_sd.targets(mon.file_sd, folder))]
    sd += [(name.split()[0], file_sd.group_targets((answers or {}).get(name, []), name)) for name in config.polled()]
    for source, listed in sd:
        for name, host, port, labels, group in listed:
            own = {"remote_addr": host, "labels": labels} | ({} if port is None else {"remote_port": port})
            found.add(name, [data.defaults, own], f"{where}: {group}: target {name!r}", group, source)
    found.check_ports()
    if not found.settings and not config.polled():  # an endpoint or an SRV name may have none for a moment
        raise ConfigError(f"{where}: no [[targets]]" + (" (and none in its file_sd files now)"
                                                        if mon.file_sd else ""))
    return config


class _Targets:
    """The targets of a file being read: each name once, a target's flows expanded, and no local
    port shared by two of them."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.settings: dict[str, Settings] = {}
        self.exposure: dict[str, Exposure] = {}
        self.flow_of: dict[str, tuple[str, int]] = {}
        self.discovered: dict[str, str] = {}  # target -> file_sd, http_sd or dns_sd
        self.skipped: list[str] = []  # targets of http_sd and dns_sd answers whose name was taken
        self._origin: dict[str, str] = {}  # name (each flow's too) -> where it was given

    def add(self, name: str, tables: list[Mapping[str, Any]], here: str, origin: str, source: str = "file") -> None:
        """A target from its tables, least specific first; ``origin`` names where it was given."""
        if "#" in name and source == "file":
            raise ConfigError(f"{here}: a name has no # (a target's flows are named NAME#1, NAME#2, ...)")
        merged = {k: v for table in tables for k, v in table.items()}
        flows = _flows(merged.get("flows", 1), here)
        names = [name] if flows == 1 else [f"{name}#{k}" for k in range(1, flows + 1)]
        taken = next((n for n in names if n in self._origin), None)
        if taken is not None:
            if source in ("http_sd", "dns_sd"):  # an answer we do not write must not stop every reload
                self.skipped.append(f"{here.removeprefix(f'{self.where}: ')}: left out, the name is taken "
                                    f"({self._origin[taken]})")
                return
            both = f" ({self._origin[taken]}; {origin})" if origin != self._origin[taken] else ""
            raise ConfigError(f"{self.where}: two targets are named {taken!r}{both}")
        shown = exposure(merged, merged_labels(tables, here), here)
        sender = {k: v for k, v in merged.items() if k not in MONITOR_KEYS | {"group"}}
        port = sender.get("local_port")
        if port and flows > 1 and isinstance(port, int) and port + flows - 1 > 65535:
            raise ConfigError(f"{here}: flows: {flows} flows from local_port {port} go past port 65535")
        for k, n in enumerate(names, start=1):  # flow k: its own socket, so its own source port (port + k - 1 if set)
            self._origin[n] = origin
            if source != "file":
                self.discovered[n] = source
            if flows == 1:
                self.exposure[n], self.settings[n] = shown, _settings(here, sender)
                continue
            self.flow_of[n] = (name, k)
            self.exposure[n] = replace(shown, labels=tuple(sorted((*shown.labels, ("flow", str(k))))))
            self.settings[n] = _settings(here, sender | ({"local_port": port + k - 1} if port else {}))

    def check_ports(self) -> None:
        """Two targets from one local address and port would share one flow's replies (the
        sockets are bound with SO_REUSEPORT, so that a reload can replace a target): refused."""
        seen: dict[tuple[str | None, int], str] = {}
        for name, s in self.settings.items():
            if s.common.local_port:
                key = (s.common.local_addr, s.common.local_port)
                if key in seen:
                    raise ConfigError(f"{self.where}: targets {seen[key]!r} and {name!r} both send from local port "
                                      f"{key[1]}")
                seen[key] = name


def _flows(n: Any, where: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_FLOWS:
        raise ConfigError(f"{where}: flows: expected a whole number 1..{MAX_FLOWS}")
    return n


def _settings(where: str, merged: dict[str, Any]) -> Settings:
    """A target's sender settings; it sends until the monitor stops."""
    try:
        return build_settings({**merged, "count": 0}, where="key")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _known_keys(table: dict[str, Any], where: str, group: bool = True) -> None:
    """Only target settings (and ``group`` where a target may name one)."""
    bad = sorted(set(table) - TARGET_KEYS - MONITOR_KEYS - ({"group"} if group else set()))
    if bad:
        hint = " (the monitor's windows are [monitor] windows)" if bad[0] == "window" else ""
        raise ConfigError(f"{where}: {bad[0]!r} is not a target setting{hint}")
