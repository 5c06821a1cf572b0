"""Prometheus metrics (prometheus_client), read from the live counters at scrape time.

Collectors read the engines' own counters when Prometheus scrapes, so the reflector's
per-packet path pays nothing for metrics except, with --metrics, one clock read and a
bucket increment for the processing-time histogram.  Names start with ``stamp_`` and
keep the Rust stamp-suite's where it has them.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import attrgetter

import prometheus_client
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from .. import __version__
from ..net.capabilities import detect_capabilities
from ..reflector.counters import PROCESSING_BUCKETS_S
from ..sender.availability import Availability
from ..sender.events import Event, Reply
from ..tlvs import ClassOfService
from .exposition import Families, Family, label_text, number

prometheus_client.disable_created_metrics()

DELAY_BUCKETS_S = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# A monitor target's round-trip buckets unless its group or it sets rtt_buckets: seven bounds
# keep the default set at 25 series a target (a WAN mesh; a LAN's targets set finer ones).
MONITOR_RTT_BUCKETS_S = (1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1)

# The named sets of a session's series.  "default" is always on; a monitor target switches the
# others on (``metrics = ["one_way", "windows"]``), a single run's --metrics has them all.
DEFAULT, ONE_WAY, LATEST, PATH, WINDOWS = 1, 2, 4, 8, 16
SETS = {"default": DEFAULT, "one_way": ONE_WAY, "latest": LATEST, "path": PATH, "windows": WINDOWS}
ALL_SETS = DEFAULT | ONE_WAY | LATEST | PATH | WINDOWS


@dataclass(frozen=True)
class Exposure:
    """What a session's series show: its sets (a mask of SETS), the round-trip histogram's
    upper bounds (seconds, increasing) and labels of the operator's own (name, value)."""

    sets: int = ALL_SETS
    rtt_buckets_s: tuple[float, ...] = DELAY_BUCKETS_S
    labels: tuple[tuple[str, str], ...] = ()


_BOUNDS_TEXT: dict[tuple[float, ...], tuple[str, ...]] = {}


def bounds_text(bounds_s: tuple[float, ...]) -> tuple[str, ...]:
    """A histogram's ``le`` values, "+Inf" last; one tuple per set of bounds, shared by every
    session that has them (marshal then sends it once a slice)."""
    return _BOUNDS_TEXT.setdefault(bounds_s, (*map(str, bounds_s), "+Inf"))


class BucketHistogram:
    """Fixed buckets, nanosecond input: cheap enough for a per-packet observation."""

    __slots__ = ("bounds_ns", "counts", "sum_ns")

    def __init__(self, bounds_s: tuple[float, ...]) -> None:
        self.bounds_ns = [int(b * 1e9) for b in bounds_s]
        self.counts = [0] * (len(bounds_s) + 1)
        self.sum_ns = 0

    def observe(self, ns: int) -> None:
        """One value; a negative one (a one-way delay between unsynchronised clocks) counts as 0."""
        if ns < 0:
            ns = 0
        self.counts[bisect.bisect_left(self.bounds_ns, ns)] += 1
        self.sum_ns += ns


def _histogram(name: str, doc: str, bounds_s: tuple[float, ...], counts: list[int], sum_ns: int) -> Metric:
    """A Prometheus histogram from per-bucket counts (the last is +Inf) and a sum in ns."""
    fam = HistogramMetricFamily(name, doc)
    cumulative, buckets = 0, []
    for bound, n in zip([*map(str, bounds_s), "+Inf"], counts):
        cumulative += n
        buckets.append((bound, cumulative))
    fam.add_metric([], buckets, sum_ns / 1e9)
    return fam


def _build_info() -> Metric:
    info = InfoMetricFamily("stamp_build", "stamp-suite version and Python", labels=[])
    info.add_metric([], {"version": __version__, "python": sys.version.split()[0]})
    return info


