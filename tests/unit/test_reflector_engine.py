"""Reflector rules (RFC 8762 §4.3, RFC 8972 §4, RFC 9503, RFC 9534) on plain bytes."""

import ipaddress
import random
import struct

import pytest
from vectors import EX_A, EX_B, EX_C, EX_C2, EX_E, KEY, T2_NS, T3_NS, At

from stamp_suite.reflector.engine import Reflection, Reflector, ReflectorConfig, TlvMode
from stamp_suite.tlvs import (
    AccessReport,
    ClassOfService,
    DestinationNodeAddress,
    DirectMeasurement,
    FollowUpTelemetry,
    Location,
    MicroSessionId,
    ReturnPath,
    TimestampInformation,
)
from stamp_suite.wire.auth import KeyStore, hmac16
from stamp_suite.wire.packet import ReflectorPacket
from stamp_suite.wire.timestamp import ErrorEstimate
from stamp_suite.wire.tlv import FLAG_I, FLAG_M, FLAG_U, RawTlv, build_tlvs, parse_tlvs, verify_hmac_tlv

SYNCED = ErrorEstimate(True, scale=0, multiplier=1)  # 0x8001 as in the worked examples
META = At(("127.0.0.1", 40000), "127.0.0.1", ttl=64, tos=0, kernel_ns=T2_NS)
OPEN_HEAD = EX_A  # seq 1, T1, EE 0x8001, SSID 0
SYNCED_CFG = ReflectorConfig(error_estimate=SYNCED)


def receive(r, packet, meta=META, now=T3_NS):
    """The reflector's replies to one datagram, as a list (none or one)."""
    out = r.reflect(meta(packet), now)
    return [out] if isinstance(out, Reflection) else []


def stamp(r, reply, t3=T3_NS, tx_method=3):
    """``reply`` stamped with T3 (and its HMAC), as bytes."""
    r.stamp((reply,), t3, tx_method)
    return bytes(reply.data)


def reflect(packet, config=None, meta=META, now=T3_NS):
    r = Reflector(config or ReflectorConfig(error_estimate=SYNCED))
    out = receive(r, packet, meta, now)
    return r, (stamp(r, out[0], now) if out else None), (out[0] if out else None)


def with_tlvs(*tlvs, head=OPEN_HEAD, ssid=None):
    head = bytearray(head)
    if ssid is not None:
        head[14:16] = ssid.to_bytes(2, "big")
    return bytes(head) + build_tlvs([t if isinstance(t, RawTlv) else t.to_tlv() for t in tlvs])


def reply_tlvs(reply, base=44):
    return parse_tlvs(reply[base:]).tlvs


def same_but_t3_tag(reply: bytes, expected: bytes, t3_at: int) -> bool:
    """``reply`` is ``expected`` except for the lowest ten bits of T3, where the loop tag goes
    (loop_guard.py): under 240 ns of an NTP timestamp (and the HMAC over it, if any)."""
    got, want = bytearray(reply), bytearray(expected)
    for b in (got, want):
        b[t3_at + 6] &= 0xFC
        b[t3_at + 7] = 0
    return got == want


def test_open_stateless_reply_is_digest_example_b():
    _, reply, _ = reflect(EX_A)
    assert same_but_t3_tag(reply, EX_B, 4)


def test_authenticated_reply_is_digest_example_c2():
    cfg = ReflectorConfig(authenticated=True, keys=KeyStore(KEY), error_estimate=SYNCED)
    _, reply, _ = reflect(EX_C, cfg)
    assert same_but_t3_tag(reply[:96], EX_C2[:96], 16)
    assert reply[96:] == hmac16(KEY, reply[:96])  # the base HMAC covers the tagged T3


def test_authenticated_bad_hmac_is_dropped_and_counted():
    bad = bytearray(EX_C)
    bad[100] ^= 1
    r, reply, _ = reflect(bytes(bad), ReflectorConfig(authenticated=True, keys=KeyStore(KEY)))
    assert reply is None and r.counters.dropped["hmac_failure"] == 1


def test_short_packet_gets_a_base_reply_by_default():
    # RFC 8762 §4.6: a TWAMP-Light 14-octet packet is answered with a 44-octet base packet.
    _, reply, _ = reflect(EX_A[:14])
    assert len(reply) == 44
    assert reply[24:38] == EX_A[:14]
    r, reply, _ = reflect(EX_A[:13])  # not even a sequence number, timestamp and error estimate
    assert reply is None and r.counters.dropped["short_packet"] == 1
    hardened = ReflectorConfig(answer_short_packets=False, error_estimate=SYNCED)
    r, reply, _ = reflect(EX_A[:14], hardened)  # --drop-short-packets: no reply larger than its request
    assert reply is None and r.counters.dropped["short_packet"] == 1
    r, reply, _ = reflect(EX_C[:100], ReflectorConfig(authenticated=True, keys=KeyStore(KEY)))
    assert reply is None and r.counters.dropped["malformed"] == 1


def test_zero_multiplier_is_discarded_unless_allowed():
    zero = bytearray(EX_A)
    zero[13] = 0
    r, reply, _ = reflect(bytes(zero))
    assert reply is None and r.counters.dropped["error_estimate_invalid"] == 1
    _, reply, _ = reflect(bytes(zero), ReflectorConfig(accept_zero_multiplier=True))
    assert reply is not None


def test_ssid_echo_and_mbz():
    pkt = with_tlvs(ssid=0xBEEF)
    _, reply, _ = reflect(pkt)
    assert reply[14:16] == b"\xbe\xef" and reply[38:40] == b"\0\0" and reply[41:44] == b"\0\0\0"


def test_ssid_filter_discards_unknown_sessions():
    r, reply, _ = reflect(with_tlvs(ssid=5), ReflectorConfig(allowed_ssids=frozenset({7})))
    assert reply is None and r.counters.dropped["ssid_mismatch"] == 1


