"""Settings by role: what both roles share, the sender's, the reflector's, the TLVs a sender
asks for, the output and the exports; defaults < TOML file (--config) < command-line flags.

Each section is a frozen msgspec Struct whose field types carry their ranges (the table of
ranges is the types), so a section checks itself; rules across fields are in each section's
``__post_init__``, and those across sections in :class:`Settings`.  The command line, a TOML
file, a monitor target and the Python API all take one path: flat snake_case keys (the long
flag names) are put in their sections and converted by msgspec (:func:`build_settings`).

msgspec rather than the hand-written checker it replaces, or pydantic: the ranges live in the
types, its errors never echo a value (a key given where a path belongs stays unseen), and it
imports in about 20 ms, which every start of the program pays.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import socket
import tomllib
import typing
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from .files import FileRefused, read_regular_file
from .net.resolve import ResolveError, resolve, split_host_port
from .reflector.engine import TlvMode
from .units import DURATIONS, setting_duration
from .wire.packet import STAMP_PORT


class ConfigError(ValueError):
    """Invalid settings; the message is one line and the program exits with status 2."""


class UnresolvedName(ConfigError):
    """A reflector's name has no address now (one of several targets is skipped for it)."""


class AuthMode(StrEnum):
    AUTHENTICATED = "A"
    OPEN = "O"


class ClockSource(StrEnum):
    NTP = "NTP"
    PTP = "PTP"


class Timestamping(StrEnum):
    AUTO = "auto"
    KERNEL = "kernel"
    USER = "user"


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    CSV = "csv"


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def check_metrics_addr(addr: str) -> str:
    host, _, port = addr.rpartition(":")
    if not (host and port.isdigit() and int(port) <= 65535):
        raise ValueError(f"--metrics-addr must be ADDRESS:PORT, not {addr!r}")
    return addr