class ReflectorCollector:
    """The reflector's counters, summed over its workers at scrape time (a ReflectorService)."""

    def __init__(self, service) -> None:
        self.service = service
        # a series only where the kernel counts a socket's drops: not a 0 that cannot move
        self.counts_dropped_unread = detect_capabilities().dropped_unread

    def collect(self) -> Iterator[Metric]:
        c = self.service.counters
        yield _build_info()
        yield CounterMetricFamily("stamp_reflector_packets_received", "Datagrams received", value=c.received)
        yield CounterMetricFamily("stamp_reflector_packets_reflected", "Replies the kernel accepted for sending",
                                  value=c.reflected)
        yield CounterMetricFamily("stamp_reflector_send_errors", "Replies made but not sent (send failed)",
                                  value=c.send_errors)
        if self.counts_dropped_unread:
            yield CounterMetricFamily("stamp_reflector_dropped_unread", "Datagrams the kernel dropped at the "
                                      "reflector's sockets before it read them (a full receive buffer: it fell "
                                      "behind), read every second; in no other count", value=c.dropped_unread)
        dropped = CounterMetricFamily("stamp_reflector_packets_dropped", "Datagrams not answered, by reason",
                                      labels=["reason"])
        for reason, n in sorted(c.dropped.items()):
            dropped.add_metric([reason], n)
        yield dropped
        yield CounterMetricFamily("stamp_reflector_hmac_failures",
                                  "Packets whose base HMAC failed, and TLV areas whose HMAC TLV failed",
                                  value=c.dropped.get("hmac_failure", 0) + c.tlv_integrity_failures)
        yield GaugeMetricFamily("stamp_reflector_active_sessions", "Sessions in the session tables",
                                value=c.active_sessions)
        tlvs = CounterMetricFamily("stamp_reflector_tlvs", "TLVs received, by type", labels=["type"])
        for t, n in sorted(c.tlvs_by_type.items()):
            tlvs.add_metric([str(t)], n)
        yield tlvs
        flags = CounterMetricFamily("stamp_reflector_tlv_flags", "TLVs returned with U, M or I set",
                                    labels=["flag"])
        for f, n in sorted(c.tlv_flags_set.items()):
            flags.add_metric([f], n)
        yield flags
        paths = CounterMetricFamily("stamp_reflector_return_path", "RFC 9503 Return Path requests, by what was done",
                                    labels=["outcome"])
        for outcome, n in sorted(c.return_path.items()):
            paths.add_metric([outcome], n)
        yield paths
        counts, sum_ns = c.processing()
        yield _histogram("stamp_reflector_processing_seconds", "Time from reading a datagram to having sent its reply",
                         PROCESSING_BUCKETS_S, counts, sum_ns)


