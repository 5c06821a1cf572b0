"""What a sender run writes: per-packet lines (text, JSON lines, CSV), interim reports, the
progress line on a terminal, the final summary, and the plot.  A consumer of the
engine's events (see :mod:`.driver`)."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from ..config import Settings
from .events import Event, ReportDue
from .report import CsvWriter, event_record, ms, packet_text, problems_record, summary_json, summary_text
from .stats import SessionStats

PLOT_MAX_POINTS = 1_000_000


class SenderOutput:
    def __init__(self, s: Settings, stats: SessionStats, session: dict[str, Any], out: TextIO | None = None,
                 err: TextIO | None = None) -> None:
        self.s = s
        self.stats = stats
        self.session = session  # the summary's "session" object
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.csv = CsvWriter(self.out) if s.output_format == "csv" else None
        self.records: list[dict[str, Any]] | None = [] if s.plot_output else None
        self.progress = s.output_format == "text" and not s.print_stats and self.err.isatty()

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, ReportDue):
            self._interim(ev)
            return
        rec = event_record(ev)
        if rec is None:
            return
        if self.records is not None and len(self.records) < PLOT_MAX_POINTS:
            self.records.append(rec)
        if self.csv is not None:
            self.csv.row(rec)
        elif not self.s.print_stats:
            return
        elif self.s.output_format == "json":
            sample = getattr(ev, "sample", None)
            print(json.dumps({"type": "packet", **rec, "tlv": sample.tlv if sample else {},
                              "tlv_problems": problems_record(sample.tlv_problems) if sample else []}), file=self.out)
        else:
            print(packet_text(ev), file=self.out)
        self.out.flush()

    def _interim(self, ev: ReportDue) -> None:
        self.session["duration_s"] = ev.elapsed_ns / 1e9
        if self.s.output_format == "json":
            print(summary_json(self.stats.to_dict(), self.session, kind="interim"), file=self.out, flush=True)
        elif self.s.output_format == "text":
            self.clear_progress()
            print(summary_text(self.stats.to_dict(), self.session), file=self.out, flush=True)

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
        self.session["duration_s"] = duration_s
        if self.s.window:
            self.session["capacity_replies_per_s"] = self.stats.received / max(duration_s, 1e-9)
        summary = self.stats.to_dict()
        if self.csv is not None:
            self.out.flush()
            print(summary_text(summary, self.session), end="", file=self.err)
        elif self.s.output_format == "json":
            print(summary_json(summary, self.session), file=self.out)
        else:
            if self.s.print_stats:
                print(file=self.out)
            print(summary_text(summary, self.session), end="", file=self.out)
            if self.s.window:
                print(f"\nCapacity: {self.session['capacity_replies_per_s']:,.0f} replies/s with {self.s.window} "
                      f"packets in flight, loss {(summary['packets']['loss_ratio'] or 0):.3%}", file=self.out)
        self.out.flush()
        return summary
