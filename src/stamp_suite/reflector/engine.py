"""The Session-Reflector as a pure state machine: ``receive(datagram, meta, now) -> replies``.

Every reflector rule of RFC 8762 §4.3 and RFC 8972 §4 lives here and in
:mod:`.tlv_rules`; the socket layer only supplies :class:`PacketMeta` and sends what
comes back.  Nothing here raises on any input: a datagram is reflected, or dropped and
counted under a reason in :class:`ReflectorCounters`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..wire.auth import KeyStore, hmac16, verify16
from ..wire.packet import (AUTH_BASE_LEN, HMAC_COVERED, OPEN_BASE_LEN, REFLECTOR_AUTH, REFLECTOR_OPEN,
                           SENDER_AUTH, SENDER_OPEN)
from ..wire.timestamp import DEFAULT_TAI_UTC_OFFSET, ErrorEstimate, TimestampFormat, ntp_from_ns, ptp_from_ns
from ..wire.tlv import (FLAG_I, FLAG_M, FLAG_U, HEADER_LEN, MalformedTlv, RawTlv, TlvType, compute_hmac_tlv,
                        hmac_tlv_required, parse_tlvs, verify_hmac_tlv)
from ..wire.tlvs import SyncSource, TimestampMethod
from .sessions import RateLimiter, Session, SessionTable
from .tlv_rules import RULES, TlvContext

_U64 = struct.Struct("!Q")
_NO_NOTES: tuple[str, ...] = ()
TTL_UNKNOWN = 255
MIN_TWAMP_LIGHT_LEN = 14  # Sequence Number, Timestamp, Error Estimate: the least worth answering  # RFC 5357 §4.2 (TWAMP): a reflector that cannot read the TTL sends 255
NS = 1_000_000_000


class DropReason:
    MALFORMED = "malformed"
    ZERO_MULTIPLIER = "error_estimate_invalid"
    HMAC_FAILURE = "hmac_failure"
    SSID_MISMATCH = "ssid_mismatch"
    SHORT_PACKET = "short_packet"
    MICRO_SESSION_MISMATCH = "micro_session_mismatch"
    RETURN_PATH_NO_REPLY = "return_path_no_reply"
    RATE_LIMITED = "rate_limited"


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
    session_timeout_s: int = 300
    max_sessions: int = 100_000
    report_location: bool = True
    accept_zero_multiplier: bool = False  # compatibility switch for senders that send 0
    # RFC 8762 §4.6 TWAMP-Light interworking: answer packets shorter than the base with a
    # base packet.  Off by default so that no reply is ever larger than its request.
    answer_short_packets: bool = False
    max_pps: float = 0.0  # per source address; 0 = no limit
    max_pps_burst: float = 0.0  # 0 = one second's worth

    def __post_init__(self) -> None:
        if self.tlv_mode not in ("echo", "ignore"):
            raise ValueError(f"tlv_mode must be echo or ignore, not {self.tlv_mode!r}")
        if self.error_estimate.timestamp_format != self.timestamp_format:
            object.__setattr__(self, "error_estimate", ErrorEstimate(
                self.error_estimate.synchronized, self.timestamp_format,
                self.error_estimate.scale, self.error_estimate.multiplier))


@dataclass(slots=True)
class PacketMeta:
    """What the socket layer knows about a received datagram."""

    source: tuple[str, int]
    # Destination address of the packet as the kernel reported it: text, or the packed
    # 4/16 octets (cheaper on the hot path; converted only when a TLV needs it).
    local_address: str | bytes | None = None
    local_port: int = 862
    ttl: int | None = None
    tos: int | None = None  # DSCP << 2 | ECN as received
    rx_timestamp_ns: int | None = None  # kernel receive time, POSIX ns
    rx_method: int = TimestampMethod.CONTROL_PLANE  # SW_LOCAL when the kernel stamped it
    local_addresses: frozenset[str] = frozenset()
    member_link_id: int | None = None


@dataclass(slots=True)
class Reply:
    """A reply to send, plus where and how to send it.

    ``data`` is ready to send only after :meth:`stamp` has written T3 (and, in
    authenticated mode, the base HMAC that covers it)."""

    data: bytearray
    destination: tuple[str, int]
    source_address: str | bytes | None
    tos: int | None
    session: Session
    sequence_number: int
    timestamp_offset: int
    key: bytes | None
    notes: Sequence[str]
    _encode: Callable[[int], int]  # POSIX ns -> wire timestamp in the configured format
    # The session uses Follow-Up Telemetry: the socket layer should learn this reply's real
    # departure time (a kernel TX timestamp) and hand it back with confirm_transmit().
    want_tx_timestamp: bool = False

    def confirm_transmit(self, tx_ns: int, method: int) -> None:
        """The real transmit time of this reply, for the next Follow-Up Telemetry TLV."""
        s = self.session
        if s.last_reply_sequence == self.sequence_number:
            s.last_reply_tx_ns = tx_ns
            s.last_reply_tx_method = method

    def stamp(self, t3_ns: int, tx_method: int = TimestampMethod.CONTROL_PLANE) -> bytearray:
        """Write T3 (as late as possible) and, in authenticated mode, the base HMAC."""
        _U64.pack_into(self.data, self.timestamp_offset, self._encode(t3_ns))
        if self.key is not None:
            self.data[HMAC_COVERED:AUTH_BASE_LEN] = hmac16(self.key, memoryview(self.data)[:HMAC_COVERED])
        s = self.session
        s.last_reply_sequence = self.sequence_number
        s.last_reply_tx_ns = t3_ns
        s.last_reply_tx_method = tx_method
        return self.data


@dataclass
class ReflectorCounters:
    received: int = 0
    reflected: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    tlvs_by_type: Counter[int] = field(default_factory=Counter)
    tlv_flags_set: Counter[str] = field(default_factory=Counter)
    tlv_integrity_failures: int = 0  # packets whose TLVs failed HMAC verification (I flags set)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class Reflector:
    """Session-Reflector engine: no sockets, no clocks; time comes in as ``now_ns``."""

    def __init__(self, config: ReflectorConfig | None = None) -> None:
        self.config = config = config or ReflectorConfig()
        self.sessions = SessionTable(config.session_timeout_s * NS, config.max_sessions)
        self.counters = ReflectorCounters()
        self.rate_limiter = (RateLimiter(config.max_pps, config.max_pps_burst or config.max_pps,
                                         config.max_sessions or 100_000) if config.max_pps > 0 else None)
        self._base_len = AUTH_BASE_LEN if config.authenticated else OPEN_BASE_LEN
        self._ee = config.error_estimate.to_int()
        tai = config.tai_offset_s
        self._encode: Callable[[int], int] = (ntp_from_ns if config.timestamp_format == TimestampFormat.NTP
                                              else lambda ns: ptp_from_ns(ns, tai))

    # -- entry point ----------------------------------------------------------------
    def receive(self, datagram: bytes, meta: PacketMeta, now_ns: int) -> list[Reply]:
        """Process one datagram; return the replies to send (zero or one)."""
        self.counters.received += 1
        try:
            reply, reason = self._reflect(datagram, meta, now_ns)
        except Exception as exc:  # noqa: BLE001 - the last guard: a packet never kills the reflector
            # Counted under its own reason so a fuzzer or an operator sees it; never silent.
            self.counters.dropped[f"internal_error:{type(exc).__name__}"] += 1
            return []
        if reply is None:
            self.counters.dropped[reason or DropReason.MALFORMED] += 1
            return []
        self.counters.reflected += 1
        return [reply]

    # -- the rules ------------------------------------------------------------------
    def _reflect(self, data: bytes, meta: PacketMeta, now_ns: int) -> tuple[Reply | None, str | None]:
        cfg = self.config
        base_len = self._base_len
        if self.rate_limiter is not None and not self.rate_limiter.allow(meta.source[0], now_ns):
            return None, DropReason.RATE_LIMITED
        if len(data) < base_len:
            if cfg.authenticated:  # a short packet cannot carry a verifiable HMAC
                return None, DropReason.MALFORMED
            if not cfg.answer_short_packets or len(data) < MIN_TWAMP_LIGHT_LEN:
                return None, DropReason.SHORT_PACKET
            # RFC 8762 §4.6: answer a short (TWAMP-Light) packet with a base packet; the
            # octets it lacks are taken as zero (our choice, docs/protocol.md).
            data = bytes(data) + bytes(OPEN_BASE_LEN - len(data))
        if cfg.authenticated:
            seq, ts, ee, ssid = SENDER_AUTH.unpack_from(data)
        else:
            seq, ts, ee, ssid = SENDER_OPEN.unpack_from(data)
        if ee & 0xFF == 0 and not cfg.accept_zero_multiplier:
            return None, DropReason.ZERO_MULTIPLIER  # RFC 4656 §4.1.2: treat as corrupt
        if cfg.allowed_ssids is not None and ssid not in cfg.allowed_ssids:
            return None, DropReason.SSID_MISMATCH  # RFC 8972 §3: discard unmatched sessions
        key = cfg.keys.key_for(ssid) if (cfg.authenticated or len(data) > base_len) else None
        if cfg.authenticated:
            if key is None or not verify16(key, memoryview(data)[:HMAC_COVERED], data[HMAC_COVERED:AUTH_BASE_LEN]):
                return None, DropReason.HMAC_FAILURE  # RFC 8762 §4.4: reflect only validated packets

        session = self.sessions.touch((meta.source[0], meta.source[1], meta.local_address or "",
                                       meta.local_port, ssid), now_ns)
        session.received += 1
        session.last_sender_sequence = seq
        reply_seq = session.transmitted & 0xFFFF_FFFF if cfg.stateful else seq

        destination, source_address, tos, notes, follow_up = meta.source, meta.local_address, None, _NO_NOTES, False
        tlv_area = data[base_len:]
        if tlv_area and cfg.tlv_mode == "echo":
            tlv_area = bytearray(tlv_area)
            ctx = TlvContext(cfg, meta, session, cfg.authenticated)
            self._process_tlvs(tlv_area, data[:4], reply_seq, key, ctx)
            if ctx.discard_reason is not None:
                return None, ctx.discard_reason
            destination = ctx.destination or destination
            source_address = ctx.source_address or source_address
            tos, notes, follow_up = ctx.tos, ctx.notes, ctx.follow_up_requested

        t2 = meta.rx_timestamp_ns if meta.rx_timestamp_ns is not None else now_ns
        encode = self._encode
        fields = (reply_seq, 0, self._ee, ssid, encode(t2), seq, ts, ee,  # T3: written by Reply.stamp()
                  meta.ttl if meta.ttl is not None else TTL_UNKNOWN)
        if cfg.authenticated:
            head = bytearray(REFLECTOR_AUTH.pack(*fields)) + bytes(16)
            ts_offset = 16
        else:
            head = bytearray(REFLECTOR_OPEN.pack(*fields))
            ts_offset = 4
        session.transmitted += 1
        if tlv_area:
            head += tlv_area
        # T3, the base HMAC (which covers T3) and the session's memory of its last reply are
        # written by Reply.stamp(), once, right before the send.
        return Reply(head, destination, source_address, tos, session, reply_seq, ts_offset,
                     key if cfg.authenticated else None, notes, encode, follow_up and cfg.stateful), None

    def _process_tlvs(self, area: bytearray, sequence_field: bytes, reply_seq: int, key: bytes | None,
                      ctx: TlvContext) -> None:
        """RFC 8972 §4 reflector procedure on the reply's copy of the TLV area, in place."""
        cfg = self.config
        parsed = parse_tlvs(area)
        tlvs = parsed.tlvs
        counters = self.counters
        for t in tlvs:
            counters.tlvs_by_type[t.type] += 1
        has_hmac_tlv = any(t.type == TlvType.HMAC for t in tlvs)
        must_verify = cfg.authenticated or cfg.verify_tlv_hmac
        check = (must_verify and (has_hmac_tlv or hmac_tlv_required(tlvs))) or (has_hmac_tlv and key is not None)
        if check and (key is None or not verify_hmac_tlv(key, sequence_field, bytes(area), tlvs)):
            # Integrity failure: stop, copy every TLV, set I in each (RFC 8972 §4.8).
            for t in tlvs:
                area[t.offset] = (area[t.offset] | FLAG_I)
            counters.tlv_flags_set["I"] += len(tlvs)
            counters.tlv_integrity_failures += 1
            return
        verified = check
        for t in tlvs:
            if t.truncated:
                area[t.offset] = (t.flags & ~FLAG_U) | FLAG_M
                counters.tlv_flags_set["M"] += 1
                return  # the rest of the packet is already copied unchanged
            if t.type == TlvType.HMAC:
                area[t.offset] = 0 if verified else (t.flags | FLAG_U)
                continue
            rule = RULES.get(t.type)
            if rule is None:
                area[t.offset] = t.flags | FLAG_U
                counters.tlv_flags_set["U"] += 1
                continue
            try:
                flags, value = rule(t, ctx)
            except (MalformedTlv, ValueError):
                area[t.offset] = (t.flags & ~FLAG_U) | FLAG_M
                counters.tlv_flags_set["M"] += 1
                return
            if len(value) != t.length:  # a rule never grows or shrinks the reply
                area[t.offset] = (t.flags & ~FLAG_U) | FLAG_M
                counters.tlv_flags_set["M"] += 1
                return
            area[t.offset] = flags
            area[t.offset + HEADER_LEN:t.offset + HEADER_LEN + t.length] = value
            if flags & FLAG_U:
                counters.tlv_flags_set["U"] += 1
        if verified and key is not None:
            self._rehmac(area, tlvs, reply_seq, key)

    @staticmethod
    def _rehmac(area: bytearray, tlvs: list[RawTlv], reply_seq: int, key: bytes) -> None:
        """The reply's HMAC TLV covers its own Sequence Number and TLVs (RFC 8972 §4.8)."""
        h = next(t for t in tlvs if t.type == TlvType.HMAC)
        mac = compute_hmac_tlv(key, reply_seq.to_bytes(4, "big"), bytes(area[:h.offset]), flags=0)
        area[h.offset:h.offset + HEADER_LEN + 16] = mac.to_bytes()
