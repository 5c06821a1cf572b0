"""The Session-Sender engine alone: the packets it builds (against the digest), its timers and
events, and how it reads replies; no socket, no clock (time is an argument)."""

import pytest
from vectors import EX_A, EX_B, EX_C, EX_C2, EX_D, EX_E, KEY, T1_NS, T2_NS, T3_NS, At, answer

from stamp_suite.reflector.engine import Reflector, ReflectorConfig
from stamp_suite.sender.engine import SenderConfig, SessionSender
from stamp_suite.sender.events import (
    WRONG_KEY,
    WRONG_MODE,
    Duplicate,
    Finished,
    Invalid,
    Late,
    Lost,
    Refused,
    Rejected,
    RejectReason,
    Reply,
    ReportDue,
    Sent,
    Transmit,
    WindowClosed,
)
from stamp_suite.tlvs import AccessReport, ClassOfService, DirectMeasurement, MicroSessionId, TimestampInformation
from stamp_suite.wire.auth import KeyStore
from stamp_suite.wire.timestamp import ErrorEstimate, TimestampFormat

SYNCED = ErrorEstimate(True, TimestampFormat.NTP, 0, 1)
T4_NS = T3_NS + 250_000_000
META = At()
MS = 1_000_000


def packet(sender, seq=1, t1=T1_NS, now=0):
    """Stamp packets until ``seq`` is the one stamped; its bytes."""
    while True:
        sent = sender.stamp(Transmit(now), t1, now)
        if sent.sequence_number == seq:
            return sent.data


def reply_to(r, pkt, meta=META):
    """The reflector engine's reply to ``pkt``, stamped with T3."""
    return answer(r, pkt, meta)[0]


def test_open_packet_is_digest_example_a():
    assert packet(SessionSender(SenderConfig(error_estimate=SYNCED))) == EX_A


def test_authenticated_packet_is_digest_example_c():
    assert packet(SessionSender(SenderConfig(authenticated=True, key=KEY, error_estimate=SYNCED))) == EX_C


def test_ssid_and_cos_tlv_is_digest_example_d():
    cfg = SenderConfig(ssid=0x1234, error_estimate=SYNCED, tlvs=(ClassOfService(46),))
    assert packet(SessionSender(cfg)) == EX_D


def test_authenticated_cos_with_hmac_tlv_is_digest_example_e():
    cfg = SenderConfig(authenticated=True, key=KEY, error_estimate=SYNCED, tlvs=(ClassOfService(46),))
    assert packet(SessionSender(cfg)) == EX_E


def test_the_digest_reply_b_is_a_sample_of_packet_a():
    s = SessionSender(SenderConfig(error_estimate=SYNCED))
    packet(s)
    (ev,) = s.receive(EX_B, T4_NS, 0, ttl=63, tos=0)
    assert isinstance(ev, Reply)
    smp = ev.sample
    assert (smp.t1_ns, smp.t2_ns, smp.t4_ns) == (T1_NS, T2_NS, T4_NS)
    assert smp.t3_ns == T3_NS - 1  # NTP fraction truncation
    assert smp.rtt_ns == (T4_NS - T1_NS) - (smp.t3_ns - T2_NS)
    assert smp.forward_ns == 250_000_000 and smp.reflector_ttl == 64 and smp.reply_ttl == 63
    assert smp.clocks_synchronized


def test_each_error_estimate_of_the_digest_reply_is_read_as_its_own():
    # EX_B with the reflector's Error Estimate (octets 12-13) made unsynchronised (0x0001) and a
    # scale of 8 for the sender's (octets 36-37: 0x8801): each S bit and error read from its field.
    s = SessionSender(SenderConfig(error_estimate=SYNCED))
    packet(s)
    data = bytearray(EX_B)
    data[12:14] = (0x0001).to_bytes(2, "big")
    (ev,) = s.receive(bytes(data), T4_NS, 0)
    assert (ev.sample.sender_synchronized, ev.sample.reflector_synchronized) == (True, False)
    assert ev.sample.sender_error_ns == ev.sample.reflector_error_ns == 1e9 / 2**32
    data[36:38] = (0x8801).to_bytes(2, "big")  # what the sender copied back is not what it sent: still its own
    s = SessionSender(SenderConfig(error_estimate=SYNCED))
    packet(s)
    (ev,) = s.receive(bytes(data), T4_NS, 0)
    assert ev.sample.sender_error_ns == 256e9 / 2**32 and ev.sample.reflector_error_ns == 1e9 / 2**32


