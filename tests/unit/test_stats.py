"""Statistics against hand-computed values for crafted streams of samples."""

import math
import random
import re

import pytest

from stamp_suite.sender.distribution import RELATIVE_ACCURACY, Distribution
from stamp_suite.sender.events import Duplicate, Invalid, Late, Lost, Reply, Sample, Sent
from stamp_suite.sender.report import summary_text
from stamp_suite.sender.stats import SessionStats, unwrap
from stamp_suite.tlvs import ClassOfService

MS = 1_000_000
BASE = 1_700_000_000 * 10**9


def sample(seq, rtt_ms, *, refl_seq=None, offset_ms=0.0, ttl=64, synced=True, t1=None):
    """A sample whose round trip is rtt_ms, half each way, with the reflector clock offset."""
    t1 = BASE + seq * 10 * MS if t1 is None else t1
    half = int(rtt_ms * MS) // 2
    t2 = t1 + half + int(offset_ms * MS)
    t3 = t2 + 50_000  # 50 us residence, removed from the RTT
    t4 = t3 - int(offset_ms * MS) + (int(rtt_ms * MS) - half)
    return Sample(seq, seq if refl_seq is None else refl_seq, t1, t2, t3, t4, ttl, 63, 0, synced, synced,
                  0.0, 0.0, 0)


KINDS = {"sample": Reply, "late": Late, "duplicate": Duplicate}


def feed(stats, events, sent, lost=()):
    """``sent`` packets, the replies given as (kind, sample), and Lost events for ``lost``."""
    for seq in range(sent):
        stats.on_event(Sent(seq, BASE + seq * 10 * MS, b""))
    for kind, s in events:
        stats.on_event(KINDS[kind](s))
    for seq in lost:
        stats.on_event(Lost(seq, BASE + seq * 10 * MS))
    return stats.to_dict()


STREAM = [("sample", sample(0, 10)), ("sample", sample(1, 12)), ("sample", sample(2, 11)),
          ("sample", sample(4, 15)), ("sample", sample(5, 10)), ("duplicate", sample(5, 10)),
          ("sample", sample(8, 13)), ("sample", sample(6, 12)), ("sample", sample(9, 10))]


def test_loss_duplicates_reordering_and_delay():
    d = feed(SessionStats(), STREAM, sent=10, lost=(3, 7))
    p = d["packets"]
    assert (p["sent"], p["received"], p["lost"], p["duplicates"], p["reordered"]) == (10, 8, 2, 1, 1)
    assert p["loss_ratio"] == pytest.approx(0.2)
    assert d["reordering"]["extent_max"] == 2  # 6 arrived after 8
    rtt = d["rtt_ns"]
    assert (rtt["min"], rtt["max"]) == (10 * MS, 15 * MS)
    assert rtt["mean"] == pytest.approx(93 / 8 * MS)
    # nearest rank on [10,10,10,11,12,12,13,15]: p50 = 4th = 11, p90 = 8th = 15
    assert rtt["percentiles"]["p50"] == 11 * MS and rtt["percentiles"]["p90"] == 15 * MS
    assert d["delay_variation"]["pdv_rtt_ns"]["p50"] == 1 * MS
    # IPDV over consecutive pairs both received: (0,1) +2, (1,2) -1, (4,5) -5, (5,6) +2, (8,9) -3
    ipdv = d["delay_variation"]["ipdv_rtt_ns"]
    assert (ipdv["count"], ipdv["min"], ipdv["max"], ipdv["percentiles"]["p50"]) == (5, -5 * MS, 2 * MS, -1 * MS)


def test_rfc3550_jitter():
    d = feed(SessionStats(), STREAM, sent=10, lost=(3, 7))
    rtts = [10, 12, 11, 15, 10, 13, 12, 10]  # arrival order, duplicate excluded
    j = 0.0
    for a, b in zip(rtts, rtts[1:]):
        j += (abs(b - a) * MS - j) / 16
    assert d["delay_variation"]["ipdv_rtt_ns"]["jitter_rfc3550"] == pytest.approx(j)