def test_ttl_unknown_is_255():
    _, reply, _ = reflect(EX_A, meta=At(("127.0.0.1", 1), None, ttl=None, kernel_ns=None))
    assert reply[40] == 255


def test_stateful_sequence_counts_per_session():
    r = Reflector(ReflectorConfig(stateful=True))
    seqs = []
    for sender_seq in (10, 11, 13):
        pkt = struct.pack("!I", sender_seq) + EX_A[4:]
        seqs.append(ReflectorPacket.from_bytes(bytes(receive(r, pkt, META, T3_NS)[0].data)).sequence_number)
    other = At(("127.0.0.1", 40001), "127.0.0.1", kernel_ns=None)
    seqs.append(ReflectorPacket.from_bytes(bytes(receive(r, EX_A, other, T3_NS)[0].data)).sequence_number)
    assert seqs == [0, 1, 2, 0]
    stateless = Reflector()
    assert ReflectorPacket.from_bytes(bytes(receive(stateless, EX_A, META, T3_NS)[0].data)).sequence_number == 1


def test_reply_is_symmetric_and_unknown_tlv_gets_u():
    pkt = with_tlvs(RawTlv(0x80, 200, 3, b"xyz"), RawTlv(0x00, 1, 5, b"12345"))
    _, reply, _ = reflect(pkt)
    assert len(reply) == len(pkt)
    unknown, pad = reply_tlvs(reply)
    assert unknown.flags == FLAG_U and unknown.value == b"xyz"
    assert pad.flags == 0 and pad.value == b"12345"


def test_malformed_tlv_sets_m_and_copies_the_rest():
    bad_cos = RawTlv(0x80, 4, 2, b"\0\0")  # CoS Length must be 4
    after = RawTlv(0x80, 5, 12, bytes(12))
    pkt = with_tlvs(bad_cos, after)
    _, reply, _ = reflect(pkt)
    t = reply_tlvs(reply)
    assert t[0].flags & FLAG_M and not t[0].flags & FLAG_U
    assert reply[44 + 6:] == pkt[44 + 6:]  # remainder unchanged, Direct Measurement not filled


def test_length_past_end_sets_m():
    pkt = OPEN_HEAD + bytes.fromhex("80040010b8000000")
    _, reply, _ = reflect(pkt)
    assert reply[44] == FLAG_M and reply[45:] == pkt[45:]


def test_class_of_service_fill_and_policy():
    meta = At(("127.0.0.1", 1), "127.0.0.1", ttl=64, tos=(10 << 2) | 1, kernel_ns=None)
    _, reply, rep = reflect(with_tlvs(ClassOfService(46)), meta=meta)
    cos = ClassOfService.from_value(reply_tlvs(reply)[0].value)
    assert (cos.dscp1, cos.dscp2, cos.ecn, cos.rp) == (46, 10, 1, 0) and rep.tos == 46 << 2
    refused = ReflectorConfig(cos_allowed_dscp=frozenset({0, 10}))
    _, reply, rep = reflect(with_tlvs(ClassOfService(46)), refused, meta=meta)
    cos = ClassOfService.from_value(reply_tlvs(reply)[0].value)
    assert cos.rp == 1 and rep.tos == 10 << 2  # keeps the received DSCP


def test_location_is_answered_with_same_length():
    meta = At(("192.0.2.7", 5555), "::ffff:198.51.100.1", ttl=64, kernel_ns=None)
    req = with_tlvs(Location.request())
    _, reply, _ = reflect(req, meta=meta)
    loc_tlv = reply_tlvs(reply)[0]
    assert loc_tlv.length == Location.request().to_tlv().length and len(reply) == len(req)
    loc = Location.from_value(loc_tlv.value)
    assert (loc.destination_port, loc.source_port) == (862, 5555)
    assert [s.type for s in loc.sub_tlvs] == [3, 5, 8]  # EUI-64 zeros, Dst IPv4, Src IPv4
    assert loc.answers() == {"source_mac": "00:00:00:00:00:00:00:00", "destination_ip": "198.51.100.1",
                             "source_ip": "192.0.2.7"}


def test_direct_measurement_counters():
    r = Reflector()
    for i in range(3):
        out = receive(r, with_tlvs(DirectMeasurement(i + 1)), META, T3_NS)
    dm = DirectMeasurement.from_value(reply_tlvs(bytes(out[0].data))[0].value)
    assert (dm.sender_tx_count, dm.reflector_rx_count, dm.reflector_tx_count) == (3, 3, 3)


def test_access_report_valid_and_invalid_id():
    _, reply, _ = reflect(with_tlvs(AccessReport(2, 1)))
    assert reply_tlvs(reply)[0].flags == 0 and reply_tlvs(reply)[0].value == bytes.fromhex("20010000")
    _, reply, _ = reflect(with_tlvs(RawTlv(0x80, 6, 4, bytes.fromhex("70010000"))))
    assert reply_tlvs(reply)[0].flags & FLAG_U


def test_follow_up_telemetry_stateless_zero_stateful_previous():
    _, reply, _ = reflect(with_tlvs(FollowUpTelemetry()))
    assert reply_tlvs(reply)[0].value == bytes(16)
    r = Reflector(ReflectorConfig(stateful=True))
    stamp(r, receive(r, with_tlvs(FollowUpTelemetry()), META, T3_NS)[0], T3_NS + 5, tx_method=2)
    second = bytes(receive(r, with_tlvs(FollowUpTelemetry()), META, T3_NS + 1000)[0].data)
    fu = FollowUpTelemetry.from_value(reply_tlvs(second)[0].value)
    assert fu.sequence_number == 0 and fu.timestamp_mode == 2
    # T3 + 5 ns: frac = floor(750_250_005 * 2^32 / 10^9) = 0xc0106263
    assert fu.follow_up_timestamp == 0xE93C7F00_C0106263


