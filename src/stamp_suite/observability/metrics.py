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

import prometheus_client
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, InfoMetricFamily, Metric)

from .. import __version__
from ..reflector.counters import PROCESSING_BUCKETS_S
from ..sender.events import Event, Reply

prometheus_client.disable_created_metrics()

DELAY_BUCKETS_S = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class BucketHistogram:
    """Fixed buckets, nanosecond input: cheap enough for a per-packet observation."""

    __slots__ = ("bounds_ns", "counts", "sum_ns", "bounds_s")

    def __init__(self, bounds_s: tuple[float, ...]) -> None:
        self.bounds_s = bounds_s
        self.bounds_ns = [int(b * 1e9) for b in bounds_s]
        self.counts = [0] * (len(bounds_s) + 1)
        self.sum_ns = 0

    def observe(self, ns: int) -> None:
        self.counts[bisect.bisect_left(self.bounds_ns, ns)] += 1
        self.sum_ns += ns

    def family(self, name: str, doc: str, labels: list[str] | None = None,
               label_values: list[str] | None = None, into: HistogramMetricFamily | None = None) -> Metric:
        return _histogram(name, doc, self.bounds_s, self.counts, self.sum_ns, labels, label_values, into)


def _histogram(name: str, doc: str, bounds_s: tuple[float, ...], counts: list[int], sum_ns: int,
               labels: list[str] | None = None, label_values: list[str] | None = None,
               into: HistogramMetricFamily | None = None) -> Metric:
    """A Prometheus histogram from per-bucket counts (the last is +Inf) and a sum in ns."""
    fam = into or HistogramMetricFamily(name, doc, labels=labels)
    cumulative, buckets = 0, []
    for bound, n in zip([*map(str, bounds_s), "+Inf"], counts):
        cumulative += n
        buckets.append((bound, cumulative))
    fam.add_metric(label_values or [], buckets, sum_ns / 1e9)
    return fam


def _build_info() -> Metric:
    info = InfoMetricFamily("stamp_build", "stamp-suite version and Python", labels=[])
    info.add_metric([], {"version": __version__, "python": sys.version.split()[0]})
    return info


