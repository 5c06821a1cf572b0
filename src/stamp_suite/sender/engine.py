"""The Session-Sender as a pure state machine.

``prepare(seq)`` builds a test packet whose T1 is written by ``Outgoing.stamp(t1_ns)``
right before it leaves; ``receive(datagram, rx)`` matches a reply to what was sent and
returns one :class:`ReplyEvent`: a sample, or the reason it is not one (duplicate,
foreign, malformed, HMAC failure, micro-session mismatch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..wire.auth import hmac16, verify16
from ..wire.packet import (AUTH_BASE_LEN, HMAC_COVERED, MalformedPacket, ReflectorPacket, SENDER_AUTH,
                           SENDER_OPEN)
from ..wire.timestamp import DEFAULT_TAI_UTC_OFFSET, ErrorEstimate, TimestampFormat, from_wire, to_wire
from ..wire.tlv import (FLAG_I, FLAG_M, FLAG_U, MalformedTlv, RawTlv, TlvType, TlvValue, build_tlvs,
                        compute_hmac_tlv, decode, parse_tlvs, verify_hmac_tlv)
from ..wire.tlvs import (AccessReport, ClassOfService, DestinationNodeAddress, DirectMeasurement, ExtraPadding,
                         FollowUpTelemetry, Location, MicroSessionId, ReturnPath, TimestampInformation)

U32 = 0xFFFF_FFFF


@dataclass(frozen=True)
class SenderConfig:
    authenticated: bool = False
    key: bytes | None = None
    ssid: int = 0
    timestamp_format: TimestampFormat = TimestampFormat.NTP
    tai_offset_s: int = DEFAULT_TAI_UTC_OFFSET
    error_estimate: ErrorEstimate = ErrorEstimate()
    tlvs: tuple[TlvValue, ...] = ()  # request TLVs, in order
    padding: int = 0  # Extra Padding Value length, 0 for none
    hmac_tlv: bool = False  # add an HMAC TLV in open mode (always added in authenticated mode)
    timeout_ns: int = 5_000_000_000
    # RFC 8972 §4.6: an Access Report is retransmitted until a reply carries it back
    access_report_timer_ns: int = 3_000_000_000
    access_report_retries: int = 4

    def __post_init__(self) -> None:
        if self.authenticated and self.key is None:
            raise ValueError("authenticated mode needs an HMAC key")
        if self.hmac_tlv and self.key is None:
            raise ValueError("an HMAC TLV needs an HMAC key")
        if not 0 <= self.ssid <= 0xFFFF:
            raise ValueError("SSID must be 0..65535")
        if any(isinstance(t, DestinationNodeAddress) for t in self.tlvs) and not self.ssid:
            raise ValueError("a Destination Node Address TLV requires an SSID (RFC 9503 §3)")
        if sum(isinstance(t, ReturnPath) for t in self.tlvs) > 1:
            raise ValueError("at most one Return Path TLV may be sent (RFC 9503 §4)")
        if self.error_estimate.timestamp_format != self.timestamp_format:
            ee = self.error_estimate
            object.__setattr__(self, "error_estimate",
                               ErrorEstimate(ee.synchronized, self.timestamp_format, ee.scale, ee.multiplier))

    @property
    def micro_session(self) -> MicroSessionId | None:
        return next((t for t in self.tlvs if isinstance(t, MicroSessionId)), None)


@dataclass(slots=True)
class Outgoing:
    """A prepared test packet; :meth:`stamp` writes T1 (and the base HMAC) just before sending."""

    sequence_number: int
    data: bytearray
    timestamp_offset: int
    key: bytes | None
    _sender: SessionSender

    def stamp(self, t1_ns: int) -> bytearray:
        cfg = self._sender.config
        t1_wire = to_wire(t1_ns, cfg.timestamp_format, cfg.tai_offset_s)
        self.data[self.timestamp_offset:self.timestamp_offset + 8] = t1_wire.to_bytes(8, "big")
        if self.key is not None:
            self.data[HMAC_COVERED:AUTH_BASE_LEN] = hmac16(self.key, memoryview(self.data)[:HMAC_COVERED])
        self._sender.record_sent(self.sequence_number, t1_ns, t1_wire)
        return self.data


@dataclass(frozen=True, slots=True)
class Sample:
    """One matched reply: the four timestamps and what each end saw."""

    sequence_number: int
    reflector_sequence_number: int
    t1_ns: int
    t2_ns: int
    t3_ns: int
    t4_ns: int
    reflector_ttl: int  # TTL/Hop Limit the reflector saw (255 may mean unknown)
    reply_ttl: int | None  # TTL/Hop Limit of the reply here, None if the platform cannot tell
    reply_tos: int | None
    sender_synchronized: bool
    reflector_synchronized: bool
    reflector_error_ns: float
    sender_error_ns: float
    ssid: int
    late: bool = False
    tlv: dict = field(default_factory=dict)

    @property
    def rtt_ns(self) -> int:
        """Round trip without the reflector's residence time: (T4 - T1) - (T3 - T2)."""
        return (self.t4_ns - self.t1_ns) - (self.t3_ns - self.t2_ns)

    @property
    def residence_ns(self) -> int:
        return self.t3_ns - self.t2_ns

    @property
    def forward_ns(self) -> int:
        return self.t2_ns - self.t1_ns

    @property
    def backward_ns(self) -> int:
        return self.t4_ns - self.t3_ns

    @property
    def clocks_synchronized(self) -> bool:
        return self.sender_synchronized and self.reflector_synchronized


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    kind: str  # sample | duplicate | foreign | malformed | hmac_failure | micro_session_mismatch
    sample: Sample | None = None
    detail: str = ""