def test_clock_offset_shows_in_one_way_not_in_rtt():
    d = feed(SessionStats(), [("sample", sample(i, 10, offset_ms=100, synced=False)) for i in range(4)], sent=4)
    assert d["rtt_ns"]["min"] == 10 * MS
    assert d["one_way"]["forward_ns"]["min"] == 105 * MS and d["one_way"]["backward_ns"]["min"] == -95 * MS
    assert d["one_way"]["meaningful"] is False
    assert d["delay_variation"]["ipdv_forward_ns"]["max"] == 0  # variation is offset-free


def test_invalid_replies_are_in_no_delay_figure():
    # A reflector whose T3 is 10 s after its T2: answered (not lost), in no delay figure, counted.
    bad = sample(1, 10)
    bad.t3_ns = bad.t2_ns + 10 * 10**9
    st = SessionStats()
    feed(st, [("sample", sample(0, 10))], sent=2)
    st.on_event(Invalid(bad, bad.impossible()))
    d = st.to_dict()
    assert (d["packets"]["received"], d["packets"]["invalid"], d["packets"]["lost"]) == (1, 1, 0)
    assert d["packets"]["loss_ratio"] == 0.0 and st.in_flight == 0
    assert d["rtt_ns"]["count"] == 1 and d["rtt_ns"]["min"] == 10 * MS and d["residence_ns"]["max"] == 50_000
    assert "invalid timestamps (kept out of the delays)  1" in summary_text(d, {})


def test_no_delay_is_negative_but_offsets_of_unsynchronised_clocks():
    # A residence 1.5 us longer than T4 - T1 is within the granularity allowed (2 us): the
    # round trip reads 0, never below; 11.5 us longer is not (over 10 ms of residence the two
    # clocks may differ by 5 us more).  One-way values below 0 with
    # clocks that say they are synchronised (errors of 1 us each) make them offsets.
    s = sample(0, 10)
    s.t3_ns = s.t4_ns - s.t1_ns + s.t2_ns + 1_500
    s.reflector_error_ns = s.sender_error_ns = 1_000.0
    assert s.impossible() is None and s.rtt_ns == 0
    d = feed(SessionStats(), [("sample", s)], sent=1)
    assert d["rtt_ns"]["min"] == 0 and d["one_way"]["meaningful"] is False
    assert d["one_way"]["backward_ns"]["min"] < 0  # an offset, said so
    s.t3_ns += 10_000
    assert s.impossible() == "T3 - T2 longer than T4 - T1"


def test_impossible_timestamps_are_found_whatever_the_clocks_say_of_their_error():
    # An unsynchronised host states an error of seconds (the kernel's maxerror): it describes
    # the clock's offset, which cancels out of T3 - T2 and T4 - T1; 0.5 s off is still caught.
    s = sample(0, 10, synced=False)
    s.reflector_error_ns = s.sender_error_ns = 16e9
    s.t3_ns = s.t2_ns + 500_000_000
    assert s.impossible() == "T3 - T2 longer than T4 - T1"
    s.t3_ns = s.t2_ns - 500_000_000
    assert s.impossible() == "T3 before T2"


def test_sequence_wrap_is_not_reordering():
    seqs = [2**32 - 2, 2**32 - 1, 0, 1]
    events = [("sample", sample(s, 10 + i, t1=BASE + i * MS)) for i, s in enumerate(seqs)]
    d = feed(SessionStats(), events, sent=4)
    assert d["packets"]["reordered"] == 0
    assert d["delay_variation"]["ipdv_rtt_ns"]["count"] == 3  # pairs across the wrap count
    assert unwrap(1, 2**32 - 1) == 2**32 + 1 and unwrap(2**32 - 1, 2**32 + 2) == 2**32 - 1


def test_late_replies_are_lost_and_counted():
    d = feed(SessionStats(), [("sample", sample(0, 10)), ("late", sample(1, 9000))], sent=2, lost=(1,))
    assert (d["packets"]["received"], d["packets"]["late"], d["packets"]["lost"]) == (1, 1, 1)
    assert d["rtt_ns"]["max"] == 10 * MS


def test_stateful_reflector_splits_loss_by_direction():
    # seq 3 lost forward (the reflector never numbered it), seq 7's reply lost backward
    pairs = [(0, 0), (1, 1), (2, 2), (4, 3), (5, 4), (6, 5), (8, 7), (9, 8)]
    d = feed(SessionStats(), [("sample", sample(s, 10, refl_seq=r)) for s, r in pairs], sent=10, lost=(3, 7))
    assert d["loss_by_direction"] == {"forward": 1, "backward": 1, "unknown_direction": 0}