def _prefix(text: str, flag: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not an address prefix") from None


def _ip(text: str, flag: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not an IP address") from None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
        return True
    except ValueError:
        return False


def _range(lo: float, hi: float | None = None) -> Meta:
    return Meta(ge=lo) if hi is None else Meta(ge=lo, le=hi)


Port = Annotated[int, _range(0, 65535)]
Id16 = Annotated[int, _range(1, 0xFFFF)]  # SSIDs, member link IDs: 0 means none
Seconds = Annotated[float, _range(0, 10**9)]  # finite: nanosecond arithmetic downstream
_SECTION = dict(frozen=True, kw_only=True, forbid_unknown_fields=True)


class Common(Struct, **_SECTION):
    """What both roles use: addresses, the clock, the mode and the keys."""

    local_addr: str | None = None  # reflector: dual-stack wildcard; sender: wildcard of the remote's family
    local_port: Port | None = None  # reflector: 862; sender: an ephemeral port
    force_ipv4: bool = False
    force_ipv6: bool = False
    clock_source: ClockSource = ClockSource.NTP
    auth_mode: AuthMode = AuthMode.OPEN
    tai_offset: Annotated[int, _range(0, 255)] | None = None
    clock_synchronized: bool | None = None
    error_scale: Annotated[int, _range(0, 63)] | None = None
    error_multiplier: Annotated[int, _range(1, 255)] | None = None  # 0 is invalid (RFC 4656)
    timestamping: Timestamping = Timestamping.AUTO
    hmac_key: str | None = None
    hmac_key_file: str | None = None
    hmac_key_dir: str | None = None

    def __post_init__(self) -> None:
        _need(not (self.force_ipv4 and self.force_ipv6), "-4 and -6 cannot be used together")
        _need(not (self.hmac_key and self.hmac_key_file), "give either --hmac-key or --hmac-key-file, not both")
        if self.local_addr is not None and _is_ip(self.local_addr):  # a name: resolved in build_settings
            family = _ip(self.local_addr, "--local-addr").version
            _need(not (self.force_ipv4 and family == 6 or self.force_ipv6 and family == 4),
                  f"--local-addr {self.local_addr} is IPv{family}, but --force-ipv{10 - family} (-{10 - family}) "
                  f"was given")

    @property
    def authenticated(self) -> bool:
        return self.auth_mode is AuthMode.AUTHENTICATED

    @property
    def has_key(self) -> bool:
        return bool(self.hmac_key or self.hmac_key_file or self.hmac_key_dir)


class Sender(Struct, **_SECTION):
    """The test session a sender runs (names, short flags and defaults of the Rust tool)."""

    remote_addr: str | None = None  # HOST, HOST:PORT, [V6]:PORT or an address; a sender needs one
    remote_port: Port | None = None  # 862 unless remote_addr names one
    send_delay: Annotated[float, _range(0, 10**9)] = 1000.0  # ms between test packets
    count: Annotated[int, _range(0)] = 1000  # 0 = until interrupted
    timeout: Annotated[float, Meta(gt=0, le=10**9)] = 5.0  # s to wait for a reply before it counts as lost
    max_runtime: Seconds = 0.0  # -w: seconds, 0 = no limit
    ssid: Id16 | None = None
    padding: Annotated[int, _range(0, 9000)] = 0
    window: Annotated[int, _range(0, 65536)] = 0  # capacity mode: packets kept in flight
    dscp: Annotated[int, _range(0, 63)] = 0
    ecn: Annotated[int, _range(0, 3)] = 0
    # Availability (the metrics' errored seconds and outages): a loss period this long or longer
    # is an outage; a round trip over errored_rtt (ms; 0: none) makes its second errored.
    outage_threshold: Annotated[float, Meta(gt=0, le=10**9)] = 3.0
    errored_rtt: Annotated[float, _range(0, 10**9)] = 0.0

    def __post_init__(self) -> None:
        _need(self.max_runtime == 0 or self.max_runtime >= 0.001,
              "--max-runtime must be 0 (no limit) or at least 0.001 seconds")
        if self.remote_addr is not None:
            try:
                host, port = split_host_port(self.remote_addr)
            except ResolveError as exc:
                raise ValueError(f"--remote-addr: {exc}") from None
            _need(bool(host), f"--remote-addr {self.remote_addr!r}: no host")
            _need(port is None or self.remote_port in (None, port),
                  f"the reflector's port is given twice: {self.remote_addr} and --remote-port {self.remote_port}")

    def remote(self) -> tuple[str, int]:
        """The reflector's host (a name or an address) and port (from -r HOST:PORT, or -p)."""
        host, port = split_host_port(self.remote_addr or "")
        if port is None:
            port = STAMP_PORT if self.remote_port is None else self.remote_port
        return host, port


class Reflector(Struct, **_SECTION):
    """How a reflector answers, and its limits."""

    stateful_reflector: bool = False
    session_timeout: Annotated[int, _range(0)] = 300
    max_sessions: Annotated[int, _range(0)] = 100_000  # 0 = unbounded
    tlv_mode: TlvMode = TlvMode.ECHO
    verify_tlv_hmac: bool = False
    allowed_ssids: tuple[Annotated[int, _range(0, 0xFFFF)], ...] | None = None
    cos_allowed_dscp: tuple[Annotated[int, _range(0, 63)], ...] | None = None
    return_address_allow: tuple[str, ...] = ()
    return_srv6_allow: tuple[str, ...] = ()
    reflector_member_link_id: Id16 | None = None
    accept_zero_multiplier: bool = False
    answer_short_packets: bool = False  # the default since RFC 8762 §4.6 says so; kept for old command lines
    drop_short_packets: bool = False  # hardened profile: no reply to packets shorter than the base
    accept_nonzero_mbz: bool = False  # the default since RFC 8762 §4.2.1 says so; kept for old command lines
    busy_poll: Annotated[int, _range(0, 1_000_000)] = 0  # microseconds
    max_pps: Annotated[float, _range(0, 10**9)] = 0.0
    max_pps_burst: Annotated[float, _range(0, 10**9)] = 0.0
    workers: Annotated[int, _range(1, 64)] | None = None  # None: one per CPU on Linux

    def __post_init__(self) -> None:
        _need(not (self.answer_short_packets and self.drop_short_packets),
              "--answer-short-packets and --drop-short-packets cannot be used together")
        for prefix in self.return_address_allow:
            _prefix(prefix, "--return-address-allow")
        for prefix in self.return_srv6_allow:
            _need(_prefix(prefix, "--return-srv6-allow").version == 6,
                  f"--return-srv6-allow: {prefix} is not an IPv6 prefix (SRv6 segments are IPv6 addresses)")


class TlvRequests(Struct, **_SECTION):
    """The TLVs a sender asks the reflector for (RFC 8972, 9503, 9534)."""

    cos: bool = False
    location: bool = False
    timestamp_info: bool = False
    direct_measurement: bool = False
    follow_up_telemetry: bool = False
    access_report: Annotated[int, _range(0, 15)] | None = None
    access_return_code: Annotated[int, _range(0, 255)] = 1
    access_report_timer: Annotated[float, Meta(gt=0, le=10**9)] = 3.0  # seconds (RFC 8972 §4.6 default)
    access_report_retries: Annotated[int, _range(0, 100)] = 4
    hmac_tlv: bool = False
    dest_node_addr: str | None = None
    return_path_cc: Annotated[int, _range(0, 1)] | None = None
    return_address: str | None = None
    return_sr_mpls_labels: tuple[Annotated[int, _range(0, 0xFFFFF)], ...] | None = None  # 20-bit labels
    return_srv6_sids: tuple[str, ...] | None = None
    micro_session_id: Id16 | None = None

    def __post_init__(self) -> None:
        _need(not (self.return_path_cc is not None and (self.return_address or self.return_sr_mpls_labels
                                                        or self.return_srv6_sids)),
              "--return-path-cc cannot be combined with a return address or segment list (RFC 9503 §4)")
        _need(not (self.return_sr_mpls_labels and self.return_srv6_sids),
              "give either --return-sr-mpls-labels or --return-srv6-sids, not both")
        for name in ("dest_node_addr", "return_address"):
            if getattr(self, name) is not None:
                _ip(getattr(self, name), "--" + name.replace("_", "-"))
        for sid in self.return_srv6_sids or ():
            _need(_ip(sid, "--return-srv6-sids").version == 6, f"--return-srv6-sids: {sid} is not IPv6")


class Output(Struct, **_SECTION):
    """What the program writes, and where."""

    output_format: OutputFormat = OutputFormat.TEXT
    report_interval: Seconds = 0.0
    print_stats: bool = False  # -R
    quiet: bool = False  # -q: ping's closing lines only
    full: bool = False  # every figure of the summary, not the screenful
    verbose: bool = False
    plot: str | None = None  # render a saved JSON-lines run and exit
    plot_output: str | None = None  # PNG of this run (or of --plot)
    plot_html: str | None = None  # self-contained HTML page with the PNG

    def __post_init__(self) -> None:
        _need(self.report_interval == 0 or self.report_interval >= 0.001,
              "--report-interval must be 0 (none) or at least 0.001 seconds")



class Export(Struct, **_SECTION):
    """Prometheus and SNMP."""

    metrics: bool = False
    metrics_addr: str = "127.0.0.1:9090"
    snmp: bool = False
    snmp_socket: str = "/var/agentx/master"

    def __post_init__(self) -> None:
        check_metrics_addr(self.metrics_addr)


class Settings(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    is_reflector: bool = False
    self_test: bool = False
    common: Common = Common()
    sender: Sender = Sender()
    reflector: Reflector = Reflector()
    tlvs: TlvRequests = TlvRequests()
    output: Output = Output()
    export: Export = Export()

    def __post_init__(self) -> None:
        c = self.common
        _need(not (c.authenticated and not c.has_key),
              "authenticated mode (-A A) needs --hmac-key, --hmac-key-file or --hmac-key-dir")
        _need(not (self.reflector.verify_tlv_hmac and not c.has_key), "--verify-tlv-hmac needs an HMAC key")
        _need(not (self.tlvs.hmac_tlv and not c.has_key), "--hmac-tlv needs an HMAC key")
        _need(not (self.tlvs.dest_node_addr and not self.sender.ssid), "--dest-node-addr requires --ssid (RFC 9503 §3)")
        out = self.output
        _need(not out.plot_html or bool(out.plot_output or out.plot),
              "--plot-html needs --plot-output (the page shows that PNG)")
        sending = not (self.is_reflector or self.self_test or self.output.plot)
        _need(self.sender.remote_port != 0 or not sending, "--remote-port 0 is not a port to send to")

    def replace(self, **flat: Any) -> Settings:
        """These settings with some changed, by their flat names (as in a file)."""
        return _convert({**self.flat(), **flat}, "setting")

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name (the long flag's, in snake_case)."""
        out: dict[str, Any] = {"is_reflector": self.is_reflector, "self_test": self.self_test}
        for section in SECTIONS:
            out.update(msgspec.structs.asdict(getattr(self, section)))
        return out


SECTIONS = {"common": Common, "sender": Sender, "reflector": Reflector, "tlvs": TlvRequests, "output": Output,
            "export": Export}
# Which section each flat key (a long flag's name) belongs to.
SECTION_OF = {name: section for section, kind in SECTIONS.items() for name in kind.__struct_fields__}
TOP_KEYS = {"is_reflector", "self_test"}
# A self-test's measurement is short unless the flags or the file say otherwise.
SELF_TEST_SENDER = {"count": 20, "send_delay": 50.0, "timeout": 1.0}
FILE_KEYS = (set(SECTION_OF) | TOP_KEYS) - {"hmac_key", "self_test"}


# -- one path from flat keys to Settings --------------------------------------------------------
def build_settings(flags: dict[str, Any], config_path: str | None = None, where: str = "flag") -> Settings:
    """defaults < file < ``flags`` (flat keys), checked as one.  ``where`` names the flags'
    source in errors: "flag" (shown as --name), "setting" (the API), "key" (a file's); an
    error in a value that came from the file names the file."""
    file = load_file(config_path) if config_path else {}
    from_file = {name: f"--config {config_path}: key {name}" for name in file if name not in flags}
    quick = SELF_TEST_SENDER if flags.get("self_test") else {}
    given = {**file, **flags}
    s = _convert({**quick, **given}, where, from_file)
    _check_role(s, given, where, from_file)
    return _local_address(s, where, from_file)


def _local_address(s: Settings, where: str, labels: dict[str, str]) -> Settings:
    """--local-addr as a name (-S localhost), as -r takes one: its address in the family -4 or
    -6 asks for, else in the family of a reflector given as an address, so that everything
    after sees an address."""
    c = s.common
    if c.local_addr is None or _is_ip(c.local_addr):
        return s
    family = socket.AF_INET if c.force_ipv4 else socket.AF_INET6 if c.force_ipv6 else socket.AF_UNSPEC
    remote = s.sender.remote()[0] if s.sender.remote_addr and not s.is_reflector else ""
    if family == socket.AF_UNSPEC and _is_ip(remote):
        family = socket.AF_INET6 if ":" in remote else socket.AF_INET
    try:
        return s.replace(local_addr=resolve(c.local_addr, 0, family)[0])
    except ResolveError as exc:
        raise ConfigError(f"{_label('local_addr', where, labels)}: {exc}") from None


# What each role reads besides the common settings: a setting given for the other role would
# be ignored without a word, so it is refused (a self-test plays both roles).
_REFLECTOR_READS = {"reflector", "export", "print_stats", "verbose"}
_SENDER_READS = {"sender", "tlvs", "output", "export"}


def _check_role(s: Settings, given: dict[str, Any], where: str, labels: dict[str, str]) -> None:
    if s.self_test or s.output.plot:
        return
    if not s.is_reflector and s.sender.remote_addr is None:
        raise ConfigError("no reflector to measure: give -r HOST[:PORT] (or -i to be the reflector, or --self-test "
                          "to try both here)" if where == "flag" else f"no reflector to measure: give {where} "
                          "remote_addr")
    reads, role = (_REFLECTOR_READS, "a reflector (-i)") if s.is_reflector else (_SENDER_READS, "a sender")
    for name in given:
        section = SECTION_OF.get(name)
        if section is None or section == "common" or section in reads or name in reads:
            continue
        label = _label(name, where, labels)
        other = "sender" if s.is_reflector else "reflector"
        raise ConfigError(f"{label} is a {other} setting, and {role} does not use it")
    if s.sender.window and "send_delay" in given:
        raise ConfigError(f"{_label('send_delay', where, labels)} has no use with {_label('window', where, labels)}: "
                          "capacity mode sends the next packet as each reply arrives")
    c = s.common
    if not s.is_reflector and c.has_key and not (c.authenticated or s.tlvs.hmac_tlv):
        raise ConfigError("an HMAC key is given, but neither -A A nor --hmac-tlv: this run would be open mode, "
                          "the key unused")


def _convert(flat: dict[str, Any], where: str, labels: dict[str, str] | None = None) -> Settings:
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        if name in TOP_KEYS:
            nested[name] = value
        elif name in SECTION_OF:
            if name in DURATIONS and isinstance(value, str):  # "10ms" in a file or from the API
                try:
                    value = setting_duration(name, value)
                except ValueError as exc:
                    raise ConfigError(f"{_label(name, where, labels or {})}: {exc}") from None
            nested.setdefault(SECTION_OF[name], {})[name] = _case_of_choice(name, value)
        else:
            raise ConfigError(f"unknown {where} {name!r} (settings are the long flag names in snake_case)")
    try:
        return msgspec.convert(nested, Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), flat, where, labels or {})) from None


_FLAG = re.compile(r"--(?P<long>[a-z][a-z0-9-]*)")


def _flag_names(message: str) -> list[str]:
    return [m["long"].replace("-", "_") for m in _FLAG.finditer(message)]


def _label(name: str, where: str, labels: dict[str, str]) -> str:
    """A setting as the user gave it: the file's key, the flag, or the API's setting."""
    return labels.get(name) or (f"--{name.replace('_', '-')}" if where == "flag" else f"{where} {name}")


def _given_as(m: re.Match, where: str, labels: dict[str, str]) -> str:
    """A flag named in a rule's message, as the user gave that setting: the flag, the file's
    key (the file is named once, before the message) or the API's setting."""
    name = m["long"].replace("-", "_")
    if name not in SECTION_OF:
        return m[0]
    if name in labels:
        return f"key {name}"
    return m[0] if where == "flag" else name


_AT = re.compile(r"^(?P<what>.*) - at `\$(?P<path>[^`]*)`$")
_TYPE = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false", "array": "a list",
          "object": "a table", "null": "nothing"}


def _explain(message: str, flat: dict[str, Any], where: str, labels: dict[str, str]) -> str:
    """msgspec's error as one line naming the setting as the user gave it: a range with the
    value when it is a number, a type by name, never the value otherwise (it may be a key)."""
    m = _AT.match(message)
    what, path = (m["what"], re.sub(r"\[\d+\]", "", m["path"])) if m else (message, "")
    fields = [p for p in path.split(".") if p]
    name = fields[-1] if fields and fields[-1] in SECTION_OF else None
    if name is None:  # a rule across fields: its message names the flags, said here as they were given
        files = {labels[n].split(": key ")[0] for n in _flag_names(what) if n in labels}
        said = _FLAG.sub(lambda m: _given_as(m, where, labels), what)
        return f"{files.pop()}: {said}" if len(files) == 1 else said
    label = _label(name, where, labels)
    t = _TYPE.match(what)
    if t:
        want = " or ".join(_WORDS.get(w, w) for w in t["want"].split(" | ") if w != "null")
        return f"{label}: expected {want}, got {_WORDS.get(t['got'], t['got'])}"
    if what.startswith("Invalid enum value"):
        choices = _choices(name)
        return f"{label}: expected one of {', '.join(choices)}" if choices else f"{label}: not a valid value"
    allowed = _allowed(name)
    value = flat.get(name)
    if isinstance(value, float) and not math.isfinite(value):
        return f"{label} must be a finite number"
    if allowed and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{label} {value} is outside {allowed}" if ".." in allowed else f"{label} {value} must be {allowed}"
    if allowed:
        return f"{label}: each must be {allowed}"
    return f"{label}: {what}"


def _case_of_choice(name: str, value: Any) -> Any:
    """A mode's value in any case ("ptp", "PTP"), as the command line takes it."""
    if isinstance(value, str):
        for choice in _choices(name):
            if choice.lower() == value.lower():
                return choice
    return value


@functools.cache  # a monitor converts thousands of targets
def _field_type(name: str) -> Any:
    return typing.get_type_hints(SECTIONS[SECTION_OF[name]], include_extras=True)[name]


@functools.cache
def _choices(name: str) -> list[str]:
    for arg in typing.get_args(_field_type(name)) or (_field_type(name),):
        if isinstance(arg, type) and issubclass(arg, StrEnum):
            return [m.value for m in arg]
    return []


def _allowed(name: str) -> str | None:
    """The range a field's type states (in its Meta; looked for through Optional and tuples)
    in words: "0..63", "1 or more", "more than 0", "more than 0 and at most 1000"."""
    todo = [_field_type(name)]
    while todo:
        hint = todo.pop()
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, Meta):
                hi = _num(meta.le)
                if meta.gt is not None:
                    return f"more than {_num(meta.gt)}" + (f" and at most {hi}" if hi is not None else "")
                return f"{_num(meta.ge)}..{hi}" if hi is not None else f"{_num(meta.ge)} or more"
        todo.extend(typing.get_args(hint))
    return None


def _num(x: float | None) -> float | None:
    return int(x) if isinstance(x, float) and x.is_integer() else x


# -- files ----------------------------------------------------------------------------------------
MAX_SETTINGS_FILE = 64 << 20  # octets; a monitor's targets file for 100,000 targets is about 10 MB
def read_toml(path: str, where: str) -> dict[str, Any]:
    """A TOML file's tables, or one line naming ``where`` and why not (for every file we read)."""
    try:
        return tomllib.loads(read_regular_file(path, MAX_SETTINGS_FILE)[0].decode("utf-8"))
    except FileRefused as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_file(path: str) -> dict[str, Any]:
    """A sender's or reflector's settings file: its keys (checked with the rest in build_settings)."""
    where = f"--config {path}"
    data = read_toml(path, where)
    if "hmac_key" in data:
        raise ConfigError(f"{where}: hmac_key is not accepted in a file; use hmac_key_file")
    if "targets" in data or "monitor" in data:
        raise ConfigError(f"{where}: a monitor's targets file: run stamp-suite monitor --config {path}")
    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (keys are the long flag names in snake_case, "
                          f"at the top of the file)")
    return data
