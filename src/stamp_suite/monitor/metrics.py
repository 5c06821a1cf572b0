"""The monitor's own series: its schedule's health, its targets' windows and whether each is
up (the per-target counters and histograms are a sender's: observability/metrics.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..observability.exposition import Families, Family, number
from ..observability.metrics import BUCKET_BOUNDS, BucketHistogram

SCHEDULE_FAMILIES: tuple[Family, ...] = (
    ("stamp_monitor_schedule_error_seconds", "histogram",
     "How late the test packets that were sent left against their schedule (sends later still are skipped: "
     "stamp_monitor_sends_skipped_total is the overload signal)"),
    ("stamp_monitor_sends_skipped_total", "counter",
     "Scheduled test packets not sent for being over an interval (and 0.1 s) late: an overloaded monitor"),
    ("stamp_monitor_dropped_unread_total", "counter",
     "Replies the kernel dropped at the targets' sockets before the monitor read them (full receive buffers: it "
     "fell behind), read every 10 s at most; counted lost for their targets, though the paths did not lose them "
     "(absent where the platform cannot count them)"),
    ("stamp_monitor_reloads_total", "counter",
     "Reloads of the targets file (SIGHUP or --watch), by result: applied, or failed and changed nothing"),
    ("stamp_monitor_unresolved_targets", "gauge",
     "Targets whose name has no address now (down, looked up again with backoff)"),
    ("stamp_monitor_targets", "gauge",
     "Targets of this monitor (its shard; each flow one), by where they come from: the targets file, its "
     "file_sd files, its http_sd endpoint, its dns_sd names"))
SOURCES = ("file", "file_sd", "http_sd", "dns_sd")
POLLED = ("http_sd", "dns_sd")  # the sources asked again and again (monitor/polled.py)
OWN_FAMILIES: tuple[Family, ...] = (
    ("stamp_monitor_timestamping", "gauge",
     "Running targets by where their receive timestamps (T4) come from: the kernel (taken on arrival) or user "
     "space (read after the wake-up: less exact)"),
    ("stamp_monitor_sd_failures_total", "counter",
     "Answers of the http_sd endpoint or lookups of the dns_sd names that failed or were refused (the last good "
     "targets went on)"))


def schedule_row(labels: str, lateness: BucketHistogram, skipped: int, dropped: int | None, reloads: tuple[int, int],
                 unresolved: int, sources: tuple[int, ...], timestamping: tuple[int, int],
                 sd_failures: tuple[int, ...]) -> tuple:
    """A monitor's own health as schedule_lines wants it (live, as a session's row); ``reloads``:
    (applied, failed); ``sources``: its targets from each of SOURCES; ``timestamping``: running
    targets with kernel and with user-space receive timestamps; ``sd_failures``: of each of POLLED."""
    return (labels, lateness.counts, lateness.sum_ns, skipped, dropped, *reloads, unresolved, sources, timestamping,
            sd_failures)


def schedule_lines(f: Families, rows: list[tuple]) -> None:
    """A monitor's own health (schedule_row): how late its sends leave, the sends it skipped, the
    replies its host dropped unread, its reloads, its targets without an address and where its
    targets come from."""
    for labels, counts, sum_ns, skipped, drops, applied, failed, unresolved, sources, timestamping, sd_failures in rows:
        f.histogram("stamp_monitor_schedule_error_seconds", labels, BUCKET_BOUNDS, counts, sum_ns / 1e9)
        f.sample("stamp_monitor_sends_skipped_total", labels, skipped)
        if drops is not None:  # None: the platform does not count them, and no series says 0
            f.sample("stamp_monitor_dropped_unread_total", labels, drops)
        f.sample("stamp_monitor_reloads_total", f'{labels},result="applied"', applied)
        f.sample("stamp_monitor_reloads_total", f'{labels},result="failed"', failed)
        f.sample("stamp_monitor_unresolved_targets", labels, unresolved)
        for source, n in zip(SOURCES, sources):
            f.sample("stamp_monitor_targets", f'{labels},source="{source}"', n)
        for source, n in zip(("kernel", "user"), timestamping):
            f.sample("stamp_monitor_timestamping", f'{labels},source="{source}"', n)
        for source, n in zip(POLLED, sd_failures):
            f.sample("stamp_monitor_sd_failures_total", f'{labels},source="{source}"', n)


SUMMARIES_PER_SLICE = 8  # closed windows summarised per slice of the loop (20-80 us each)
SUMMARY_WORK = 32  # a closed window summarised, against one summarised already (under 1 us)
SLICE_WORK = SUMMARIES_PER_SLICE * SUMMARY_WORK  # windows' work per slice: 8 summaries, or 256 copies
WINDOW_GAUGES = (  # (gauge, help); its value from a closed window by window_gauges()
    ("loss_ratio", "Lost / (received + lost) in the latest closed window"),
    ("packets_sent", "Test packets sent in the latest closed window"),
    ("packets_lost", "Test packets lost in the latest closed window"),
    ("duplicate_packets", "Duplicate replies in the latest closed window"),
    ("reordered_packets", "Reordered replies in the latest closed window"),
    ("partial", "1 when the latest closed window did not run for its whole span (a target started in it)"),
    ("rtt_p50_seconds", "Round-trip delay p50 in the latest closed window"),
    ("rtt_p99_seconds", "Round-trip delay p99 in the latest closed window"),
    ("forward_delay_p50_seconds", "One-way forward delay p50 in the latest closed window (only when both ends "
                                  "said their clocks were synchronised for every reply of it)"),
    ("backward_delay_p50_seconds", "One-way backward delay p50 in the latest closed window (only when both ends "
                                   "said their clocks were synchronised for every reply of it)"),
    ("jitter_seconds", "RFC 3550 round-trip jitter at the end of the latest closed window"),
)


def window_gauges(window) -> dict[str, float | None]:
    """The WINDOW_GAUGES of one closed window (monitor.windows.ClosedWindow); None: no value
    (a window of packets still in flight has no loss ratio, one without replies no delay)."""
    st = window.stats
    synchronized = st.received and st.all_synchronized  # one-way delays, not offsets

    def seconds(ns: float | None) -> float | None:
        return None if ns is None else ns / 1e9
    return {"loss_ratio": st.loss_ratio, "packets_sent": st.sent, "packets_lost": st.lost,
            "duplicate_packets": st.duplicates, "reordered_packets": st.reordered,
            "partial": 1 if window.partial else 0,
            "rtt_p50_seconds": seconds(st.rtt.percentile(50)), "rtt_p99_seconds": seconds(st.rtt.percentile(99)),
            "forward_delay_p50_seconds": seconds(st.forward.percentile(50)) if synchronized else None,
            "backward_delay_p50_seconds": seconds(st.backward.percentile(50)) if synchronized else None,
            "jitter_seconds": seconds(st.rtt_var.jitter_ns) if st.received else None}


WINDOW_FAMILIES: tuple[Family, ...] = tuple((f"stamp_monitor_window_{key}", "gauge", doc)
                                            for key, doc in WINDOW_GAUGES)
UP_FAMILIES: tuple[Family, ...] = (
    ("stamp_monitor_target_up", "gauge", "1 when the target answered in its latest closed shortest window; 0 when "
     "nothing came back or ICMP said nothing listens there"),)


def window_row(window, labels: str) -> tuple[str, tuple[str | None, ...]]:
    """A closed window's series: its labels (the target's ``labels`` and its length) and the
    WINDOW_GAUGES as sample values in exposition text (None: no value).  Worked out at the
    first call and kept in the window, which never changes: the monitor calls this when a
    window closes, so that a scrape only copies it out."""
    if window.exposed is None:
        gauges = window_gauges(window)
        window.exposed = (f'{labels},window="{window.length_s}s"',
                          tuple(None if gauges[key] is None else number(gauges[key]) for key, _ in WINDOW_GAUGES))
    return window.exposed


def window_rows(windows, labels: Callable[[str], str]) -> Iterator[list[tuple[str, tuple[str | None, ...]]]]:
    """The window_row of each (target, closed window), a slice's worth at a time;
    ``labels(target)`` is the target's escaped monitor and target labels."""
    rows, work = [], 0
    for target, w in windows:
        if w.exposed is None:
            work += SUMMARY_WORK
            window_row(w, labels(target))
        rows.append(w.exposed)
        work += 1
        if work >= SLICE_WORK:
            yield rows
            rows, work = [], 0
    yield rows


def window_lines(f: Families, rows: list[tuple[str, tuple[str | None, ...]]]) -> None:
    """``stamp_monitor_window_*{monitor,target,window}`` gauges from window_rows."""
    for i, (name, _, _) in enumerate(WINDOW_FAMILIES):
        f.lines[name] += [f"{name}{{{labels}}} {text[i]}" for labels, text in rows if text[i] is not None]


def up_lines(f: Families, rows: list[tuple[str, int]]) -> None:
    """``stamp_monitor_target_up{monitor,target}`` from (labels, 1 or 0)."""
    f.lines["stamp_monitor_target_up"] += [f"stamp_monitor_target_up{{{labels}}} {up}" for labels, up in rows]