def test_ttl_and_dscp():
    st = SessionStats(dscp_sent=46)
    s1 = sample(0, 10, ttl=64)
    s2 = sample(1, 10, ttl=62)
    s2.tlvs = {ClassOfService: ClassOfService(46, 0, 0)}  # the reflector saw DSCP 0: remarked on the way
    d = feed(st, [("sample", s1), ("sample", s2)], sent=2)
    assert d["ttl"]["at_reflector"] == {64: 1, 62: 1} and d["ttl"]["changes"] == 1
    assert d["dscp_ecn"]["forward_remarked"] == 1 and d["dscp_ecn"]["at_reflector"] == {"0/0": 1}


def test_empty_run():
    d = feed(SessionStats(), [], sent=0)
    assert d["packets"]["loss_ratio"] is None and d["rtt_ns"]["min"] is None
    text = summary_text(d, {"remote": "x"})
    assert "Packets sent: 0" in text and "Min RTT: n/a" in text


def test_distribution_switches_to_sketch_with_bounded_error():
    """The README's 0.5 %, on a heavy-tailed sample (RTTs in ns: a lognormal body and a
    Pareto tail of queueing spikes up to seconds), at the percentiles the reports print."""
    rng = random.Random(7)
    values = [int(rng.lognormvariate(13, 0.5)) for _ in range(150_000)]
    values += [int(200_000 * rng.paretovariate(1.2)) for _ in range(50_000)]
    d = Distribution(exact_limit=100)
    for v in values:
        d.add(v)
    assert not d.exact
    ordered = sorted(values)
    for p in (50, 90, 95, 99, 99.9):
        exact = ordered[math.ceil(p / 100 * len(ordered)) - 1]  # nearest rank
        assert abs(d.percentile(p) - exact) <= RELATIVE_ACCURACY * exact, p
    assert RELATIVE_ACCURACY == 0.005  # the figure the README states
    assert d.min == ordered[0] and d.max == ordered[-1]


def test_distribution_merge():
    a, b, whole = Distribution(), Distribution(), Distribution()
    for i in range(100):
        (a if i % 2 else b).add(i)
        whole.add(i)
    a.merge(b)
    assert (a.count, a.min, a.max, a.percentile(50)) == (whole.count, whole.min, whole.max, whole.percentile(50))
    assert a.stddev == pytest.approx(whole.stddev)


def test_lifetime_statistics_without_values_keep_moments_and_jitter_only():
    """A monitor's lifetime statistics: counters, mean and RFC 3550 jitter as a full one has
    them, no percentiles, no IPDV pairs (ipdv_memory=0), and no value list that grows."""
    full, light = SessionStats(), SessionStats(keep_values=False, ipdv_memory=0)
    d_full, d_light = feed(full, STREAM, 10, lost=(3, 7)), feed(light, STREAM, 10, lost=(3, 7))
    assert d_light["packets"] == d_full["packets"]
    for key in ("count", "min", "max", "mean", "stddev"):
        assert d_light["rtt_ns"][key] == d_full["rtt_ns"][key]
    assert set(d_light["rtt_ns"]["percentiles"].values()) == {None}
    assert d_light["rtt_ns"]["percentile_method"] == "none (values not kept)"
    assert light.rtt_var.jitter_ns == full.rtt_var.jitter_ns
    assert light.rtt_var.ipdv.count == 0 < full.rtt_var.ipdv.count
    assert light.rtt._exact is None and light.rtt._sketch is None


def test_merging_with_a_distribution_without_values_keeps_moments_only():
    kept, moments = Distribution(), Distribution(keep_values=False)
    for v in (10, 20, 30):
        kept.add(v)
        moments.add(v + 30)
    kept.merge(moments)
    assert (kept.count, kept.min, kept.max, kept.mean) == (6, 10, 60, 35.0)
    assert kept.percentile(50) is None and not kept.keeps_values