def test_a_new_error_estimate_is_in_the_next_packet():
    # Digest example A carries 0x8001 at octets 12-13; after update_clock the next packet
    # carries the new estimate (unsynchronised, 0x0001) and nothing else changes but its number.
    s = SessionSender(SenderConfig(error_estimate=SYNCED))
    assert packet(s) == EX_A
    s.update_clock(ErrorEstimate(False, TimestampFormat.NTP, 0, 1))
    second = bytes(s.stamp(Transmit(0), T1_NS, 0).data)
    assert second[12:14] == b"\x00\x01" and second[:4] == b"\x00\x00\x00\x02"
    assert second[4:12] + second[14:] == EX_A[4:12] + EX_A[14:]


def test_answers_out_of_order_leave_no_deadline_behind():
    # Packets 0-3 sent 10 ms apart (50 ms timeout); 1, 2, then 0 answered: the next timer is the
    # deadline of 3 (80 ms), the only one outstanding, not those of the answered ones.
    reflector = Reflector()
    s = SessionSender(SenderConfig(count=4, interval_ns=10 * MS, timeout_ns=50 * MS))
    s.start(0, T1_NS)
    sent = []
    for now in (0, 10 * MS, 20 * MS, 30 * MS):
        (transmit,) = [ev for ev in s.handle_timer(now) if isinstance(ev, Transmit)]
        sent.append(s.stamp(transmit, T1_NS + now, now).data)
    for seq in (1, 2, 0):
        assert isinstance(s.receive(reply_to(reflector, sent[seq]), T1_NS + 35 * MS, 35 * MS)[0], Reply)
        assert s.next_timer() == (50 * MS if seq else 80 * MS)
    assert s.outstanding == 1


def test_ptp_sender_with_ntp_reflector_converts_per_field():
    s = SessionSender(SenderConfig(timestamp_format=TimestampFormat.PTP, error_estimate=SYNCED))
    reply = reply_to(Reflector(ReflectorConfig(error_estimate=SYNCED)), packet(s))
    (ev,) = s.receive(reply, T4_NS, 0)
    assert ev.sample.t1_ns == T1_NS and ev.sample.t2_ns == T2_NS


def drive(sender, until_ns, reply=None, step_ns=MS, wall=lambda now: T1_NS + now):
    """Run the engine's timers up to ``until_ns`` (no socket): stamp every Transmit, and let
    ``reply(sent, now)`` return the datagrams that come back.  ``wall(now)`` is the wall clock
    (T1).  Returns (time, event) pairs."""
    out = []
    now = 0
    sender.start(0, wall(0))
    while now <= until_ns:
        due = sender.next_timer()
        if due is None or due > until_ns:
            break
        now = max(now, due)
        pending = list(sender.handle_timer(now))
        while pending:
            ev = pending.pop(0)
            if isinstance(ev, Transmit):
                ev = sender.stamp(ev, wall(now), now)
                for data in (reply(ev, now) if reply else ()):
                    pending += sender.receive(data, T1_NS + now + step_ns, now + step_ns)
            out.append((now, ev))
    return out


def test_the_engine_alone_schedule_replies_timeouts_and_the_end():
    """Three packets 10 ms apart, 50 ms timeout; the reflector answers all but the second."""
    reflector = Reflector()
    s = SessionSender(SenderConfig(count=3, interval_ns=10 * MS, timeout_ns=50 * MS))

    def answer(sent, now):
        return [] if sent.sequence_number == 1 else [reply_to(reflector, sent.data)]
    timeline = [(t // MS, type(ev).__name__, getattr(ev, "sequence_number", None)) for t, ev in drive(s, 200 * MS,
                                                                                                    answer)]
    assert timeline == [(0, "Sent", 0), (0, "Reply", None), (10, "Sent", 1), (20, "Sent", 2), (20, "Reply", None),
                        (60, "Lost", 1), (60, "Finished", None)]
    assert s.next_timer() is None and s.finished


