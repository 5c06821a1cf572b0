"""The hand-written Prometheus text exposition, read back by prometheus_client's own parser."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from stamp_suite.monitor.windows import ClosedWindow
from stamp_suite.observability.exposition import Exposition, label_text, number
from stamp_suite.observability.metrics import SenderMetrics, expose_sessions, expose_windows, window_rows
from stamp_suite.sender.events import Reply, Sample, Sent
from stamp_suite.sender.stats import SessionStats

T1 = 1_700_000_000 * 10**9


def parsed(text: bytes) -> dict[str, dict[tuple, float]]:
    """sample name -> {sorted label items: value}"""
    out: dict[str, dict[tuple, float]] = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def L(**labels: str) -> tuple:
    return tuple(sorted(labels.items()))


def sample(seq: int, rtt_us: int, tos: int | None = 0xB8) -> Sample:
    """A reply whose round trip is ``rtt_us`` (no residence time): T2 = T3 at half way."""
    half = rtt_us * 500
    return Sample(seq, seq, T1, T1 + half, T1 + half, T1 + 2 * half, 61, 58, tos, True, True, 0.0, 0.0, 0)


def test_numbers_are_what_go_parses():
    assert [number(v) for v in (0, 12, 0.25, 1e-05, math.inf, -math.inf)] == ["0", "12", "0.25", "1e-05", "+Inf",
                                                                              "-Inf"]
    assert number(math.nan) == "NaN"


def test_labels_are_escaped_once_and_read_back_whole():
    x = Exposition()
    x.family("stamp_x", "gauge", "a \\ help\nline")
    x.sample("stamp_x", label_text(("target",), ('a"b\\c\nd',)), 1)
    (fam,) = text_string_to_metric_families(x.text().decode())
    assert fam.documentation == "a \\ help\nline"
    assert fam.samples[0].labels == {"target": 'a"b\\c\nd'}


def test_sender_series_carry_the_statistics():
    stats = SessionStats()
    metrics = SenderMetrics(("monitor", "target"))
    hook = metrics.add_session(("vp1", "site-a"), stats)
    for seq, rtt_us in enumerate((80, 300, 3000)):
        for ev in (Sent(seq, T1, b""), Reply(sample(seq, rtt_us))):
            stats.on_event(ev)
            hook(ev)
    stats.on_event(Sent(3, T1, b""))
    got = parsed(metrics.exposition())
    me = L(monitor="vp1", target="site-a")
    assert got["stamp_sender_packets_sent_total"] == {me: 4}
    assert got["stamp_sender_packets_received_total"] == {me: 3}
    assert got["stamp_sender_packets_lost_total"] == {me: 0}
    assert got["stamp_sender_last_rtt_seconds"] == {me: 3000e-6}
    at = lambda end: L(monitor="vp1", target="site-a", end=end)  # noqa: E731
    assert got["stamp_sender_ttl"] == {at("reflector"): 61, at("sender"): 58}
    assert got["stamp_sender_dscp"] == {at("sender"): 46}  # no CoS TLV: the reflector's is unknown
    rtt = got["stamp_sender_rtt_seconds_bucket"]
    # 80 us, 300 us and 3 ms: cumulative counts at the bucket bounds
    assert [rtt[L(monitor="vp1", target="site-a", le=le)] for le in ("0.0001", "0.00025", "0.0005", "0.0025", "0.005", "+Inf")] == \
        [1, 1, 2, 2, 3, 3]
    assert got["stamp_sender_rtt_seconds_count"] == {me: 3}
    assert math.isclose(got["stamp_sender_rtt_seconds_sum"][me], 3380e-6)
    assert got["stamp_build_info"]  # the version line


def test_no_delay_series_before_a_first_reply():
    metrics = SenderMetrics()
    metrics.add_session(("192.0.2.1:862", "0"), SessionStats())
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
    x = Exposition()
    pieces = list(expose_windows(x, rows, [(labels, 1)]))
    got = parsed(b"".join(pieces) + x.text())
    me = L(monitor="vp1", target="site-a", window="10s")
    assert got["stamp_monitor_window_packets_sent"] == {me: 5}
    assert got["stamp_monitor_window_loss_ratio"] == {me: 0.0}  # the fifth is in flight: counts for neither
    assert got["stamp_monitor_window_partial"] == {me: 1}
    assert got["stamp_monitor_window_rtt_p50_seconds"] == {me: 200e-6}  # nearest rank
    assert got["stamp_monitor_window_rtt_p99_seconds"] == {me: 800e-6}
    assert got["stamp_monitor_target_up"] == {L(monitor="vp1", target="site-a"): 1}


def test_a_big_exposition_comes_in_pieces_that_add_up_to_the_whole(monkeypatch):
    """Rendered in slices by the sending loop (sender/sliced.py): no piece over CHUNK_LINES
    lines and a session's series, the pieces in order are the exposition, and each step of the
    window summaries is short too."""
    from stamp_suite.observability.exposition import CHUNK_LINES
    from stamp_suite.observability.metrics import SLICE_WORK, SUMMARY_WORK

    metrics = SenderMetrics(("monitor", "target"))
    windows = []
    for i in range(300):
        stats = SessionStats()
        hook = metrics.add_session(("vp1", f"t{i}"), stats)
        for ev in (Sent(0, T1, b""), Reply(sample(0, 100 + i))):
            stats.on_event(ev)
            hook(ev)
        windows.append((f"t{i}", ClosedWindow(10 * 10**9, 1, False, stats)))
    session_rows = list(metrics.rows())
    assert len(session_rows) == 2 and sum(map(len, session_rows)) == 300  # copied out in slices
    summaries = list(window_rows(windows, lambda t: metrics.labels(("vp1", t))))
    assert len(summaries) >= len(windows) * SUMMARY_WORK // SLICE_WORK  # the summaries are sliced too
    assert len(list(window_rows(windows, lambda t: metrics.labels(("vp1", t))))) == 2  # once summarised: labels only
    rows = [row for rows in summaries for row in rows]
    up = [(metrics.labels(("vp1", t)), 1) for t, _ in windows]
    x = Exposition()
    pieces = [*expose_sessions(x, [r for rs in session_rows for r in rs]), *expose_windows(x, rows, up), x.take()]
    assert len(pieces) > 10
    assert max(p.count(b"\n") for p in pieces) < CHUNK_LINES + 80  # a piece ends after the session that fills it
    whole = b"".join(pieces)
    # the same exposition rendered in one piece (no piece is ever full)
    from stamp_suite.observability import exposition as xmod
    monkeypatch.setattr(xmod, "CHUNK_LINES", 10**9)
    x2 = Exposition()
    once = [*metrics.expose(x2), *expose_windows(x2, rows, up), x2.take()]
    assert [p for p in once if p] == [once[-1]] and whole == once[-1]
    got = parsed(whole)
    assert len(got["stamp_sender_packets_sent_total"]) == 300
    assert len(got["stamp_monitor_window_rtt_p50_seconds"]) == 300
    assert got["stamp_sender_rtt_seconds_count"][L(monitor="vp1", target="t299")] == 1
