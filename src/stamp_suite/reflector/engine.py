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
                           SENDER_AUTH_WITH_COPIED, SENDER_OPEN_WITH_COPIED)
from ..wire.timestamp import DEFAULT_TAI_UTC_OFFSET, ErrorEstimate, TimestampFormat, ntp_from_ns, ptp_from_ns
from ..wire.tlv import (FLAG_I, FLAG_M, FLAG_U, HEADER_LEN, MAX_TLVS, MalformedTlv, RawTlv, TlvLimitExceeded,
                        TlvType, compute_hmac_tlv, hmac_tlv_required, parse_tlvs, verify_hmac_tlv)
from ..tlvs import REGISTRY, ReflectContext, SyncSource, TimestampMethod, unmapped_address
from .counters import (DROP_SLOT, FLAG_I_SLOT, FLAG_M_SLOT, FLAG_U_SLOT, RECEIVED, RETURN_PATH_SLOT,
                       TLV_INTEGRITY_FAILURES, TLV_TYPE_BASE, DropReason, ReflectorCounters, local_block)
from .loop_guard import LoopTag, new_key
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
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def loopback_only(ip: Address) -> bool:
    """The host's own addresses as far as an engine knows without asking the system: the
    service gives the engine the system's answer (:class:`stamp_suite.net.local.LocalAddresses`)."""
    return ip.is_loopback


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
    local_addr: str | None = None  # the address the reflector is bound to; None: the wildcard
    # Is an address one of this host's own?  A reply to one on our own port would come back
    # to this socket (reply_to_self), and no Return Address may name one there.
    own_address: Callable[[Address], bool] = loopback_only
    # The key of the tag our T3s carry, to recognise them when a loop brings them back
    # (loop_guard.py): one per reflector, shared by its workers (made with the config).
    loop_tag_key: int = field(default_factory=new_key, repr=False)
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
        self._fields = SENDER_AUTH_WITH_COPIED if auth else SENDER_OPEN_WITH_COPIED
        self._reply_struct = REFLECTOR_AUTH if auth else REFLECTOR_OPEN
        self._ts_offset = 16 if auth else 4  # where T3 goes
        self._bound = unmapped_address(config.local_addr) if config.local_addr else None
        if self._bound is not None and self._bound.is_unspecified:
            self._bound = None
        self._loop_tag = LoopTag(config.loop_tag_key, config.timestamp_format == TimestampFormat.PTP)
        self.update_clock(config.clock)

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
        """:meth:`stamp` for replies that leave together (one sendmmsg): one T3 for all, with
        our loop tag in its lowest bits (loop_guard.py)."""
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
        size = len(data)
        if size < base_len:
            if auth:  # it cannot carry a verifiable HMAC; a Timestamp in octets 4-15: an open packet
                return None, DropReason.WRONG_MODE if any(data[4:16]) else DropReason.MALFORMED
            if not cfg.answer_short_packets or size < MIN_TWAMP_LIGHT_LEN:
                return None, DropReason.SHORT_PACKET
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
            return None, DropReason.WRONG_MODE
        t2 = now_ns if rx_ns is None else rx_ns
        t2_wire = self._encode(t2)
        if copied_ee in self._own_ees and self._loop_tag.is_ours(copied_ts, t2_wire >> 32):
            return None, DropReason.REFLECTED_PACKET  # one of our replies, sent back: a loop
        if cfg.allowed_ssids is not None and ssid not in cfg.allowed_ssids:
            return None, DropReason.SSID_MISMATCH  # RFC 8972 §3: discard unmatched sessions
        key = cfg.keys.key_for(ssid) if (auth or size > base_len) else None
        if auth:
            if key is None or not verify16(key, memoryview(data)[:HMAC_COVERED], data[HMAC_COVERED:AUTH_BASE_LEN]):
                # RFC 8762 §4.4: reflect only validated packets.  Said as wrong_mode when it is
                # most likely an open packet (a Timestamp where this mode has MBZ octets).
                return None, DropReason.WRONG_MODE if any(data[4:16]) else DropReason.HMAC_FAILURE
        if not ee & 0xFF and not cfg.accept_zero_multiplier:
            return None, DropReason.ZERO_MULTIPLIER  # RFC 4656 §4.1.2: treat as corrupt

        session = self.sessions.touch((source[0], source[1], local_address or "", local_port, ssid), now_ns)
        session.received += 1
        session.last_sender_sequence = seq
        reply_seq = session.transmitted & 0xFFFF_FFFF if cfg.stateful else seq

        destination, source_address, reply_tos, notes, follow_up, routing_header = (
            source, local_address, None, _NO_NOTES, False, None)
        tlv_area = None
        if size > base_len:
            tlv_area = bytearray(data[base_len:])
            if cfg.tlv_mode == "ignore":
                pass  # copied untouched, as an RFC 8762-only reflector does
            elif _ZEROS.startswith(tlv_area):  # zero padding only: flagged without parsing (docs/protocol.md)
                self._answer_zero_padding(tlv_area)
            else:
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

        head = bytearray(self._reply_struct.pack(reply_seq, 0, self._ee, ssid, t2_wire, seq, ts, ee,
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

    def _is_self(self, address: str, local_address: str | bytes | None) -> bool:
        """Would a reply to ``address`` (on our own port) come back to this socket?"""
        return _same_host(address, local_address, self._bound, self.config.own_address)

    def _answer_zero_padding(self, area: bytearray) -> None:
        """A TLV area of zeros only: what :meth:`_process_tlvs` makes of it (empty TLVs of the
        Reserved Type 0, each U = 1; with I too where an HMAC TLV is required), without
        parsing it."""
        c = self._c
        count = len(area) // HEADER_LEN
        integrity = self.config.authenticated or self.config.verify_tlv_hmac
        _flag_run(area, 0, count, FLAG_I | FLAG_U if integrity else FLAG_U)
        c[TLV_TYPE_BASE + TlvType.RESERVED] += count
        c[FLAG_U_SLOT] += count if not integrity else 0
        if integrity:
            c[FLAG_I_SLOT] += count
            c[TLV_INTEGRITY_FAILURES] += 1

    def _process_tlvs(self, area: bytearray, sequence_field: bytes, reply_seq: int, key: bytes | None,
                      ctx: ReflectContext) -> str | None:
        """RFC 8972 §4 reflector procedure on the reply's copy of the TLV area, in place.
        Returns a drop reason when the packet must not be answered.

        The reply's flags of every TLV looked at are U, M and I as found here, the R bits
        zero; the remainder after a malformed TLV is copied unchanged (RFC 8972 §4)."""
        cfg = self.config
        c = self._c
        parsed = parse_tlvs(area, 0, MAX_TLVS)
        if parsed.over_limit:
            return DropReason.TOO_MANY_TLVS
        tlvs = parsed.tlvs
        ctx.work += len(tlvs)
        for t in tlvs:
            c[TLV_TYPE_BASE + t.type] += t.count
        has_hmac_tlv = any(t.type == TlvType.HMAC for t in tlvs)
        # RFC 8972 §4.8: an HMAC TLV is verified before any TLV data is used.  One this
        # reflector cannot verify (no key for the session) fails like a wrong one: nothing
        # under it is used, so it can change neither the reply's path, its TOS nor whether
        # there is a reply (docs/protocol.md).
        check = has_hmac_tlv or ((cfg.authenticated or cfg.verify_tlv_hmac) and hmac_tlv_required(tlvs))
        if check and (key is None or not verify_hmac_tlv(key, sequence_field, bytes(area), tlvs)):
            # Integrity failure: stop, copy every TLV, set I in each (and U in each not understood).
            for t in tlvs:
                _set_flags(area, t, FLAG_I if t.type in REGISTRY else FLAG_I | FLAG_U)
            c[FLAG_I_SLOT] += sum(t.count for t in tlvs)
            c[TLV_INTEGRITY_FAILURES] += 1
            return None
        for t in tlvs:
            if t.type == TlvType.HMAC:  # verified above; its Value is made anew for the reply
                area[t.offset] = 0
                continue
            kind = REGISTRY.get(t.type)
            if kind is None and not t.truncated:  # an unknown type (zero padding among them): U = 1
                _set_flags(area, t, FLAG_U)
                c[FLAG_U_SLOT] += t.count
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
                # Malformed: set M (and U if not understood), stop processing; what follows is
                # already copied unchanged.  Some types say what to zero (Follow-Up Telemetry).
                area[t.offset] = FLAG_M if kind is not None else FLAG_M | FLAG_U
                if kind is not None:
                    start = t.offset + HEADER_LEN
                    area[start:start + len(t.value)] = kind.malformed_value(t.value)
                c[FLAG_M_SLOT] += 1
                break
            flags &= FLAG_U  # a rule says only whether it processed the TLV
            area[t.offset] = flags
            area[t.offset + HEADER_LEN:t.offset + HEADER_LEN + t.length] = value
            if flags:
                c[FLAG_U_SLOT] += 1
        if ctx.discard_reason is not None:
            return ctx.discard_reason
        if check and key is not None:  # on every reply that carries one, whatever else was malformed
            self._rehmac(area, tlvs, reply_seq, key)
        return None

    @staticmethod
    def _rehmac(area: bytearray, tlvs: list[RawTlv], reply_seq: int, key: bytes) -> None:
        """The reply's HMAC TLV covers its own Sequence Number and TLVs (RFC 8972 §4.8)."""
        h = next(t for t in tlvs if t.type == TlvType.HMAC)
        mac = compute_hmac_tlv(key, reply_seq.to_bytes(4, "big"), bytes(area[:h.offset]), flags=0)
        area[h.offset:h.offset + HEADER_LEN + 16] = mac.to_bytes()


def _set_flags(area: bytearray, tlv: RawTlv, flags: int) -> None:
    """Write ``flags`` into a TLV's header, or into every header of a run of zero padding."""
    if tlv.count == 1:
        area[tlv.offset] = flags
    else:
        _flag_run(area, tlv.offset, tlv.count, flags)


def _flag_run(area: bytearray, offset: int, count: int, flags: int) -> None:
    """A run of ``count`` empty Type 0 TLVs at ``offset`` becomes ``flags 00 00 00`` repeated:
    one copy from a pattern made once per value."""
    pattern = _RUN_PATTERNS.get(flags)
    if pattern is None:
        pattern = _RUN_PATTERNS[flags] = memoryview(bytes((flags, 0, 0, 0)) * (1 << 14))  # > any datagram
    area[offset:offset + count * HEADER_LEN] = pattern[:count * HEADER_LEN]


_RUN_PATTERNS: dict[int, memoryview] = {}
_ZEROS = bytes(1 << 16)  # longer than any datagram


_unmapped = functools.lru_cache(maxsize=4096)(unmapped_address)  # Rust senders send from 862 too


def _same_host(address: str, local_address: str | bytes | None, bound: Address | None,
               own_address: Callable[[Address], bool]) -> bool:
    """True when ``address`` is where this reflector listens: the unspecified address (which
    reaches this host), the address the packet came in on, the bound address, or (bound to
    the wildcard) any address of this host.  Asked only for replies to our own port number."""
    try:
        ip = _unmapped(address)
    except ValueError:
        return False
    if ip.is_unspecified:
        return True
    if local_address and ip == _unmapped(local_address):
        return True
    if bound is not None:
        return ip == bound
    return ip.is_loopback or own_address(ip)
