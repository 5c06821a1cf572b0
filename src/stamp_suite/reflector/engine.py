"""The Session-Reflector as a pure state machine: ``reflect(received, now)`` gives a reply to
send or the reason there is none.

Every reflector rule of RFC 8762 §4.3 is here; the RFC 8972 §4 procedure for TLVs is in
:mod:`.tlv_procedure` and each TLV type's rule in its module of :mod:`stamp_suite.tlvs`.
The engine reads no socket and no clock: a datagram comes in as the socket layer read it
(:class:`~stamp_suite.wire.datagram.Received`), time as arguments, and its own timers
(:meth:`Reflector.next_timer`, :meth:`Reflector.handle_timer`) expire sessions and say when
the clock and the host's addresses are due to be read again.  Nothing here raises on any
input: a datagram is reflected, or dropped and counted under a reason in the engine's
counter block (:mod:`.counters`).
"""

from __future__ import annotations

import bisect
import dataclasses
import ipaddress
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from ..tlvs import ReflectContext, unmapped_address
from ..tlvs.base import HostAddresses, TlvDiscard
from ..wire.auth import KeyStore, hmac16, verify16
from ..wire.datagram import Received
from ..wire.packet import (
    AUTH_BASE_LEN,
    HMAC_COVERED,
    OPEN_BASE_LEN,
    REFLECTOR_AUTH,
    REFLECTOR_OPEN,
    SENDER_AUTH_WITH_COPIED,
    SENDER_OPEN_WITH_COPIED,
    STAMP_PORT,
)
from ..wire.timestamp import (
    DEFAULT_TAI_UTC_OFFSET,
    ErrorEstimate,
    SyncSource,
    TimestampFormat,
    TimestampMethod,
    ntp_from_ns,
    ptp_from_ns,
)
from .counters import (
    DROP_SLOT,
    DROPPED_UNREAD,
    PROCESSING_BASE,
    PROCESSING_BOUNDS_NS,
    PROCESSING_SUM,
    RECEIVED,
    REFLECTED,
    RETURN_PATH_SLOT,
    SEND_ERRORS,
    DropReason,
    ReflectorCounters,
    local_block,
)
from .loop_guard import LoopTag, new_key, same_host
from .sessions import RateLimiter, Session, SessionTable
from .tlv_procedure import answer_zero_padding, is_zero_padding, process_tlvs

__all__ = ["ClockDescription", "Drop", "PacketMeta", "Reflection", "Reflector", "ReflectorConfig"]

_U64 = struct.Struct("!Q")
_new_tuple = tuple.__new__
_NO_NOTES: tuple[str, ...] = ()
TTL_UNKNOWN = 255  # RFC 5357 §4.2 (TWAMP): a reflector that cannot read the TTL sends 255
MIN_TWAMP_LIGHT_LEN = 14  # Sequence Number, Timestamp, Error Estimate: the least worth answering
NS = 1_000_000_000
# --max-pps counts work: a packet with up to WORK_PER_PACKET TLVs and sub-TLVs (more than any
# real test packet carries) is one packet; a heavier one counts as n / WORK_PER_PACKET.
WORK_PER_PACKET = 16
# The engine's timers: sessions idle past their timeout go this often; the clock state and
# the host's addresses are due to be read again this often.
EXPIRY_NS = NS
CLOCK_READ_NS = 10 * NS
ADDRESS_READ_NS = 30 * NS
DROPPED_UNREAD_READ_NS = NS
_SW_LOCAL, _CONTROL_PLANE = int(TimestampMethod.SW_LOCAL), int(TimestampMethod.CONTROL_PLANE)
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Drop = DropReason | TlvDiscard  # why a datagram got no reply


class TlvMode(StrEnum):
    ECHO = "echo"  # TLVs processed (RFC 8972)
    IGNORE = "ignore"  # TLVs copied untouched, as an RFC 8762-only reflector does


