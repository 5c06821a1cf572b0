"""What a sender run writes: per-packet lines (text, JSON lines, CSV), interim reports, the
progress line on a terminal, the final summary, and the plot.  A consumer of the
engine's events (see :mod:`.driver`)."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, TextIO

from ..config import OutputFormat, Settings
from .events import Event, ReportDue
from .report import (
    CsvWriter,
    event_record,
    interim_text,
    ms,
    packet_text,
    problems_record,
    summary_json,
    summary_ping,
    summary_short,
    summary_text,
    tlv_record,
)
from .stats import SessionStats

PLOT_MAX_POINTS = 1_000_000


class SenderOutput:
    def __init__(self, s: Settings, stats: SessionStats, session: dict[str, Any], out: TextIO | None = None,
                 err: TextIO | None = None, target: str | None = None) -> None:
        """``target``: this session is one of several, named so on each line (text) or object
        (JSON); their text summary is one table at the end (summary_table), not this one's."""
        self.s = s
        self.target = target
        self.prefix = f"{target}: " if target else ""
        self.stats = stats
        self.session = session  # the summary's "session" object
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.csv = CsvWriter(self.out) if s.output.output_format is OutputFormat.CSV else None
        self.records: list[dict[str, Any]] | None = [] if s.output.plot_output else None
        self.per_packet = s.output.print_stats and not s.output.quiet
        out = s.output
        self.progress = (out.output_format is OutputFormat.TEXT and not (out.print_stats or out.quiet)
                         and self.err.isatty() and target is None)
        self.in_table = target is not None and out.output_format is OutputFormat.TEXT and not out.full
        self.interim = bool(s.output.report_interval)
        self.interval = SessionStats(s.sender.dscp, s.sender.ecn)  # what happened since the last interim report
        self._intervals = (0, 0.0)  # (index, end in s) of the last interim report

    def __call__(self, ev: Event) -> None:
        if ev.__class__ is ReportDue:
            self._interim(ev)
            return
        if self.interim:
            self.interval.on_event(ev)
        if self.records is None and self.csv is None and not self.per_packet:
            return  # nothing here writes or keeps this packet: no record to make
        rec = event_record(ev)
        if rec is None:
            return
        if self.records is not None and len(self.records) < PLOT_MAX_POINTS:
            self.records.append(rec)
        if self.csv is not None:
            self.csv.row(rec)
        elif not self.per_packet:
            return
        elif self.s.output.output_format is OutputFormat.JSON:
            sample = getattr(ev, "sample", None)
            target = {"target": self.target} if self.target else {}
            print(json.dumps({"type": "packet", **target, **rec, "tlv": tlv_record(sample.tlvs) if sample else {},
                              "tlv_problems": problems_record(sample.tlv_problems) if sample else []}), file=self.out)
        else:
            line = packet_text(ev, self.s.output.verbose, bool(self.s.sender.dscp or self.s.tlvs.cos))
            if line is None:
                return
            self.clear_progress()
            print(self.prefix + line, file=self.out)
        self.out.flush()

    def _interim(self, ev: ReportDue) -> None:
        self._report_interval(ev.index, ev.elapsed_ns / 1e9 - self.s.output.report_interval, ev.elapsed_ns / 1e9)

    def _report_interval(self, index: int, start_s: float, end_s: float) -> None:
        """What one --report-interval saw, on its own line (text) or object (JSON); CSV keeps
        stdout for its rows, so its interim lines go to stderr."""
        self._intervals = (index, end_s)
        d, self.interval = self.interval.to_dict(), SessionStats(self.s.sender.dscp, self.s.sender.ecn)
        if self.stats.dropped_unread is not None:  # counted here: none in the next interval is 0, not unknown
            self.interval.dropped_unread = 0
        if self.s.output.quiet:
            return
        if self.s.output.output_format is OutputFormat.JSON:
            print(summary_json(d, self.session, kind="interim",
                               interval={"index": index, "start_s": start_s, "end_s": end_s}),
                  file=self.out, flush=True)
        else:
            self.clear_progress()
            print(self.prefix + interim_text(index, start_s, end_s, d), file=self.out if self.csv is None else self.err,
                  flush=True)

    def show_progress(self) -> None:
        """The progress line on a terminal (once a second)."""
        if not self.progress:
            return
        st = self.stats
        d = st.to_dict()
        loss = d["packets"]["loss_ratio"] or 0.0
        print(f"\r  sent {st.sent}  received {st.received}  lost {st.lost} ({loss:.1%})  "
              f"rtt p50 {ms(d['rtt_ns']['percentiles']['p50'])}   ", end="", file=self.err, flush=True)

    def clear_progress(self) -> None:
        if self.progress:
            print("\r" + " " * 78 + "\r", end="", file=self.err, flush=True)

    def finish(self, duration_s: float) -> dict[str, Any]:
        """The summary, in the chosen format; returns it (a dict) for the plot and the exit status."""
        self.clear_progress()
        index, end_s = self._intervals
        if self.s.output.report_interval and self.interval.sent and duration_s > end_s:
            self._report_interval(index + 1, end_s, duration_s)  # the last, shorter one: the lines add up
        self.session["duration_s"] = duration_s
        if self.s.sender.window:
            self.session["capacity_replies_per_s"] = self.stats.received / max(duration_s, 1e-9)
        summary = self.stats.to_dict()
        out = self.s.output
        text = (summary_text if out.full else summary_ping if out.quiet
                else functools.partial(summary_short, per_packet=self.per_packet))
        if self.csv is not None:
            self.out.flush()
            print(text(summary, self.session), end="", file=self.err)
        elif out.output_format is OutputFormat.JSON:
            print(summary_json(summary, self.session, **({"target": self.target} if self.target else {})),
                  file=self.out)
        elif not self.in_table:
            if self.per_packet or self.target:
                print(file=self.out)
            if self.target:  # one of several full summaries
                print(f"{self.target}:", file=self.out)
            print(text(summary, self.session), end="", file=self.out)
            if self.s.sender.window:
                drops = summary["packets"]["dropped_unread"]
                print(f"\nCapacity: {self.session['capacity_replies_per_s']:,.0f} replies/s "
                      f"with {self.s.sender.window} "
                      f"packets in flight, loss {(summary['packets']['loss_ratio'] or 0):.3%}"
                      + (f" ({drops} replies dropped unread by this host: it fell behind, not the reflector)"
                         if drops else ""), file=self.out)
        self.out.flush()
        return summary