def test_capacity_mode_keeps_the_window_full():
    reflector = Reflector()
    s = SessionSender(SenderConfig(count=5, in_flight=2, timeout_ns=50 * MS))
    events = [ev for _, ev in drive(s, 200 * MS, lambda sent, now: [reply_to(reflector, sent.data)])]
    assert [type(e).__name__ for e in events].count("Sent") == 5
    assert [type(e).__name__ for e in events].count("Reply") == 5 and isinstance(events[-1], Finished)


def test_a_rejected_reply_leaves_the_packet_lost_everywhere():
    """One definition of lost: a reply that fails the micro-session check is no reply."""
    s = SessionSender(SenderConfig(count=1, timeout_ns=50 * MS, tlvs=(MicroSessionId(3, 7),)))
    reflector = Reflector(ReflectorConfig(member_link_id=7))

    def tampered(sent, now):
        reply = bytearray(reply_to(reflector, sent.data))
        reply[44 + 4:44 + 6] = (4).to_bytes(2, "big")  # another sender member link
        return [bytes(reply)]
    kinds = [type(ev).__name__ for _, ev in drive(s, 100 * MS, tampered)]
    assert kinds == ["Sent", "Rejected", "Lost", "Finished"]


def test_late_and_duplicate_replies():
    s = SessionSender(SenderConfig(timeout_ns=10 * MS))
    s.start(0, T1_NS)
    reply = reply_to(Reflector(), packet(s, 0, now=0))
    assert [type(e) for e in s.receive(reply, T4_NS, 20 * MS)] == [Lost, Late]  # after the timeout
    assert [type(e) for e in s.receive(reply, T4_NS, 21 * MS)] == [Duplicate]
    foreign = bytearray(reply)
    foreign[24:28] = (99).to_bytes(4, "big")
    (ev,) = s.receive(bytes(foreign), T4_NS, 22 * MS)
    assert isinstance(ev, Rejected) and ev.reason == "foreign"
    (ev,) = s.receive(reply[:20], T4_NS, 22 * MS)
    assert isinstance(ev, Rejected) and ev.reason == "malformed"


def test_twamp_light_short_reply_is_accepted():
    s = SessionSender(SenderConfig())
    packet(s)
    assert isinstance(s.receive(EX_B[:38], T4_NS, 0)[0], Reply)


def test_a_reply_without_the_ttl_octet_says_no_ttl_rather_than_0():
    # Digest reply B cut to 38 and 40 octets (a TWAMP-Light reflector's) has no Session-Sender
    # TTL (octet 40): unknown, in the per-packet line and the summaries, never a TTL of 0.
    from stamp_suite.sender.report import NOT_IN_REPLIES, packet_text, summary_short, summary_text
    from stamp_suite.sender.stats import SessionStats
    stats = SessionStats()
    for size, ttl in ((38, None), (40, None), (41, 64)):
        s = SessionSender(SenderConfig(error_estimate=SYNCED))
        packet(s)
        (ev,) = s.receive(EX_B[:size], T4_NS, 0, ttl=63)
        assert ev.sample.reflector_ttl == ttl
        if ttl is None:
            assert " ttl=? " in packet_text(ev) and "ttl=0" not in packet_text(ev)
            stats.on_event(ev)
    d = stats.to_dict()
    assert d["ttl"]["at_reflector"] == {} and d["ttl"]["at_sender"] == {63: 2} and d["ttl"]["changes"] == 0
    assert f"at the reflector {NOT_IN_REPLIES}, here 63 x2" in summary_short(d, {"remote": "x"})
    (line,) = [x for x in summary_text(d, {"remote": "x"}).splitlines() if "TTL at reflector" in x]
    assert line.split("TTL at reflector")[1].strip() == NOT_IN_REPLIES


def test_authenticated_reply_hmac_checked():
    s = SessionSender(SenderConfig(authenticated=True, key=KEY))
    reply = reply_to(Reflector(ReflectorConfig(authenticated=True, keys=KeyStore(KEY))), packet(s))
    bad = bytearray(reply)
    bad[50] ^= 1
    assert s.receive(bytes(bad), T4_NS, 0)[0].reason == "hmac_failure"
    assert isinstance(s.receive(reply, T4_NS, 0)[0], Reply)


