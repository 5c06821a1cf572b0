"""The hand-written Prometheus text exposition, read back by prometheus_client's own parser."""

from __future__ import annotations

import marshal
import math
import re

from prometheus_client.parser import text_string_to_metric_families
from vectors import T1, sample

from stamp_suite.monitor.exposition import FAMILIES, expose_parts
from stamp_suite.monitor.metrics import (
    SLICE_WORK,
    SUMMARY_WORK,
    UP_FAMILIES,
    WINDOW_FAMILIES,
    schedule_lines,
    up_lines,
    window_lines,
    window_rows,
)
from stamp_suite.monitor.windows import ClosedWindow
from stamp_suite.observability.exposition import CHUNK_LINES, Families, label_text, number
from stamp_suite.observability.metrics import ROWS_PER_SLICE, SenderMetrics, build_lines, session_lines
from stamp_suite.sender.availability import NS, Availability
from stamp_suite.sender.events import Refused, Reply, Sent
from stamp_suite.sender.stats import SessionStats


def parsed(text: bytes) -> dict[str, dict[tuple, float]]:
    """sample name -> {sorted label items: value}"""
    out: dict[str, dict[tuple, float]] = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def L(**labels: str) -> tuple:
    return tuple(sorted(labels.items()))


def test_numbers_are_what_go_parses():
    assert [number(v) for v in (0, 12, 0.25, 1e-05, math.inf, -math.inf)] == ["0", "12", "0.25", "1e-05", "+Inf",
                                                                              "-Inf"]
    assert number(math.nan) == "NaN"


def test_labels_are_escaped_once_and_read_back_whole():
    f = Families([("stamp_x", "gauge", "a \\ help\nline")])
    f.sample("stamp_x", label_text(("target",), ('a"b\\c\nd',)), 1)
    (fam,) = text_string_to_metric_families(f.text().decode())
    assert fam.documentation == "a \\ help\nline"
    assert fam.samples[0].labels == {"target": 'a"b\\c\nd'}


def test_sender_series_carry_the_statistics():
    stats = SessionStats()
    metrics = SenderMetrics(("monitor", "target"))
    hook = metrics.add_session(("vp1", "site-a"), stats, Availability(3 * NS))
    for seq, rtt_us in enumerate((80, 300, 3000)):
        for ev in (Sent(seq, T1, b""), Reply(sample(seq, rtt_us))):
            stats.on_event(ev)
            hook(ev)
    stats.on_event(Sent(3, T1, b""))
    stats.on_event(Refused(1))
    got = parsed(metrics.exposition())
    me = L(monitor="vp1", target="site-a")
    assert got["stamp_sender_packets_sent_total"] == {me: 4}
    assert got["stamp_sender_packets_received_total"] == {me: 3}
    assert got["stamp_sender_packets_lost_total"] == {me: 0}
    assert got["stamp_sender_refused_packets_total"] == {me: 1}  # an ICMP error, as in JSON's packets.refused
    assert got["stamp_sender_last_rtt_seconds"] == {me: 3000e-6}
    at = lambda end: L(monitor="vp1", target="site-a", end=end)  # noqa: E731
    assert got["stamp_sender_ttl"] == {at("reflector"): 61, at("sender"): 58}
    assert got["stamp_sender_dscp"] == {at("sender"): 46}  # no CoS TLV: the reflector's is unknown
    rtt = got["stamp_sender_rtt_seconds_bucket"]
    # 80 us, 300 us and 3 ms: cumulative counts at the bucket bounds
    bounds = ("0.0001", "0.00025", "0.0005", "0.0025", "0.005", "+Inf")
    assert [rtt[L(monitor="vp1", target="site-a", le=le)] for le in bounds] == [1, 1, 2, 2, 3, 3]
    assert got["stamp_sender_rtt_seconds_count"] == {me: 3}
    assert math.isclose(got["stamp_sender_rtt_seconds_sum"][me], 3380e-6)
    assert got["stamp_build_info"]  # the version line


def test_no_delay_series_before_a_first_reply():
    metrics = SenderMetrics()
    metrics.add_session(("192.0.2.1:862", "0"), SessionStats(), Availability(3 * NS))
    got = parsed(metrics.exposition())
    assert "stamp_sender_last_rtt_seconds" not in got and "stamp_sender_jitter_seconds" not in got
    assert got["stamp_sender_rtt_seconds_count"] == {L(remote="192.0.2.1:862", ssid="0"): 0}


def test_window_gauges_from_a_closed_window():
    st = SessionStats()
    for seq, rtt_us in enumerate((100, 200, 400, 800)):
        st.on_event(Sent(seq, T1, b""))
        st.on_event(Reply(sample(seq, rtt_us)))
    st.on_event(Sent(4, T1, b""))
    window = ClosedWindow(10 * 10**9, 170_000_000, True, st)
    labels = label_text(("monitor", "target"), ("vp1", "site-a"))
    (rows,) = window_rows([("site-a", window)], lambda t: label_text(("monitor", "target"), ("vp1", t)))
    f = Families(WINDOW_FAMILIES + UP_FAMILIES)
    window_lines(f, rows)
    up_lines(f, [(labels, 1)])
    got = parsed(f.text())
    me = L(monitor="vp1", target="site-a", window="10s")
    assert got["stamp_monitor_window_packets_sent"] == {me: 5}
    assert got["stamp_monitor_window_loss_ratio"] == {me: 0.0}  # the fifth is in flight: counts for neither
    assert got["stamp_monitor_window_partial"] == {me: 1}
    assert got["stamp_monitor_window_rtt_p50_seconds"] == {me: 200e-6}  # nearest rank
    assert got["stamp_monitor_window_rtt_p99_seconds"] == {me: 800e-6}
    assert got["stamp_monitor_target_up"] == {L(monitor="vp1", target="site-a"): 1}


