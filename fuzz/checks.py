"""The properties every fuzzer checks, shared by the atheris targets (fuzz/targets.py) and
the bounded hypothesis run in CI (tests/fuzz/test_hypothesis_fuzz.py)."""

from __future__ import annotations

from stamp_suite.reflector.engine import Reflection, Reflector, ReflectorConfig
from stamp_suite.sender.engine import SenderConfig, SessionSender
from stamp_suite.sender.events import Duplicate, Invalid, Late, Lost, Rejected, Reply, Transmit
from stamp_suite.wire.auth import hmac16
from stamp_suite.wire.auth import KeyStore
from stamp_suite.wire.packet import AUTH_BASE_LEN, HMAC_COVERED, OPEN_BASE_LEN, MalformedPacket, ReflectorPacket, SenderPacket
from stamp_suite.tlvs import MicroSessionId, decode
from stamp_suite.wire.datagram import Received
from stamp_suite.wire.tlv import MalformedTlv, parse_tlvs

KEY = bytes(range(16))
NOW = 1_700_000_000_000_000_000
SOURCE, LOCAL = ("192.0.2.1", 40000), bytes([192, 0, 2, 2])
SENDER_EVENTS = {Reply, Invalid, Late, Duplicate, Lost, Rejected}


def make_reflectors() -> list[Reflector]:
    return [Reflector(ReflectorConfig(stateful=True, member_link_id=3, verify_tlv_hmac=True, keys=KeyStore(KEY))),
            Reflector(ReflectorConfig(authenticated=True, keys=KeyStore(KEY), stateful=True)),
            Reflector(ReflectorConfig(answer_short_packets=False))]


def check_packet(data: bytes) -> None:
    """The base packet parsers raise only MalformedPacket."""
    for auth in (False, True):
        for cls in (SenderPacket, ReflectorPacket):
            try:
                cls.from_bytes(data, auth)
            except MalformedPacket:
                pass


def check_tlv(data: bytes) -> None:
    """The TLV list parser accounts for every octet; typed decoding raises only MalformedTlv."""
    parsed = parse_tlvs(data)
    assert sum(t.size for t in parsed.tlvs) + len(parsed.trailing) == len(data)
    for t in parsed.tlvs:
        try:
            decode(t)
        except MalformedTlv:
            pass


def check_reflector(reflectors: list[Reflector], data: bytes) -> None:
    """Never raises; never answers with more octets than it got (or than a base packet, for
    a short packet, RFC 8762 §4.6, unless short packets are dropped); counts every drop."""
    for r in reflectors:
        dropped = r.counters.dropped_total
        limit = max(len(data), OPEN_BASE_LEN) if r.config.answer_short_packets else len(data)
        reply = r.reflect(Received(data, SOURCE, 64, 0xB8, LOCAL, NOW, NOW), NOW)
        replies = [reply] if isinstance(reply, Reflection) else []
        for reply in replies:
            r.stamp((reply,), NOW)
            assert len(reply.data) <= limit, "reply larger than allowed"
        c = r.counters
        assert len(replies) + (c.dropped_total - dropped) == 1, "drop not counted"
        assert "internal_error" not in c.dropped, r.internal_errors


class SenderTarget:
    """A Session-Sender with packets outstanding, and a way to make any datagram a reply to
    one of them (sequence number, copied T1, SSID and, in authenticated mode, the base HMAC
    set right), so that fuzzed TLVs, lengths and HMAC TLVs reach the sender's TLV readers
    instead of stopping at "foreign"."""

    OUTSTANDING = 8

    def __init__(self, config: SenderConfig) -> None:
        self.config = config
        self.sender = SessionSender(config)
        self.sender.start(0, NOW)
        self.t1_wire: list[bytes] = []
        at = 16 if config.authenticated else 4
        for i in range(self.OUTSTANDING):
            sent = self.sender.stamp(Transmit(0), NOW + i, 0)
            self.t1_wire.append(sent.data[at:at + 8])

    def matching(self, data: bytes) -> bytes:
        seq = data[0] % self.OUTSTANDING if data else 0
        auth = self.config.authenticated
        d = bytearray(data.ljust(AUTH_BASE_LEN if auth else OPEN_BASE_LEN, b"\0"))
        ssid, seq_at, t1_at = (26, 48, 64) if auth else (14, 24, 28)
        d[ssid:ssid + 2] = self.config.ssid.to_bytes(2, "big")
        d[seq_at:seq_at + 4] = seq.to_bytes(4, "big")
        d[t1_at:t1_at + 8] = self.t1_wire[seq]
        if auth:
            d[HMAC_COVERED:AUTH_BASE_LEN] = hmac16(self.config.key, bytes(d[:HMAC_COVERED]))
        return bytes(d)


def check_sender(targets: list[SenderTarget], data: bytes) -> None:
    """Any datagram, as it is and made to match an outstanding packet, is classified into
    known events, never raised on."""
    for target in targets:
        for datagram in (data, target.matching(data)):
            events = target.sender.receive(datagram, NOW + 10**6, 10**6)
            assert all(type(e) in SENDER_EVENTS for e in events), events


def make_senders() -> list[SenderTarget]:
    """Open mode with a key (HMAC TLVs verified when present), authenticated mode, and a
    micro-session (RFC 9534: its IDs checked in every reply) with the reflector's ID to learn."""
    return [SenderTarget(SenderConfig(ssid=7, key=KEY, timeout_ns=10**12)),
            SenderTarget(SenderConfig(ssid=7, key=KEY, authenticated=True, timeout_ns=10**12)),
            SenderTarget(SenderConfig(ssid=7, timeout_ns=10**12, tlvs=(MicroSessionId(1, 0),)))]