def test_refusals_are_counted_until_a_reply():
    s = SessionSender(SenderConfig())
    assert [e.consecutive for e in s.icmp_error("port unreachable") + s.icmp_error("host unreachable")] == [1, 2]
    s.receive(reply_to(Reflector(), packet(s, 0)), T4_NS, 0)
    assert s.icmp_error("network unreachable") == [Refused(1, "network unreachable")]


def test_an_icmp_error_is_the_answer_to_the_last_packet_sent_and_its_loss_is_said_once():
    s = SessionSender(SenderConfig())
    packet(s, 0)
    assert s.icmp_error("port unreachable") == [Refused(1, "port unreachable", 0)]
    assert s.icmp_error("port unreachable") == [Refused(2, "port unreachable")]  # a second names no packet
    (lost,) = [e for e in s.handle_timer(10**12) if isinstance(e, Lost)]
    assert lost == Lost(0, lost.t1_ns, refused=True)


def test_a_reply_with_a_failing_hmac_says_whether_the_reflector_runs_open_mode():
    # The digest's authenticated reply (c2) read with another key: HMAC fails, MBZ 4-15 zero;
    # and its open reply (b), padded to the authenticated length, as an open-mode reflector
    # answers a 112-octet packet: its T3 where the authenticated layout has MBZ.
    s = SessionSender(SenderConfig(authenticated=True, key=bytes(16)))
    packet(s, 0)
    (ev,) = s.receive(EX_C2, T4_NS, 0)
    assert ev.reason == RejectReason.HMAC_FAILURE and ev.detail == WRONG_KEY
    (ev,) = s.receive(EX_B + bytes(len(EX_C2) - len(EX_B)), T4_NS, 0)
    assert ev.reason == RejectReason.HMAC_FAILURE and ev.detail == WRONG_MODE


def test_ssid_zero_from_rfc8762_reflector_is_counted():
    s = SessionSender(SenderConfig(ssid=5))
    reply = bytearray(reply_to(Reflector(), packet(s, 0)))
    reply[14:16] = b"\0\0"
    assert isinstance(s.receive(bytes(reply), T4_NS, 0)[0], Reply) and s.ssid_not_echoed == 1
    reply[14:16] = b"\0\x06"
    assert s.receive(bytes(reply), T4_NS, 0)[0].reason == "foreign"


def test_direct_measurement_counts_sent_packets():
    s = SessionSender(SenderConfig(tlvs=(DirectMeasurement(),)))
    r = Reflector()
    for seq in range(3):
        reply = reply_to(r, packet(s, seq))
    assert s.receive(reply, T4_NS, 0)[0].sample.tlvs[DirectMeasurement].record() == {"s_txc": 3, "r_rxc": 3, "r_txc": 3}


def test_micro_session_sender_checks_and_learns():
    s = SessionSender(SenderConfig(tlvs=(MicroSessionId(3, 0),)))
    reply = reply_to(Reflector(ReflectorConfig(member_link_id=9)), packet(s, 0))
    assert isinstance(s.receive(reply, T4_NS, 0)[0], Reply) and s.learned_reflector_link_id == 9


def test_reading_goes_on_past_a_tlv_it_cannot_read():
    """The Rust stamp-suite's Location TLV uses 2-octet sub-TLV headers; ours cannot read it,
    but its outer Length is sound, so the Class of Service TLV after it is still read."""
    s = SessionSender(SenderConfig(error_estimate=SYNCED))
    packet(s)
    rust_location = bytes.fromhex("0002000c" "0000" "0000" "0106" "c0000201" "0000")  # type 1, len 6 (theirs)
    cos = bytes.fromhex("00040004" "bae00000")  # DSCP1 46, DSCP2 46 (RFC 8972 §4.4), U = 0
    (ev,) = s.receive(EX_B + rust_location + cos, T4_NS, 0)
    assert ev.sample.tlvs[ClassOfService].dscp2 == 46
    (problem,) = ev.sample.tlv_problems
    assert problem.tlv_type == 2 and problem.kind == "unreadable"


