"""Availability as operators count it, from each test packet's fate in the order it was sent:

- errored seconds: seconds of sending (by T1) in which a packet was lost, or came back with a
  round trip over a bound (ITU-T G.826's idea, with loss for errors);
- loss periods (RFC 3357 §4.1): runs of consecutive lost packets, each one period;
- outages: loss periods that last at least a threshold, counted once each, and their time,
  from the first lost packet's send to the send of the first one answered after it.  The time
  grows while an outage lasts, so a rate of it says "down now".

Fates come out of order (a loss is known only at its timeout, later replies before it); they
are put back in order by sequence number, each processed once all before it are known.
"""

from __future__ import annotations

from ..config import Settings
from .events import Event, Invalid, Lost, Reply

NS = 1_000_000_000
SEQ_MASK, SEQ_HALF = 0xFFFF_FFFF, 1 << 31  # sequence numbers are 32 bits and wrap (RFC 8762 §4.2.1)


def availability_of(s: Settings) -> Availability:
    """The counts for a session of these settings (--outage-threshold, --errored-rtt, its pace)."""
    snd = s.sender
    return Availability(int(snd.outage_threshold * NS), int(snd.errored_rtt * 1e6), max(1, int(snd.send_delay * 1e6)))


class Availability:
    __slots__ = ("outage_ns", "errored_rtt_ns", "interval_ns", "errored_seconds", "loss_periods", "outages",
                 "outage_seconds", "_fates", "_next", "_second", "_second_errored", "_run_start", "_in_outage",
                 "_counted_to")

    def __init__(self, outage_ns: int, errored_rtt_ns: int = 0, interval_ns: int = NS) -> None:
        """``outage_ns``: the shortest loss period that is an outage; ``errored_rtt_ns``: a round
        trip over this makes its second errored (0: only loss does); ``interval_ns``: the time
        between test packets (a run of n lost packets lasts n intervals)."""
        self.outage_ns = outage_ns
        self.errored_rtt_ns = errored_rtt_ns
        self.interval_ns = interval_ns
        self.errored_seconds = 0
        self.loss_periods = 0
        self.outages = 0
        self.outage_seconds = 0.0
        self._fates: dict[int, tuple[int, bool, bool]] = {}  # seq -> (T1, lost, errored), waiting for earlier ones
        self._next = 0  # the next sequence number to process
        self._second: int | None = None  # the second (of T1) being counted, and whether it is errored
        self._second_errored = False
        self._run_start: int | None = None  # T1 of the first lost packet of the loss period under way
        self._in_outage = False
        self._counted_to = 0  # T1 up to which the outage under way is in outage_seconds

    def on_event(self, ev: Event) -> None:
        cls = type(ev)
        if cls is Reply:
            s = ev.sample
            self._fate(s.sequence_number, s.t1_ns, False,
                       bool(self.errored_rtt_ns) and s.rtt_ns > self.errored_rtt_ns)
        elif cls is Lost:
            self._fate(ev.sequence_number, ev.t1_ns, True, True)
        elif cls is Invalid:  # answered, with timestamps that say nothing of the delay
            self._fate(ev.sample.sequence_number, ev.sample.t1_ns, False, False)

    def _fate(self, seq: int, t1_ns: int, lost: bool, errored: bool) -> None:
        if seq == self._next and not self._fates:  # in order, as most are: no waiting
            self._next = (seq + 1) & SEQ_MASK
            self._count(t1_ns, lost, errored)
            return
        if (seq - self._next) & SEQ_MASK >= SEQ_HALF:
            return  # before the next one: from before this count started (or a fate said twice)
        self._fates[seq] = (t1_ns, lost, errored)
        while self._next in self._fates:
            self._count(*self._fates.pop(self._next))
            self._next = (self._next + 1) & SEQ_MASK

    def _count(self, t1_ns: int, lost: bool, errored: bool) -> None:
        second = t1_ns // NS
        if second != self._second:
            self._second, self._second_errored = second, False
        if errored and not self._second_errored:
            self._second_errored = True
            self.errored_seconds += 1
        if lost:
            if self._run_start is None:
                self._run_start = t1_ns
                self.loss_periods += 1
            if not self._in_outage and t1_ns - self._run_start + self.interval_ns >= self.outage_ns:
                self._in_outage = True
                self.outages += 1
                self._counted_to = self._run_start
            if self._in_outage:
                self.outage_seconds += (t1_ns - self._counted_to) / NS
                self._counted_to = t1_ns
            return
        if self._in_outage:  # it ends at the send of the first packet answered
            self.outage_seconds += (t1_ns - self._counted_to) / NS
        self._run_start, self._in_outage = None, False
