"""Settings into running parts: the one place that turns validated :class:`Settings` into a
reflector (its sockets, engine configuration and service, or one in a thread) or a
Session-Sender session (its engine, socket, statistics and exports, and the run of it).  The
commands, the Python API and the self-test all build through here."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .config import ClockSource, ConfigError, Settings, Timestamping, UnresolvedName
from .keys import load_key_directory, load_key_file
from .net.clock import ClockState, ClockWatcher, read_clock_state
from .net.local import LocalAddresses
from .net.resolve import NameNotResolved, ResolveError, addresses, format_address, resolve
from .net.reuseport import open_port_group
from .net.signals import ReloadRequest, StopRequest
from .net.udp import SocketSetupError, UdpEndpoint
from .reflector.counters import ReflectorCounters
from .reflector.engine import RELOADABLE, ClockDescription, Reflector, ReflectorConfig
from .reflector.server import ReflectorServer
from .reflector.service import ReflectorService, default_workers
from .sender.availability import availability_of
from .sender.driver import Probe, SenderDriver
from .sender.engine import SenderConfig, SessionSender
from .sender.events import Event
from .sender.stats import SessionStats
from .tlvs import (
    AccessReport,
    ClassOfService,
    DestinationNodeAddress,
    DirectMeasurement,
    FollowUpTelemetry,
    Location,
    MicroSessionId,
    ReturnPath,
    TimestampInformation,
    TlvValue,
)
from .wire.auth import KeyLoadError, KeyStore, parse_hex_key
from .wire.packet import STAMP_PORT
from .wire.timestamp import ErrorEstimate, TimestampFormat

if TYPE_CHECKING:  # imported when --metrics asks for it: the start of every run does not pay for it
    from .observability.http import MetricsServer

NS = 1_000_000_000


class Stoppable(Protocol):
    def stop(self) -> None: ...


# -- what both roles need ---------------------------------------------------------------------
def load_keys(s: Settings) -> KeyStore:
    c = s.common
    try:
        default = None
        if c.hmac_key:
            default = parse_hex_key(c.hmac_key)
        elif c.hmac_key_file:
            default = load_key_file(c.hmac_key_file)
        if c.hmac_key_dir:
            return load_key_directory(c.hmac_key_dir, default)
        return KeyStore(default)
    except KeyLoadError as exc:
        raise ConfigError(str(exc)) from None


def timestamp_format(s: Settings) -> TimestampFormat:
    return TimestampFormat.PTP if s.common.clock_source is ClockSource.PTP else TimestampFormat.NTP


def error_estimate(s: Settings, clock: ClockState) -> ErrorEstimate:
    """The measured clock state, unless the operator states it (--clock-synchronized, --error-*)."""
    c, fmt = s.common, timestamp_format(s)
    measured = clock.error_estimate(fmt)
    return ErrorEstimate(
        measured.synchronized if c.clock_synchronized is None else c.clock_synchronized, fmt,
        measured.scale if c.error_scale is None else c.error_scale,
        measured.multiplier if c.error_multiplier is None else c.error_multiplier)


def clock_description(s: Settings, clock: ClockState) -> ClockDescription:
    """What a reflector says about its clock, from the kernel's state and the operator's overrides."""
    return ClockDescription(error_estimate(s, clock), clock.sync_source, clock.tai_offset_s)


def _endpoint(s: Settings, host: str, port: int, **options: Any) -> UdpEndpoint:
    """A socket with the receive timestamps --timestamping asks for (kernel: or none at all)."""
    endpoint = UdpEndpoint(host, port, kernel_timestamps=s.common.timestamping is not Timestamping.USER, **options)
    if s.common.timestamping is Timestamping.KERNEL and not endpoint.caps.kernel_rx_timestamp:
        endpoint.close()
        raise SocketSetupError("--timestamping kernel: this platform gives no kernel receive timestamps")
    return endpoint


# -- the reflector ----------------------------------------------------------------------------
def reflector_port(s: Settings) -> int:
    return STAMP_PORT if s.common.local_port is None else s.common.local_port


def open_reflector_endpoint(s: Settings, port: int, reuseport: bool = False) -> UdpEndpoint:
    """Bound to --local-addr, or to the dual-stack wildcard (IPv4 only with -4 or no IPv6)."""
    c = s.common
    host, dual = c.local_addr, False
    if host is None:
        host, dual = ("0.0.0.0", False) if c.force_ipv4 or not socket.has_ipv6 else ("::", not c.force_ipv6)
    return _endpoint(s, host, port, dual_stack=dual, reuseport=reuseport)


def reflector_config(s: Settings, clock: ClockState, keys: KeyStore, endpoint: UdpEndpoint,
                     host: LocalAddresses) -> ReflectorConfig:
    """The engine's configuration for a reflector listening on ``endpoint``."""
    r = s.reflector
    return ReflectorConfig(
        authenticated=s.common.authenticated, keys=keys, stateful=r.stateful_reflector, tlv_mode=r.tlv_mode,
        verify_tlv_hmac=r.verify_tlv_hmac, timestamp_format=timestamp_format(s), tai_offset_s=clock.tai_offset_s,
        error_estimate=error_estimate(s, clock), sync_source=clock.sync_source, local_addr=s.common.local_addr,
        local_port=endpoint.local[1],
        cos_allowed_dscp=frozenset(r.cos_allowed_dscp) if r.cos_allowed_dscp is not None else None,
        member_link_id=r.reflector_member_link_id,
        allowed_ssids=frozenset(r.allowed_ssids) if r.allowed_ssids is not None else None,
        return_address_allow=tuple(ipaddress.ip_network(p, strict=False) for p in r.return_address_allow),
        return_srv6_allow=tuple(ipaddress.IPv6Network(p, strict=False) for p in r.return_srv6_allow),
        srv6_unavailable=endpoint.srv6_unavailable, host=host,
        session_timeout_s=r.session_timeout, max_sessions=r.max_sessions,
        accept_zero_multiplier=r.accept_zero_multiplier, answer_short_packets=not r.drop_short_packets,
        max_pps=r.max_pps, max_pps_burst=r.max_pps_burst)


