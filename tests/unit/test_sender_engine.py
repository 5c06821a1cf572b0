"""Session-Sender: packets it builds (against the digest) and how it classifies replies."""

import pytest

from vectors import EX_A, EX_C, EX_D, EX_E, KEY, T1_NS, T2_NS, T3_NS
from stamp_suite.reflector.engine import PacketMeta, Reflector, ReflectorConfig
from stamp_suite.sender.engine import SenderConfig, SessionSender
from stamp_suite.wire.auth import KeyStore
from stamp_suite.wire.timestamp import ErrorEstimate, TimestampFormat
from stamp_suite.wire.tlvs import ClassOfService, DirectMeasurement, MicroSessionId

SYNCED = ErrorEstimate(True, TimestampFormat.NTP, 0, 1)
T4_NS = T3_NS + 250_000_000
META = PacketMeta(("127.0.0.1", 40000), "127.0.0.1", 862, ttl=64, tos=0, rx_timestamp_ns=T2_NS)


def send(sender, seq=1, t1=T1_NS):
    return bytes(sender.prepare(seq).stamp(t1))


def test_open_packet_is_digest_example_a():
    assert send(SessionSender(SenderConfig(error_estimate=SYNCED))) == EX_A


def test_authenticated_packet_is_digest_example_c():
    assert send(SessionSender(SenderConfig(authenticated=True, key=KEY, error_estimate=SYNCED))) == EX_C


def test_ssid_and_cos_tlv_is_digest_example_d():
    cfg = SenderConfig(ssid=0x1234, error_estimate=SYNCED, tlvs=(ClassOfService(46),))
    assert send(SessionSender(cfg)) == EX_D


def test_authenticated_cos_with_hmac_tlv_is_digest_example_e():
    cfg = SenderConfig(authenticated=True, key=KEY, error_estimate=SYNCED, tlvs=(ClassOfService(46),))
    assert send(SessionSender(cfg)) == EX_E


def reply_to(r, pkt, meta=META):
    """The reflector's reply to ``pkt``, stamped with T3."""
    return bytes(r.stamp(r.receive(pkt, meta, T3_NS)[0], T3_NS))


def round_trip(sender_cfg, reflector_cfg=None, meta=META):
    s = SessionSender(sender_cfg)
    r = Reflector(reflector_cfg or ReflectorConfig(error_estimate=SYNCED))
    pkt = send(s)
    return s, reply_to(r, pkt, meta)


def test_sample_timestamps_and_rtt():
    s, reply = round_trip(SenderConfig(error_estimate=SYNCED))
    ev = s.receive(reply, T4_NS, ttl=63, tos=0)
    assert ev.kind == "sample"
    smp = ev.sample
    assert (smp.t1_ns, smp.t2_ns, smp.t4_ns) == (T1_NS, T2_NS, T4_NS)
    assert smp.t3_ns == T3_NS - 1  # NTP fraction truncation
    assert smp.rtt_ns == (T4_NS - T1_NS) - (smp.t3_ns - T2_NS)
    assert smp.forward_ns == 250_000_000 and smp.reflector_ttl == 64 and smp.reply_ttl == 63
    assert smp.clocks_synchronized


def test_ptp_sender_with_ntp_reflector_converts_per_field():
    cfg = SenderConfig(timestamp_format=TimestampFormat.PTP, error_estimate=SYNCED)
    s, reply = round_trip(cfg)
    smp = s.receive(reply, T4_NS).sample
    assert smp.t1_ns == T1_NS and smp.t2_ns == T2_NS


def test_duplicate_foreign_malformed_and_late():
    s, reply = round_trip(SenderConfig(timeout_ns=10**9))
    assert s.receive(reply, T4_NS).kind == "sample"
    assert s.receive(reply, T4_NS).kind == "duplicate"
    foreign = bytearray(reply)
    foreign[24:28] = (99).to_bytes(4, "big")
    assert s.receive(bytes(foreign), T4_NS).kind == "foreign"
    assert s.receive(reply[:20], T4_NS).kind == "malformed"
    s2, reply2 = round_trip(SenderConfig(timeout_ns=10**6))
    assert s2.receive(reply2, T4_NS).sample.late


