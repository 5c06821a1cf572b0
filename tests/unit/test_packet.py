"""Base packets against the digest's worked examples (bytes not made by our encoder)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vectors import EX_A, EX_B, EX_C, EX_C2, EX_D, KEY, T1_NS

from stamp_suite.wire.auth import hmac16, verify16
from stamp_suite.wire.packet import MalformedPacket, ReflectorPacket, SenderPacket, reflector_fields
from stamp_suite.wire.timestamp import ntp_from_ns, ntp_to_ns


def test_open_sender_packet_layout():
    p = SenderPacket.from_bytes(EX_A)
    assert (p.sequence_number, p.timestamp, p.error_estimate, p.ssid) == (1, 0xE93C7F0080000000, 0x8001, 0)
    assert p.to_bytes() == EX_A and len(EX_A) == 44


def test_open_reflector_packet_layout():
    r = ReflectorPacket.from_bytes(EX_B)
    assert r.sequence_number == 1
    assert r.timestamp == 0xE93C7F00C010624D
    assert r.receive_timestamp == 0xE93C7F00C0000000
    assert (r.sender_sequence_number, r.sender_timestamp, r.sender_error_estimate) == (1, 0xE93C7F0080000000, 0x8001)
    assert r.sender_ttl == 64
    assert r.to_bytes() == EX_B


def test_reflector_fields_read_the_digest_reply_as_the_packet_does():
    # The nine base fields in ReflectorPacket's order, and the TLV octets (none here, b"").
    assert reflector_fields(EX_B) == ((1, 0xE93C7F00C010624D, 0x8001, 0, 0xE93C7F00C0000000, 1, 0xE93C7F0080000000,
                                       0x8001, 64), b"")
    assert reflector_fields(EX_B + b"\x01\x02") == (reflector_fields(EX_B)[0], b"\x01\x02")
    assert reflector_fields(EX_B[:38])[0][5:8] == (1, 0xE93C7F0080000000, 0x8001)  # TWAMP-Light's 38 octets
    with pytest.raises(MalformedPacket):
        reflector_fields(EX_B[:37])


def test_authenticated_sender_hmac_from_digest():
    assert hmac16(KEY, EX_C[:96]).hex() == "874a801fc3dafaa345256e5cf1a7db68"
    p = SenderPacket.from_bytes(EX_C, authenticated=True)
    assert p.timestamp == 0xE93C7F0080000000 and p.error_estimate == 0x8001
    assert p.to_bytes(KEY) == EX_C


def test_hmac_without_openssl_gives_the_same_octets(monkeypatch):
    """The keyed state comes from OpenSSL's HMAC object where Python has one; the hmac module's
    (the fallback) must give the digest's octets too, and a key's state is reused, not changed."""
    from stamp_suite.wire import auth
    for new_state in (auth._new_state, auth._public_state):
        monkeypatch.setattr(auth, "_new_state", new_state)
        auth._keyed.cache_clear()
        for _ in range(2):
            assert hmac16(KEY, EX_C[:96]).hex() == "874a801fc3dafaa345256e5cf1a7db68"
        # RFC 4231 test case 2, truncated to 128 bits
        assert hmac16(b"Jefe", b"what do ya want for nothing?").hex() == "5bdcc146bf60754e6a042426089575c7"
    auth._keyed.cache_clear()


def test_authenticated_reflector_layout_and_hmac():
    r = ReflectorPacket.from_bytes(EX_C2, authenticated=True)
    assert (r.sequence_number, r.sender_sequence_number, r.sender_ttl) == (1, 1, 64)
    assert r.sender_timestamp == 0xE93C7F0080000000
    assert verify16(KEY, EX_C2[:96], EX_C2[96:112])
    assert r.to_bytes(KEY) == EX_C2


def test_ssid_position_in_open_packet():
    p = SenderPacket.from_bytes(EX_D)
    assert p.ssid == 0x1234 and p.tlvs == bytes.fromhex("80040004b8000000")


def test_mbz_is_ignored_on_receipt():
    dirty = bytearray(EX_A)
    dirty[16:44] = b"\xff" * 28
    assert SenderPacket.from_bytes(bytes(dirty)).sequence_number == 1


def test_short_packets():
    with pytest.raises(MalformedPacket):
        SenderPacket.from_bytes(EX_A[:43])
    with pytest.raises(MalformedPacket):
        ReflectorPacket.from_bytes(EX_B[:37])
    short = ReflectorPacket.from_bytes(EX_B[:38])  # TWAMP-Light reflectors answer with 38 octets
    assert short.sender_sequence_number == 1 and short.sender_ttl == 0
    assert SenderPacket.from_short(EX_A[:14]).error_estimate == 0x8001


u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
u16 = st.integers(0, 0xFFFF)


@given(u32, u64, u16, u16, st.binary(max_size=64), st.booleans())
def test_sender_round_trip(seq, ts, ee, ssid, tlvs, auth):
    p = SenderPacket(seq, ts, ee, ssid, tlvs)
    data = p.to_bytes(KEY if auth else None)
    q = SenderPacket.from_bytes(data, auth)
    assert (q.sequence_number, q.timestamp, q.error_estimate, q.ssid, q.tlvs) == (seq, ts, ee, ssid, tlvs)


@given(u32, u64, u16, u16, u64, u32, u64, u16, st.integers(0, 255), st.binary(max_size=64), st.booleans())
def test_reflector_round_trip(seq, ts, ee, ssid, rx, sseq, sts, see, ttl, tlvs, auth):
    r = ReflectorPacket(seq, ts, ee, ssid, rx, sseq, sts, see, ttl, tlvs)
    data = r.to_bytes(KEY if auth else None)
    assert ReflectorPacket.from_bytes(data, auth).to_bytes(KEY if auth else None) == data
    assert data[38:40] == b"\0\0" or auth  # octets 38-39 stay MBZ: never an SSID copy (digest §7 #1)


def test_t1_encoding_matches_example():
    # Digest 6.2: T1 = 2024-01-01T00:00:00.5Z is E93C7F00 80000000 in NTP format.
    assert EX_A[4:12].hex() == "e93c7f0080000000"
    assert ntp_from_ns(T1_NS) == int.from_bytes(EX_A[4:12], "big")
    assert ntp_to_ns(int.from_bytes(EX_A[4:12], "big")) == T1_NS