class ReflectorCollector:
    """The reflector's counters, summed over its workers at scrape time (a ReflectorService)."""

    def __init__(self, service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        c = self.service.counters
        yield _build_info()
        yield CounterMetricFamily("stamp_reflector_packets_received", "Datagrams received", value=c.received)
        yield CounterMetricFamily("stamp_reflector_packets_reflected", "Replies the kernel accepted for sending",
                                  value=c.reflected)
        yield CounterMetricFamily("stamp_reflector_send_errors", "Replies made but not sent (send failed)",
                                  value=c.send_errors)
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


class SenderMetrics:
    """Sender metrics, one label set per session (a single run, or each monitor target).

    Label cardinality is bounded by the sessions configured: never by what arrives."""

    def __init__(self, label_names: tuple[str, ...] = ("remote", "ssid")) -> None:
        self.label_names = list(label_names)
        self.histograms = ("rtt", "forward", "backward")
        self._sessions: dict[tuple[str, ...], tuple[object, dict]] = {}

    def add_session(self, label_values: tuple[str, ...], stats) -> Callable[[Event], None]:
        """Register a session (its SessionStats); returns the on_event hook that feeds it."""
        hist = {k: BucketHistogram(DELAY_BUCKETS_S) for k in self.histograms}
        state: dict = {"hist": hist, "last_rtt": None, "ttl_reflector": None, "ttl_sender": None,
                       "dscp_reflector": None, "dscp_sender": None}
        self._sessions[tuple(label_values)] = (stats, state)

        def on_event(ev: Event) -> None:
            if type(ev) is not Reply:
                return
            s = ev.sample
            for key, value in (("rtt", s.rtt_ns), ("forward", s.forward_ns), ("backward", s.backward_ns)):
                if key in hist:
                    hist[key].observe(max(0, value))
            cos = s.tlv.get("cos")
            state.update(last_rtt=s.rtt_ns, ttl_reflector=s.reflector_ttl, ttl_sender=s.reply_ttl,
                         dscp_reflector=cos["dscp_at_reflector"] if cos else None,
                         dscp_sender=None if s.reply_tos is None else s.reply_tos >> 2)
        return on_event

    def remove_session(self, label_values: tuple[str, ...]) -> None:
        self._sessions.pop(tuple(label_values), None)

    def collect(self) -> Iterator[Metric]:
        yield _build_info()
        names = self.label_names
        fams = {
            "sent": CounterMetricFamily("stamp_sender_packets_sent", "Test packets sent", labels=names),
            "received": CounterMetricFamily("stamp_sender_packets_received", "Replies received in time",
                                            labels=names),
            "lost": CounterMetricFamily("stamp_sender_packets_lost", "Test packets without a reply within --timeout",
                                        labels=names),
            "duplicates": CounterMetricFamily("stamp_sender_duplicate_packets", "Duplicate replies", labels=names),
            "reordered": CounterMetricFamily("stamp_sender_reordered_packets", "Replies out of order",
                                             labels=names),
            "late": CounterMetricFamily("stamp_sender_late_packets", "Replies after --timeout (counted lost)",
                                        labels=names),
            "jitter": GaugeMetricFamily("stamp_sender_jitter_seconds", "Round-trip interarrival jitter (RFC 3550)",
                                        labels=names),
            "last_rtt": GaugeMetricFamily("stamp_sender_last_rtt_seconds", "Round trip of the latest reply",
                                          labels=names),
            "ttl": GaugeMetricFamily("stamp_sender_ttl", "TTL/hop limit of the latest packet at each end",
                                     labels=[*names, "end"]),
            "dscp": GaugeMetricFamily("stamp_sender_dscp", "DSCP of the latest packet at each end",
                                      labels=[*names, "end"]),
        }
        hist_names = {"rtt": "rtt_seconds", "forward": "forward_delay_seconds", "backward": "backward_delay_seconds"}
        hists = {k: HistogramMetricFamily(f"stamp_sender_{hist_names[k]}", doc, labels=names) for k, doc in (
            ("rtt", "Round-trip delay (T4-T1)-(T3-T2)"),
            ("forward", "One-way delay T2-T1 (needs synchronised clocks)"),
            ("backward", "One-way delay T4-T3 (needs synchronised clocks)")) if k in self.histograms}
        for labels, (st, state) in list(self._sessions.items()):
            labels = list(labels)
            fams["sent"].add_metric(labels, st.sent)
            fams["received"].add_metric(labels, st.received)
            fams["lost"].add_metric(labels, st.lost)
            fams["duplicates"].add_metric(labels, st.duplicates)
            fams["reordered"].add_metric(labels, st.reordered)
            fams["late"].add_metric(labels, st.late)
            if state["last_rtt"] is not None:  # nothing about delay until a first reply
                fams["jitter"].add_metric(labels, st.rtt_var.jitter_ns / 1e9)
                fams["last_rtt"].add_metric(labels, state["last_rtt"] / 1e9)
                for end in ("reflector", "sender"):
                    if state[f"ttl_{end}"] is not None:
                        fams["ttl"].add_metric([*labels, end], state[f"ttl_{end}"])
                    if state[f"dscp_{end}"] is not None:
                        fams["dscp"].add_metric([*labels, end], state[f"dscp_{end}"])
            for key in self.histograms:
                state["hist"][key].family("", "", label_values=labels, into=hists[key])
        yield from fams.values()
        yield from hists.values()


WINDOW_GAUGES = (
    ("loss_ratio", "Lost / (received + lost) in the latest closed window"),
    ("packets_sent", "Test packets sent in the latest closed window"),
    ("packets_lost", "Test packets lost in the latest closed window"),
    ("duplicate_packets", "Duplicate replies in the latest closed window"),
    ("reordered_packets", "Reordered replies in the latest closed window"),
    ("partial", "1 when the latest closed window did not run for its whole span (a target started in it)"),
    ("rtt_p50_seconds", "Round-trip delay p50 in the latest closed window"),
    ("rtt_p99_seconds", "Round-trip delay p99 in the latest closed window"),
    ("forward_delay_p50_seconds", "One-way forward delay p50 in the latest closed window"),
    ("backward_delay_p50_seconds", "One-way backward delay p50 in the latest closed window"),
    ("jitter_seconds", "RFC 3550 round-trip jitter at the end of the latest closed window"),
)


def window_families(windows, targets_up, monitor: str) -> Iterator[Metric]:
    """``stamp_monitor_window_*{monitor,target,window}`` gauges from (target, length in s, window
    record), and ``stamp_monitor_target_up{monitor,target}`` from (target, up)."""
    labels = ["monitor", "target", "window"]
    fams = {k: GaugeMetricFamily(f"stamp_monitor_window_{k}", doc, labels=labels) for k, doc in WINDOW_GAUGES}
    for target, length_s, d in windows:
        lv = [monitor, target, f"{length_s}s"]
        p = d["packets"]
        if p["loss_ratio"] is not None:  # a window of packets still in flight says nothing
            fams["loss_ratio"].add_metric(lv, p["loss_ratio"])
        fams["packets_sent"].add_metric(lv, p["sent"])
        fams["packets_lost"].add_metric(lv, p["lost"])
        fams["duplicate_packets"].add_metric(lv, p["duplicates"])
        fams["reordered_packets"].add_metric(lv, p["reordered"])
        fams["partial"].add_metric(lv, 1 if d["partial"] else 0)
        for key, src in (("rtt_p50_seconds", d["rtt_ns"]["percentiles"]["p50"]),
                         ("rtt_p99_seconds", d["rtt_ns"]["percentiles"]["p99"]),
                         ("forward_delay_p50_seconds", d["one_way"]["forward_ns"]["percentiles"]["p50"]),
                         ("backward_delay_p50_seconds", d["one_way"]["backward_ns"]["percentiles"]["p50"]),
                         ("jitter_seconds", d["delay_variation"]["ipdv_rtt_ns"]["jitter_rfc3550"])):
            if src is not None:
                fams[key].add_metric(lv, src / 1e9)
    yield from fams.values()
    up = GaugeMetricFamily("stamp_monitor_target_up", "1 when the target answered in its latest closed shortest "
                           "window; 0 when nothing came back or ICMP said nothing listens there",
                           labels=["monitor", "target"])
    for target, is_up in targets_up:
        up.add_metric([monitor, target], 1 if is_up else 0)
    yield up