def test_timestamp_information_filled():
    meta = At(("127.0.0.1", 1), "127.0.0.1", ttl=64, kernel_ns=T2_NS)
    _, reply, _ = reflect(with_tlvs(TimestampInformation()), ReflectorConfig(sync_source=1), meta=meta)
    ti = TimestampInformation.from_value(reply_tlvs(reply)[0].value)
    assert (ti.sync_src_in, ti.timestamp_in, ti.sync_src_out, ti.timestamp_out) == (1, 2, 1, 3)


def test_destination_node_address():
    ours = with_tlvs(DestinationNodeAddress(ipaddress.ip_address("127.0.0.1")), ssid=1)
    _, reply, rep = reflect(ours)
    assert reply_tlvs(reply)[0].flags == 0 and rep.source_address == bytes([127, 0, 0, 1])
    other = with_tlvs(DestinationNodeAddress(ipaddress.ip_address("192.0.2.99")), ssid=1)
    _, reply, rep = reflect(other)
    assert reply_tlvs(reply)[0].flags & FLAG_U


def test_return_path_no_reply():
    r, reply, _ = reflect(with_tlvs(ReturnPath(control_code=0)))
    assert reply is None and r.counters.dropped["return_path_no_reply"] == 1
    _, reply, _ = reflect(with_tlvs(ReturnPath(control_code=1)))
    assert reply_tlvs(reply)[0].flags == 0


def test_return_address_needs_allow_list_or_authentication():
    pkt = with_tlvs(ReturnPath(return_address=ipaddress.ip_address("127.0.0.2")))
    _, reply, rep = reflect(pkt)
    assert reply_tlvs(reply)[0].flags & FLAG_U and rep.destination == META.source
    allow = ReflectorConfig(return_address_allow=(ipaddress.ip_network("127.0.0.0/8"),))
    _, reply, rep = reflect(pkt, allow)
    assert reply_tlvs(reply)[0].flags == 0 and rep.destination == ("127.0.0.2", 40000)


def test_return_address_is_honoured_for_authenticated_packets():
    # Digest 6.4's authenticated packet (c) with a Return Path TLV (Return Address 127.0.0.2,
    # written out from RFC 9503 §4.1.2) and the HMAC TLV authenticated mode requires.
    from stamp_suite.wire.tlv import compute_hmac_tlv
    rp = bytes.fromhex("800a0008" "80020004" "7f000002")
    packet = EX_C + rp + compute_hmac_tlv(KEY, EX_C[:4], rp).to_bytes()
    cfg = ReflectorConfig(authenticated=True, keys=KeyStore(KEY), error_estimate=SYNCED)  # no allow-list
    _, reply, rep = reflect(packet, cfg)
    assert reply[112] == 0x00 and rep.destination == ("127.0.0.2", META.source[1])


def test_segment_routed_return_path_is_flagged_unusable():
    _, reply, rep = reflect(with_tlvs(ReturnPath(sr_mpls_labels=ReturnPath.label_stack([100, 200]))))
    assert reply_tlvs(reply)[0].flags & FLAG_U and rep.destination == META.source


def test_micro_session_id():
    cfg = ReflectorConfig(member_link_id=9)
    _, reply, _ = reflect(with_tlvs(MicroSessionId(3, 0)), cfg)
    assert MicroSessionId.from_value(reply_tlvs(reply)[0].value) == MicroSessionId(3, 9)
    r, reply, _ = reflect(with_tlvs(MicroSessionId(3, 8)), cfg)
    assert reply is None and r.counters.dropped["micro_session_mismatch"] == 1
    _, reply, _ = reflect(with_tlvs(MicroSessionId(3, 9)), cfg)
    assert reply is not None


def test_micro_session_id_without_a_member_link_is_processed_with_reflector_id_0():
    # RFC 9534 §3.2: Reflector ID 0 is "not known"; a non-zero one cannot be checked here.
    for reflector_id in ("0000", "0008"):
        _, reply, _ = reflect(EX_A + bytes.fromhex("800b0004" "0003" + reflector_id))
        assert reply[44:] == bytes.fromhex("000b0004" "0003" "0000")  # U = 0, Sender ID copied, Reflector ID 0


def test_hmac_tlv_verified_and_recomputed_in_authenticated_mode():
    cfg = ReflectorConfig(authenticated=True, keys=KeyStore(KEY), stateful=True, error_estimate=SYNCED)
    _, reply, _ = reflect(EX_E, cfg)
    t = reply_tlvs(reply, 112)
    assert [x.flags for x in t] == [0, 0]  # processed, integrity fine
    assert verify_hmac_tlv(KEY, reply[:4], reply[112:], t)  # over the reply's own seq and TLVs


def test_hmac_tlv_failure_sets_i_on_every_tlv():
    bad = bytearray(EX_E)
    bad[-1] ^= 0xFF
    cfg = ReflectorConfig(authenticated=True, keys=KeyStore(KEY))
    _, reply, _ = reflect(bytes(bad), cfg)
    assert all(t.flags & FLAG_I for t in reply_tlvs(reply, 112))
    assert reply[112:][4:8] == bytes.fromhex("b8000000")  # CoS not processed


def test_missing_hmac_tlv_in_authenticated_mode_is_integrity_failure():
    pkt = EX_C + ClassOfService(46).to_tlv().to_bytes()
    _, reply, _ = reflect(pkt, ReflectorConfig(authenticated=True, keys=KeyStore(KEY)))
    assert reply_tlvs(reply, 112)[0].flags & FLAG_I
    only_padding = EX_C + RawTlv.build(1, bytes(8)).to_bytes()
    _, reply, _ = reflect(only_padding, ReflectorConfig(authenticated=True, keys=KeyStore(KEY)))
    assert reply_tlvs(reply, 112)[0].flags == 0


