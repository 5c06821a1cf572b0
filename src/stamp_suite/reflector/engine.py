"""The Session-Reflector as a pure state machine: ``receive(datagram, meta, now) -> replies``.

Every reflector rule of RFC 8762 §4.3 and RFC 8972 §4 lives here, and each TLV type's
in its own module of :mod:`stamp_suite.tlvs`; the socket layer only supplies what it knows of
a datagram (a :class:`PacketMeta`, or the same as arguments of :meth:`Reflector.reflect`) and
sends what comes back.  Nothing here raises on any input: a datagram is reflected, or dropped and
counted under a reason in the reflector's counter block (:mod:`.counters`).
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ..wire.auth import KeyStore, hmac16, verify16
from ..wire.packet import (AUTH_BASE_LEN, HMAC_COVERED, OPEN_BASE_LEN, REFLECTOR_AUTH, REFLECTOR_OPEN,
                           SENDER_AUTH_WITH_REPLY_MARKS, SENDER_OPEN_WITH_REPLY_MARKS)
from ..wire.timestamp import (DEFAULT_TAI_UTC_OFFSET, ErrorEstimate, TimestampFormat, from_wire, ntp_from_ns,
                              ptp_from_ns)
from ..wire.tlv import (FLAG_I, FLAG_M, FLAG_U, HEADER_LEN, MAX_TLVS, MalformedTlv, RawTlv, TlvLimitExceeded,
                        TlvType, compute_hmac_tlv, hmac_tlv_required, parse_tlvs, verify_hmac_tlv)
from ..tlvs import REGISTRY, ReflectContext, SyncSource, TimestampMethod, unmapped_address
from .counters import (DROP_SLOT, FLAG_I_SLOT, FLAG_M_SLOT, FLAG_U_SLOT, RECEIVED, RETURN_PATH_SLOT,
                       TLV_INTEGRITY_FAILURES, TLV_TYPE_BASE, DropReason, ReflectorCounters, local_block)
from .sessions import RateLimiter, Session, SessionTable

__all__ = ["ClockDescription", "DropReason", "PacketMeta", "Reflector", "ReflectorConfig", "Reply"]

_U64 = struct.Struct("!Q")
_new_tuple = tuple.__new__
_NO_NOTES: tuple[str, ...] = ()
TTL_UNKNOWN = 255  # RFC 5357 §4.2 (TWAMP): a reflector that cannot read the TTL sends 255
MIN_TWAMP_LIGHT_LEN = 14  # Sequence Number, Timestamp, Error Estimate: the least worth answering
STAMP_PORT = 862
NS = 1_000_000_000
# --max-pps counts work: a packet with up to WORK_PER_PACKET TLVs and sub-TLVs (more than any
# real test packet carries) is one packet; a heavier one counts as n / WORK_PER_PACKET.
WORK_PER_PACKET = 16
DAY_NS = 86_400 * NS


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
    tlv_mode: str = "echo"  # "echo" processes TLVs; "ignore" copies them untouched (RFC 8762 only)
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
    report_location: bool = True
    accept_zero_multiplier: bool = False  # compatibility switch for senders that send 0
    # RFC 8762 §4.6: a packet shorter than the base gets a base packet in reply.  The
    # hardened profile (--drop-short-packets) drops them instead.
    answer_short_packets: bool = True
    # A packet with a Receive Timestamp or Sender TTL set is a reply, not a test packet, and
    # is not reflected (loop guard).  This switch answers such packets unless they come from
    # a reflector port (862 or ours), for TWAMP-Light senders that pad with random octets.
    accept_nonzero_mbz: bool = False
    local_addr: str | None = None  # the address the reflector is bound to; None: the wildcard
    max_pps: float = 0.0  # per source address; 0 = no limit
    max_pps_burst: float = 0.0  # 0 = one second's worth

    def __post_init__(self) -> None:
        if self.tlv_mode not in ("echo", "ignore"):
            raise ValueError(f"tlv_mode must be echo or ignore, not {self.tlv_mode!r}")
        if self.error_estimate.timestamp_format != self.timestamp_format:
            object.__setattr__(self, "error_estimate", self.error_estimate.with_format(self.timestamp_format))

    @property
    def clock(self) -> ClockDescription:
        return ClockDescription(self.error_estimate, self.sync_source, self.tai_offset_s)


@dataclass(slots=True)
class PacketMeta:
    """What the socket layer knows about a received datagram."""

    source: tuple[str, int]
    # Destination address of the packet as the kernel reported it: text, or the packed
    # 4/16 octets (cheaper on the hot path; converted only when a TLV needs it).
    local_address: str | bytes | None = None
    local_port: int = STAMP_PORT
    ttl: int | None = None
    tos: int | None = None  # DSCP << 2 | ECN as received
    rx_timestamp_ns: int | None = None  # kernel receive time, POSIX ns
    rx_method: int = TimestampMethod.CONTROL_PLANE  # SW_LOCAL when the kernel stamped it
    local_addresses: frozenset[str] = frozenset()
    member_link_id: int | None = None


class Reply(NamedTuple):
    """A reply to send, plus where and how to send it.

    ``data`` is ready to send only after :meth:`Reflector.stamp` has written T3 (and, in
    authenticated mode, the base HMAC that covers it).  A tuple whose first four fields are
    what :meth:`UdpEndpoint.send_batch <stamp_suite.net.udp.UdpEndpoint.send_batch>` takes,
    so replies go to the socket as they are, with nothing copied per reply."""

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


class Reflector:
    """Session-Reflector engine: no sockets, no clocks; time comes in as ``now_ns``.

    ``counters`` is the block this engine counts into (one per worker; see
    :mod:`.counters`): a fresh local block when not given."""

    def __init__(self, config: ReflectorConfig | None = None, counters: memoryview | None = None) -> None:
        self.config = config = config or ReflectorConfig()
        self._c = counters if counters is not None else local_block()
        self.counters = ReflectorCounters([self._c])
        self.sessions = SessionTable(config.session_timeout_s * NS, config.max_sessions, self._c)
        self.rate_limiter = (RateLimiter(config.max_pps, config.max_pps_burst or config.max_pps,
                                         config.max_sessions or 100_000) if config.max_pps > 0 else None)
        self.internal_errors: Counter[str] = Counter()  # exception type -> count, for the log
        self.last_drop: str | None = None  # why the last packet dropped was dropped
        # The mode's layouts, chosen once: the rules read them for every packet.
        self._authenticated = auth = config.authenticated
        self._base_len = AUTH_BASE_LEN if auth else OPEN_BASE_LEN
        self._marks = SENDER_AUTH_WITH_REPLY_MARKS if auth else SENDER_OPEN_WITH_REPLY_MARKS
        self._reply_struct = REFLECTOR_AUTH if auth else REFLECTOR_OPEN
        self._ts_offset = 16 if auth else 4  # where T3 goes
        self._bound = unmapped_address(config.local_addr) if config.local_addr else None
        self.update_clock(config.clock)

    def update_clock(self, clock: ClockDescription) -> None:
        """Use a new description of the clock from the next reply on (S bit, sync source,
        error, TAI offset), e.g. when the kernel says the clock got or lost synchronisation."""
        fmt = self.config.timestamp_format
        self.clock = ClockDescription(clock.error_estimate.with_format(fmt), clock.sync_source, clock.tai_offset_s)
        self._ee = self.clock.error_estimate.to_int()
        tai = clock.tai_offset_s
        self._encode: Callable[[int], int] = (ntp_from_ns if fmt == TimestampFormat.NTP
                                              else lambda ns: ptp_from_ns(ns, tai))

    # -- entry points -----------------------------------------------------------------
    def receive(self, datagram: bytes, meta: PacketMeta, now_ns: int) -> list[Reply]:
        """Process one datagram; return the replies to send (zero or one).

        ``now_ns`` runs the timers (sessions, rate limits): a monotonic clock.  T2 is
        ``meta.rx_timestamp_ns`` (wall-clock time; ``now_ns`` when not given, as in tests)."""
        reply = self.reflect(datagram, meta.source, meta.local_address, meta.local_port, meta.ttl, meta.tos,
                             meta.rx_timestamp_ns, meta.rx_method, now_ns, meta)
        return [] if reply is None else [reply]

    def reflect(self, data: bytes, source: tuple[str, int], local_address: str | bytes | None, local_port: int,
                ttl: int | None, tos: int | None, rx_ns: int | None, rx_method: int, now_ns: int,
                meta: PacketMeta | None = None) -> Reply | None:
        """:meth:`receive` for a socket loop: what a :class:`PacketMeta` holds, as arguments, and
        the reply or None.  A PacketMeta is made only for a packet with TLVs, the
        one case whose rules read it: building one a packet was a tenth of the engine's time."""
        c = self._c
        c[RECEIVED] += 1
        try:
            reply, reason = self._reflect(data, source, local_address, local_port, ttl, tos, rx_ns, rx_method,
                                          now_ns, meta)
        except Exception as exc:  # noqa: BLE001 - the last guard: a packet never kills the reflector
            # Counted, and named for the log by the socket layer: never silent.
            c[DROP_SLOT[DropReason.INTERNAL_ERROR]] += 1
            self.internal_errors[type(exc).__name__] += 1
            self.last_drop = DropReason.INTERNAL_ERROR
            return None
        if reply is None:
            c[DROP_SLOT[reason]] += 1
            self.last_drop = reason  # for the socket loop's -R line
        return reply

    def stamp(self, reply: Reply, t3_ns: int, tx_method: int = TimestampMethod.CONTROL_PLANE) -> bytearray:
        """Write T3 (as late as possible) and, in authenticated mode, the base HMAC that
        covers it; the session remembers this reply for its next Follow-Up Telemetry."""
        self.stamp_group((reply,), t3_ns, tx_method)
        return reply.data

    def stamp_group(self, replies: Sequence[Reply], t3_ns: int,
                    tx_method: int = TimestampMethod.CONTROL_PLANE) -> None:
        """:meth:`stamp` for replies that leave together (one sendmmsg): one T3 for all."""
        t3_wire = self._encode(t3_ns)
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

    @staticmethod
    def send_failed(reply: Reply) -> None:
        """The socket could not send ``reply``: when no later reply of its session has been
        made, the session's count (and, stateful, the next reply's Sequence Number) is taken
        back; otherwise the gap stays, as for a reply lost on the way (replies that failed
        together are given back latest first, so all of them are taken back)."""
        s = reply.session
        if s.transmitted == reply.transmitted_before + 1:
            s.transmitted -= 1
        if s.last_reply_sequence == reply.sequence_number:
            s.last_reply_sequence = None

    @staticmethod
    def confirm_transmit(reply: Reply, tx_ns: int, method: int) -> None:
        """The real transmit time of a reply (kernel TX timestamp), for the next Follow-Up TLV."""
        s = reply.session
        if s.last_reply_sequence == reply.sequence_number:
            s.last_reply_tx_ns = tx_ns
            s.last_reply_tx_method = method

    # -- the rules ------------------------------------------------------------------
    def _reflect(self, data: bytes, source: tuple[str, int], local_address: str | bytes | None, local_port: int,
                 ttl: int | None, tos: int | None, rx_ns: int | None, rx_method: int, now_ns: int,
                 meta: PacketMeta | None) -> tuple[Reply | None, str | None]:
        cfg = self.config
        auth = self._authenticated
        base_len = self._base_len
        if self.rate_limiter is not None and not self.rate_limiter.allow(source[0], now_ns):
            return None, DropReason.RATE_LIMITED
        if auth and any(data[4:16]):  # MBZ in this mode; an open packet's Timestamp is there
            return None, DropReason.WRONG_MODE
        size = len(data)
        if size < base_len:
            if auth:  # it cannot carry a verifiable HMAC
                return None, DropReason.MALFORMED
            if not cfg.answer_short_packets or size < MIN_TWAMP_LIGHT_LEN:
                return None, DropReason.SHORT_PACKET
            # RFC 8762 §4.6: answer a short (TWAMP-Light) packet with a base packet; the
            # octets it lacks are taken as zero (our choice, docs/protocol.md).
            data = bytes(data) + bytes(OPEN_BASE_LEN - size)
            size = OPEN_BASE_LEN
        seq, ts, ee, ssid, reply_t2, reply_ttl = self._marks.unpack_from(data)
        if not auth and not ts and not ee and not ssid and size >= AUTH_BASE_LEN:
            # Octets 4-15 are MBZ in authenticated mode, and an open packet's Timestamp is never 0.
            return None, DropReason.WRONG_MODE
        if (reply_t2 or reply_ttl) and self._is_reply(data, source[1], local_port, rx_ns, reply_t2):
            return None, DropReason.REFLECTED_PACKET  # a reply: answering it could start a loop
        if not ee & 0xFF and not cfg.accept_zero_multiplier:
            return None, DropReason.ZERO_MULTIPLIER  # RFC 4656 §4.1.2: treat as corrupt
        if cfg.allowed_ssids is not None and ssid not in cfg.allowed_ssids:
            return None, DropReason.SSID_MISMATCH  # RFC 8972 §3: discard unmatched sessions
        key = cfg.keys.key_for(ssid) if (auth or size > base_len) else None
        if auth:
            if key is None or not verify16(key, memoryview(data)[:HMAC_COVERED], data[HMAC_COVERED:AUTH_BASE_LEN]):
                return None, DropReason.HMAC_FAILURE  # RFC 8762 §4.4: reflect only validated packets

        session = self.sessions.touch((source[0], source[1], local_address or "", local_port, ssid), now_ns)
        session.received += 1
        session.last_sender_sequence = seq
        reply_seq = session.transmitted & 0xFFFF_FFFF if cfg.stateful else seq

        destination, source_address, reply_tos, notes, follow_up, routing_header = (
            source, local_address, None, _NO_NOTES, False, None)
        tlv_area = None
        if size > base_len:
            tlv_area = bytearray(data[base_len:])
            if cfg.tlv_mode == "echo":
                if meta is None:
                    meta = PacketMeta(source, local_address, local_port, ttl, tos, rx_ns, rx_method)
                ctx = ReflectContext(cfg, self.clock, meta, session, auth)
                discard = self._process_tlvs(tlv_area, data[:4], reply_seq, key, ctx)
                if self.rate_limiter is not None and ctx.work > WORK_PER_PACKET:
                    self.rate_limiter.charge(source[0], ctx.work / WORK_PER_PACKET - 1)
                for outcome in ctx.return_path_outcomes:
                    self._c[RETURN_PATH_SLOT[outcome]] += 1
                if discard is not None:
                    return None, discard
                destination = ctx.destination or destination
                source_address = ctx.source_address or source_address
                reply_tos, notes, follow_up, routing_header = (ctx.tos, ctx.notes, ctx.follow_up_requested,
                                                               ctx.routing_header)
        if destination[1] == local_port and self._is_self(destination[0], local_address):
            return None, DropReason.REPLY_TO_SELF

        t2 = now_ns if rx_ns is None else rx_ns
        head = bytearray(self._reply_struct.pack(reply_seq, 0, self._ee, ssid, self._encode(t2), seq, ts, ee,
                                                 TTL_UNKNOWN if ttl is None else ttl))  # T3: written by stamp()
        if auth:
            head += bytes(16)  # the HMAC: written by stamp(), after T3
        if tlv_area:
            head += tlv_area
        session.transmitted += 1
        # tuple.__new__ is what Reply() calls, less a Python frame: a third of its cost.
        return _new_tuple(Reply, (head, destination, source_address, reply_tos, session, reply_seq,
                                  key if auth else None, notes, follow_up and cfg.stateful, routing_header,
                                  session.transmitted - 1)), None

    def _is_reply(self, data: bytes, source_port: int, local_port: int, rx_ns: int | None, t2_wire: int) -> bool:
        """A packet with a Receive Timestamp or Sender TTL set is a reply, unless
        --accept-nonzero-mbz: then only one from a reflector port (862 or ours), or one whose
        Receive Timestamp and copied Session-Sender Timestamp are both within a day of our
        clock, as a reflector's are (random padding lands there once in 10^9)."""
        if not self.config.accept_nonzero_mbz or source_port in (STAMP_PORT, local_port):
            return True
        if rx_ns is None:
            return False
        at = 28 if not self._authenticated else 64  # the copied Session-Sender Timestamp
        t1_wire = _U64.unpack_from(data, at)[0]
        return all(abs(_wire_to_ns(w, self.config.timestamp_format) - rx_ns) < DAY_NS for w in (t2_wire, t1_wire))

    def _is_self(self, address: str, local_address: str | bytes | None) -> bool:
        """Would a reply to ``address`` (on our own port) come back to this socket?"""
        return _same_host(address, local_address, self._bound)

    def _process_tlvs(self, area: bytearray, sequence_field: bytes, reply_seq: int, key: bytes | None,
                      ctx: ReflectContext) -> str | None:
        """RFC 8972 §4 reflector procedure on the reply's copy of the TLV area, in place.
        Returns a drop reason when the packet must not be answered."""
        cfg = self.config
        c = self._c
        parsed = parse_tlvs(area, 0, MAX_TLVS)
        if parsed.over_limit:
            return DropReason.TOO_MANY_TLVS
        tlvs = parsed.tlvs
        ctx.work += len(tlvs)
        for t in tlvs:
            c[TLV_TYPE_BASE + t.type] += 1
        has_hmac_tlv = any(t.type == TlvType.HMAC for t in tlvs)
        must_verify = cfg.authenticated or cfg.verify_tlv_hmac
        check = (must_verify and (has_hmac_tlv or hmac_tlv_required(tlvs))) or (has_hmac_tlv and key is not None)
        if check and (key is None or not verify_hmac_tlv(key, sequence_field, bytes(area), tlvs)):
            # Integrity failure: stop, copy every TLV, set I in each (RFC 8972 §4.8).
            for t in tlvs:
                area[t.offset] = (area[t.offset] | FLAG_I)
            c[FLAG_I_SLOT] += len(tlvs)
            c[TLV_INTEGRITY_FAILURES] += 1
            return None
        verified = check
        for t in tlvs:
            if t.type == TlvType.HMAC:
                area[t.offset] = 0 if verified else (t.flags | FLAG_U)
                continue
            kind = REGISTRY.get(t.type)
            if kind is None and not t.truncated:  # unknown type: U = 1, copied
                area[t.offset] = t.flags | FLAG_U
                c[FLAG_U_SLOT] += 1
                continue
            try:
                if t.truncated:
                    raise MalformedTlv("Length runs past the end of the packet")
                flags, value = kind.reflect(t, ctx)
                if len(value) != t.length:  # a rule never grows or shrinks the reply
                    raise MalformedTlv("answer does not fit")
            except TlvLimitExceeded:
                return DropReason.TOO_MANY_TLVS
            except (MalformedTlv, ValueError):
                # Malformed: set M, stop processing; the rest is already copied unchanged.
                area[t.offset] = (t.flags & ~FLAG_U) | FLAG_M
                c[FLAG_M_SLOT] += 1
                break
            area[t.offset] = flags
            area[t.offset + HEADER_LEN:t.offset + HEADER_LEN + t.length] = value
            if flags & FLAG_U:
                c[FLAG_U_SLOT] += 1
        if ctx.discard_reason is not None:
            return ctx.discard_reason
        if verified and key is not None:  # on every reply that carries one, whatever else was malformed
            self._rehmac(area, tlvs, reply_seq, key)
        return None

    @staticmethod
    def _rehmac(area: bytearray, tlvs: list[RawTlv], reply_seq: int, key: bytes) -> None:
        """The reply's HMAC TLV covers its own Sequence Number and TLVs (RFC 8972 §4.8)."""
        h = next(t for t in tlvs if t.type == TlvType.HMAC)
        mac = compute_hmac_tlv(key, reply_seq.to_bytes(4, "big"), bytes(area[:h.offset]), flags=0)
        area[h.offset:h.offset + HEADER_LEN + 16] = mac.to_bytes()


def _wire_to_ns(wire: int, fmt: TimestampFormat) -> int:
    """A timestamp off the wire in ns, near enough for a plausibility check (era and TAI offset
    do not matter at a day's tolerance)."""
    return from_wire(wire, fmt)


@functools.lru_cache(maxsize=4096)
def _same_host(address: str, local_address: str | bytes | None, bound) -> bool:
    """True when ``address`` is where this reflector listens: the address the packet came in
    on, the bound address, or (bound to the wildcard) a loopback address, which is always
    this host.  Asked only for replies to our own port number; cached, as Rust senders use
    862 as their source port too."""
    try:
        ip = unmapped_address(address)
    except ValueError:
        return False
    if local_address and ip == unmapped_address(local_address):
        return True
    if bound is not None:
        return ip == bound
    return ip.is_loopback
