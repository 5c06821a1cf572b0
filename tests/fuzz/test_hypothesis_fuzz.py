"""Bounded fuzzing in CI: hypothesis drives the same targets atheris runs for long (fuzz/)."""

import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).parents[2] / "fuzz"))
from make_corpus import seeds  # noqa: E402

from stamp_suite.reflector.engine import PacketMeta, Reflector, ReflectorConfig  # noqa: E402
from stamp_suite.sender.engine import SenderConfig, SessionSender  # noqa: E402
from stamp_suite.wire.auth import KeyStore  # noqa: E402
from stamp_suite.wire.packet import MalformedPacket, ReflectorPacket, SenderPacket  # noqa: E402
from stamp_suite.wire.tlv import MalformedTlv, decode, parse_tlvs  # noqa: E402

KEY = bytes(range(16))
NOW = 1_700_000_000_000_000_000
SEEDS = list(seeds().values())
META = PacketMeta(("192.0.2.1", 40000), bytes([192, 0, 2, 2]), 862, 64, 0xB8, NOW, 2)
FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def datagrams(draw):
    """Seeds mutated (bytes flipped, cut, extended, TLV lengths made hostile) or pure noise."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=600))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    if kind == 1:
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    elif kind == 2:
        data = data[:draw(st.integers(0, len(data)))]
    elif kind == 3:
        data += draw(st.binary(max_size=200))
    else:  # a hostile Length in some TLV header position
        i = draw(st.integers(44, max(44, len(data) - 2)))
        data[i:i + 2] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
    return bytes(data)


REFLECTORS = [Reflector(ReflectorConfig(stateful=True, member_link_id=3, verify_tlv_hmac=True, keys=KeyStore(KEY))),
              Reflector(ReflectorConfig(authenticated=True, keys=KeyStore(KEY), stateful=True))]


@FUZZ
@given(datagrams())
def test_reflector_never_raises_never_amplifies_counts_every_drop(data):
    for r in REFLECTORS:
        before = (r.counters.reflected, r.counters.dropped_total)
        for reply in r.receive(data, META, NOW):
            assert len(reply.stamp(NOW)) <= len(data)
        assert (r.counters.reflected - before[0]) + (r.counters.dropped_total - before[1]) == 1
        assert not any(k.startswith("internal_error") for k in r.counters.dropped)


@FUZZ
@given(datagrams())
def test_parsers_raise_only_their_own_errors(data):
    for auth in (False, True):
        for cls in (SenderPacket, ReflectorPacket):
            try:
                cls.from_bytes(data, auth)
            except MalformedPacket:
                pass
    parsed = parse_tlvs(data, min(44, len(data)))
    for t in parsed.tlvs:
        try:
            decode(t)
        except MalformedTlv:
            pass


@FUZZ
@given(datagrams())
def test_sender_classifies_anything(data):
    sender = SessionSender(SenderConfig(ssid=7, key=KEY))
    assert sender.receive(data, NOW).kind in {"sample", "duplicate", "foreign", "malformed", "hmac_failure",
                                              "micro_session_mismatch"}