def test_hmac_tlv_not_last_is_integrity_failure():
    area = bytes.fromhex("80080010" + "00" * 16) + ClassOfService(46).to_tlv().to_bytes()
    _, reply, _ = reflect(EX_C + area, ReflectorConfig(authenticated=True, keys=KeyStore(KEY)))
    assert all(t.flags & FLAG_I for t in reply_tlvs(reply, 112))


def test_ignore_mode_copies_tlvs_untouched():
    pkt = with_tlvs(ClassOfService(46), RawTlv(0x80, 200, 2, b"zz"))
    _, reply, _ = reflect(pkt, ReflectorConfig(tlv_mode=TlvMode.IGNORE))
    assert reply[44:] == pkt[44:]


def test_rate_limit_per_source_address():
    r = Reflector(ReflectorConfig(max_pps=10, max_pps_burst=3))
    answered = [bool(receive(r, EX_A, At(("127.0.0.1", 1000 + i), None, kernel_ns=None), T3_NS)) for i in range(5)]
    assert answered == [True, True, True, False, False]  # burst of 3, from any source port
    assert r.counters.dropped["rate_limited"] == 2
    assert receive(r, EX_A, At(("127.0.0.2", 1), None, kernel_ns=None), T3_NS)  # another host
    assert receive(r, EX_A, META, T3_NS + 100_000_000)  # 100 ms later: one more token


def test_rate_limiter_table_is_capped_and_ipv6_hosts_limited_by_64():
    from stamp_suite.reflector.sessions import RateLimiter
    limiter = RateLimiter(rate=1, burst=1, max_clients=100)
    for i in range(1000):  # a spray of sources cannot grow the table past its cap
        limiter.allow(f"10.0.{i // 256}.{i % 256}", T3_NS)
    assert len(limiter._buckets) == 100
    assert limiter.allow("2001:db8:1:2::1", T3_NS)
    assert not limiter.allow("2001:db8:1:2:ffff::9", T3_NS)  # same /64: the same client
    assert limiter.allow("2001:db8:1:3::1", T3_NS)  # the next /64: another one