@dataclass
class Reflectors:
    """A reflector service ready to start (with its --metrics and --snmp), and what its banner
    says of it."""

    settings: Settings
    service: ReflectorService
    endpoint: UdpEndpoint  # the first worker's: its address and capabilities
    clock: ClockState
    config: ReflectorConfig
    note: str | None  # why it runs one worker where more were asked for
    metrics: MetricsServer | None = None
    agent: Stoppable | None = None

    def start(self) -> None:
        """Fork the workers, then start the exporters.  The metrics port is bound first, so
        that a port in use stops everything before any worker exists; the workers close it."""
        s, service = self.settings, self.service
        if s.export.metrics:
            from .observability.http import bind
            from .observability.metrics import ReflectorCollector
            self.metrics = bind(ReflectorCollector(service), s.export.metrics_addr)
        service.start((self.metrics.sock,) if self.metrics else ())  # forks: before any thread starts
        if self.metrics:
            self.metrics.start()
        if s.export.snmp:
            from .observability.mib_values import reflector_objects
            from .observability.snmp import REFLECTOR_SUBTREE, SubAgent
            self.agent = SubAgent(s.export.snmp_socket, REFLECTOR_SUBTREE, lambda: reflector_objects(service, s),
                                  "stamp-suite reflector")
            self.agent.start()

    def shutdown(self) -> None:
        """Stop the exporters and the workers (whatever start() got to)."""
        for part in (self.agent, self.metrics):
            if part is not None:
                part.stop()
        self.service.shutdown()
        if self.metrics is not None:
            self.metrics.sock.close()


