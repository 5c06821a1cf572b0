"""The properties every fuzzer checks, shared by the atheris targets (fuzz/targets.py) and
the bounded hypothesis run in CI (tests/fuzz/test_hypothesis_fuzz.py)."""

from __future__ import annotations

from stamp_suite.reflector.engine import PacketMeta, Reflector, ReflectorConfig
from stamp_suite.sender.engine import SenderConfig, SessionSender
from stamp_suite.wire.auth import KeyStore
from stamp_suite.wire.packet import OPEN_BASE_LEN, MalformedPacket, ReflectorPacket, SenderPacket
from stamp_suite.wire.tlv import MalformedTlv, decode, parse_tlvs

KEY = bytes(range(16))
NOW = 1_700_000_000_000_000_000
META = PacketMeta(("192.0.2.1", 40000), bytes([192, 0, 2, 2]), 862, 64, 0xB8, NOW, 2)
SENDER_KINDS = {"sample", "duplicate", "foreign", "malformed", "hmac_failure", "micro_session_mismatch"}


def make_reflectors() -> list[Reflector]:
    return [Reflector(ReflectorConfig(stateful=True, member_link_id=3, verify_tlv_hmac=True, keys=KeyStore(KEY))),
            Reflector(ReflectorConfig(authenticated=True, keys=KeyStore(KEY), stateful=True)),
            Reflector(ReflectorConfig(answer_short_packets=False, accept_nonzero_mbz=True))]


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
        replies = r.receive(data, META, NOW)
        for reply in replies:
            assert len(r.stamp(reply, NOW)) <= limit, "reply larger than allowed"
        c = r.counters
        assert len(replies) + (c.dropped_total - dropped) == 1, "drop not counted"
        assert "internal_error" not in c.dropped, r.internal_errors


def check_sender(sender: SessionSender, data: bytes) -> None:
    """Any datagram is classified, never raised on."""
    assert sender.receive(data, NOW).kind in SENDER_KINDS


def make_sender() -> SessionSender:
    return SessionSender(SenderConfig(ssid=7, key=KEY))
