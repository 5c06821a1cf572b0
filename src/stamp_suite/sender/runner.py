"""The Session-Sender's socket loop: a drift-free schedule, replies matched as they come.

Packet n leaves at ``start + n * interval`` (absolute deadlines on the monotonic clock,
never sleep-after-send), so the schedule does not drift with processing time.  The
next packet is prepared before its deadline; at the deadline only T1 and the HMAC are
written.  T4 is the kernel's receive timestamp where the platform has one.
"""

from __future__ import annotations

import selectors
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..net.process import tighten_timer_slack
from ..net.udp import UdpEndpoint
from .engine import Outgoing, ReplyEvent, SessionSender
from .stats import SessionStats

NS = 1_000_000_000
# Waiting for the next send: select() (millisecond resolution) until PRECISE_WINDOW_NS before
# the deadline, then _wait_precisely: a short sleep (1 ns timer slack) and a spin of SPIN_NS.
PRECISE_WINDOW_NS = 2_000_000
COARSE_WAIT_NS = PRECISE_WINDOW_NS + 1_000_000
SPIN_NS = 60_000


@dataclass
class RunResult:
    stats: SessionStats
    started_ns: int
    ended_ns: int
    interrupted: bool = False
    unanswered: list[tuple[int, int]] = field(default_factory=list)  # (seq, T1)
    schedule_error_ns: list[int] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return (self.ended_ns - self.started_ns) / NS


class SenderSocket:
    """One Session-Sender's socket work: send a prepared packet, learn its kernel departure
    time, read and match replies.  Used by SenderRunner and by the monitor's targets."""

    def __init__(self, engine: SessionSender, endpoint: UdpEndpoint, stats: SessionStats,
                 on_event: Callable[[ReplyEvent], None] | None = None) -> None:
        self.engine = engine
        self.endpoint = endpoint
        self.stats = stats
        self.on_event = on_event
        self._departing: dict[int, int] = {}  # TX timestamp key -> sequence number
        endpoint.setblocking(False)

    def send(self, pending: Outgoing) -> None:
        data = pending.stamp(time.time_ns())
        try:
            key = self.endpoint.send(data, None, tx_timestamp=True)
        except ConnectionRefusedError:  # ICMP port unreachable from an earlier packet
            self.stats.refused += 1
        except OSError as exc:
            print(f"stamp-suite: send failed: {exc.strerror or exc}", file=sys.stderr)
        else:
            if key is not None:
                self._departing[key] = pending.sequence_number
                self._collect_departures()
        self.stats.on_sent()

    def _collect_departures(self) -> None:
        """Kernel TX timestamps of our test packets become their T1 (see record_departure)."""
        for key, tx_ns in self.endpoint.read_tx_timestamps():
            seq = self._departing.pop(key, None)
            if seq is not None:
                self.engine.record_departure(seq, tx_ns)
        if len(self._departing) > 4096:  # stamps that never came: forget the oldest
            for key in list(self._departing)[:-4096]:
                del self._departing[key]

    def drain(self) -> None:
        ep = self.endpoint
        if self._departing:
            self._collect_departures()
        while True:
            try:
                rx = ep.recv()
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                self.stats.refused += 1
                continue
            event = self.engine.receive(rx.data, rx.kernel_ns if rx.kernel_ns is not None else rx.user_ns,
                                        rx.ttl, rx.tos)
            self.stats.on_event(event)
            if self.on_event is not None:
                self.on_event(event)


def wait_precisely(sel: selectors.BaseSelector, deadline: int, on_ready: Callable[[list], None]) -> None:
    """The last stretch before a send: the readiness wait has only millisecond resolution,
    so handle what is ready without blocking, sleep to just short of the deadline, then spin."""
    ready = sel.select(0)
    if ready:
        on_ready(ready)
    remaining = deadline - time.monotonic_ns()
    if remaining > SPIN_NS:
        time.sleep((remaining - SPIN_NS) / NS)
    while time.monotonic_ns() < deadline:
        pass


