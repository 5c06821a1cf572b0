"""Tumbling statistics windows of one target: a packet belongs to the window it was sent in,
and a window is summarised when the engine says it is over (:class:`WindowClosed`, once its
last packet's timeout has passed).  Both use the engine's window clock (:attr:`Sent.window_ns`:
wall-clock time as it was at the start, advanced by the monotonic clock), so a wall-clock step
neither empties windows nor strands packets in windows that never close.

A window keeps its events and folds them into its statistics FOLD_EVERY at a time, and the
rest when it closes: a :class:`SessionStats` fed the same events in the same order as a
sender's, but in passes over one target's events instead of one update per packet
interleaved with ten thousand other targets' (memory stays warm: bench/README.md).  For a
window line (``full``) it keeps every statistic, IPDV paired over the last IPDV_MEMORY
packets; otherwise only what the window gauges need (scope DELAYS)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..sender.events import Duplicate, Event, Invalid, Late, Lost, Refused, Rejected, Reply, Sent, WindowClosed
from ..sender.report import rfc3339
from ..sender.stats import Scope, SessionStats

NS = 1_000_000_000
# Recent delays kept per target to pair consecutive packets for IPDV: at a packet a second, a
# reply a minute out of order still pairs; the single sender's 4,096 would be 1 MB a target.
IPDV_MEMORY = 64
FOLD_EVERY = 256  # events a window holds before it folds them (a close never folds more)


@dataclass(slots=True)
class ClosedWindow:
    """A window that is over: its statistics, summarised only when a JSON line asks for it,
    since the gauges need only a few of them (monitor.metrics.window_gauges)."""

    length_ns: int
    index: int
    partial: bool
    stats: SessionStats
    # Its series as exposition text, made once (monitor.metrics.window_row): a closed
    # window never changes, and a 60 s window is scraped four times.
    exposed: tuple[str, tuple[str | None, ...]] | None = field(default=None, repr=False, compare=False)

    @property
    def full(self) -> bool:
        """Every statistic kept (a window line can be written), not only the gauges'."""
        return self.stats.scope is Scope.ALL

    @property
    def length_s(self) -> int:
        return self.length_ns // NS

    def record(self) -> dict[str, Any]:
        return {"window_s": self.length_s, "start": rfc3339(self.index * self.length_ns),
                "end": rfc3339((self.index + 1) * self.length_ns), "partial": self.partial, **self.stats.to_dict()}


class _OpenWindow:
    __slots__ = ("stats", "events", "sent", "full")

    def __init__(self, full: bool) -> None:
        self.stats: SessionStats | None = None
        self.events: list[Event] = []
        self.sent = 0  # Sent events are only counted (by SessionStats too): not kept
        self.full = full  # as WindowedStats.full was when the window opened

    def fold(self, dscp: int, ecn: int) -> SessionStats:
        if self.stats is None:
            self.stats = (SessionStats(dscp, ecn, ipdv_memory=IPDV_MEMORY) if self.full
                          else SessionStats(dscp, ecn, ipdv_memory=0, scope=Scope.DELAYS))
        stats = self.stats
        stats.sent += self.sent
        self.sent = 0
        for event in self.events:
            stats.on_event(event)
        self.events.clear()
        return stats


class WindowedStats:
    """The open windows of each length, and the latest closed; a consumer of a session's events."""

    def __init__(self, lengths_ns: tuple[int, ...], dscp: int = 0, ecn: int = 0,
                 on_close: Callable[[ClosedWindow], None] | None = None, full: bool = True) -> None:
        self.lengths_ns = lengths_ns
        self.dscp, self.ecn = dscp, ecn
        # full: every statistic of a window, for its JSON line; otherwise what its gauges need
        # (counts, order, delays and jitter: SessionStats scope DELAYS), as this says when the
        # window opens (ClosedWindow.full: a window line is written only for a full window).
        self.full = full
        self.on_close = on_close
        self.open: dict[int, dict[int, _OpenWindow]] = {length: {} for length in lengths_ns}
        self.last: dict[int, ClosedWindow] = {}  # length -> the latest closed window
        self._closed: dict[int, int] = {}  # length -> index of the latest closed window
        self._sent_at: dict[int, int] = {}  # sequence number -> send time (window clock)
        self._latest = 0  # the latest packet's send time: where an event without one belongs

    def __call__(self, ev: Event) -> None:
        kind = type(ev)  # events are final dataclasses: the type says it all
        if kind is Sent:
            self._sent_at[ev.sequence_number] = self._latest = sent_at = ev.window_ns
        elif kind is Reply or kind is Late or kind is Duplicate or kind is Invalid:
            sent_at = self._sent_at.get(ev.sample.sequence_number)
        elif kind is Lost:
            sent_at = self._sent_at.get(ev.sequence_number)
        elif kind is Rejected or kind is Refused:
            sent_at = self._latest
        elif kind is WindowClosed:
            self._close(ev)
            return
        else:
            return
        if sent_at is None:  # a packet from before the windows' memory: nothing to attribute it to
            return
        for length, open_ in self.open.items():
            index = sent_at // length
            window = open_.get(index)
            if window is None:
                if index <= self._closed.get(length, -1):
                    continue  # a late or duplicate reply to a window already summarised
                window = open_[index] = _OpenWindow(self.full)
            if kind is Sent:
                window.sent += 1
                continue
            window.events.append(ev)
            if len(window.events) >= FOLD_EVERY:
                window.fold(self.dscp, self.ecn)

    def _close(self, ev: WindowClosed) -> None:
        st = self.open[ev.length_ns].pop(ev.index, _OpenWindow(self.full)).fold(self.dscp, self.ecn)
        self._closed[ev.length_ns] = ev.index
        closed = self.last[ev.length_ns] = ClosedWindow(ev.length_ns, ev.index, ev.partial, st)
        if self.on_close is not None:
            self.on_close(closed)
        # send times before every length's oldest open window are needed no more
        horizon = min((self._closed.get(length, -1) + 1) * length for length in self.lengths_ns)
        if self._sent_at and next(iter(self._sent_at.values())) < horizon:
            for seq in [q for q, t in self._sent_at.items() if t < horizon]:
                del self._sent_at[seq]
