"""Settings: defaults < TOML file (--config) < command-line flags, validated into one frozen dataclass.

Every key of the TOML file is the snake_case name of a long flag (``--remote-addr`` is
``remote_addr``).  The HMAC key itself is not accepted from the file, so a plaintext
key never ends up in a configuration file: use ``hmac_key_file`` or ``hmac_key_dir``.
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .net.resolve import ResolveError, split_host_port


class ConfigError(ValueError):
    """Invalid settings; the message is one line and the program exits with status 2."""


@dataclass(frozen=True)
class Settings:
    # roles and addresses (names, short flags and defaults of the Rust stamp-suite)
    is_reflector: bool = False
    remote_addr: str | None = None  # HOST, HOST:PORT, [V6]:PORT or an address; a sender needs one
    local_addr: str | None = None  # reflector: dual-stack wildcard; sender: wildcard of the remote's family
    remote_port: int = 862
    local_port: int | None = None  # reflector: 862; sender: an ephemeral port
    force_ipv4: bool = False
    force_ipv6: bool = False
    # test session
    clock_source: str = "NTP"
    send_delay: float = 1000.0  # ms between test packets
    count: int = 1000  # 0 = until interrupted
    timeout: float = 5.0  # s to wait for a reply before it counts as lost
    auth_mode: str = "O"
    print_stats: bool = False  # -R
    quiet: bool = False  # -q: the summary only
    max_runtime: float = 0.0  # -w: seconds, 0 = no limit
    ssid: int | None = None
    padding: int = 0
    window: int = 0  # capacity mode: packets kept in flight (0: the --send-delay schedule)
    dscp: int = 0
    ecn: int = 0
    # clock description
    tai_offset: int | None = None
    clock_synchronized: bool | None = None
    error_scale: int | None = None
    error_multiplier: int | None = None
    timestamping: str = "auto"
    # reflector
    stateful_reflector: bool = False
    session_timeout: int = 300
    max_sessions: int = 100_000
    tlv_mode: str = "echo"
    verify_tlv_hmac: bool = False
    allowed_ssids: tuple[int, ...] | None = None
    cos_allowed_dscp: tuple[int, ...] | None = None
    return_address_allow: tuple[str, ...] = ()
    return_srv6_allow: tuple[str, ...] = ()
    reflector_member_link_id: int | None = None
    accept_zero_multiplier: bool = False
    answer_short_packets: bool = False  # the default since RFC 8762 §4.6 says so; kept for old command lines
    drop_short_packets: bool = False  # hardened profile: no reply to packets shorter than the base
    accept_nonzero_mbz: bool = False  # the default since RFC 8762 §4.2.1 says so; kept for old command lines
    busy_poll: int = 0  # microseconds
    max_pps: float = 0.0
    max_pps_burst: float = 0.0
    workers: int | None = None  # None: one per CPU on Linux
    # TLVs the sender asks for
    cos: bool = False
    location: bool = False
    timestamp_info: bool = False
    direct_measurement: bool = False
    follow_up_telemetry: bool = False
    access_report: int | None = None
    access_return_code: int = 1
    access_report_timer: float = 3.0  # seconds (RFC 8972 §4.6 default)
    access_report_retries: int = 4
    hmac_tlv: bool = False
    dest_node_addr: str | None = None
    return_path_cc: int | None = None
    return_address: str | None = None
    return_sr_mpls_labels: tuple[int, ...] | None = None
    return_srv6_sids: tuple[str, ...] | None = None
    micro_session_id: int | None = None
    # keys
    hmac_key: str | None = None
    hmac_key_file: str | None = None
    hmac_key_dir: str | None = None
    # output and observability
    output_format: str = "text"
    report_interval: float = 0.0
    metrics: bool = False
    metrics_addr: str = "127.0.0.1:9090"
    snmp: bool = False
    snmp_socket: str = "/var/agentx/master"
    self_test: bool = False
    verbose: bool = False
    plot: str | None = None  # render a saved JSON-lines run and exit
    plot_output: str | None = None  # PNG of this run (or of --plot)
    plot_html: str | None = None  # self-contained HTML page with the PNG

    def remote(self) -> tuple[str, int]:
        """The reflector's host (a name or an address) and port (from -r HOST:PORT, or -p)."""
        host, port = split_host_port(self.remote_addr or "")
        return host, port if port is not None else self.remote_port

    @property
    def authenticated(self) -> bool:
        return self.auth_mode == "A"

    @property
    def has_key(self) -> bool:
        return bool(self.hmac_key or self.hmac_key_file or self.hmac_key_dir)

    def validate(self) -> Settings:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        for f in fields(self):  # inf and nan would overflow the nanosecond arithmetic downstream
            v = getattr(self, f.name)
            need(not isinstance(v, float) or math.isfinite(v), f"--{f.name.replace('_', '-')} must be a finite number")
        need(self.clock_source in ("NTP", "PTP"), f"--clock-source must be NTP or PTP, not {self.clock_source!r}")
        need(self.auth_mode in ("A", "O"), f"--auth-mode must be A or O, not {self.auth_mode!r}")
        need(self.tlv_mode in ("echo", "ignore"), f"--tlv-mode must be echo or ignore, not {self.tlv_mode!r}")
        need(self.output_format in ("text", "json", "csv"), "--output-format must be text, json or csv")
        need(self.timestamping in ("auto", "kernel", "user"), "--timestamping must be auto, kernel or user")
        for name in ("remote_port", "local_port"):
            v = getattr(self, name)
            need(v is None or 0 <= v <= 65535, f"--{name.replace('_', '-')} {v} is outside 0..65535")
        need(self.remote_port != 0 or self.is_reflector, "--remote-port 0 is not a port to send to")
        need(self.count >= 0, "--count must be 0 (until interrupted) or more")
        need(self.send_delay >= 0, "--send-delay must be 0 or more milliseconds")
        need(self.timeout > 0, "--timeout must be more than 0 seconds")
        need(self.ssid is None or 1 <= self.ssid <= 0xFFFF, "--ssid must be 1..65535 (0 means no SSID)")
        need(0 <= self.dscp <= 63, f"--dscp {self.dscp} is outside 0..63")
        need(0 <= self.ecn <= 3, f"--ecn {self.ecn} is outside 0..3")
        need(0 <= self.padding <= 9000, "--padding must be 0..9000 octets")
        need(0 <= self.window <= 65536, "--window must be 0..65536 packets in flight")
        need(self.session_timeout >= 0, "--session-timeout must be 0 or more seconds")
        need(self.max_sessions >= 0, "--max-sessions must be 0 (unbounded) or more")
        need(0 <= self.busy_poll <= 1_000_000, "--busy-poll must be 0..1000000 microseconds")
        need(self.max_pps >= 0 and self.max_pps_burst >= 0, "--max-pps and --max-pps-burst must be 0 or more")
        need(self.workers is None or 1 <= self.workers <= 64, "--workers must be 1..64")
        need(self.error_scale is None or 0 <= self.error_scale <= 63, "--error-scale must be 0..63")
        need(self.tai_offset is None or 0 <= self.tai_offset <= 255, "--tai-offset must be 0..255 seconds (37 in 2026)")
        need(self.error_multiplier is None or 1 <= self.error_multiplier <= 255,
             "--error-multiplier must be 1..255 (0 is invalid, RFC 4656)")
        need(self.access_report is None or 0 <= self.access_report <= 15, "--access-report ID must be 0..15")
        need(0 <= self.access_return_code <= 255, "--access-return-code must be 0..255")
        need(self.access_report_timer > 0, "--access-report-timer must be more than 0 seconds")
        need(0 <= self.access_report_retries <= 100, "--access-report-retries must be 0..100")
        need(self.report_interval == 0 or self.report_interval >= 0.001,
             "--report-interval must be 0 (none) or at least 0.001 seconds")
        need(self.max_runtime == 0 or self.max_runtime >= 0.001,
             "--max-runtime must be 0 (no limit) or at least 0.001 seconds")
        for name in ("micro_session_id", "reflector_member_link_id"):
            v = getattr(self, name)
            need(v is None or 1 <= v <= 0xFFFF, f"--{name.replace('_', '-')} must be 1..65535")
        need(not (self.force_ipv4 and self.force_ipv6), "-4 and -6 cannot be used together")
        need(not (self.answer_short_packets and self.drop_short_packets),
             "--answer-short-packets and --drop-short-packets cannot be used together")
        need(not (self.authenticated and not self.has_key),
             "authenticated mode (-A A) needs --hmac-key, --hmac-key-file or --hmac-key-dir")
        need(not (self.verify_tlv_hmac and not self.has_key), "--verify-tlv-hmac needs an HMAC key")
        need(not (self.hmac_tlv and not self.has_key), "--hmac-tlv needs an HMAC key")
        need(sum(x is not None for x in (self.hmac_key, self.hmac_key_file)) <= 1,
             "give either --hmac-key or --hmac-key-file, not both")
        need(not (self.dest_node_addr and not self.ssid), "--dest-node-addr requires --ssid (RFC 9503 §3)")
        need(self.return_path_cc is None or self.return_path_cc in (0, 1), "--return-path-cc must be 0 or 1")
        need(not (self.return_path_cc is not None and (self.return_address or self.return_sr_mpls_labels
                                                       or self.return_srv6_sids)),
             "--return-path-cc cannot be combined with a return address or segment list (RFC 9503 §4)")
        need(not (self.return_sr_mpls_labels and self.return_srv6_sids),
             "give either --return-sr-mpls-labels or --return-srv6-sids, not both")
        for lab in self.return_sr_mpls_labels or ():
            need(0 <= lab <= 0xFFFFF, f"MPLS label {lab} is outside 0..1048575 (20 bits)")
        sending = not (self.is_reflector or self.self_test or self.plot)
        need(self.remote_addr is not None or not sending,
             "no reflector to measure: give -r HOST[:PORT] (or -i to be the reflector, or --self-test to try "
             "both here)")
        if self.remote_addr is not None:
            try:
                host, port = split_host_port(self.remote_addr)
            except ResolveError as exc:
                raise ConfigError(f"--remote-addr: {exc}") from None
            need(bool(host), f"--remote-addr {self.remote_addr!r}: no host")
            need(port is None or self.remote_port in (862, port),
                 f"the reflector's port is given twice: {self.remote_addr} and --remote-port {self.remote_port}")
        for name in ("local_addr", "dest_node_addr", "return_address"):
            v = getattr(self, name)
            if v is not None:
                _ip(v, "--" + name.replace("_", "-"))
        for sid in self.return_srv6_sids or ():
            need(_ip(sid, "--return-srv6-sids").version == 6, f"--return-srv6-sids: {sid} is not IPv6")
        for prefix in self.return_address_allow:
            _prefix(prefix, "--return-address-allow")
        for prefix in self.return_srv6_allow:
            need(_prefix(prefix, "--return-srv6-allow").version == 6,
                 f"--return-srv6-allow: {prefix} is not an IPv6 prefix (SRv6 segments are IPv6 addresses)")
        for d in self.cos_allowed_dscp or ():
            need(0 <= d <= 63, f"--cos-allowed-dscp: {d} is outside 0..63")
        check_metrics_addr(self.metrics_addr)
        return self