class _SessionMetrics:
    """One session's series: its statistics, histograms and latest reply's path facts."""

    __slots__ = ("stats", "availability", "labels", "sets", "rtt_bounds", "hist", "last_rtt", "ttl_reflector",
                 "ttl_sender", "dscp_reflector", "dscp_sender", "error_reflector", "error_sender", "sync_reflector",
                 "sync_sender")

    def __init__(self, stats, labels: str, availability: Availability, exposure: Exposure) -> None:
        self.stats = stats
        self.availability = availability
        self.labels = labels  # escaped once (exposition.label_text)
        self.sets = exposure.sets
        self.rtt_bounds = bounds_text(exposure.rtt_buckets_s)
        self.hist = (BucketHistogram(exposure.rtt_buckets_s), BucketHistogram(DELAY_BUCKETS_S),
                     BucketHistogram(DELAY_BUCKETS_S))  # rtt, forward, backward
        self.last_rtt: int | None = None
        self.ttl_reflector = self.ttl_sender = self.dscp_reflector = self.dscp_sender = None  # of the latest reply
        self.error_reflector = self.error_sender = self.sync_reflector = self.sync_sender = None  # likewise

    def on_event(self, ev: Event) -> None:
        self.availability.on_event(ev)
        if type(ev) is not Reply:
            return
        s = ev.sample
        rtt, forward, backward = self.hist
        rtt.observe(s.rtt_ns)
        if s.clocks_synchronized:  # one-way delays only then: otherwise they are clock offsets
            forward.observe(s.forward_ns)
            backward.observe(s.backward_ns)
        self.last_rtt = s.rtt_ns
        self.ttl_reflector, self.ttl_sender = s.reflector_ttl, s.reply_ttl
        cos = s.tlvs.get(ClassOfService) if s.tlvs else None
        self.dscp_reflector = cos.dscp2 if cos is not None else None
        self.dscp_sender = None if s.reply_tos is None else s.reply_tos >> 2
        # what each end said of its clock (RFC 8762 §4.2.1): one-way delays mean something only
        # when both are synchronised, and are no better than their Error Estimates
        self.error_reflector, self.error_sender = s.reflector_error_ns / 1e9, s.sender_error_ns / 1e9
        self.sync_reflector, self.sync_sender = int(s.reflector_synchronized), int(s.sender_synchronized)

    def row(self) -> tuple:
        """What the exposition shows of this session as a plain tuple (ints, floats, str and
        None: marshal can send it to a render process): labels, its sets, the round-trip
        histogram's bounds, the SENDER_COUNTERS and the AVAILABILITY_COUNTERS, jitter and latest
        round trip (ns), TTL, DSCP, Error Estimate (s) and S bit at the reflector and here, then
        each histogram's bucket counts and sum (ns).  The counts are the live lists, not copies:
        a row is formatted or marshalled before the session's next packet."""
        st, (rtt, forward, backward) = self.stats, self.hist
        return (self.labels, self.sets, self.rtt_bounds, *_COUNTERS(st), *_AVAILABILITY(self.availability),
                st.rtt_var.jitter_ns, self.last_rtt,
                self.ttl_reflector, self.ttl_sender, self.dscp_reflector, self.dscp_sender, self.error_reflector,
                self.error_sender, self.sync_reflector, self.sync_sender, rtt.counts, rtt.sum_ns,
                forward.counts, forward.sum_ns, backward.counts, backward.sum_ns)