def reflector_service(s: Settings, stop: StopRequest, log: Callable[[str], None],
                      reread: Callable[[], Settings] | None = None) -> Reflectors:
    """The reflector ``stamp-suite -i`` runs: its port group (one socket per worker), the
    engine configuration, and the clock and the host's addresses read again when due;
    ``reread``: the settings as they are now (flags and file), for a reload on SIGHUP."""
    keys = load_keys(s)
    clock = read_clock_state(s.common.tai_offset)
    endpoints, why_one = open_port_group(lambda port, reuse: open_reflector_endpoint(s, port, reuse),
                                         reflector_port(s), s.reflector.workers or default_workers())
    own = LocalAddresses()
    config = reflector_config(s, clock, keys, endpoints[0], own)

    def make_watcher(engine: Reflector, log_changes: bool) -> ClockWatcher:
        return ClockWatcher(clock, lambda state: engine.update_clock(clock_description(s, state)),
                            read=lambda: read_clock_state(s.common.tai_offset), log=log if log_changes else None)

    reload = None
    if reread is not None:
        reload = (ReloadRequest().install(), ReflectorReload(s, config, reread, clock, endpoints[0], own, log))
    service = ReflectorService(config, endpoints, stop=stop, make_watcher=make_watcher, read_addresses=own.refresh,
                               print_packets=s.output.print_stats, busy_poll_us=s.reflector.busy_poll,
                               observe_processing_time=s.export.metrics, reload=reload)
    return Reflectors(s, service, endpoints[0], clock, config, why_one)


# What a reload cannot change in a running reflector: a restart can.
RESTART_ONLY = ("local_addr", "local_port", "force_ipv4", "force_ipv6", "clock_source", "auth_mode", "tai_offset",
                "clock_synchronized", "error_scale", "error_multiplier", "timestamping", "stateful_reflector",
                "workers", "busy_poll", "metrics", "metrics_addr", "snmp", "snmp_socket", "print_stats")


class ReflectorReload:
    """SIGHUP: the settings read again (flags, file, key files), checked whole and turned into
    the engine's reloadable part (RELOADABLE), or refused in one line with the running ones
    kept.  Called in the loop that applies the result, never in the signal handler."""

    def __init__(self, s: Settings, config: ReflectorConfig, reread: Callable[[], Settings], clock: ClockState,
                 endpoint: UdpEndpoint, host: LocalAddresses, log: Callable[[str], None]) -> None:
        self.started, self.config, self.reread = s, config, reread
        self.clock, self.endpoint, self.host, self.log = clock, endpoint, host, log

    def __call__(self) -> dict[str, Any] | None:
        try:
            new = self.reread()
            config = reflector_config(new, self.clock, load_keys(new), self.endpoint, self.host)
        except ConfigError as exc:
            self.log(f"reload refused, the running settings kept: {exc}")
            return None
        was, now = self.started.flat(), new.flat()
        kept = [name for name in RESTART_ONLY if was[name] != now[name]]
        changes = {f: getattr(config, f) for f in sorted(RELOADABLE) if getattr(config, f) != getattr(self.config, f)}
        self.config = dataclasses.replace(self.config, **changes)
        said = f"reloaded: {', '.join(changes) if changes else 'nothing changed'}"
        if kept:
            said += f"; {', '.join(kept)} {'changes' if len(kept) == 1 else 'change'} only at a restart"
        self.log(said)
        return changes