class LoopbackOnly:
    """This host's addresses as far as an engine knows without asking the system: the
    service gives the engine the system's answer (:class:`stamp_suite.net.local.LocalAddresses`)."""

    @staticmethod
    def is_local(ip: Address) -> bool:
        return ip.is_loopback

    @staticmethod
    def is_broadcast(ip: Address) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class ClockDescription:
    """What the reflector says about its clock: the Error Estimate (S bit, scale, multiplier),
    the Timestamp Information sync source and TAI - UTC for PTP timestamps.  Replaced while
    running when the kernel's clock state changes (:meth:`Reflector.update_clock`)."""

    error_estimate: ErrorEstimate = ErrorEstimate()
    sync_source: int = SyncSource.LOCAL
    tai_offset_s: int = DEFAULT_TAI_UTC_OFFSET


@dataclass(frozen=True)
class ReflectorConfig:
    authenticated: bool = False
    keys: KeyStore = field(default_factory=KeyStore)
    stateful: bool = False
    tlv_mode: TlvMode = TlvMode.ECHO
    verify_tlv_hmac: bool = False
    timestamp_format: TimestampFormat = TimestampFormat.NTP
    tai_offset_s: int = DEFAULT_TAI_UTC_OFFSET
    error_estimate: ErrorEstimate = ErrorEstimate()
    sync_source: int = SyncSource.LOCAL
    cos_allowed_dscp: frozenset[int] | None = None  # None: every DSCP1 is permitted
    member_link_id: int | None = None
    allowed_ssids: frozenset[int] | None = None  # None: any SSID (open service)
    return_address_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    return_srv6_allow: tuple[ipaddress.IPv6Network, ...] = ()  # SIDs a Return Path segment list may name
    # Why replies cannot carry a Segment Routing Header here (the socket layer says: see
    # UdpEndpoint.srv6_unavailable); None when they can.
    srv6_unavailable: str | None = "no socket able to send a Segment Routing Header was given"
    session_timeout_s: int = 300
    max_sessions: int = 100_000  # this engine's share of the reflector's --max-sessions
    accept_zero_multiplier: bool = False  # compatibility switch for senders that send 0
    # RFC 8762 §4.6: a packet shorter than the base gets a base packet in reply.  The
    # hardened profile (--drop-short-packets) drops them instead.
    answer_short_packets: bool = True
    local_addr: str | None = None  # the address the reflector is bound to; None: the wildcard
    local_port: int = STAMP_PORT  # the port it listens on
    # Is an address one of this host's own?  A reply to one on our own port would come back
    # to this socket (reply_to_self), and no Return Address may name one there.
    host: HostAddresses = LoopbackOnly()
    # The key of the tag our T3s carry, to recognise them when a loop brings them back
    # (loop_guard.py): one per reflector, shared by its workers (made with the config).
    loop_tag_key: int = field(default_factory=new_key, repr=False)
    max_pps: float = 0.0  # per source address; 0 = no limit
    max_pps_burst: float = 0.0  # 0 = one second's worth
    clock_read_ns: int = CLOCK_READ_NS  # the clock state is due to be read again this often

    def __post_init__(self) -> None:
        if self.error_estimate.timestamp_format != self.timestamp_format:
            object.__setattr__(self, "error_estimate", self.error_estimate.with_format(self.timestamp_format))

    @property
    def clock(self) -> ClockDescription:
        return ClockDescription(self.error_estimate, self.sync_source, self.tai_offset_s)


@dataclass(slots=True)
class PacketMeta:
    """What the TLV rules read of a received packet (made only for a packet with TLVs)."""

    source: tuple[str, int]
    # Destination address of the packet as the kernel reported it: text, or the packed
    # 4/16 octets (converted only when a TLV needs it).
    local_address: str | bytes | None = None
    local_port: int = STAMP_PORT
    ttl: int | None = None
    tos: int | None = None  # DSCP << 2 | ECN as received
    rx_method: int = _CONTROL_PLANE  # SW_LOCAL when the kernel stamped it