def test_narrower_scopes_read_less_of_each_reply_and_agree_on_what_they_read():
    """ROUND_TRIP (a monitor's lifetime counters) and DELAYS (a window without JSON lines) give
    the same counts, order, delays and jitter as ALL, and read nothing else of a reply."""
    from stamp_suite.monitor.metrics import window_gauges
    from stamp_suite.monitor.windows import ClosedWindow
    from stamp_suite.sender.stats import Scope

    full, delays, rt = SessionStats(), SessionStats(ipdv_memory=0, scope=Scope.DELAYS), SessionStats.lifetime_counters()
    assert rt.scope is Scope.ROUND_TRIP
    stream = [("sample", sample(0, 10)), ("sample", sample(2, 14, ttl=60)), ("sample", sample(1, 30)),
              ("duplicate", sample(1, 31)), ("sample", sample(4, 12, refl_seq=3))]
    d_full, d_delays, d_rt = (feed(st, stream, 5, lost=(3,)) for st in (full, delays, rt))
    for d in (d_delays, d_rt):
        assert d["packets"] == d_full["packets"] and d["reordering"] == d_full["reordering"]
        assert d["rtt_ns"]["mean"] == d_full["rtt_ns"]["mean"]
    assert rt.rtt_var.jitter_ns == delays.rtt_var.jitter_ns == full.rtt_var.jitter_ns
    assert d_delays["rtt_ns"] == d_full["rtt_ns"] and d_delays["one_way"] == d_full["one_way"]
    assert delays.forward_var.jitter_ns == full.forward_var.jitter_ns
    gauges = [window_gauges(ClosedWindow(10**10, 1, False, st)) for st in (full, delays)]
    assert gauges[0] == gauges[1]
    # what they leave out
    assert full.rtt_raw.count == 4 and full.reflector_ttl and full.stateful_reflector
    assert delays.rtt_raw.count == rt.rtt_raw.count == 0 and not delays.reflector_ttl and not delays.stateful_reflector
    assert rt.forward.count == 0 and delays.forward.count == 4
    with pytest.raises(ValueError):
        SessionStats(scope="some")


def test_target_state_lines_are_limited_to_twenty_a_minute_and_the_rest_summed_up():
    """Ten thousand targets going down at once (the monitor's own uplink) give twenty lines and
    one summary a minute, not ten thousand lines."""
    from stamp_suite.monitor.state_lines import STATE_LINES_PER_MINUTE, StateLines

    lines: list[str] = []
    states = StateLines(lines.append)
    for i in range(10_000):
        states.say(f"target 't{i}' is down", "down")
    states.say("target 't1' is up again", "up again")
    assert len(lines) == STATE_LINES_PER_MINUTE == 20
    states.minute()
    assert lines[-1] == ("and 9,981 more targets changed state since the last such line (9,980 down, 1 up again): "
                         "stamp_monitor_target_up has each")
    states.say("target 't2' is up again", "up again")
    states.minute()
    assert lines[-1] == "target 't2' is up again" and len(lines) == 22  # a new minute: said at once, no summary


def test_a_window_keeps_the_scope_it_opened_with_and_only_a_full_one_makes_a_line():
    """jsonl turned on by a reload: a window already open has kept only its gauges' statistics,
    so it makes no line (one that would report empty TTL, residence and IPDV); the next does."""
    from stamp_suite.monitor.windows import WindowedStats
    from stamp_suite.sender.events import WindowClosed

    closed = []
    windows = WindowedStats((10 * 10**9,), on_close=closed.append, full=False)
    for seq in range(3):
        windows(Sent(seq, BASE, b"", window_ns=seq * 10**9))
        windows(Reply(sample(seq, 10)))
    windows.full = True  # the reload
    windows(Sent(10, BASE, b"", window_ns=10 * 10**9))  # the next window opens now
    windows(Reply(sample(10, 10)))
    windows(WindowClosed(10 * 10**9, 0, False))
    windows(WindowClosed(10 * 10**9, 1, False))
    first, second = closed
    assert not first.full and first.stats.sent == 3 and first.stats.rtt.count == 3 and not first.stats.reflector_ttl
    assert second.full and second.stats.reflector_ttl and second.stats.residence.count == 1