@dataclass(slots=True)
class _Sent:
    t1_wire: int  # the T1 written in the packet (what the reflector copies back)
    t1_ns: int  # the best known departure time: the kernel's TX timestamp when we have it
    replies: int = 0


class SessionSender:
    def __init__(self, config: SenderConfig) -> None:
        self.config = config
        self._sent: dict[int, _Sent] = {}
        self.sent_count = 0
        self.ssid_not_echoed = 0
        self.learned_reflector_link_id: int | None = None
        self._ee = config.error_estimate.to_int()
        self._reports_access = any(isinstance(t, AccessReport) for t in config.tlvs)
        self._access_report_deadline: int | None = None
        self.access_report_retransmissions = 0

    # -- sending --------------------------------------------------------------------
    def prepare(self, sequence_number: int) -> Outgoing:
        cfg = self.config
        seq = sequence_number & U32
        if cfg.authenticated:
            head = bytearray(SENDER_AUTH.pack(seq, 0, self._ee, cfg.ssid)) + bytes(16)
            ts_offset = 16
        else:
            head = bytearray(SENDER_OPEN.pack(seq, 0, self._ee, cfg.ssid))
            ts_offset = 4
        return Outgoing(seq, head + self._tlv_area(seq), ts_offset, cfg.key if cfg.authenticated else None, self)

    def _tlv_area(self, seq: int) -> bytes:
        cfg = self.config
        tlvs: list[RawTlv] = []
        for t in cfg.tlvs:
            if isinstance(t, DirectMeasurement):  # S_TxC counts this packet
                t = DirectMeasurement(self.sent_count + 1)
            elif isinstance(t, MicroSessionId) and self.learned_reflector_link_id and not t.reflector_id:
                t = MicroSessionId(t.sender_id, self.learned_reflector_link_id)
            tlvs.append(t.to_tlv())
        if tlvs and (cfg.authenticated or cfg.hmac_tlv):
            assert cfg.key is not None
            tlvs.append(compute_hmac_tlv(cfg.key, seq.to_bytes(4, "big"), build_tlvs(tlvs)))
        if cfg.padding:
            tlvs.append(ExtraPadding.of_length(cfg.padding).to_tlv())
        return build_tlvs(tlvs)

    def record_sent(self, seq: int, t1_ns: int, t1_wire: int) -> None:
        cfg = self.config
        self._sent[seq] = _Sent(t1_wire, t1_ns)
        self.sent_count += 1
        if self._reports_access and self._access_report_deadline is None:
            self._access_report_deadline = t1_ns + cfg.access_report_timer_ns  # arm the timer

    def access_report_retransmit_due(self, now_ns: int) -> bool:
        """RFC 8972 §4.6: the Access Report timer expired without a reply carrying the TLV:
        True means send a test packet now (a retransmission).  After the configured number of
        retransmissions (4 by default, SHOULD) the sender gives up until a reply comes."""
        deadline = self._access_report_deadline
        if deadline is None or now_ns < deadline:
            return False
        if self.access_report_retransmissions >= self.config.access_report_retries:
            self._access_report_deadline = None
            return False
        self.access_report_retransmissions += 1
        self._access_report_deadline = None  # re-armed by the retransmission's record_sent
        return True

    def record_departure(self, seq: int, tx_ns: int) -> None:
        """The kernel's transmit time of a test packet: a better T1 than the clock read before
        the send (the packet copy keeps the earlier T1; it only identifies the packet)."""
        sent = self._sent.get(seq)
        if sent is not None:
            sent.t1_ns = tx_ns

    def unanswered(self) -> list[tuple[int, int]]:
        """(sequence number, T1) of the packets still remembered that got no reply."""
        return [(seq, r.t1_ns) for seq, r in self._sent.items() if not r.replies]

    def forget_before(self, t1_horizon_ns: int) -> None:
        """Drop the record of packets sent before the horizon (bounded memory on long runs)."""
        for seq in [s for s, r in self._sent.items() if r.t1_ns < t1_horizon_ns]:
            del self._sent[seq]

    # -- receiving ------------------------------------------------------------------
    def receive(self, data: bytes, t4_ns: int, ttl: int | None = None, tos: int | None = None) -> ReplyEvent:
        """Match one reply.  Never raises on any input."""
        cfg = self.config
        try:
            reply = ReflectorPacket.from_bytes(data, cfg.authenticated)
        except MalformedPacket as exc:
            return ReplyEvent("malformed", detail=str(exc))
        if cfg.authenticated and not verify16(cfg.key, memoryview(data)[:HMAC_COVERED], data[96:112]):
            return ReplyEvent("hmac_failure", detail="reply base HMAC does not verify")
        if reply.ssid != cfg.ssid:
            if reply.ssid != 0:
                return ReplyEvent("foreign", detail=f"SSID {reply.ssid} is not ours ({cfg.ssid})")
            if cfg.ssid:
                self.ssid_not_echoed += 1  # an RFC 8762-only reflector answers 0 (RFC 8972 §3)
        sent = self._sent.get(reply.sender_sequence_number)
        if sent is None:
            return ReplyEvent("foreign", detail=f"sequence {reply.sender_sequence_number} was not sent by us")
        if sent.t1_wire != reply.sender_timestamp:
            return ReplyEvent("foreign", detail="copied timestamp does not match what we sent")
        sent.replies += 1
        ee = ErrorEstimate.from_int(reply.error_estimate)
        see = ErrorEstimate.from_int(reply.sender_error_estimate)
        pivot = sent.t1_ns
        tlv_results = self._read_tlvs(reply, data, ee.timestamp_format, pivot) if reply.tlvs else {}
        if tlv_results.get("micro_session_mismatch"):
            return ReplyEvent("micro_session_mismatch", detail=tlv_results["micro_session_mismatch"])
        sample = Sample(
            reply.sender_sequence_number, reply.sequence_number, sent.t1_ns,
            from_wire(reply.receive_timestamp, ee.timestamp_format, cfg.tai_offset_s, pivot),
            from_wire(reply.timestamp, ee.timestamp_format, cfg.tai_offset_s, pivot),
            t4_ns, reply.sender_ttl, ttl, tos, see.synchronized, ee.synchronized,
            ee.error_ns, see.error_ns, reply.ssid, t4_ns - sent.t1_ns > cfg.timeout_ns, tlv_results)
        if sent.replies > 1:
            return ReplyEvent("duplicate", sample)
        return ReplyEvent("sample", sample)

    def _read_tlvs(self, reply: ReflectorPacket, data: bytes, fmt: TimestampFormat, pivot_ns: int) -> dict:
        """Decode the reflector's TLVs, honouring U (skip), M (stop) and I (discard all)."""
        cfg = self.config
        parsed = parse_tlvs(reply.tlvs)
        out: dict = {}
        tlvs = parsed.tlvs
        if any(t.flags & FLAG_I for t in tlvs):
            return {"integrity": "reflector reports TLV HMAC failure (I flag)"}
        if cfg.key is not None and any(t.type == TlvType.HMAC for t in tlvs):
            if not verify_hmac_tlv(cfg.key, data[:4], reply.tlvs, tlvs):
                return {"integrity": "reply HMAC TLV does not verify"}
        not_processed: list[int] = []
        for t in tlvs:
            if t.flags & FLAG_M or t.truncated:
                out["malformed"] = t.type
                break
            if t.flags & FLAG_U:
                not_processed.append(t.type)
                continue
            try:
                value = decode(t)
            except (MalformedTlv, ValueError):
                out["malformed"] = t.type
                break
            self._interpret(value, out, fmt, pivot_ns)
        if not_processed:
            out["not_processed"] = not_processed
        return out

    def _interpret(self, value: TlvValue | None, out: dict, fmt: TimestampFormat, pivot_ns: int) -> None:
        if isinstance(value, ClassOfService):
            out["cos"] = {"dscp_requested": value.dscp1, "dscp_at_reflector": value.dscp2,
                          "ecn_at_reflector": value.ecn, "reverse_path_refused": bool(value.rp)}
        elif isinstance(value, Location):
            out["location"] = {"destination_port": value.destination_port, "source_port": value.source_port,
                               **value.answers()}
        elif isinstance(value, TimestampInformation):
            out["timestamp_info"] = {"sync_src_in": value.sync_src_in, "timestamp_in": value.timestamp_in,
                                     "sync_src_out": value.sync_src_out, "timestamp_out": value.timestamp_out}
        elif isinstance(value, DirectMeasurement):
            out["direct_measurement"] = {"s_txc": value.sender_tx_count, "r_rxc": value.reflector_rx_count,
                                         "r_txc": value.reflector_tx_count}
        elif isinstance(value, AccessReport):
            out["access_report"] = {"access_id": value.access_id, "return_code": value.return_code}
            self._access_report_deadline = None  # a reply carried it back: disarm the timer
            self.access_report_retransmissions = 0
        elif isinstance(value, FollowUpTelemetry):
            # Its timestamp is in the format of this reply's Z bit (RFC 8972 §4.7).
            ts = value.follow_up_timestamp
            out["follow_up"] = {"sequence_number": value.sequence_number, "timestamp_mode": value.timestamp_mode,
                                "tx_ns": from_wire(ts, fmt, self.config.tai_offset_s, pivot_ns) if ts else None}
        elif isinstance(value, DestinationNodeAddress):
            out["destination_node"] = {"address": str(value.address), "accepted": True}
        elif isinstance(value, ReturnPath):
            out["return_path"] = {"honoured": True}
        elif isinstance(value, MicroSessionId):
            self._check_micro_session(value, out)

    def _check_micro_session(self, value: MicroSessionId, out: dict) -> None:
        """RFC 9534 §3.2: Sender ID must be ours; Reflector ID must be the expected one."""
        ours = self.config.micro_session
        out["micro_session"] = {"sender_id": value.sender_id, "reflector_id": value.reflector_id}
        if ours is None:
            return
        if value.sender_id != ours.sender_id:
            out["micro_session_mismatch"] = f"sender member link {value.sender_id}, expected {ours.sender_id}"
            return
        expected = ours.reflector_id or self.learned_reflector_link_id
        if expected and value.reflector_id != expected:
            out["micro_session_mismatch"] = f"reflector member link {value.reflector_id}, expected {expected}"
        elif not expected and value.reflector_id:
            self.learned_reflector_link_id = value.reflector_id