def test_hmac_is_compared_in_constant_time(monkeypatch):
    import hmac

    from stamp_suite.wire import auth
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(auth._hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    cfg = ReflectorConfig(authenticated=True, keys=KeyStore(KEY), error_estimate=SYNCED)
    _, reply, _ = reflect(EX_C, cfg)  # digest 6.4: a valid HMAC
    assert reply is not None and len(calls) == 1 and calls[0][1] == EX_C[96:112]


def test_session_table_cap_and_expiry():
    r = Reflector(ReflectorConfig(max_sessions=3, session_timeout_s=10))
    for port in range(5):
        receive(r, EX_A, At(("127.0.0.1", port), "127.0.0.1", kernel_ns=None), T3_NS)
    assert r.counters.active_sessions == 3 and r.counters.sessions_evicted == 2
    r.handle_timer(T3_NS + 11 * 10**9)  # the engine's expiry timer, 11 s idle
    assert r.counters.active_sessions == 0 and r.counters.sessions_expired == 3
    receive(r, EX_A, At(("127.0.0.1", 99), "127.0.0.1", kernel_ns=None), T3_NS + 12 * 10**9)
    assert [s.source for s in r.sessions()] == [("127.0.0.1", 99)]


def test_a_dropped_packet_leaves_no_session():
    """issue 34: spoofed packets that are dropped (too many TLVs, a reply to ourselves, a bad
    HMAC TLV) took sessions and evicted a legitimate sender's; now only an answered packet
    makes one."""
    r = Reflector(ReflectorConfig(max_sessions=2, error_estimate=SYNCED))
    legit = At(("192.0.2.7", 5000), "127.0.0.1")
    assert receive(r, EX_A, legit)
    too_many = EX_A + bytes.fromhex("80010000") * 33
    to_self = with_tlvs(ReturnPath(return_address=ipaddress.ip_address("127.0.0.1")))
    for port in range(1000, 1500):
        spoofed = At(("198.51.100.1", port), "127.0.0.1")
        assert not receive(r, too_many, spoofed)
    c = r.counters
    assert c.active_sessions == 1 and c.sessions_evicted == 0 and c.dropped["too_many_tlvs"] == 500
    assert [s.source for s in r.sessions()] == [("192.0.2.7", 5000)]
    assert receive(r, EX_A, legit)[0].session.received == 2  # its own session, whole
    r2 = Reflector(ReflectorConfig(error_estimate=SYNCED, local_port=862,
                                   return_address_allow=(ipaddress.ip_network("127.0.0.0/8"),)))
    assert not receive(r2, to_self, At(("127.0.0.1", 862), "127.0.0.1"))
    assert r2.counters.active_sessions == 0


def _mutations(rng, seeds):
    for _ in range(3000):
        base = bytearray(rng.choice(seeds))
        op = rng.randrange(4)
        if op == 0:
            base = base[:rng.randrange(len(base) + 1)]
        elif op == 1:
            for _ in range(rng.randrange(1, 8)):
                if base:
                    base[rng.randrange(len(base))] = rng.randrange(256)
        elif op == 2:
            base += bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        else:
            base = bytearray(rng.randbytes(rng.randrange(300)))
        yield bytes(base)


@pytest.mark.parametrize("authenticated", [False, True])
def test_random_and_mutated_datagrams_never_raise(authenticated):
    rng = random.Random(8762)
    seeds = [EX_E, EX_C, EX_A, with_tlvs(Location.request(), ClassOfService(1), ReturnPath(control_code=1),
                                           MicroSessionId(1, 0), TimestampInformation(), FollowUpTelemetry())]
    cfg = ReflectorConfig(authenticated=authenticated, keys=KeyStore(KEY), stateful=True, member_link_id=2,
                          verify_tlv_hmac=True, answer_short_packets=True)
    r = Reflector(cfg)
    n = answered = 0
    for data in _mutations(rng, seeds):
        replies = receive(r, data, META, T3_NS)
        n += 1
        answered += len(replies)
        for rep in replies:
            assert len(rep.data) <= max(len(data), 44)
    assert r.counters.received == n == answered + r.counters.dropped_total
    assert "internal_error" not in r.counters.dropped, r.internal_errors


def _hmac_tlv(seq_field: bytes, preceding: bytes) -> bytes:
    """An HMAC TLV made with the standard library, not our encoder (RFC 8972 §4.8)."""
    import hashlib
    import hmac
    return bytes.fromhex("00080010") + hmac.new(KEY, seq_field + preceding, hashlib.sha256).digest()[:16]


def test_hmac_tlv_is_recomputed_even_when_a_tlv_before_it_is_malformed():
    bad_cos = bytes.fromhex("80040002" "b800")  # Class of Service with Length 2 (RFC 8972 §4.4: 4)
    hmac_tlv = bytearray(_hmac_tlv(EX_C[:4], bad_cos))
    hmac_tlv[0] = 0x80  # as sent: U set
    cfg = ReflectorConfig(authenticated=True, keys=KeyStore(KEY), stateful=True, error_estimate=SYNCED)
    _, reply, _ = reflect(EX_C + bad_cos + bytes(hmac_tlv), cfg)
    tlvs = reply[112:]
    assert tlvs[:6] == bytes.fromhex("40040002" "b800")  # M set, U cleared, the Value copied
    # the HMAC TLV covers the reply's own Sequence Number (stateful: 0) and TLVs as sent back
    assert tlvs[6:] == _hmac_tlv(reply[:4], tlvs[:6])


def test_nonzero_mbz_is_ignored_on_receipt():
    # RFC 8762 §4.2.1: MBZ "MUST be ignored on receipt".  The digest's replies (b) and (c2)
    # carry T2 and the Sender TTL in what is MBZ in a test packet: as test packets, answered.
    _, reply, _ = reflect(EX_B)
    assert reply is not None and reply[24:38] == EX_B[:14]
    auth = ReflectorConfig(authenticated=True, keys=KeyStore(KEY))
    _, reply, _ = reflect(EX_C2, auth)  # (c2) carries a valid HMAC: answered
    assert reply is not None and reply[48:52] == EX_C2[:4]
    odd_mbz = bytearray(EX_C)  # MBZ octets 4-15 of an authenticated packet, set and signed
    odd_mbz[4:16] = b"\xff" * 12
    odd_mbz[96:112] = hmac16(KEY, bytes(odd_mbz[:96]))
    _, reply, _ = reflect(bytes(odd_mbz), auth)
    assert reply is not None


def test_twamp_light_packets_with_random_padding_are_answered():
    # RFC 4656 §4.1.2 recommends random padding: a 14-octet TWAMP-Light header (EX_A's: seq,
    # T1, Error Estimate) and 50 random octets, 64 in all, a thousand times.
    rng = random.Random(8762)
    r = Reflector(ReflectorConfig(error_estimate=SYNCED))
    for _ in range(1000):
        packet = EX_A[:14] + rng.randbytes(50)
        assert isinstance(r.reflect(META(packet), T3_NS), Reflection)
    assert r.counters.dropped == {}


def test_zero_padding_of_any_length_is_answered_with_a_reply_of_that_length():
    # TWAMP-Light and STAMP senders pad with zeros to test the MTU: beyond octet 44 that reads
    # as empty TLVs of the Reserved Type 0, each answered U = 1 (RFC 8972 §4: unknown type).
    for size in (48, 176, 200, 500, 1000, 1472, 9000):
        _, reply, _ = reflect(EX_A + bytes(size - 44), SYNCED_CFG)
        n, odd = divmod(size - 44, 4)
        assert same_but_t3_tag(reply[:44], EX_B, 4) and len(reply) == size
        assert reply[44:] == bytes.fromhex("80000000") * n + bytes(odd)
    # zeros after a TLV, and a zero TLV before one: each run answered the same way
    _, reply, _ = reflect(EX_A + bytes.fromhex("00000000" "80040004b8000000") + bytes(1000), SYNCED_CFG)
    assert reply[44:56] == bytes.fromhex("80000000" "00040004b8000000")
    assert reply[56:] == bytes.fromhex("80000000") * 250


def test_unknown_tlv_comes_back_with_u_only():
    # RFC 8972 §4: the reflector sets U for a type it does not know, M and I only for what it
    # found (nothing here), and the R bits are zero on transmission.
    _, reply, _ = reflect(EX_A + bytes.fromhex("bfc90000"))
    assert reply[44:] == bytes.fromhex("80c90000")
    _, reply, _ = reflect(EX_A + bytes.fromhex("ff0400043c000000"))  # CoS with M, I and R set by the sender
    assert reply[44] == 0
    _, reply, _ = reflect(EX_A + bytes.fromhex("bf0400010000"))  # CoS of Length 1: malformed
    assert reply[44:] == bytes.fromhex("400400010000")


def test_follow_up_telemetry_with_an_invalid_length_is_zeroed_and_flagged():
    # RFC 8972 §4.7: Length not 16 -> Sequence Number and Follow-Up Timestamp zeroed, M set.
    r = Reflector(ReflectorConfig(stateful=True, error_estimate=SYNCED))
    first = receive(r, EX_A, META, T3_NS)[0]
    stamp(r, first, T3_NS)  # a previous reply whose departure the TLV could report
    out = receive(r, EX_A + bytes.fromhex("80070014") + bytes.fromhex("11") * 20, META, T3_NS)
    reply = bytes(stamp(r, out[0], T3_NS))
    assert reply[44:] == bytes.fromhex("40070014") + bytes(12) + bytes.fromhex("11") * 8
    out = receive(r, EX_A + bytes.fromhex("8007000a") + bytes.fromhex("11") * 10, META, T3_NS)
    assert bytes(stamp(r, out[0], T3_NS))[44:] == bytes.fromhex("4007000a") + bytes(10)


BOGUS_HMAC_TLV = bytes.fromhex("80080010") + bytes(range(16))


@pytest.mark.parametrize("keys", [KeyStore(), KeyStore(KEY)], ids=["no key", "key"])
def test_tlvs_under_an_hmac_tlv_that_does_not_verify_are_not_used(keys):
    # RFC 8972 §4.8: the HMAC TLV is verified before any TLV data is used.  A CoS TLV under an
    # HMAC TLV that fails (or that this open reflector has no key to check) changes no TOS...
    cos = bytes.fromhex("80040004b8000000")
    cfg = ReflectorConfig(keys=keys, error_estimate=SYNCED)
    r, reply, rep = reflect(EX_A + cos + BOGUS_HMAC_TLV, cfg)
    assert rep.tos is None
    assert reply[44:] == bytes.fromhex("20040004b8000000" "20080010") + bytes(range(16))
    assert r.counters.tlv_integrity_failures == 1
    # ... and a Return Path Control Code 0 under it suppresses no reply.
    no_reply = bytes.fromhex("800a0008" "80010004" "00000000")
    r, reply, rep = reflect(EX_A + no_reply + BOGUS_HMAC_TLV, cfg)
    assert reply is not None and reply[44] == FLAG_I and "return_path_no_reply" not in r.counters.dropped


def _copying_reflector(packet: bytes, t_wire: int = 0x1234567800000000, ee: int = 0x0001) -> bytes:
    """What any RFC 8762 reflector answers to ``packet`` (open mode, stateless), written from
    the digest's Figure 5 layout: its own seq, T3, EE, SSID and T2, then the sender's first
    14 octets copied, MBZ, its TTL."""
    return (packet[:4] + t_wire.to_bytes(8, "big") + ee.to_bytes(2, "big") + packet[14:16]
            + t_wire.to_bytes(8, "big") + packet[:14] + bytes(2) + bytes([64]) + bytes(3) + packet[44:])


def test_our_reply_sent_back_by_another_reflector_is_refused():
    # Our reply to EX_A, answered by a reflector that copies it as RFC 8762 §4.3.1 says: it
    # brings our tagged T3 and our Error Estimate back in octets 28-37.  Refused, once.
    r = Reflector(ReflectorConfig(error_estimate=SYNCED))
    ours = bytes(stamp(r, receive(r, EX_A, META, T2_NS)[0], T3_NS))
    back = _copying_reflector(ours)
    assert back[28:38] == ours[4:14]
    assert not receive(r, back, META, T3_NS + 1000) and r.counters.dropped == {"reflected_packet": 1}
    # the same octets from another reflector (another key), or a day and more later: answered
    other = Reflector(ReflectorConfig(error_estimate=SYNCED))
    assert receive(other, back, META, T3_NS + 1000)
    a_day_later = At(("127.0.0.1", 40000), "127.0.0.1", ttl=64, kernel_ns=T2_NS + 86_401 * 10**9)
    assert receive(r, back, a_day_later, T3_NS + 86_401 * 10**9)


def _ping_pong(a: Reflector, b: Reflector, first: bytes, a_clock: int, b_clock: int, rounds: int = 20) -> int:
    """One packet from outside to ``a``, then every reply handed to the other reflector, as two
    reflectors that answer each other's replies would; how many replies were made in all."""
    made, packet, turn = 0, first, 0
    for i in range(rounds):
        engine, clock = (a, a_clock) if turn == 0 else (b, b_clock)
        now = clock + i * 1_000_000
        out = receive(engine, packet, At(("192.0.2.9", 862), "192.0.2.1", ttl=64, tos=0, kernel_ns=now), now)
        if not out:
            break
        made += 1
        packet = bytes(stamp(engine, out[0], now + 10_000))
        turn ^= 1
    return made


YEAR_NS = 365 * 86_400 * 1_000_000_000


@pytest.mark.parametrize("formats", [("NTP", "NTP"), ("NTP", "PTP"), ("PTP", "NTP"), ("PTP", "PTP")])
@pytest.mark.parametrize("auth", [False, True], ids=["open", "authenticated"])
@pytest.mark.parametrize("skew_years", [0, 7, -30])
def test_two_reflectors_stop_after_a_handful_whatever_their_clocks_and_formats(formats, auth, skew_years):
    from stamp_suite.wire.timestamp import TimestampFormat
    cfgs = [ReflectorConfig(authenticated=auth, keys=KeyStore(KEY), timestamp_format=TimestampFormat[f],
                            error_estimate=SYNCED) for f in formats]
    a, b = Reflector(cfgs[0]), Reflector(cfgs[1])
    first = EX_C if auth else EX_A  # a recorded (replayed) packet in authenticated mode
    assert _ping_pong(a, b, first, T2_NS, T2_NS + skew_years * YEAR_NS) <= 3


def test_a_reflector_sending_our_reply_back_unchanged_stops_after_two():
    # An echo service returns our reply byte for byte: the second round carries our T3 copied.
    r = Reflector(ReflectorConfig(error_estimate=SYNCED))
    packet, made = EX_A, 0
    for i in range(10):
        out = receive(r, packet, META, T3_NS + i * 1000)
        if not out:
            break
        made += 1
        packet = bytes(stamp(r, out[0], T3_NS + i * 1000))
    assert made == 2


def test_a_reply_to_the_reflectors_own_socket_is_dropped():
    # ONE packet from 127.0.0.3 with the reflector's own port, asking (Return Address) for
    # the reply to go to 127.0.0.1: the reply would arrive at this very socket.  The Return
    # Address is refused, and the reply to the source (our port, a loopback address) dropped.
    allow = ReflectorConfig(return_address_allow=(ipaddress.ip_network("127.0.0.0/8"),), local_port=20003)
    meta = At(("127.0.0.3", 20003), "127.0.0.1", ttl=64, kernel_ns=T2_NS)
    packet = EX_A + bytes.fromhex("800a0008" "80020004" "7f000001")  # Return Path: Return Address 127.0.0.1
    r, reply, _ = reflect(packet, allow, meta)
    assert reply is None and r.counters.dropped["reply_to_self"] == 1
    assert r.counters.return_path == {"return_address_not_allowed": 1}
    to_other_port = At(("127.0.0.3", 20004), "127.0.0.1", ttl=64, kernel_ns=T2_NS)
    _, reply, rep = reflect(packet, allow, to_other_port)
    assert rep.destination == ("127.0.0.1", 20004)


@pytest.mark.parametrize("address", ["00000000", "e0000001", "ffffffff", "f0000001",
                                     "00000000000000000000000000000000", "ff020000000000000000000000000001"])
def test_return_addresses_that_are_not_one_host_are_refused(address):
    # 0.0.0.0 and :: reach this host; multicast and broadcast many: never a Return Address,
    # even inside the allow-list or for an authenticated packet.
    value = bytes.fromhex(address)
    rp = bytes.fromhex("800a") + (4 + len(value)).to_bytes(2, "big") + bytes.fromhex("8002") + len(
        value).to_bytes(2, "big") + value
    allow = ReflectorConfig(return_address_allow=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")))
    meta = At(("192.0.2.9", 40000), "192.0.2.1", ttl=64, kernel_ns=T2_NS)
    r, reply, rep = reflect(EX_A + rp, allow, meta)
    assert rep.destination == ("192.0.2.9", 40000) and reply[44] == FLAG_U
    assert r.counters.return_path == {"return_address_not_allowed": 1}


class Host:
    """This host's addresses as the socket layer would give them (net/local.py reads them)."""

    LOCAL = {ipaddress.ip_address(a) for a in ("192.0.2.1", "2001:db8::1")}
    BROADCAST = {ipaddress.ip_address("192.0.2.255")}

    def is_local(self, ip):
        return ip.is_loopback or ip in self.LOCAL or ip in self.BROADCAST

    def is_broadcast(self, ip):
        return ip in self.BROADCAST


def test_any_address_of_this_host_counts_as_this_reflector_when_bound_to_the_wildcard():
    cfg = ReflectorConfig(host=Host())
    for source in ("192.0.2.1", "2001:db8::1", "192.0.2.255", "0.0.0.0", "::", "::ffff:192.0.2.1"):
        meta = At((source, 862), None, ttl=64, kernel_ns=T2_NS)
        r, reply, _ = reflect(EX_A, cfg, meta)
        assert reply is None and r.counters.dropped == {"reply_to_self": 1}, source
    meta = At(("192.0.2.7", 862), None, ttl=64, kernel_ns=T2_NS)
    assert reflect(EX_A, cfg, meta)[1] is not None  # another host, from port 862 (the Rust sender's habit)


def test_a_broadcast_address_of_this_host_is_never_a_return_address():
    # 192.0.2.255 is a broadcast address of this host's network: refused on any port.
    allow = ReflectorConfig(host=Host(), return_address_allow=(ipaddress.ip_network("0.0.0.0/0"),))
    packet = EX_A + bytes.fromhex("800a0008" "80020004" "c00002ff")
    r, reply, rep = reflect(packet, allow, At(("192.0.2.9", 40000), "192.0.2.1"))
    assert rep.destination == ("192.0.2.9", 40000) and r.counters.return_path == {"return_address_not_allowed": 1}
    assert "not a unicast address" in rep.notes[0]


def test_tlv_and_sub_tlv_limits():
    padding = bytes.fromhex("80010000")  # an empty Extra Padding TLV
    r, reply, _ = reflect(EX_A + padding * 32)
    assert reply is not None
    r, reply, _ = reflect(EX_A + padding * 33)
    assert reply is None and r.counters.dropped["too_many_tlvs"] == 1
    sub = bytes.fromhex("80010008") + bytes(8)  # Location: Source MAC request sub-TLV
    for n, answered in ((16, True), (17, False)):
        value = bytes(4) + sub * n
        r, reply, _ = reflect(EX_A + bytes.fromhex("8002") + len(value).to_bytes(2, "big") + value)
        assert (reply is not None) == answered
    assert r.counters.dropped["too_many_tlvs"] == 1


def test_clock_changes_reach_the_next_reply():
    from stamp_suite.reflector.engine import ClockDescription
    from stamp_suite.wire.timestamp import SyncSource
    r = Reflector(ReflectorConfig(error_estimate=ErrorEstimate(False, multiplier=200)))
    ts_info = bytes.fromhex("80030004" "00000000")  # Timestamp Information, as a sender sends it

    def one():
        reply = bytes(stamp(r, receive(r, EX_A + ts_info, META, T3_NS)[0], T3_NS))
        return reply[12:14], reply[44 + 4], reply[44 + 6]
    assert one() == (bytes.fromhex("00c8"), SyncSource.LOCAL, SyncSource.LOCAL)
    r.update_clock(ClockDescription(ErrorEstimate(True, scale=2, multiplier=3), SyncSource.NTP))
    assert one() == (bytes.fromhex("8203"), SyncSource.NTP, SyncSource.NTP)
    r.update_clock(ClockDescription(ErrorEstimate(False, multiplier=255), SyncSource.LOCAL))
    assert one() == (bytes.fromhex("00ff"), SyncSource.LOCAL, SyncSource.LOCAL)


def test_max_pps_charges_heavy_packets_for_their_work():
    # 16 Location TLVs of 16 sub-TLVs each (Destination IP requests, RFC 8972 §4.2.1):
    # 16 + 256 TLVs and sub-TLVs count as 17 packets (16 per packet).
    location = bytes.fromhex("80020144") + bytes(4) + (bytes.fromhex("80040010") + bytes(16)) * 16
    heavy = EX_A + location * 16
    r = Reflector(ReflectorConfig(max_pps=100, max_pps_burst=100))
    answered = [bool(receive(r, heavy, META, T3_NS)) for _ in range(8)]
    assert answered == [True] * 6 + [False] * 2  # 100 tokens: 17 each, then none left
    light = Reflector(ReflectorConfig(max_pps=100, max_pps_burst=100))
    assert sum(bool(receive(light, EX_A, META, T3_NS)) for _ in range(120)) == 100


def test_a_packet_of_the_other_mode_is_counted_as_wrong_mode():
    # Digest 6.4: the authenticated packet (c) has MBZ octets 4-15 and T1 at 16-23, where an
    # open reflector would look for a reply's Receive Timestamp.
    r, reply, _ = reflect(EX_C)
    assert reply is None and r.counters.dropped["wrong_mode"] == 1 and "reflected_packet" not in r.counters.dropped
    auth = ReflectorConfig(authenticated=True, keys=KeyStore(KEY), error_estimate=SYNCED)
    r, reply, _ = reflect(EX_A, auth)  # digest 6.2, 44 octets: an open packet
    assert reply is None and r.counters.dropped["wrong_mode"] == 1
    r, reply, _ = reflect(EX_A + bytes(100), auth)  # padded past 112 octets: still an open packet
    assert reply is None and r.counters.dropped == {"wrong_mode": 1}
    r, reply, _ = reflect(EX_C, auth)
    assert reply is not None and not r.counters.dropped


def test_replies_that_failed_together_are_all_taken_back():
    """Stateful: ten replies of one session fail in one send; given back latest first, the
    session's count returns to 0 and its next reply carries Sequence Number 0 again."""
    r = Reflector(ReflectorConfig(stateful=True, error_estimate=SYNCED))
    replies = [receive(r, EX_A, META, T3_NS)[0] for _ in range(10)]
    r.stamp(replies, T3_NS)
    for reply in reversed(replies):
        r.send_failed(reply)
    (again,) = receive(r, EX_A, META, T3_NS)
    assert again.sequence_number == 0 and r.counters.reflected == 0 and r.counters.send_errors == 10
    r2 = Reflector(ReflectorConfig(stateful=True, error_estimate=SYNCED))
    first, second = (receive(r2, EX_A, META, T3_NS)[0] for _ in range(2))
    r2.stamp((first, second), T3_NS)
    r2.send_failed(first)  # a later reply was made: the gap stays, as for a reply lost on the way
    assert receive(r2, EX_A, META, T3_NS)[0].sequence_number == 2


def test_a_reflection_has_every_field_and_begins_as_an_outgoing_datagram():
    """Reflection is built with tuple.__new__, so a field added to it must be added there too;
    its first four fields are what the socket layer sends of it, by position."""
    from stamp_suite.wire.datagram import Outgoing
    assert Reflection._fields[:4] == Outgoing._fields
    with_tlv = EX_A + ClassOfService(46).to_tlv().to_bytes()
    for packet in (EX_A, with_tlv):
        reply = Reflector(ReflectorConfig()).reflect(META(packet), 0)
        assert len(reply) == len(Reflection._fields)
        assert (reply.sequence_number, reply.want_tx_timestamp, reply.transmitted_before) == (1, False, 0)
        assert reply.destination == META.source and reply.source_address == META.destination


def test_timers_expire_sessions_and_say_when_the_clock_and_addresses_are_due():
    r = Reflector(ReflectorConfig(session_timeout_s=1, clock_read_ns=3 * 10**9))
    from stamp_suite.reflector.engine import InternalError, ReadAddresses, ReadClock
    assert r.next_timer(0) == 10**9  # the first expiry check
    receive(r, EX_A, META, 0)
    kinds = []
    for now in range(10**9, 31 * 10**9, 10**9):
        assert r.next_timer(now) <= now
        kinds += [type(ev) for ev in r.handle_timer(now)]
    assert kinds.count(ReadClock) == 10 and kinds.count(ReadAddresses) == 1
    assert r.counters.sessions_expired == 1
    r._reflect = None  # a packet that makes the engine raise: dropped, counted, named once
    for _ in range(3):
        assert r.reflect(META(EX_A), 0) == "internal_error"
    assert r.handle_timer(0) == [InternalError("TypeError")] and r.handle_timer(0) == []
    assert r.counters.dropped["internal_error"] == 3


def test_zero_sub_tlvs_are_each_answered_not_understood():
    # Runs of zero padding are a packet's, not a TLV's: three empty sub-TLVs of Type 0 in a
    # Location or Return Path TLV are three unknown sub-TLVs, each answered U = 1.
    location = bytes.fromhex("8002000c" "00000000" "00000000" "00000000")  # ports 0, then 2 sub-TLVs
    _, reply, _ = reflect(EX_A + location)
    assert reply[44:48] == bytes.fromhex("0002000c") and reply[52:] == bytes.fromhex("80000000") * 2
    return_path = bytes.fromhex("800a000c") + bytes(12)
    _, reply, _ = reflect(EX_A + return_path)
    assert reply[44:] == bytes.fromhex("800a000c") + bytes.fromhex("80000000") * 3


def test_the_sockets_count_of_datagrams_dropped_unread_is_counted_across_a_wrap():
    """Reflector.dropped_unread(count): the kernel's 32-bit count since the socket opened, into
    the counters as what is new each time, so a wrap neither loses nor subtracts any."""
    r = Reflector()
    assert r.dropped_unread(0xFFFF_FFF0) == 0xFFFF_FFF0
    assert r.dropped_unread(0xFFFF_FFF0) == 0
    assert r.dropped_unread(5) == 0x15
    assert r.counters.dropped_unread == 0xFFFF_FFF0 + 0x15