def test_milliseconds_never_read_minus_zero():
    """A tiny negative value (an IPDV median of -100 ns) printed as "-0.000 ms" read as a bug."""
    from stamp_suite.sender.report import ms
    assert [ms(v) for v in (-100, 0, 499, -600_000, 1_234_567, None)] == [
        "0.000 ms", "0.000 ms", "0.000 ms", "-0.600 ms", "1.235 ms", "n/a"]
    assert ms(-400_000, 0) == "0 ms" and ms(-600_000, 0) == "-1 ms"


def test_distribution_moments_stay_exact_far_from_zero():
    """Wall-clock-sized values with a small spread (one-way offsets between unsynchronised
    clocks): the integer moments give the mean and standard deviation that exact fractions do."""
    import statistics
    from fractions import Fraction
    rng = random.Random(3)
    values = [1_765_000_000_000_000_000 + rng.randrange(1_000) for _ in range(5_000)]
    d = Distribution()
    for v in values:
        d.add(v)
    assert d.count == 5_000 and (d.min, d.max) == (min(values), max(values))
    assert d.mean == float(Fraction(sum(values), len(values)))
    assert d.stddev == pytest.approx(statistics.stdev(Fraction(v) for v in values), rel=1e-12)


def test_distribution_buckets_are_the_sketch_library_own():
    """Values counted in bulk land in DDSketch's own bucket for them (LogarithmicMapping), or,
    an ulp from a boundary, in its neighbour, whose value is as close: within the accuracy."""
    from ddsketch.mapping import LogarithmicMapping

    from stamp_suite.sender.distribution import _keys
    mapping = LogarithmicMapping(RELATIVE_ACCURACY)
    rng = random.Random(5)
    values = [int(rng.lognormvariate(12, 3)) + 1 for _ in range(50_000)]
    keys = _keys(values, 1)
    assert sum(k == mapping.key(v) for k, v in zip(keys, values)) >= len(values) - 5
    for k, v in zip(keys, values):
        assert abs(mapping.value(k) - v) <= RELATIVE_ACCURACY * v * (1 + 1e-9)


def test_distribution_of_signed_values_has_percentiles_within_the_accuracy():
    """IPDV is signed and often 0: negative, zero and positive values all counted in bulk."""
    rng = random.Random(9)
    values = [int(rng.gauss(0, 20_000)) for _ in range(30_000)] + [0] * 1_000
    d = Distribution()
    for v in values:
        d.add(v)
    assert not d.exact
    ordered = sorted(values)
    for p in (1, 10, 50, 90, 99):
        exact = ordered[math.ceil(p / 100 * len(ordered)) - 1]
        assert abs(d.percentile(p) - exact) <= RELATIVE_ACCURACY * abs(exact), p


def test_a_session_settles_its_queues_as_replies_come():
    """Nothing reads a long run's statistics until its end: the session folds its queued
    values in itself (every SETTLE_EVERY replies), so no queue grows with the run."""
    from stamp_suite.sender.stats import SETTLE_EVERY
    st = SessionStats()
    for seq in range(10 * SETTLE_EVERY + 3):
        st.on_event(Reply(sample(seq, 10 + seq % 7)))
    queues = [d._queue for d in (st.rtt, st.rtt_raw, st.residence, st.forward, st.backward, st.rtt_var.ipdv)]
    assert all(len(q) <= 2 * SETTLE_EVERY for q in queues) and st.rtt._count >= 10 * SETTLE_EVERY - 1
    assert st.rtt.count == 10 * SETTLE_EVERY + 3


def test_values_settled_a_batch_at_a_time_read_as_values_settled_at_once():
    """The sketch started at SKETCH_FROM and fed a queue at a time holds the buckets one settle
    of all the values would; exact values dropped past the limit on the way."""
    rng = random.Random(11)
    values = [int(rng.lognormvariate(12, 1)) - 50_000 for _ in range(40_000)]  # some negative
    step, whole = Distribution(), Distribution()
    for i, v in enumerate(values):
        step.add(v)
        whole.add(v)
        if i % 97 == 0:
            step.settle()
    assert not step.exact and not whole.exact
    assert step._sketch == whole._sketch
    assert [step.percentile(p) for p in (1, 50, 99.9)] == [whole.percentile(p) for p in (1, 50, 99.9)]
    assert (step.count, step.min, step.max, step.mean) == (whole.count, whole.min, whole.max, whole.mean)