SENDER_COUNTERS = (  # (metric, SessionStats attribute, help)
    ("stamp_sender_packets_sent_total", "sent", "Test packets sent"),
    ("stamp_sender_packets_received_total", "received", "Replies received in time"),
    ("stamp_sender_packets_lost_total", "lost", "Test packets without a reply within --timeout"),
    ("stamp_sender_duplicate_packets_total", "duplicates", "Duplicate replies"),
    ("stamp_sender_reordered_packets_total", "reordered", "Replies out of order"),
    ("stamp_sender_late_packets_total", "late", "Replies after --timeout (counted lost)"),
    ("stamp_sender_invalid_packets_total", "invalid",
     "Replies in time with timestamps that cannot be (T3 before T2, or longer at the reflector than the round "
     "trip): not lost, and in no delay series"),
    ("stamp_sender_refused_packets_total", "refused",
     "ICMP errors (port, host or network unreachable) the socket reported for test packets: nothing answers there"),
)
AVAILABILITY_COUNTERS = (  # (metric, Availability attribute, help)
    ("stamp_sender_errored_seconds_total", "errored_seconds",
     "Seconds of sending in which a test packet was lost (or its round trip was over --errored-rtt)"),
    ("stamp_sender_loss_periods_total", "loss_periods",
     "Runs of consecutive lost test packets (RFC 3357 loss periods)"),
    ("stamp_sender_outages_total", "outages", "Loss periods of --outage-threshold or longer"),
    ("stamp_sender_outage_seconds_total", "outage_seconds",
     "Time in outages, from the first lost packet's send to the first answered one's; grows while one lasts"),
)
# Columns of a session's row (_SessionMetrics.row) after the labels, sets, bounds and counters.
_SETS, _RTT_BOUNDS, _COUNTERS_AT = 1, 2, 3
_JITTER = _COUNTERS_AT + len(SENDER_COUNTERS) + len(AVAILABILITY_COUNTERS)
_LAST_RTT, _TTL, _DSCP, _ERROR, _SYNC = _JITTER + 1, _JITTER + 2, _JITTER + 4, _JITTER + 6, _JITTER + 8
_HISTOGRAMS = _JITTER + 10
SENDER_GAUGES = (  # (metric, column, set, help): latest values, once a reply came (_LAST_RTT not None)
    ("stamp_sender_jitter_seconds", _JITTER, LATEST, "Round-trip interarrival jitter (RFC 3550)"),
    ("stamp_sender_last_rtt_seconds", _LAST_RTT, LATEST, "Round trip of the latest reply"),
)
SENDER_PATH = (  # (metric, column of the reflector's value (the sender's is next), set, help)
    ("stamp_sender_ttl", _TTL, PATH, "TTL/hop limit of the latest packet at each end"),
    ("stamp_sender_dscp", _DSCP, PATH, "DSCP of the latest packet at each end"),
    ("stamp_sender_error_estimate_seconds", _ERROR, ONE_WAY,
     "Error Estimate of the latest reply's timestamps at each end (RFC 8762 §4.2.1): a one-way delay is no "
     "better than their sum"),
    ("stamp_sender_clock_synchronized", _SYNC, DEFAULT,
     "1 when the latest reply said that end's clock is synchronised (S bit): one-way delays need both"),
)
SENDER_HISTOGRAMS = (  # (metric, set, help): round trip, forward, backward
    ("stamp_sender_rtt_seconds", DEFAULT, "Round-trip delay (T4-T1)-(T3-T2)"),
    ("stamp_sender_forward_delay_seconds", ONE_WAY, "One-way delay T2-T1, of replies whose both ends say their "
                                                    "clocks are synchronised (S bits)"),
    ("stamp_sender_backward_delay_seconds", ONE_WAY, "One-way delay T4-T3, of replies whose both ends say their "
                                                     "clocks are synchronised (S bits)"),
)
_COUNTERS = attrgetter(*(attr for _, attr, _ in SENDER_COUNTERS))
_AVAILABILITY = attrgetter(*(attr for _, attr, _ in AVAILABILITY_COUNTERS))
BUCKET_BOUNDS = bounds_text(DELAY_BUCKETS_S)

BUILD_FAMILIES: tuple[Family, ...] = (("stamp_build_info", "gauge", "stamp-suite version and Python"),)
SESSION_FAMILIES: tuple[Family, ...] = (
    *((name, "counter", doc) for name, _, doc in SENDER_COUNTERS + AVAILABILITY_COUNTERS),
    *((name, "gauge", doc) for name, _, _, doc in SENDER_GAUGES + SENDER_PATH),
    *((name, "histogram", doc) for name, _, doc in SENDER_HISTOGRAMS))


def build_lines(f: Families) -> None:
    f.sample("stamp_build_info", label_text(("python", "version"), (sys.version.split()[0], __version__)), 1)


