"""The monitor's targets file, read and checked whole before anything changes.

    [monitor]            windows, jsonl, metrics_addr, snmp, snmp_socket
    [defaults]           any sender setting (the long flag names in snake_case)
    [[targets]]          a name, and any sender setting

Every error is one line naming the file, the target and the key; a file with an error is
refused as a whole (at start-up: exit 2; on reload: the running targets go on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import ConfigError, Settings, build_settings, check_metrics_addr, read_toml

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
    "return_path_cc", "return_address", "return_sr_mpls_labels", "return_srv6_sids", "micro_session_id"})
SNMP_SOCKET = "/var/agentx/master"


@dataclass(frozen=True)
class MonitorConfig:
    windows: tuple[int, ...]
    jsonl: str | None
    metrics_addr: str | None
    snmp_socket: str | None  # None: no SNMP
    targets: dict[str, Settings]


def _check(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: expected {what}")
    return value


def load_config(path: str) -> MonitorConfig:
    where = f"--config {path}"
    data = read_toml(path, where)
    unknown = set(data) - {"monitor", "defaults", "targets"}
    if unknown:
        raise ConfigError(f"{where}: unknown table {sorted(unknown)[0]!r} (expected [monitor], [defaults], "
                          "[[targets]])")
    mon = _check(data.get("monitor", {}), dict, f"{where}: [monitor]", "a table")
    known = {"windows", "jsonl", "metrics_addr", "snmp", "snmp_socket"}
    if set(mon) - known:
        raise ConfigError(f"{where}: unknown key {sorted(set(mon) - known)[0]!r} in [monitor]")
    windows = _check(mon.get("windows", list(DEFAULT_WINDOWS)), list, f"{where}: [monitor] windows",
                     "a list of whole seconds, such as [60, 300]")
    if not windows or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in windows):
        raise ConfigError(f"{where}: [monitor] windows: expected a list of whole seconds, 1 or more, such as [60, 300]")
    jsonl = mon.get("jsonl")
    if jsonl is not None:
        _check(jsonl, str, f"{where}: [monitor] jsonl", 'a file name or "-"')
    metrics_addr = mon.get("metrics_addr")
    if metrics_addr is not None:
        _check(metrics_addr, str, f"{where}: [monitor] metrics_addr", "ADDRESS:PORT")
        try:
            check_metrics_addr(metrics_addr)
        except ValueError as exc:
            raise ConfigError(f"{where}: [monitor] {exc}") from None
    snmp = _check(mon.get("snmp", False), bool, f"{where}: [monitor] snmp", "true or false")
    snmp_socket = _check(mon.get("snmp_socket", SNMP_SOCKET), str, f"{where}: [monitor] snmp_socket", "a path")
    defaults = _check(data.get("defaults", {}), dict, f"{where}: [defaults]", "a table")
    _known_keys(defaults, f"{where}: [defaults]")
    targets: dict[str, Settings] = {}
    for i, t in enumerate(_check(data.get("targets", []), list, f"{where}: targets", "[[targets]] tables")):
        t = dict(_check(t, dict, f"{where}: target {i + 1}", "a table"))
        name = t.pop("name", None)
        if not name:
            raise ConfigError(f"{where}: target {i + 1} has no name")
        _check(name, str, f"{where}: target {i + 1}: name", "a string")
        if name in targets:
            raise ConfigError(f"{where}: two targets are named {name!r}")
        targets[name] = _target(where, name, {**defaults, **t})
    if not targets:
        raise ConfigError(f"{where}: no [[targets]]")
    return MonitorConfig(tuple(windows), jsonl, metrics_addr, snmp_socket if snmp else None, targets)


def _target(where: str, name: str, merged: dict[str, Any]) -> Settings:
    """A target's settings: defaults < its own table; it sends until the monitor stops."""
    _known_keys(merged, f"{where}: target {name!r}")
    try:
        return build_settings({**merged, "count": 0}, where="key")
    except ConfigError as exc:
        raise ConfigError(f"{where}: target {name!r}: {exc}") from None


def _known_keys(table: dict[str, Any], where: str) -> None:
    bad = sorted(set(table) - TARGET_KEYS)
    if bad:
        hint = " (the monitor's windows are [monitor] windows)" if bad[0] == "window" else ""
        raise ConfigError(f"{where}: {bad[0]!r} is not a target setting{hint}")