class ReflectorThread:
    """A Session-Reflector running in a background thread of this process (the API's
    start_reflector, the self-test)."""

    def __init__(self, s: Settings, name: str = "stamp-reflector") -> None:
        if (s.reflector.workers or 1) > 1:
            raise ConfigError("a reflector in this process runs one worker: --workers is for stamp-suite -i")
        if s.is_reflector and (s.export.metrics or s.export.snmp):  # a self-test's belong to its sender
            raise ConfigError("a reflector in this process exports nothing: --metrics and --snmp are for "
                              "stamp-suite -i")
        endpoint = open_reflector_endpoint(s, reflector_port(s))
        self.own = LocalAddresses()
        engine = Reflector(reflector_config(s, read_clock_state(s.common.tai_offset), load_keys(s), endpoint, self.own))
        self._server = ReflectorServer(engine, endpoint, read_addresses=self.own.refresh,
                                       print_packets=s.output.print_stats, busy_poll_us=s.reflector.busy_poll)
        self._thread = threading.Thread(target=self._server.serve, name=name, daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self._server.endpoint.local

    @property
    def counters(self) -> ReflectorCounters:
        return self._server.engine.counters

    def stop(self) -> None:
        self._server.stop()
        self._thread.join(2)
        self._server.endpoint.close()

    def __enter__(self) -> ReflectorThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the sender -------------------------------------------------------------------------------
def sender_tlvs(s: Settings) -> tuple[TlvValue, ...]:
    t = s.tlvs
    tlvs: list[TlvValue] = []
    if t.cos:
        tlvs.append(ClassOfService(s.sender.dscp))
    if t.location:
        tlvs.append(Location.request())
    if t.timestamp_info:
        tlvs.append(TimestampInformation())
    if t.direct_measurement:
        tlvs.append(DirectMeasurement())
    if t.follow_up_telemetry:
        tlvs.append(FollowUpTelemetry())
    if t.access_report is not None:
        tlvs.append(AccessReport(t.access_report, t.access_return_code))
    if t.dest_node_addr:
        tlvs.append(DestinationNodeAddress(ipaddress.ip_address(t.dest_node_addr)))
    rp = return_path(s)
    if rp is not None:
        tlvs.append(rp)
    if t.micro_session_id is not None:
        tlvs.append(MicroSessionId(t.micro_session_id, 0))
    return tuple(tlvs)


def return_path(s: Settings) -> ReturnPath | None:
    t = s.tlvs
    if t.return_path_cc is None and not (t.return_address or t.return_sr_mpls_labels or t.return_srv6_sids):
        return None
    rp = ReturnPath(
        control_code=t.return_path_cc,
        return_address=ipaddress.ip_address(t.return_address) if t.return_address else None,
        sr_mpls_labels=ReturnPath.label_stack(list(t.return_sr_mpls_labels)) if t.return_sr_mpls_labels else None,
        srv6_segments=tuple(ipaddress.IPv6Address(x) for x in t.return_srv6_sids) if t.return_srv6_sids else None)
    rp.validate_for_sending()
    return rp


def sender_config(s: Settings, clock: ClockState, keys: KeyStore, windows_ns: tuple[int, ...] = (),
                  skip_missed: bool = False) -> SenderConfig:
    """The engine's configuration: packets, TLVs, keys, the schedule and its timers."""
    snd, t = s.sender, s.tlvs
    ssid = snd.ssid or 0
    key = keys.key_for(ssid)
    if s.common.authenticated and key is None:
        raise ConfigError(f"no HMAC key for SSID {ssid}")
    try:
        return SenderConfig(
            authenticated=s.common.authenticated, key=key, ssid=ssid, timestamp_format=timestamp_format(s),
            tai_offset_s=clock.tai_offset_s, error_estimate=error_estimate(s, clock), tlvs=sender_tlvs(s),
            padding=snd.padding, hmac_tlv=t.hmac_tlv, timeout_ns=int(snd.timeout * NS),
            access_report_timer_ns=int(t.access_report_timer * NS), access_report_retries=t.access_report_retries,
            count=snd.count, duration_ns=int(snd.max_runtime * NS), interval_ns=max(1, int(snd.send_delay * 1e6)),
            in_flight=snd.window, report_interval_ns=int(s.output.report_interval * NS), windows_ns=windows_ns,
            skip_missed=skip_missed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def address_family(s: Settings) -> int:
    """The family a name is resolved in: -4 or -6, else that of --local-addr, else any."""
    c = s.common
    if c.force_ipv4 or c.force_ipv6:
        return socket.AF_INET if c.force_ipv4 else socket.AF_INET6
    if c.local_addr:
        return socket.AF_INET6 if ":" in c.local_addr else socket.AF_INET
    return socket.AF_UNSPEC


def sender_destination(s: Settings) -> tuple[str, int]:
    """The reflector's address and port: a name resolved now, in the family asked for."""
    try:
        return resolve(*s.sender.remote(), address_family(s))
    except NameNotResolved as exc:
        raise UnresolvedName(str(exc)) from None
    except ResolveError as exc:
        raise ConfigError(str(exc)) from None


def destination_still(s: Settings, destination: tuple[str, int]) -> bool:
    """Is ``destination`` still one of the addresses the settings' reflector has (round-robin
    DNS answers in turn: any of them keeps a running session)?"""
    host, port = s.sender.remote()
    try:
        return port == destination[1] and destination[0] in addresses(host, port, address_family(s))
    except NameNotResolved:  # the caller decides what a name without an address now means
        raise
    except (ResolveError, OSError) as exc:
        raise ConfigError(str(getattr(exc, "strerror", None) or exc)) from None


def open_sender_endpoint(s: Settings, destination: tuple[str, int], reuseport: bool = False) -> UdpEndpoint:
    """Connected to the reflector (so ICMP errors reach us), with --dscp/--ecn on every packet.
    ``reuseport``: a fixed --local-port that a session being replaced still holds (monitor)."""
    c, snd = s.common, s.sender
    host = c.local_addr or ("::" if ":" in destination[0] else "0.0.0.0")
    ep = _endpoint(s, host, c.local_port or 0, connect=destination, reuseport=reuseport)
    if snd.dscp or snd.ecn:
        ep.set_default_tos((snd.dscp << 2) | snd.ecn)
    return ep


def _check_port_free(s: Settings, destination: tuple[str, int]) -> None:
    """SocketSetupError when something holds the local address and port ``s`` sends from: a
    plain bind (no SO_REUSEPORT) fails on a port held by any socket."""
    family = socket.AF_INET6 if ":" in destination[0] else socket.AF_INET
    host = s.common.local_addr or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, s.common.local_port))
        except OSError as exc:
            raise SocketSetupError(f"local port {s.common.local_port} on {host}: {exc.strerror or exc}") from None


