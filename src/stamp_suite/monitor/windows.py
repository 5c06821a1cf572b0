"""Tumbling statistics windows of one target: a packet belongs to the window it was sent in,
and a window is summarised when the engine says it is over (:class:`WindowClosed`, once its
last packet's timeout has passed).  Both use the engine's window clock (:attr:`Sent.window_ns`:
wall-clock time as it was at the start, advanced by the monotonic clock), so a wall-clock step
neither empties windows nor strands packets in windows that never close."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..sender.events import Duplicate, Event, Late, Lost, Refused, Rejected, Reply, Sent, WindowClosed
from ..sender.report import rfc3339
from ..sender.stats import SessionStats

NS = 1_000_000_000


class WindowedStats:
    """A :class:`SessionStats` per open window and length; a consumer of a session's events."""

    def __init__(self, lengths_ns: tuple[int, ...], dscp: int = 0, ecn: int = 0,
                 on_close: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.lengths_ns = lengths_ns
        self.dscp, self.ecn = dscp, ecn
        self.on_close = on_close
        self.open: dict[int, dict[int, SessionStats]] = {length: {} for length in lengths_ns}
        self.last: dict[int, dict[str, Any]] = {}  # length -> the latest closed window's record
        self._sent_at: dict[int, int] = {}  # sequence number -> send time (window clock)
        self._latest = 0  # the latest packet's send time: where an event without one belongs

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, WindowClosed):
            self._close(ev)
            return
        if isinstance(ev, Sent):
            self._sent_at[ev.sequence_number] = self._latest = sent_at = ev.window_ns
        elif isinstance(ev, (Reply, Late, Duplicate)):
            sent_at = self._sent_at.get(ev.sample.sequence_number)
        elif isinstance(ev, Lost):
            sent_at = self._sent_at.get(ev.sequence_number)
        elif isinstance(ev, (Rejected, Refused)):
            sent_at = self._latest
        else:
            return
        if sent_at is None:  # a packet from before the windows' memory: nothing to attribute it to
            return
        for length, open_ in self.open.items():
            st = open_.get(sent_at // length)
            if st is None:
                st = open_[sent_at // length] = SessionStats(self.dscp, self.ecn)
            st.on_event(ev)

    def _close(self, ev: WindowClosed) -> None:
        st = self.open[ev.length_ns].pop(ev.index, None) or SessionStats(self.dscp, self.ecn)
        record = {"window_s": ev.length_ns // NS, "start": rfc3339(ev.index * ev.length_ns),
                  "end": rfc3339((ev.index + 1) * ev.length_ns), "partial": ev.partial, **st.to_dict()}
        self.last[ev.length_ns] = record
        if self.on_close is not None:
            self.on_close(record)
        if ev.length_ns == max(self.lengths_ns):  # nothing older than this window is needed any more
            horizon = ev.index * ev.length_ns
            for seq in [q for q, t in self._sent_at.items() if t < horizon]:
                del self._sent_at[seq]