class Reflection(NamedTuple):
    """A reply to send, plus where and how to send it.

    ``data`` is ready to send only after :meth:`Reflector.stamp` has written T3 (and, in
    authenticated mode, the base HMAC that covers it).  Its first four fields are those of a
    :class:`~stamp_suite.wire.datagram.Outgoing`, so replies go to the socket as they are."""

    data: bytearray
    destination: tuple[str, int]
    source_address: str | bytes | None
    tos: int | None
    session: Session
    sequence_number: int
    key: bytes | None
    notes: Sequence[str]
    # The session uses Follow-Up Telemetry: the socket layer should learn this reply's real
    # departure time (a kernel TX timestamp) and hand it to Reflector.confirm_transmit().
    want_tx_timestamp: bool = False
    routing_header: bytes | None = None  # an SRv6 Return Path: the SRH the reply must carry
    transmitted_before: int = 0  # the session's count of replies before this one


@dataclass(frozen=True, slots=True)
class ReadClock:
    """Timer event: the clock state is due to be read again (:meth:`Reflector.update_clock`)."""


@dataclass(frozen=True, slots=True)
class ReadAddresses:
    """Timer event: the host's addresses are due to be read again (the loop guards' view)."""


@dataclass(frozen=True, slots=True)
class ReadDroppedUnread:
    """Timer event: the socket's count of datagrams dropped unread is due to be read again
    (:meth:`Reflector.dropped_unread`)."""


@dataclass(frozen=True, slots=True)
class InternalError:
    """Timer event: a packet raised ``name`` inside the engine (first time of that kind): it
    was dropped and counted as internal_error; worth a line in the log."""

    name: str


TimerEvent = ReadClock | ReadAddresses | ReadDroppedUnread | InternalError


# What a reload (SIGHUP) may change in a running engine; the rest (the port, the mode, the
# timestamp format, the worker count) needs a restart.
RELOADABLE = frozenset({
    "keys", "verify_tlv_hmac", "tlv_mode", "cos_allowed_dscp", "member_link_id", "allowed_ssids",
    "return_address_allow", "return_srv6_allow", "session_timeout_s", "max_sessions", "accept_zero_multiplier",
    "answer_short_packets", "max_pps", "max_pps_burst"})


def _rate_limiter(config: ReflectorConfig) -> RateLimiter | None:
    if config.max_pps <= 0:
        return None
    return RateLimiter(config.max_pps, config.max_pps_burst or config.max_pps, config.max_sessions or 100_000)