class SenderMetrics:
    """Sender metrics, one label set per session (a single run, or each monitor target).

    Label cardinality is bounded by the sessions configured: never by what arrives."""

    def __init__(self, label_names: tuple[str, ...] = ("remote", "ssid")) -> None:
        self.label_names = list(label_names)
        self._sessions: dict[tuple[str, ...], _SessionMetrics] = {}

    def add_session(self, label_values: tuple[str, ...], stats, availability: Availability,
                    exposure: Exposure = Exposure(),
                    labelled: tuple[str, ...] | None = None) -> Callable[[Event], None]:
        """Register a session (its SessionStats, its Availability to feed, and what its series
        show: every set by default); returns the on_event hook that feeds them.  ``label_values``
        name the session here; its series carry ``labelled`` (the same unless given: a monitor's
        flows of one target are sessions of their own with the target's name)."""
        session = _SessionMetrics(stats, self._label_text(labelled or label_values, exposure), availability, exposure)
        self._sessions[tuple(label_values)] = session
        return session.on_event

    def expose(self, label_values: tuple[str, ...], exposure: Exposure,
               labelled: tuple[str, ...] | None = None) -> None:
        """Show a session's series with other labels, sets or round-trip buckets from now on; its
        counters go on (a round-trip histogram with other buckets starts again: new series)."""
        session = self._sessions[tuple(label_values)]
        session.labels = self._label_text(labelled or label_values, exposure)
        session.sets = exposure.sets
        if bounds_text(exposure.rtt_buckets_s) is not session.rtt_bounds:
            session.rtt_bounds = bounds_text(exposure.rtt_buckets_s)
            session.hist = (BucketHistogram(exposure.rtt_buckets_s), *session.hist[1:])

    def _label_text(self, label_values: tuple[str, ...], exposure: Exposure) -> str:
        names, values = zip(*exposure.labels) if exposure.labels else ((), ())
        return label_text((*self.label_names, *names), (*label_values, *values))

    def remove_session(self, label_values: tuple[str, ...]) -> None:
        self._sessions.pop(tuple(label_values), None)

    def labels(self, label_values: tuple[str, ...]) -> str:
        """A session's label text, escaped (for series of its own, such as a monitor's windows)."""
        session = self._sessions.get(tuple(label_values))
        return session.labels if session is not None else label_text(self.label_names, label_values)

    def exposition(self) -> bytes:
        f = Families(BUILD_FAMILIES + SESSION_FAMILIES)
        build_lines(f)
        session_lines(f, [m.row() for m in list(self._sessions.values())])
        return f.text()

    def rows(self) -> Iterator[list[tuple]]:
        """Every session's row, ROWS_PER_SLICE at a time: the sending loop marshals each slice
        of them as it takes it, for a render elsewhere (monitor/exposition.py)."""
        sessions = list(self._sessions.values())
        for i in range(0, len(sessions), ROWS_PER_SLICE):
            yield [m.row() for m in sessions[i:i + ROWS_PER_SLICE]]


ROWS_PER_SLICE = 50  # sessions copied out per slice of the loop (5 us each), or formatted (25 us)


def session_lines(f: Families, rows: list[tuple]) -> None:
    """The SESSION_FAMILIES' series of sessions from their rows (_SessionMetrics.row), each
    family for the sessions whose sets have it (the counters are all in "default")."""
    for i, (name, _, _) in enumerate(SENDER_COUNTERS + AVAILABILITY_COUNTERS, start=_COUNTERS_AT):
        f.lines[name] += [f"{name}{{{row[0]}}} {number(row[i])}" for row in rows]
    answered = [row for row in rows if row[_LAST_RTT] is not None]  # nothing about delay until a reply
    for name, column, bit, _ in SENDER_GAUGES:
        f.lines[name] += [f"{name}{{{row[0]}}} {number(row[column] / 1e9)}" for row in answered if row[_SETS] & bit]
    for name, column, bit, _ in SENDER_PATH:
        for row in answered:
            if row[_SETS] & bit:
                for end, value in zip(("reflector", "sender"), row[column:column + 2]):
                    if value is not None:
                        f.sample(name, f'{row[0]},end="{end}"', value)
    for i, (name, bit, _) in enumerate(SENDER_HISTOGRAMS):
        counts, sums = _HISTOGRAMS + 2 * i, _HISTOGRAMS + 2 * i + 1
        for row in rows:
            if row[_SETS] & bit:
                f.histogram(name, row[0], row[_RTT_BOUNDS] if i == 0 else BUCKET_BOUNDS, row[counts], row[sums] / 1e9)