def test_not_processed_is_skipped_and_reading_stops_at_a_malformed_tlv():
    # RFC 8972 §4: U, skip that TLV; M, "stop processing the remainder of the packet".
    s = SessionSender(SenderConfig(error_estimate=SYNCED))
    packet(s)
    tlvs = bytes.fromhex("80040004b8000000" "00040004b8b80000" "40050004aaaaaaaa" "00040004b8b80000")
    (ev,) = s.receive(EX_B + tlvs, T4_NS, 0)  # U on CoS, CoS, M on type 5, CoS
    assert [(p.tlv_type, p.kind) for p in ev.sample.tlv_problems] == [(4, "not_processed"), (5, "malformed"),
                                                                      (4, "not_read")]
    assert ev.sample.tlvs[ClassOfService].dscp1 == 46  # the CoS before the malformed TLV was read
    s = SessionSender(SenderConfig(error_estimate=SYNCED))
    packet(s)
    (ev,) = s.receive(EX_B + bytes.fromhex("40040004b8000000" "0003000401010101"), T4_NS, 0)
    assert TimestampInformation not in ev.sample.tlvs
    assert [(p.tlv_type, p.kind) for p in ev.sample.tlv_problems] == [(4, "malformed"), (3, "not_read")]


def test_reflector_integrity_flag_discards_all_tlvs():
    cfg = SenderConfig(authenticated=True, key=KEY, tlvs=(ClassOfService(46),))
    s = SessionSender(cfg)
    pkt = bytearray(packet(s, 0))
    pkt[-1] ^= 1  # break the HMAC TLV
    reply = reply_to(Reflector(ReflectorConfig(authenticated=True, keys=KeyStore(KEY))), bytes(pkt))
    sample = s.receive(reply, T4_NS, 0)[0].sample
    assert {p.kind for p in sample.tlv_problems} == {"integrity"} and not sample.tlvs


def test_authenticated_replies_need_an_hmac_tlv_over_their_tlvs():
    # The base HMAC covers octets 0-95, not the TLVs (RFC 8972 §4.8): the digest's signed reply
    # (c2) with a CoS TLV that says DSCP2 = 10, and no HMAC TLV, could have been rewritten on
    # the way.  Its TLVs are counted as an integrity problem and not used.
    s = SessionSender(SenderConfig(authenticated=True, key=KEY, error_estimate=SYNCED, tlvs=(ClassOfService(46),)))
    assert packet(s) == EX_E
    (ev,) = s.receive(EX_C2 + bytes.fromhex("00040004b8a00000"), T4_NS, 0)
    assert isinstance(ev, Reply) and not ev.sample.tlvs
    assert [(p.tlv_type, p.kind) for p in ev.sample.tlv_problems] == [(8, "integrity")]


def test_impossible_timestamps_make_an_invalid_reply():
    # The digest's reply (b) with T3 moved 10 s after T2 (longer at the reflector than the
    # whole round trip), or before T2: answered in time, so not lost, but no measurement.
    for t3, reason in (("e93c7f0ac0000000", "T3 - T2 longer than T4 - T1"), ("e93c7f00b0000000", "T3 before T2")):
        s = SessionSender(SenderConfig(error_estimate=SYNCED))
        packet(s)
        (ev,) = s.receive(EX_B[:4] + bytes.fromhex(t3) + EX_B[12:], T4_NS, 0)
        assert isinstance(ev, Invalid) and ev.reason == reason
        lost = [e.sequence_number for e in s.handle_timer(10**12) if isinstance(e, Lost)]
        assert lost == [0]  # seq 0, stamped before seq 1 and never answered: seq 1 is not lost
    s = SessionSender(SenderConfig(error_estimate=SYNCED))
    packet(s)
    (ev,) = s.receive(EX_B, T4_NS, 0)
    # (b) itself: T4 - T1 = 500.25 ms, T3 - T2 = 249,999 ns (the NTP fraction truncates, digest §5.13)
    assert isinstance(ev, Reply) and ev.sample.rtt_ns == 500_250_000 - 249_999


def test_config_rules():
    import ipaddress

    from stamp_suite.tlvs import DestinationNodeAddress
    with pytest.raises(ValueError):
        SenderConfig(tlvs=(DestinationNodeAddress(ipaddress.ip_address("127.0.0.1")),))
    with pytest.raises(ValueError):
        SenderConfig(authenticated=True)