def check_metrics_addr(addr: str) -> str:
    host, _, port = addr.rpartition(":")
    if not (host and port.isdigit() and int(port) <= 65535):
        raise ConfigError(f"--metrics-addr must be ADDRESS:PORT, not {addr!r}")
    return addr


def _prefix(text: str, flag: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not an address prefix") from None


def _ip(text: str, flag: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not an IP address") from None


FILE_KEYS = {f.name for f in fields(Settings)} - {"hmac_key", "self_test"}


_HINTS = typing.get_type_hints(Settings)
_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def coerce(name: str, value: Any, where: str = "config key") -> Any:
    """A value from a file checked against the setting's type (lists become tuples).

    A wrong type is one line naming the key and the types, never the value itself (it may
    be a key given where a path belongs)."""
    hint = _HINTS[name]
    ok, out = _fit(value, hint)
    if not ok:
        raise ConfigError(f"{where} {name}: expected {_describe(hint)}, got {_kind(value)}")
    return out


def _fit(value: Any, hint: Any) -> tuple[bool, Any]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            ok, out = _fit(value, arg)
            if ok:
                return ok, out
        return False, None
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            return False, None
        items = [_fit(x, typing.get_args(hint)[0]) for x in value]
        return all(ok for ok, _ in items), tuple(x for _, x in items)
    if hint is type(None):  # TOML has no null: an optional setting is given, or left out
        return False, None
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if hint is str:
        return isinstance(value, str), value
    return True, value


def _describe(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return _describe(args[0])
    if typing.get_origin(hint) is tuple:
        return f"a list of {_describe(typing.get_args(hint)[0]).removeprefix('a ').removeprefix('an ')}s"
    return _WORDS.get(hint, str(hint))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (list, tuple)):
        kinds = dict.fromkeys(_kind(x).removeprefix("a ").removeprefix("an ") + "s" for x in value)
        return "a list" + (f" of {' and '.join(kinds)}" if kinds else "")
    return {int: "an integer", float: "a number", str: "a string"}.get(type(value), type(value).__name__)


def load_file(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config {p}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {p}: {exc}") from None
    if "hmac_key" in data:
        raise ConfigError(f"--config {p}: hmac_key is not accepted in a file; use hmac_key_file")
    unknown = sorted(set(data) - FILE_KEYS - {"targets"})
    if unknown:
        raise ConfigError(f"--config {p}: unknown key {unknown[0]!r} (keys are the long flag names in snake_case)")
    return {k: coerce(k, v) for k, v in data.items() if k != "targets"}


def build_settings(flags: dict[str, Any], config_path: str | None = None) -> Settings:
    """defaults < file < flags, then validated."""
    merged: dict[str, Any] = {}
    if config_path:
        merged.update(load_file(config_path))
    merged.update(flags)
    try:
        return Settings(**merged).validate()
    except TypeError as exc:  # a wrong key from code, not from the user
        raise ConfigError(str(exc)) from None