def families_in_order(text: bytes) -> list[str]:
    """The metric family of each sample line, a run of lines of one family counted once."""
    names = []
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name = re.sub(r"_(bucket|count|sum)$", "", line.split("{")[0].split(" ")[0])
            if not names or names[-1] != name:
                names.append(name)
    return names


def test_a_monitor_exposition_made_as_the_slices_come_is_the_one_made_at_once():
    """The render process formats each slice the sending loop copies out as it comes
    (monitor/exposition.py): the text is the same as from every row at once, each family's
    lines together (the text format wants it), and the loop's slices are small."""
    metrics = SenderMetrics(("monitor", "target"))
    windows = []
    for i in range(300):
        stats = SessionStats()
        hook = metrics.add_session(("vp1", f"t{i}"), stats, Availability(3 * NS))
        for ev in (Sent(0, T1, b""), Reply(sample(0, 100 + i))):
            stats.on_event(ev)
            hook(ev)
        windows.append((f"t{i}", ClosedWindow(10 * 10**9, 1, False, stats)))
    session_slices = list(metrics.rows())
    assert [len(rows) for rows in session_slices] == [ROWS_PER_SLICE] * (300 // ROWS_PER_SLICE)
    labels = lambda t: metrics.labels(("vp1", t))  # noqa: E731
    window_slices = list(window_rows(windows, labels))
    assert len(window_slices) >= len(windows) * SUMMARY_WORK // SLICE_WORK  # summaries are sliced too
    assert len(list(window_rows(windows, labels))) == 2  # once summarised, a window is only copied
    up = [(labels(t), 1) for t, _ in windows]
    # schedule_row: nothing dropped, no reload, nothing unresolved, one target from the file with
    # kernel timestamps
    schedule = [("monitor=\"vp1\"", [0] * 16, 0, 0, 0, 0, 0, 0, (1, 0, 0, 0), (1, 0), (0, 0))]
    parts = [*(("sessions", rows) for rows in session_slices), ("schedule", schedule),
             *(("windows", rows) for rows in window_slices), ("up", up[:100]), ("up", up[100:])]
    as_they_come = b"".join(expose_parts(marshal.loads(marshal.dumps(part)) for part in parts))

    f = Families(FAMILIES)
    build_lines(f)
    session_lines(f, [row for rows in session_slices for row in rows])
    schedule_lines(f, parts[len(session_slices)][1])
    window_lines(f, [row for rows in window_slices for row in rows])
    up_lines(f, up)
    pieces = list(f.pieces())
    assert len(pieces) > 10 and max(p.count(b"\n") for p in pieces) <= CHUNK_LINES + 2  # a family's head
    assert as_they_come == b"".join(pieces)
    names = families_in_order(as_they_come)
    assert len(names) == len(set(names)) == len(FAMILIES)
    got = parsed(as_they_come)
    assert len(got["stamp_sender_packets_sent_total"]) == 300
    assert len(got["stamp_monitor_window_rtt_p50_seconds"]) == 300
    assert got["stamp_sender_rtt_seconds_count"][L(monitor="vp1", target="t299")] == 1


def test_a_peer_is_an_ipv4_address_or_an_ipv6_64():
    from stamp_suite.observability.http import peer_of
    assert peer_of("192.0.2.7") == "192.0.2.7"
    assert peer_of("::ffff:192.0.2.7") == "192.0.2.7"  # a dual-stack socket's IPv4 peer
    assert peer_of("2001:db8:1:2:aaaa::1") == peer_of("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert peer_of("fe80::1%lo") == "fe80::/64"


def test_each_ends_clock_state_and_error_estimate_of_the_latest_reply():
    """issue 30 item 5: what each end said of its clock, beside the one-way series it governs."""
    import dataclasses
    metrics = SenderMetrics(("monitor", "target"))
    hook = metrics.add_session(("vp1", "a"), SessionStats(), Availability(3 * NS))
    hook(Reply(dataclasses.replace(sample(0, 100), reflector_synchronized=False, reflector_error_ns=2.5e6,
                                   sender_error_ns=1000.0)))
    got = parsed(metrics.exposition())
    at = lambda end: L(monitor="vp1", target="a", end=end)  # noqa: E731
    assert got["stamp_sender_clock_synchronized"] == {at("reflector"): 0, at("sender"): 1}
    assert got["stamp_sender_error_estimate_seconds"] == {at("reflector"): 2.5e-3, at("sender"): 1e-6}
    # not both synchronised: no one-way delay in the histograms
    assert not any(got.get("stamp_sender_forward_delay_seconds_count", {}).values())