def test_access_report_retransmission_timer():
    """RFC 8972 §4.6: retransmit after the timer until a reply carries the TLV; give up after 4."""
    s = SessionSender(SenderConfig(count=1, timeout_ns=NEVER, access_report_timer_ns=3 * 10**9,
                                   tlvs=(AccessReport(1, 1),)))
    timeline = drive(s, 20 * 10**9)
    sends = [(t // 10**9, ev.retransmission) for t, ev in timeline if isinstance(ev, Sent)]
    assert sends == [(0, False), (3, True), (6, True), (9, True), (12, True)]
    # a reply carrying the Access Report back disarms the timer
    s2 = SessionSender(SenderConfig(count=1, timeout_ns=NEVER, access_report_timer_ns=3 * 10**9,
                                    tlvs=(AccessReport(1, 1),)))
    reflector = Reflector()
    timeline = drive(s2, 20 * 10**9, lambda sent, now: [reply_to(reflector, sent.data)])
    assert [ev.retransmission for _, ev in timeline if isinstance(ev, Sent)] == [False]
    reply = next(ev for _, ev in timeline if isinstance(ev, Reply))
    assert reply.sample.tlvs[AccessReport].record() == {"access_id": 1, "return_code": 1}


NEVER = 10**12


def test_report_and_window_timers():
    """Interim reports exactly every interval from the start; a window closes once its last
    packet's timeout has passed, the first one partial (the session began inside it)."""
    s = SessionSender(SenderConfig(count=0, interval_ns=100 * MS, timeout_ns=50 * MS, report_interval_ns=1000 * MS,
                                   windows_ns=(1000 * MS,)))
    start_wall = T1_NS  # 2024-01-01T00:00:00.5: half-way through a one-second window
    timeline = drive(s, 3200 * MS, lambda sent, now: [reply_to(Reflector(), sent.data)])
    reports = [(t // MS, ev.index) for t, ev in timeline if isinstance(ev, ReportDue)]
    assert reports == [(1000, 1), (2000, 2), (3000, 3)]
    windows = [(t // MS, ev.index - start_wall // 10**9, ev.partial) for t, ev in timeline
               if isinstance(ev, WindowClosed)]
    assert windows == [(550, 0, True), (1550, 1, False), (2550, 2, False)]


def test_duration_stops_sending_and_waits_for_the_replies_in_flight():
    """-w: no packet is due at or after the end; those in flight still get their reply."""
    reflector = Reflector()
    s = SessionSender(SenderConfig(count=0, interval_ns=100 * MS, duration_ns=1000 * MS, timeout_ns=50 * MS))
    timeline = drive(s, 5000 * MS, lambda sent, now: [reply_to(reflector, sent.data)], step_ns=30 * MS)
    kinds = [type(ev).__name__ for _, ev in timeline]
    assert kinds.count("Sent") == 10 and kinds.count("Reply") == 10 and "Lost" not in kinds
    assert kinds[-1] == "Finished" and s.finished


def test_a_stop_makes_packets_in_flight_unanswered_not_lost():
    s = SessionSender(SenderConfig(count=0, interval_ns=100 * MS, timeout_ns=5000 * MS))
    drive(s, 250 * MS)  # three packets out, none answered, none past its timeout
    events = s.close(250 * MS)
    assert [type(e).__name__ for e in events] == ["Unanswered"] * 3 + ["Finished"]


def test_windows_keep_their_packets_when_the_wall_clock_steps():
    """chrony stepping the clock back an hour mid-run: every window still closes with the
    packets sent in it (windows run on the engine's window clock, not on T1)."""
    from stamp_suite.monitor.windows import WindowedStats
    s = SessionSender(SenderConfig(count=0, interval_ns=100 * MS, timeout_ns=50 * MS, windows_ns=(1000 * MS,)))
    closed = []
    windows = WindowedStats((1000 * MS,), on_close=closed.append)
    stepped = lambda now: T1_NS + now - (3600 * 10**9 if now >= 1200 * MS else 0)  # noqa: E731
    for _, ev in drive(s, 4600 * MS, lambda sent, now: [reply_to(Reflector(), sent.data)], wall=stepped):
        windows(ev)
    assert [w.record()["packets"]["sent"] for w in closed] == [5, 10, 10, 10, 10]  # the first partial: half-way
    assert [w.stats.received for w in closed] == [5, 10, 10, 10, 10]
    assert [w.partial for w in closed] == [True, False, False, False, False]
    assert len(windows.open[1000 * MS]) == 1  # only the window still running: nothing stranded


def test_a_late_reply_to_a_summarised_window_opens_none_again():
    """A reply after its packet's timeout (Late) or a duplicate can arrive after its window
    closed: it is not counted in a window that nobody would ever close (a monitor's memory
    would grow with every late reply)."""
    from stamp_suite.monitor.windows import WindowedStats
    from stamp_suite.sender.events import Late, Sample, Sent, WindowClosed
    windows = WindowedStats((1000 * MS, 10_000 * MS))
    windows(Sent(7, T1_NS, b"", window_ns=2500 * MS))  # 1 s window 2, 10 s window 0
    windows(WindowClosed(1000 * MS, 2, False))
    windows(Late(Sample(7, 7, T1_NS, T1_NS + 1, T1_NS + 2, T1_NS + 3, 64, 64, 0, True, True, 0.0, 0.0, 0)))
    assert windows.open[1000 * MS] == {}
    assert windows.last[1000 * MS].stats.sent == 1 and windows.last[1000 * MS].stats.late == 0
    longer = windows.open[10_000 * MS][0]  # still open: it has both
    assert longer.sent == 1 and [type(e).__name__ for e in longer.events] == ["Late"]


def test_a_send_over_an_interval_late_is_skipped_when_asked():
    """skip_missed (the monitor): a loop that reaches a send 3.5 intervals late sends the
    latest slot's packet and counts three skipped, instead of four packets in a burst (which a
    sender without it gets at once, all four: its driver sends them in one call)."""
    for skip, expected_dues, skipped in ((True, [300 * MS], 3), (False, [0, 100 * MS, 200 * MS, 300 * MS], 0)):
        s = SessionSender(SenderConfig(count=0, interval_ns=100 * MS, skip_missed=skip))
        s.start(0, T1_NS)
        transmits = [e for e in s.handle_timer(350 * MS) if type(e).__name__ == "Transmit"]
        assert [t.due_ns for t in transmits] == expected_dues and s.skipped == skipped
        assert s.next_send() == 400 * MS


def test_skipping_keeps_a_count_limited_schedule_to_its_count():
    s = SessionSender(SenderConfig(count=3, interval_ns=100 * MS, skip_missed=True))
    s.start(0, T1_NS)
    (transmit,) = [e for e in s.handle_timer(950 * MS) if type(e).__name__ == "Transmit"]
    assert transmit.due_ns == 200 * MS and s.skipped == 2 and s.next_send() is None  # the third and last slot


def test_window_summaries_of_many_sessions_are_spread_over_the_window():
    """A session started 0.5 s into its 1 s interval closes its 10 s windows 5 s after the
    others (the window, times its share of the interval), not in the same second."""
    closes = []
    for delay in (0, 500 * MS):
        s = SessionSender(SenderConfig(count=0, interval_ns=1000 * MS, timeout_ns=500 * MS, windows_ns=(10_000 * MS,)))
        s.start(0, 0, delay)
        closes.append(s._window_close(10_000 * MS, 0))
    assert closes == [10_500 * MS, 15_500 * MS]


def test_skipping_never_sends_after_a_duration_ends_nor_for_a_short_delay():
    s = SessionSender(SenderConfig(count=0, duration_ns=1000 * MS, interval_ns=100 * MS, skip_missed=True))
    s.start(0, T1_NS)
    (transmit,) = [e for e in s.handle_timer(1250 * MS) if type(e).__name__ == "Transmit"]
    assert transmit.due_ns == 900 * MS and s.skipped == 9 and s.next_send() is None
    fast = SessionSender(SenderConfig(count=0, interval_ns=5 * MS, skip_missed=True))
    fast.start(0, T1_NS)
    (transmit,) = [e for e in fast.handle_timer(50 * MS) if type(e).__name__ == "Transmit"]
    assert transmit.due_ns == 0 and fast.skipped == 0  # 50 ms late: under SKIP_AFTER_NS, not skipped


def test_windows_folded_in_chunks_summarise_exactly_as_at_close(monkeypatch):
    """A window folds its events into its statistics FOLD_EVERY at a time: the summary is the
    one the same events give in one pass (replies out of order, lost, late, duplicates)."""
    import random

    import stamp_suite.monitor.windows as w
    from stamp_suite.sender.events import Duplicate, Late, Lost, Reply, Sample, Sent, WindowClosed
    rnd = random.Random(7)
    events = []
    for seq in range(400):
        events.append(Sent(seq, T1_NS + seq * MS, b"", window_ns=seq * 10 * MS))
        rtt = rnd.randrange(50_000, 900_000)
        smp = Sample(seq, seq, T1_NS + seq * MS, T1_NS + seq * MS + rtt // 2, T1_NS + seq * MS + rtt // 2,
                     T1_NS + seq * MS + rtt, 64, 64, 0, True, True, 0.0, 0.0, 0)
        fate = rnd.random()
        events.append(Lost(seq, T1_NS) if fate < 0.1 else Late(smp) if fate < 0.15 else Reply(smp))
        if fate > 0.95:
            events.append(Duplicate(smp))
    rnd.shuffle(events[100:300])  # replies and sends out of order in the middle
    events += [WindowClosed(1000 * MS, i, False) for i in range(4)] + [WindowClosed(2000 * MS, i, False)
                                                                         for i in range(2)]

    def summaries(fold_every):
        monkeypatch.setattr(w, "FOLD_EVERY", fold_every)
        closed = []
        windows = w.WindowedStats((1000 * MS, 2000 * MS), on_close=closed.append)
        for ev in events:
            windows(ev)
        return [c.record() for c in closed]
    assert summaries(3) == summaries(10**9)
    assert [r["packets"]["sent"] for r in summaries(3)][:4] == [100, 100, 100, 100]


def test_the_hosts_drop_count_is_said_once_known_then_only_as_it_grows():
    """dropped_unread(count): the socket's 32-bit count since it was opened (SO_MEMINFO); the
    first count is an event even at 0 (the count is then known), later ones only what is new,
    across a wrap of the count too."""
    from stamp_suite.sender.events import DroppedUnread
    engine = SessionSender(SenderConfig())
    assert engine.dropped_unread(0) == [DroppedUnread(0, 0)]
    assert engine.dropped_unread(0) == []
    assert engine.dropped_unread(5) == [DroppedUnread(5, 5)]
    assert engine.dropped_unread(7) == [DroppedUnread(2, 7)]
    assert engine.dropped_unread(7) == []
    assert SessionSender(SenderConfig()).dropped_unread(4) == [DroppedUnread(4, 4)]  # dropped before the first look
    wrapping = SessionSender(SenderConfig())
    wrapping.dropped_unread(0xFFFF_FFFE)
    assert wrapping.dropped_unread(3) == [DroppedUnread(5, 0xFFFF_FFFE + 5)]


def test_each_scheduled_send_says_how_late_it_left():
    """Sent.late_ns: now minus the time its Transmit was due (the schedule error the driver and
    the statistics record); a packet outside the schedule has none: capacity mode's, and an
    Access Report retransmission."""
    s = SessionSender(SenderConfig(count=3, interval_ns=10 * MS, timeout_ns=50 * MS))
    s.start(0, T1_NS)
    lateness = []
    for now, stamped_at in ((0, 0), (10 * MS, 10 * MS + 300_000), (20 * MS, 27 * MS)):
        (transmit,) = [ev for ev in s.handle_timer(now) if isinstance(ev, Transmit)]
        lateness.append(s.stamp(transmit, T1_NS + stamped_at, stamped_at).late_ns)
    assert lateness == [0, 300_000, 7 * MS]
    assert s.stamp(Transmit(20 * MS, retransmission=True), T1_NS, 30 * MS).late_ns is None
    capacity = SessionSender(SenderConfig(count=2, in_flight=2, timeout_ns=50 * MS))
    capacity.start(0, T1_NS)
    assert [capacity.stamp(t, T1_NS + 5 * MS, 5 * MS).late_ns
            for t in capacity.handle_timer(0) if isinstance(t, Transmit)] == [None, None]