def open_session(s: Settings, clock: ClockState, *, name: str | None = None, windows_ns: tuple[int, ...] = (),
                 reuseport: bool = False, stats: SessionStats | None = None, skip_missed: bool = False,
                 destination: tuple[str, int] | None = None) -> tuple[Probe, SessionStats]:
    """A session ready for the driver, with its statistics (``stats``, or full ones) as the first
    consumer of its events; ``windows_ns`` and ``skip_missed``: see SenderConfig;
    ``destination``: the reflector's address resolved already (else resolved now)."""
    keys = load_keys(s)
    engine = SessionSender(sender_config(s, clock, keys, windows_ns, skip_missed))
    destination = destination or sender_destination(s)
    endpoint = open_sender_endpoint(s, destination, reuseport)
    stats = stats or SessionStats(s.sender.dscp, s.sender.ecn)
    session = Probe(name or format_address(destination), engine, endpoint, destination, [stats.on_event],
                    on_clock=lambda state: engine.update_clock(error_estimate(s, state)))
    return session, stats


def observe(s: Settings, probes: list[tuple[Probe, SessionStats]]) -> list[Stoppable]:
    """--metrics (every session on one server) and --snmp (one session's objects); returns
    what to stop at the end."""
    parts: list[Stoppable] = []
    try:
        if s.export.metrics:
            from .observability.http import serve
            from .observability.metrics import SenderMetrics
            metrics = SenderMetrics()
            for session, stats in probes:
                session.consumers.append(metrics.add_session(
                    (format_address(session.destination), str(s.sender.ssid or 0)), stats, availability_of(s)))
            parts.append(serve(metrics, s.export.metrics_addr))
        if s.export.snmp:
            from .observability.mib_values import sender_objects
            from .observability.snmp import SENDER_SUBTREE, SubAgent
            (session, stats), = probes  # the sender's MIB objects describe one session (refused before)
            local_port = session.endpoint.local[1]
            agent = SubAgent(s.export.snmp_socket, SENDER_SUBTREE,
                             lambda: sender_objects(stats, s, session.destination, local_port), "stamp-suite sender")
            agent.start()
            parts.append(agent)
    except BaseException:
        for part in parts:
            part.stop()
        raise
    return parts