class SenderRunner:
    """One session: --count packets every --send-delay, then wait --timeout for the last replies."""

    def __init__(self, engine: SessionSender, endpoint: UdpEndpoint, destination: tuple[str, int], *,
                 count: int, interval_ns: int, timeout_ns: int, stats: SessionStats,
                 on_event: Callable[[ReplyEvent], None] | None = None,
                 on_tick: Callable[[RunResult], None] | None = None, tick_ns: int = NS,
                 record_schedule: bool = False) -> None:
        self.engine = engine
        self.endpoint = endpoint
        self.destination = destination
        self.count = count
        self.interval_ns = interval_ns
        self.timeout_ns = timeout_ns
        self.stats = stats
        self.on_tick = on_tick
        self.tick_ns = tick_ns
        self.record_schedule = record_schedule
        self.socket = SenderSocket(engine, endpoint, stats, on_event)
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    def run(self) -> RunResult:
        tighten_timer_slack()
        result = RunResult(self.stats, time.time_ns(), 0)
        start = time.monotonic_ns()
        next_tick = start + self.tick_ns
        seq = slot = 0  # packets sent, and scheduled slots used (retransmissions take none)
        pending = self.engine.prepare(0)
        last_send = start
        drain = lambda ready: self.socket.drain()  # noqa: E731
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(self.endpoint.sock, selectors.EVENT_READ)
                while not self._stop:
                    now = time.monotonic_ns()
                    sending = self.count == 0 or slot < self.count
                    scheduled = sending and now >= start + slot * self.interval_ns
                    if scheduled or self.engine.access_report_retransmit_due(time.time_ns()):
                        if scheduled:
                            if self.record_schedule:
                                result.schedule_error_ns.append(now - (start + slot * self.interval_ns))
                            slot += 1
                        self.socket.send(pending)
                        last_send = time.monotonic_ns()
                        seq += 1
                        pending = self.engine.prepare(seq)
                        continue
                    if not sending and (self.stats.received + self.stats.late >= seq
                                        or now >= last_send + self.timeout_ns):
                        break
                    due = start + slot * self.interval_ns if sending else last_send + self.timeout_ns
                    deadline = min(due, next_tick)
                    if sending and deadline == due and deadline - now < COARSE_WAIT_NS:
                        wait_precisely(sel, deadline, drain)
                    elif sel.select(max(0, deadline - now - (PRECISE_WINDOW_NS if sending else 0)) / NS):
                        self.socket.drain()
                    if time.monotonic_ns() >= next_tick:
                        next_tick += self.tick_ns
                        if self.count == 0:  # bounded memory on endless runs
                            self.engine.forget_before(time.time_ns() - 2 * self.timeout_ns)
                        if self.on_tick is not None:
                            self.on_tick(result)
        except KeyboardInterrupt:
            result.interrupted = True
        result.ended_ns = time.time_ns()
        result.unanswered = self.engine.unanswered()
        return result

    def run_window(self, window: int) -> RunResult:
        """Capacity mode: keep ``window`` packets in flight, sending the next one as each reply
        comes back, so the rate is what the path and the reflector sustain.  Packets with no
        reply for --timeout are written off as lost and their places refilled."""
        tighten_timer_slack()
        result = RunResult(self.stats, time.time_ns(), 0)
        st = self.stats
        seq = written_off = 0
        last_progress = time.monotonic_ns()
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(self.endpoint.sock, selectors.EVENT_READ)
                while not self._stop:
                    answered = st.received + st.late
                    in_flight = seq - answered - written_off
                    more = self.count == 0 or seq < self.count
                    if not more and in_flight <= 0:
                        break
                    while more and in_flight < window:
                        self.socket.send(self.engine.prepare(seq))
                        seq += 1
                        in_flight += 1
                        more = self.count == 0 or seq < self.count
                    if sel.select(min(self.timeout_ns, NS) / NS):
                        before = st.received + st.late
                        self.socket.drain()
                        if st.received + st.late > before:
                            last_progress = time.monotonic_ns()
                    elif time.monotonic_ns() - last_progress >= self.timeout_ns:
                        written_off += max(0, in_flight)  # no reply for --timeout: lost
                        last_progress = time.monotonic_ns()
        except KeyboardInterrupt:
            result.interrupted = True
        result.ended_ns = time.time_ns()
        result.unanswered = self.engine.unanswered()
        return result