def test_a_reader_on_another_thread_sees_every_value_once():
    """The SNMP sub-agent reads a session's count, min, max and mean while the loop adds and
    settles: each read is whole (the values 1..n, none lost or counted twice), and reading
    changes nothing."""
    import sys
    import threading
    d, stop, wrong = Distribution(), threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            n, lo, hi, total, squares = d._moments()
            if n and (lo, hi, total, squares) != (1, n, n * (n + 1) // 2, n * (n + 1) * (2 * n + 1) // 6):
                wrong.append((n, lo, hi, total))
            assert d.mean is None or d.mean >= 1 and d.max >= 1  # the public reads
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads change hands between nearly any two bytecodes
    t = threading.Thread(target=reader)
    t.start()
    try:
        for v in range(1, 100_001):
            d.add(v)
            if v % 128 == 0:
                d.settle()
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    assert not wrong, wrong[:3]
    assert (d.count, d.min, d.max, d.mean) == (100_000, 1, 100_000, 50_000.5)


def test_datagrams_dropped_unread_by_this_host_are_counted_beside_loss():
    """DroppedUnread (the kernel's SO_MEMINFO count, read by the driver): its news add up;
    unknown (None, JSON null) until the first count, 'unknown here' in --full; -q says it as
    ping says its errors."""
    from stamp_suite.sender.events import DroppedUnread
    from stamp_suite.sender.report import summary_ping, summary_short
    st = SessionStats()
    d = feed(st, [], sent=0)
    assert d["packets"]["dropped_unread"] is None
    assert re.search(r"dropped unread here \(not the path's loss\) +unknown here\n", summary_text(d, {}))
    for ev in (DroppedUnread(0, 0), Lost(0, BASE), DroppedUnread(3, 3), DroppedUnread(2, 5)):
        st.on_event(ev)
    d = st.to_dict()
    assert d["packets"]["dropped_unread"] == 5 and d["packets"]["lost"] == 1
    assert re.search(r"dropped unread here \(not the path's loss\) +5\n", summary_text(d, {}))
    assert "dropped unread by this host (it fell behind: not the path's loss) 5" in summary_short(d, {})
    assert ", +5 dropped unread here, " in summary_ping(d, {})


def test_the_pace_kept_is_told_and_said_when_the_sends_fell_behind():
    """Sent.late_ns and the send times: the rate achieved against the one asked, and how late
    the scheduled sends left; the short summary says so only when the run fell behind (p99
    later than 10 ms and than an interval)."""
    from stamp_suite.sender.report import summary_short
    on_time, behind = SessionStats(), SessionStats()
    for seq in range(101):  # 100 ms apart: 10 packets/s, as -d 100 asks
        on_time.on_event(Sent(seq, BASE, b"", window_ns=seq * 100 * MS, late_ns=50_000))
        behind.on_event(Sent(seq, BASE, b"", window_ns=seq * 200 * MS, late_ns=seq * 100 * MS))
    session = {"send_delay_ms": 100}
    d = on_time.to_dict()
    assert d["sending"]["rate_per_s"] == pytest.approx(10.0) and d["sending"]["late_ns"]["max"] == 50_000
    assert "\n  sends " not in summary_short(d, session)
    assert re.search(r"rate +10 packets/s of 10 asked\n +late against the schedule +p50 0.050 ms",
                     summary_text(d, session))
    d = behind.to_dict()
    assert "\n  sends " not in summary_short(d, {"send_delay_ms": 20_000})  # p99 9.9 s: within a 20 s interval
    assert d["sending"]["rate_per_s"] == pytest.approx(5.0)
    assert re.search(r"\n  sends +5 packets/s of 10 asked, late p50 5000.000 ms  p99 9900.000 ms  max 10000.000 ms: "
                     r"this host fell behind its schedule\n", summary_short(d, session))
    capacity = SessionStats()
    capacity.on_event(Sent(0, BASE, b""))
    assert capacity.to_dict()["sending"] == {"rate_per_s": None, "late_ns": capacity.send_lateness.summary((50, 99))}
    assert "late against the schedule  n/a (no schedule)" in summary_text(capacity.to_dict(), {})