def run_session(s: Settings, session: Probe, stats: SessionStats, stop: StopRequest, **options: Any) -> float:
    """Run one session to its end (or a stop); see :func:`run_sessions`."""
    return run_sessions(s, [(session, stats)], stop, **options)


def run_sessions(s: Settings, probes: list[tuple[Probe, SessionStats]], stop: StopRequest, *,
                 clock: ClockWatcher | None = None, every_second: Callable[[], None] | None = None,
                 on_start: Callable[[], None] | None = None) -> float:
    """Run sessions together in one driver (several targets: each starts a moment after the
    one before, so their sends do not all fall at once) with their exports, to their end or a
    stop, then close them; the seconds they ran.  ``on_start``: called once the exports are
    up, right before the first packet."""
    parts: list[Stoppable] = []
    try:
        parts = observe(s, probes)
        if on_start is not None:
            on_start()
        driver = SenderDriver(stop, clock)
        spread_ns = int(s.sender.send_delay * 1e6) // max(1, len(probes))
        for i, (session, _) in enumerate(probes):
            driver.add(session, i * spread_ns)
        if every_second is not None:
            driver.every(NS, every_second)
        started = time.monotonic_ns()
        try:
            driver.run()
            driver.close_all()
        finally:
            driver.close()
        return (time.monotonic_ns() - started) / NS
    finally:
        for part in parts:
            part.stop()
        for session, _ in probes:
            session.endpoint.close()


def collect(session: Probe, kinds: tuple[type, ...]) -> list[Event]:
    """The session's events of these kinds, as they come (the API keeps its samples so)."""
    events: list[Event] = []
    session.consumers.append(lambda ev: events.append(ev) if isinstance(ev, kinds) else None)
    return events


class TargetSessions:
    """The monitor's targets' sessions (monitor.service.Sessions): sending until the monitor
    stops, late sends skipped, a fixed --local-port shared with the session it replaces.
    ``resolver``: how a name becomes an address (net.resolve.resolve; a test's own)."""

    def __init__(self, resolver: Callable[[str, int, int], tuple[str, int]] = resolve) -> None:
        self.resolver = resolver

    def destination(self, s: Settings) -> tuple[str, int]:
        """The reflector's address now: NameNotResolved when the resolver has none for its name
        (the monitor retries it), ConfigError for an address that can never be used."""
        try:
            return self.resolver(*s.sender.remote(), address_family(s))
        except NameNotResolved:
            raise
        except ResolveError as exc:
            raise ConfigError(str(exc)) from None

    @staticmethod
    def open(s: Settings, clock: ClockState, name: str, windows_ns: tuple[int, ...], stats: SessionStats,
             destination: tuple[str, int], replacing: bool = False) -> Probe:
        """A fixed local port is bound shareable (SO_REUSEPORT), so that the session replacing
        this one at a reload can take it before this one stops; but only a port nothing holds
        now, or the one this ``replacing`` session's predecessor holds: sharing another
        program's port (or a reflector's) would split its replies."""
        if s.common.local_port and not replacing:
            _check_port_free(s, destination)
        return open_session(s, clock, name=name, windows_ns=windows_ns, reuseport=bool(s.common.local_port),
                            stats=stats, skip_missed=True, destination=destination)[0]

    @staticmethod
    def key(s: Settings) -> bytes | None:
        return load_keys(s).key_for(s.sender.ssid or 0)

    @staticmethod
    def still_at(s: Settings, destination: tuple[str, int]) -> bool:
        return destination_still(s, destination)