class Reflector:
    """Session-Reflector engine: no sockets, no clocks; time comes in as arguments.

    ``counters`` is the block this engine counts into (one per worker; see
    :mod:`.counters`): a fresh local block when not given."""

    def __init__(self, config: ReflectorConfig | None = None, counters: memoryview | None = None) -> None:
        self.config = config = config or ReflectorConfig()
        self._c = counters if counters is not None else local_block()
        self.counters = ReflectorCounters([self._c])
        self._sessions = SessionTable(config.session_timeout_s * NS, config.max_sessions, self._c)
        self.rate_limiter = _rate_limiter(config)
        self._errors_seen: set[str] = set()
        self._new_errors: list[str] = []
        self._timers: dict[type, int] | None = None  # kind of timer -> when due (monotonic ns)
        self._dropped_unread_count = 0  # the socket's count when last read (dropped_unread)
        # The mode's layouts, chosen once: the rules read them for every packet.
        self._authenticated = auth = config.authenticated
        self._integrity_required = auth or config.verify_tlv_hmac
        self._base_len = AUTH_BASE_LEN if auth else OPEN_BASE_LEN
        self._fields = SENDER_AUTH_WITH_COPIED if auth else SENDER_OPEN_WITH_COPIED
        self._reply_struct = REFLECTOR_AUTH if auth else REFLECTOR_OPEN
        self._ts_offset = 16 if auth else 4  # where T3 goes
        self._local_port = config.local_port
        self._bound = unmapped_address(config.local_addr) if config.local_addr else None
        if self._bound is not None and self._bound.is_unspecified:
            self._bound = None
        self._loop_tag = LoopTag(config.loop_tag_key, config.timestamp_format == TimestampFormat.PTP)
        self.update_clock(config.clock)

    def reconfigure(self, **policy: Any) -> None:
        """New values of the settings a reload may change (:data:`RELOADABLE`: keys, the
        allow-lists, the limits), from the next packet on; the sessions are kept."""
        unknown = set(policy) - RELOADABLE
        if unknown:
            raise ValueError(f"not reloadable: {', '.join(sorted(unknown))}")
        previous = self.config
        self.config = cfg = dataclasses.replace(previous, **policy)
        self._integrity_required = cfg.authenticated or cfg.verify_tlv_hmac
        self._sessions.idle_timeout_ns = cfg.session_timeout_s * NS
        self._sessions.max_sessions = cfg.max_sessions
        if (cfg.max_pps, cfg.max_pps_burst) != (previous.max_pps, previous.max_pps_burst):
            self.rate_limiter = _rate_limiter(cfg)

    def update_clock(self, clock: ClockDescription) -> None:
        """Use a new description of the clock from the next reply on (S bit, sync source,
        error, TAI offset), e.g. when the kernel says the clock got or lost synchronisation."""
        fmt = self.config.timestamp_format
        previous_ee = getattr(self, "_ee", None)
        self.clock = ClockDescription(clock.error_estimate.with_format(fmt), clock.sync_source, clock.tai_offset_s)
        self._ee = self.clock.error_estimate.to_int()
        # A loop brings back a T3 with the Error Estimate it left with: the one before this
        # change too, for replies still on their way.
        self._own_ees = frozenset({self._ee} if previous_ee is None else {self._ee, previous_ee})
        tai = clock.tai_offset_s
        self._encode: Callable[[int], int] = (ntp_from_ns if fmt == TimestampFormat.NTP
                                              else lambda ns: ptp_from_ns(ns, tai))

    # -- packets ------------------------------------------------------------------------
    def reflect(self, received: Received, now_ns: int) -> Reflection | Drop:
        """The reply to one datagram, or why there is none (a :data:`Drop`, counted).

        ``now_ns`` (monotonic) runs the rate limit and the sessions' idle time; T2 is the
        kernel's receive time, or the clock read right after the datagram was read."""
        c = self._c
        c[RECEIVED] += 1
        try:
            result = self._reflect(received, now_ns)
        except Exception as exc:  # noqa: BLE001 - the last guard: a packet never kills the reflector
            name = type(exc).__name__  # counted, and named once in the log (InternalError)
            if name not in self._errors_seen:
                self._errors_seen.add(name)
                self._new_errors.append(name)
            result = DropReason.INTERNAL_ERROR
        if result.__class__ is not Reflection:
            c[DROP_SLOT[result]] += 1
        return result

    def stamp(self, replies: Sequence[Reflection], t3_ns: int, tx_method: int = _CONTROL_PLANE) -> None:
        """Write T3 into replies that leave together (one T3 for all, with our loop tag in its
        lowest bits: loop_guard.py) and, in authenticated mode, the base HMAC that covers it;
        count them as reflected (:meth:`send_failed` takes one back); each session remembers
        its reply for its next Follow-Up Telemetry."""
        t3_wire = self._loop_tag.mark(self._encode(t3_ns))
        at = self._ts_offset
        for reply in replies:
            data = reply.data
            _U64.pack_into(data, at, t3_wire)
            if reply.key is not None:
                data[HMAC_COVERED:AUTH_BASE_LEN] = hmac16(reply.key, memoryview(data)[:HMAC_COVERED])
            s = reply.session
            s.last_reply_sequence = reply.sequence_number
            s.last_reply_tx_ns = t3_ns
            s.last_reply_tx_method = tx_method
        self._c[REFLECTED] += len(replies)

    def send_failed(self, reply: Reflection) -> None:
        """The socket could not send ``reply``: counted as a send error, not reflected; when no
        later reply of its session has been made, the session's count (and, stateful, the next
        reply's Sequence Number) is taken back; otherwise the gap stays, as for a reply lost on
        the way (replies that failed together are given back latest first, so all of them are)."""
        c = self._c
        c[REFLECTED] -= 1
        c[SEND_ERRORS] += 1
        s = reply.session
        if s.transmitted == reply.transmitted_before + 1:
            s.transmitted -= 1
        if s.last_reply_sequence == reply.sequence_number:
            s.last_reply_sequence = None

    @staticmethod
    def confirm_transmit(reply: Reflection, tx_ns: int, method: int) -> None:
        """The real transmit time of a reply (kernel TX timestamp), for the next Follow-Up TLV."""
        s = reply.session
        if s.last_reply_sequence == reply.sequence_number:
            s.last_reply_tx_ns = tx_ns
            s.last_reply_tx_method = method

    def dropped_unread(self, count: int) -> int:
        """The kernel's 32-bit count of datagrams it dropped at this engine's socket before they
        were read, since it was opened (UdpEndpoint.dropped_unread): they reached this host but
        never the reflector (its receive buffer was full).  Counted; returns how many are new."""
        previous = self._dropped_unread_count
        self._dropped_unread_count = count
        new = (count - previous) & 0xFFFF_FFFF  # (a count that wrapped)
        self._c[DROPPED_UNREAD] += new
        return new

    def observe_processing(self, ns: int) -> None:
        """Time from reading a datagram to having sent its reply, into the histogram slots."""
        c = self._c
        c[PROCESSING_BASE + bisect.bisect_left(PROCESSING_BOUNDS_NS, ns)] += 1
        c[PROCESSING_SUM] += ns

    # -- timers -------------------------------------------------------------------------
    def next_timer(self, now_ns: int) -> int:
        """When :meth:`handle_timer` is next due (monotonic ns)."""
        if self._timers is None:
            self._timers = {SessionTable: now_ns + EXPIRY_NS, ReadClock: now_ns + self.config.clock_read_ns,
                            ReadAddresses: now_ns + ADDRESS_READ_NS, ReadDroppedUnread: now_ns + DROPPED_UNREAD_READ_NS}
        return min(self._timers.values())

    def handle_timer(self, now_ns: int) -> list[TimerEvent]:
        """Expire idle sessions; say what is due (clock, addresses) and new internal errors."""
        due = self._timers
        if due is None:  # called before next_timer: every session check is due now
            self.next_timer(now_ns)
            due = self._timers
            due[SessionTable] = now_ns
        events: list[TimerEvent] = [InternalError(name) for name in self._new_errors]
        self._new_errors.clear()
        if now_ns >= due[SessionTable]:
            due[SessionTable] = now_ns + EXPIRY_NS
            self._sessions.expire(now_ns)
        for kind, period in ((ReadClock, self.config.clock_read_ns), (ReadAddresses, ADDRESS_READ_NS),
                             (ReadDroppedUnread, DROPPED_UNREAD_READ_NS)):
            if now_ns >= due[kind]:
                due[kind] = now_ns + period
                events.append(kind())
        return events

    # -- reading ------------------------------------------------------------------------
    def sessions(self) -> Iterator[Session]:
        """The sessions now (a copy: the caller may hold it while packets come)."""
        return iter(self._sessions)

    # -- the rules ----------------------------------------------------------------------
    def _reflect(self, received: Received, now_ns: int) -> Reflection | Drop:
        data, source, ttl, tos, local_address, kernel_ns, user_ns, truncated = received
        if truncated:  # never reflect a partial copy
            return DropReason.TRUNCATED
        cfg = self.config
        auth = self._authenticated
        base_len = self._base_len
        if self.rate_limiter is not None and not self.rate_limiter.allow(source[0], now_ns):
            return DropReason.RATE_LIMITED
        size = len(data)
        if size < base_len:
            if auth:  # it cannot carry a verifiable HMAC; a Timestamp in octets 4-15: an open packet
                return DropReason.WRONG_MODE if any(data[4:16]) else DropReason.MALFORMED
            if not cfg.answer_short_packets or size < MIN_TWAMP_LIGHT_LEN:
                return DropReason.SHORT_PACKET
            # RFC 8762 §4.6: answer a short (TWAMP-Light) packet with a base packet; the
            # octets it lacks are taken as zero (our choice, docs/protocol.md).
            data = bytes(data) + bytes(OPEN_BASE_LEN - size)
            size = OPEN_BASE_LEN
        # MBZ octets are ignored on receipt (RFC 8762 §4.2.1): only two of them are read, as
        # the place where a reflector that answered one of our replies copied our T3.
        seq, ts, ee, ssid, copied_ts, copied_ee = self._fields.unpack_from(data)
        if not auth and not ts and not ee and not ssid and size >= AUTH_BASE_LEN:
            # An open packet's Timestamp is never 0, nor its Error Estimate: an authenticated
            # packet, whose octets 4-15 are MBZ (and not to be answered in open mode anyway).
            return DropReason.WRONG_MODE
        if kernel_ns is None:
            t2, rx_method = user_ns, _CONTROL_PLANE
        else:
            t2, rx_method = kernel_ns, _SW_LOCAL
        t2_wire = self._encode(t2)
        if copied_ee in self._own_ees and self._loop_tag.is_ours(copied_ts, t2_wire >> 32):
            return DropReason.REFLECTED_PACKET  # one of our replies, sent back: a loop
        if cfg.allowed_ssids is not None and ssid not in cfg.allowed_ssids:
            return DropReason.SSID_MISMATCH  # RFC 8972 §3: discard unmatched sessions
        key = cfg.keys.key_for(ssid) if (auth or size > base_len) else None
        if auth:
            if key is None or not verify16(key, memoryview(data)[:HMAC_COVERED], data[HMAC_COVERED:AUTH_BASE_LEN]):
                # RFC 8762 §4.4: reflect only validated packets.  Said as wrong_mode when it is
                # most likely an open packet (a Timestamp where this mode has MBZ octets).
                return DropReason.WRONG_MODE if any(data[4:16]) else DropReason.HMAC_FAILURE
        if not ee & 0xFF and not cfg.accept_zero_multiplier:
            return DropReason.ERROR_ESTIMATE_INVALID  # RFC 4656 §4.1.2: treat as corrupt

        local_port = self._local_port
        session = self._sessions.touch((source[0], source[1], local_address or "", local_port, ssid), now_ns)
        session.received += 1
        session.last_sender_sequence = seq
        reply_seq = session.transmitted & 0xFFFF_FFFF if cfg.stateful else seq

        destination, source_address, reply_tos, notes, follow_up, routing_header = (
            source, local_address, None, _NO_NOTES, False, None)
        tlv_area: bytes | bytearray | memoryview = b""  # the reply's TLVs
        if size > base_len:
            tlv_area = memoryview(data)[base_len:]
            if cfg.tlv_mode is TlvMode.IGNORE:
                pass  # copied untouched, as an RFC 8762-only reflector does
            elif is_zero_padding(tlv_area):  # answered without parsing (docs/protocol.md)
                tlv_area = answer_zero_padding(len(tlv_area), self._c, self._integrity_required)
            else:
                tlv_area = bytearray(tlv_area)
                meta = PacketMeta(source, local_address, local_port, ttl, tos, rx_method)
                ctx = ReflectContext(cfg, self.clock, meta, session, auth)
                discard = process_tlvs(tlv_area, data[:4], reply_seq, key, self._integrity_required, ctx, self._c)
                if self.rate_limiter is not None and ctx.work > WORK_PER_PACKET:
                    self.rate_limiter.charge(source[0], ctx.work / WORK_PER_PACKET - 1)
                for outcome in ctx.return_path_outcomes:
                    self._c[RETURN_PATH_SLOT[outcome]] += 1
                if discard is not None:
                    return discard
                destination = ctx.destination or destination
                source_address = ctx.source_address or source_address
                reply_tos, notes, follow_up, routing_header = (ctx.tos, ctx.notes, ctx.follow_up_requested,
                                                               ctx.routing_header)
        if destination[1] == local_port and same_host(destination[0], local_address, self._bound, cfg.host):
            return DropReason.REPLY_TO_SELF
        if not session.index:  # answered: now it is a session
            self._sessions.admit(session, now_ns)

        head = bytearray(self._reply_struct.pack(reply_seq, 0, self._ee, ssid, t2_wire, seq, ts, ee,
                                                 TTL_UNKNOWN if ttl is None else ttl))  # T3: written by stamp()
        if auth:
            head += bytes(16)  # the HMAC: written by stamp(), after T3
        if tlv_area:
            head += tlv_area
        session.transmitted += 1
        # tuple.__new__ is what Reflection() calls, less a Python frame: a third of its cost.
        return _new_tuple(Reflection, (head, destination, source_address, reply_tos, session, reply_seq,
                                       key if auth else None, notes, follow_up and cfg.stateful, routing_header,
                                       session.transmitted - 1))