def test_twamp_light_short_reply_is_accepted():
    s, reply = round_trip(SenderConfig())
    assert s.receive(reply[:38], T4_NS).kind == "sample"


def test_authenticated_reply_hmac_checked():
    cfg = SenderConfig(authenticated=True, key=KEY)
    s, reply = round_trip(cfg, ReflectorConfig(authenticated=True, keys=KeyStore(KEY)))
    bad = bytearray(reply)
    bad[50] ^= 1
    assert s.receive(bytes(bad), T4_NS).kind == "hmac_failure"
    assert s.receive(reply, T4_NS).kind == "sample"


def test_ssid_zero_from_rfc8762_reflector_is_counted():
    s = SessionSender(SenderConfig(ssid=5))
    reply = bytearray(reply_to(Reflector(), send(s)))
    reply[14:16] = b"\0\0"
    assert s.receive(bytes(reply), T4_NS).kind == "sample" and s.ssid_not_echoed == 1
    reply[14:16] = b"\0\x06"
    assert s.receive(bytes(reply), T4_NS).kind == "foreign"


def test_direct_measurement_counts_sent_packets():
    s = SessionSender(SenderConfig(tlvs=(DirectMeasurement(),)))
    r = Reflector()
    for seq in range(3):
        reply = reply_to(r, send(s, seq))
    assert s.receive(reply, T4_NS).sample.tlv["direct_measurement"] == {"s_txc": 3, "r_rxc": 3, "r_txc": 3}


def test_micro_session_sender_checks():
    cfg = SenderConfig(tlvs=(MicroSessionId(3, 0),))
    s, reply = round_trip(cfg, ReflectorConfig(member_link_id=9))
    assert s.receive(reply, T4_NS).kind == "sample" and s.learned_reflector_link_id == 9
    s2, reply2 = round_trip(SenderConfig(tlvs=(MicroSessionId(3, 7),)), ReflectorConfig(member_link_id=7))
    tampered = bytearray(reply2)
    tampered[44 + 4:44 + 6] = (4).to_bytes(2, "big")  # wrong sender member link
    assert s2.receive(bytes(tampered), T4_NS).kind == "micro_session_mismatch"


def test_reflector_integrity_flag_discards_all_tlvs():
    cfg = SenderConfig(authenticated=True, key=KEY, tlvs=(ClassOfService(46),))
    s = SessionSender(cfg)
    pkt = bytearray(send(s))
    pkt[-1] ^= 1  # break the HMAC TLV
    reply = reply_to(Reflector(ReflectorConfig(authenticated=True, keys=KeyStore(KEY))), bytes(pkt))
    assert "integrity" in s.receive(reply, T4_NS).sample.tlv


def test_config_rules():
    from stamp_suite.wire.tlvs import DestinationNodeAddress
    import ipaddress
    with pytest.raises(ValueError):
        SenderConfig(tlvs=(DestinationNodeAddress(ipaddress.ip_address("127.0.0.1")),))
    with pytest.raises(ValueError):
        SenderConfig(authenticated=True)


def test_access_report_retransmission_timer():
    """RFC 8972 §4.6: retransmit after the timer until a reply carries the TLV; give up after 4."""
    from stamp_suite.wire.tlvs import AccessReport
    s = SessionSender(SenderConfig(tlvs=(AccessReport(1, 1),), access_report_timer_ns=3 * 10**9))
    send(s, 0, t1=T1_NS)
    assert not s.access_report_retransmit_due(T1_NS + 2 * 10**9)
    due = []
    t = T1_NS
    for attempt in range(6):
        t += 3 * 10**9
        ok = s.access_report_retransmit_due(t)
        due.append(ok)
        if ok:
            send(s, attempt + 1, t1=t)
    assert due == [True, True, True, True, False, False] and s.access_report_retransmissions == 4
    # a reply carrying the Access Report disarms the timer and resets the count
    s2 = SessionSender(SenderConfig(tlvs=(AccessReport(1, 1),)))
    reply = reply_to(Reflector(), send(s2, 0))
    assert s2.receive(reply, T4_NS).sample.tlv["access_report"] == {"access_id": 1, "return_code": 1}
    assert not s2.access_report_retransmit_due(T1_NS + 10 * 10**9)
