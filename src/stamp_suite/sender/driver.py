"""One loop for every Session-Sender: the CLI's one session, the monitor's thousands, the
Python API and the self-test all run their engines here.

The driver only moves bytes and keeps time: it sleeps until the earliest timer of all its
engines (a heap), calls ``handle_timer`` when one is due, stamps and writes the packets the
engines ask for, reads replies and hands them to their engine, and passes every event to
the session's consumers (statistics, outputs, metrics).  Sends are drift-free: packet n
leaves at its due time on the monotonic clock, reached by a readiness wait with
millisecond resolution, then a short sleep (1 ns timer slack) and a spin (wait_until).
A monitor of thousands of slow targets runs it coarse instead: sends leave at the first
wake-up at or after their due time, with no sleep or spin of their own.
T1 is read right before each write, T4 is the kernel's receive timestamp where there is one.
"""

from __future__ import annotations

import heapq
import itertools
import select
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..net.clock import ClockState, ClockWatcher
from ..net.icmp import icmp_error
from ..net.process import tighten_timer_slack
from ..net.readiness import Readiness
from ..net.signals import StopRequest
from ..net.udp import BATCH, UdpEndpoint
from .engine import SessionSender
from .events import Event, SendFailed, Transmit
from .sliced import STEP_BUDGET_NS, SlicedWork
from .timers import TICK_NS, TimerWheel

NS = 1_000_000_000
# Waiting for a send: select() (millisecond resolution) until PRECISE_WINDOW_NS before the
# deadline, then wait_until: a short sleep (1 ns timer slack) and a spin of SPIN_NS.
PRECISE_WINDOW_NS = 2_000_000
COARSE_WAIT_NS = PRECISE_WINDOW_NS + 1_000_000
SPIN_NS = 60_000  # the spin before a send until PreciseWait has measured this machine's sleeps
SPIN_MIN_NS, SPIN_MAX_NS, SPIN_MARGIN_NS = 10_000, 300_000, 20_000
IDLE_WAKEUP_NS = NS
# How often a session's socket is asked what the kernel dropped unread (read_dropped_unread), when
# it is read (never a wake-up of its own, which would stand in the way of a precise send): a
# precise driver's ten times a second, so that a warning comes while it happens; a coarse one's
# (a monitor's thousands) every ten seconds, spread as their replies come.
DROPPED_UNREAD_CHECK_NS = NS // 10
DROPPED_UNREAD_CHECK_COARSE_NS = 10 * NS
MAX_DEPARTING = 4096  # TX timestamps awaited at most, per session
# Coarse: timers handled per pass of the loop at most, so that a loop behind its schedule
# still reads replies and gives sliced work (a /metrics render) its turn every few ms.
MAX_TIMERS_PER_PASS = 64
FD_SETSIZE = 1024  # select()'s limit on descriptors
_ids = itertools.count(1)

Consumer = Callable[[Event], None]


class Probe:
    """A measurement stream as the driver runs it: one Session-Sender engine (the protocol),
    its connected socket, and the consumers of its events (statistics, outputs, metrics)."""

    def __init__(self, name: str, engine: SessionSender, endpoint: UdpEndpoint, destination: tuple[str, int],
                 consumers: Iterable[Consumer] = (), on_clock: Callable[[ClockState], None] | None = None) -> None:
        self.id = next(_ids)
        self.name = name
        self.engine = engine
        self.endpoint = endpoint
        self.destination = destination
        self.consumers: list[Consumer] = list(consumers)
        self.on_clock = on_clock
        self.timer: int | None = None  # the due time this session has in the driver's heap or wheel
        self.stamped = False  # the kernel stamps every packet sent (driver.add sets it)
        self.stamps_due = 0  # packets sent whose kernel TX timestamp is still to be read
        self.packet_len = 0  # the test packets' length, to find each one's number in its stamp
        self.last_sent: int | None = None  # the Sequence Number of the last packet that left
        self.fd = -1  # its socket's descriptor, as the driver registered it
        # Precise driver, kernel TX timestamps and the C extension: replies read many a system
        # call (recvmmsg), and the packets asked for while handling them (capacity mode) sent
        # together (sendmmsg), T1 then the kernel's time of each (driver.add sets it).
        self.batched = False
        self.dropped_unread_due = 0  # when its socket's drop count is next read (monotonic)

    def dispatch(self, event: Event) -> None:
        for consume in self.consumers:
            consume(event)


class PreciseWait:
    """The last stretch before a send (the readiness wait has only millisecond resolution):
    sleep (1 ns timer slack) to ``spin`` short of the deadline, then spin.  A sleep wakes late
    by the timer's and the scheduler's latency: a few us on bare metal, 35-130 us measured on
    a virtual machine.  So the spin is sized to this machine: the 90th percentile of the
    lateness of the last SAMPLES sleeps plus a margin, between SPIN_MIN_NS and SPIN_MAX_NS (the
    rarer, later wake-ups are what the margin and the schedule-error figures are for): no
    longer a spin than the machine needs, no burnt core at a few packets a second."""

    SAMPLES = 64

    def __init__(self, spin_ns: int = SPIN_NS) -> None:
        self.spin_ns = spin_ns
        self._late: list[int] = []

    def __call__(self, deadline: int, meanwhile: Callable[[int], None] | None = None) -> None:
        """Return at ``deadline`` (monotonic ns).  ``meanwhile(ns)``, where given, waits up to
        ``ns`` in its own way (reading replies as they come), instead of the sleep, and is
        called with 0 on each turn of the spin."""
        remaining = deadline - time.monotonic_ns()
        if remaining > self.spin_ns:
            asleep = remaining - self.spin_ns
            if meanwhile is not None:
                meanwhile(asleep)
            else:
                woke = time.monotonic_ns()
                time.sleep(asleep / NS)
                self.learn(time.monotonic_ns() - woke - asleep)
        while time.monotonic_ns() < deadline:
            if meanwhile is not None:
                meanwhile(0)

    def learn(self, late_ns: int) -> None:
        """A wait that ended ``late_ns`` after its time."""
        late = self._late
        late.append(late_ns)
        if len(late) >= self.SAMPLES:
            late.sort()
            p90 = late[len(late) * 9 // 10]
            self.spin_ns = min(SPIN_MAX_NS, max(SPIN_MIN_NS, p90 + SPIN_MARGIN_NS))
            late.clear()


class SenderDriver:
    def __init__(self, stop: StopRequest | None = None, clock: ClockWatcher | None = None,
                 record_schedule: bool = False, precise: bool = True) -> None:
        """``precise``: each send waited for to the microsecond (a sender at thousands of
        packets/s).  Coarse (a monitor of many slow targets, where a millisecond is plenty):
        the sends due at a wake-up go together, and a ready socket gives one datagram per
        wake-up (epoll is level-triggered: one still queued wakes the loop again), which
        saves a sleep, a read that finds nothing and an exception per packet."""
        self.stop_request = stop or StopRequest()
        self.precise = precise
        self.wait_until = PreciseWait()
        # Precise sessions whose T4 is the clock read when a reply is read (no kernel receive
        # timestamps: --timestamping user, Windows): their replies are read while a send is
        # waited for, not after it, which would add up to an interval to their round trips.
        self._prompt: dict[int, Probe] = {}
        self.clock = clock
        if clock is not None:
            clock.on_change = self._clock_changed
        self.sessions: dict[int, Probe] = {}
        self.schedule_error_ns: deque[int] = deque(maxlen=100_000) if record_schedule else deque(maxlen=0)
        self.on_schedule_error: Callable[[int], None] | None = None  # every send's lateness, in ns
        self._heap: list[tuple[int, int]] = []  # (due, session id); stale entries are skipped
        self._wheel = TimerWheel()  # coarse: session ids by millisecond (timers.py), then the heap
        self._periodic: list[list] = []  # [next due, period, callback]
        self._dropped_unread_every = DROPPED_UNREAD_CHECK_NS if precise else DROPPED_UNREAD_CHECK_COARSE_NS
        # Work other threads ask of this loop (a /metrics render), done a slice per pass of a
        # coarse loop, between its sends (see sliced.py).
        self.work = SlicedWork()
        self._sel = Readiness()
        self._sel.register(self.stop_request.fileno(), None)
        self._sel.register(self.work.fileno(), self.work)

    # -- sessions ----------------------------------------------------------------------------
    def add(self, session: Probe, delay_ns: int = 0) -> None:
        """Start ``session``'s schedule ``delay_ns`` from now."""
        session.endpoint.setblocking(False)
        session.stamped = session.endpoint.stamp_every_send()
        session.batched = self.precise and session.stamped and session.endpoint.batched
        session.fd = session.endpoint.sock.fileno()
        if self.precise and not session.endpoint.caps.kernel_rx_timestamp and session.fd < FD_SETSIZE:
            self._prompt[session.fd] = session  # (past FD_SETSIZE select cannot watch it: read after)
        self.sessions[session.id] = session
        self._sel.register(session.endpoint.sock.fileno(), session)
        self.read_dropped_unread(session)  # the first count (0 where counted), known from the start
        session.engine.start(time.monotonic_ns(), time.time_ns(), delay_ns)
        self._reschedule(session)

    def remove(self, session: Probe) -> None:
        """Stop driving ``session`` (its socket stays open: its owner closes it)."""
        if self.sessions.pop(session.id, None) is not None:
            self.read_dropped_unread(session)  # its last count, before its statistics are read
            self._sel.unregister(session.endpoint.sock.fileno())
            self._prompt.pop(session.fd, None)

    def every(self, period_ns: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` every ``period_ns`` while running."""
        self._periodic.append([time.monotonic_ns() + period_ns, period_ns, callback])

    def close_all(self) -> None:
        """End every session now (packets still in flight are unanswered, not lost) and tell its consumers."""
        now = time.monotonic_ns()
        for session in list(self.sessions.values()):
            self.read_dropped_unread(session)
            for event in session.engine.close(now):
                session.dispatch(event)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, until_finished: bool = True) -> bool:
        """Run until every session has finished (with ``until_finished``) or a stop is
        requested; True when stopped by the request."""
        tighten_timer_slack()
        self.work.start()
        try:
            return self._loop(until_finished)
        finally:
            self.work.stop("the sending loop has stopped")

    def close(self) -> None:
        """Let go of the loop's own descriptors (the sessions' sockets are their owners')."""
        self.work.close()
        self._sel.close()

    def _loop(self, until_finished: bool) -> bool:
        sel, stop, work = self._sel, self.stop_request, self.work
        while not stop.requested:
            now = time.monotonic_ns()
            self._run_timers(now)
            self._run_periodic(now)
            if self.clock is not None:
                self.clock.poll(now)
            if until_finished and all(s.engine.finished for s in self.sessions.values()):
                return False
            deadline, precise = self._next_deadline(now)
            precise = precise and self.precise
            if precise and deadline - now < COARSE_WAIT_NS:
                ready = sel.wait(0)
                if ready:
                    self._ready(ready)
                # That session's events for that instant, computed now (time is an argument);
                # its Transmit then waits for the due time (wait_until) and goes at once.  When
                # the loop is late, the events are those of now: every send due (catch-up).
                self._run_timer(heapq.heappop(self._heap), max(deadline, time.monotonic_ns()))
            else:
                wait = max(0, deadline - now - (PRECISE_WINDOW_NS if precise else 0))
                if work.pending and (wait or work.overdue(now)):
                    # sliced work in the time this pass would sleep (all of a pass, once overdue)
                    work.step(min(wait, STEP_BUDGET_NS) if wait else STEP_BUDGET_NS)
                    wait = 0
                ready = sel.wait(wait / NS)
                if ready:
                    self._ready(ready)
        return True

    def _next_deadline(self, now: int) -> tuple[int, bool]:
        deadline, precise = now + IDLE_WAKEUP_NS, False
        if not self.precise:
            first = self._wheel.first()
            if first is not None and first < deadline:
                deadline = first
        heap = self._heap
        while heap and self._stale(heap[0]):
            heapq.heappop(heap)
        if heap and heap[0][0] < deadline:  # a wait never longer than the idle one (huge intervals)
            due, sid = heap[0]
            deadline, precise = due, self.sessions[sid].engine.next_send() == due
        for entry in self._periodic:
            if entry[0] < deadline:
                deadline, precise = entry[0], False
        return deadline, precise

    def _stale(self, entry: tuple[int, int]) -> bool:
        session = self.sessions.get(entry[1])
        return session is None or session.timer != entry[0]

    def _run_timers(self, now: int) -> None:
        heap = self._heap
        if self.precise:
            # One a pass (with the one the pass's precise branch runs, two catch-up batches at
            # most between two reads): a loop behind its schedule reads its replies as it
            # catches up, or the kernel drops them unread.
            if heap and heap[0][0] <= now:
                self._run_timer(heapq.heappop(heap), now)
            return
        # coarse: thousands may be due at once, each handled at its own instant (a send the
        # loop reached over an interval late is skipped, see SenderConfig.skip_missed).  The
        # wheel gives a millisecond's timers at its start; those due later in it wait in the
        # heap, which then says exactly when.
        while heap and heap[0][0] <= now:
            self._run_timer(heapq.heappop(heap), time.monotonic_ns())
        sessions = self.sessions
        for sid in self._wheel.pop_due(now, MAX_TIMERS_PER_PASS):
            session = sessions.get(sid)
            due = session.timer if session is not None else None
            if due is None:
                continue
            if due <= now:
                self._handle_timer(session, time.monotonic_ns())
            elif due // TICK_NS <= now // TICK_NS:
                heapq.heappush(heap, (due, sid))
            # else a stale entry: the timer moved to a later millisecond, which has its entry

    def _run_timer(self, entry: tuple[int, int], now: int) -> None:
        if not self._stale(entry):
            self._handle_timer(self.sessions[entry[1]], now)

    def _handle_timer(self, session: Probe, now: int) -> None:
        session.timer = None
        if session.batched:
            transmits: list[Transmit] = []
            self._act(session, session.engine.handle_timer(now), transmits)
            if transmits:
                self._transmit(session, transmits)
        else:
            self._act(session, session.engine.handle_timer(now))
        self._reschedule(session)

    def _run_periodic(self, now: int) -> None:
        for entry in self._periodic:
            if now >= entry[0]:
                entry[0] += entry[1] * max(1, (now - entry[0]) // entry[1] + 1)
                entry[2]()

    def _reschedule(self, session: Probe) -> None:
        """Put the session's next timer in the heap (the wheel, coarse); an entry it replaces
        goes stale (skipped when it comes up), so a timer that moved later costs no wake-up."""
        due = session.engine.next_timer()
        if due != session.timer:
            session.timer = due
            if due is not None:
                if self.precise:
                    heapq.heappush(self._heap, (due, session.id))
                else:
                    self._wheel.push(due, session.id)

    def _clock_changed(self, state: ClockState) -> None:
        for session in self.sessions.values():
            if session.on_clock is not None:
                session.on_clock(state)

    # -- moving bytes ---------------------------------------------------------------------------
    def _act(self, session: Probe, events: list[Event], transmits: list[Transmit] | None = None) -> None:
        """Pass the events on; the packets they ask for are sent now, or, given ``transmits``,
        put there to be sent together (:meth:`_transmit`)."""
        for event in events:
            if event.__class__ is not Transmit:
                session.dispatch(event)
            elif transmits is not None:
                transmits.append(event)
            else:
                self._transmit(session, [event])

    @staticmethod
    def read_dropped_unread(session: Probe) -> None:
        """What the kernel dropped for the session's socket before it was read (its receive
        buffer full): replies dropped so count as lost though the path did not lose them, and
        the report says how many (DroppedUnread).  Read as its replies are, every
        DROPPED_UNREAD_CHECK_NS at most (a getsockopt), when a session is removed and at the end."""
        count = session.endpoint.dropped_unread()
        if count is not None:
            for event in session.engine.dropped_unread(count):
                session.dispatch(event)

    def _transmit(self, session: Probe, transmits: list[Transmit]) -> None:
        """Stamp and send packets, at the first one's due time; more than one go in one system
        call (a batched session's), each T1 then the kernel's TX timestamp."""
        if transmits[0].due_ns > time.monotonic_ns():
            self.wait_until(transmits[0].due_ns, self._read_promptly if self._prompt else None)
        now = time.monotonic_ns()
        engine, endpoint = session.engine, session.endpoint
        sent = []
        for transmit in transmits:
            s = engine.stamp(transmit, time.time_ns(), now)
            if s.late_ns is not None:  # a scheduled send
                self.schedule_error_ns.append(s.late_ns)
                if self.on_schedule_error is not None:
                    self.on_schedule_error(s.late_ns)
            sent.append(s)
        session.packet_len = len(sent[0].data)
        i, retried = 0, False
        while i < len(sent):
            try:
                n = endpoint.send_many([s.data for s in sent[i:]])
            except OSError as exc:
                icmp = icmp_error(exc)
                if icmp is not None and not retried:
                    # An earlier packet's ICMP error, said by this send, which did not leave:
                    # the refusal is that packet's, and this one goes again (once).
                    self._act(session, engine.icmp_error(icmp, session.last_sent))
                    retried = True
                    continue
                self._send_failed(session, sent[i], exc)
                i, retried = i + 1, False
                continue
            for s in sent[i:i + n]:  # a short count: the next one did not leave, and goes again
                session.dispatch(s)
            session.last_sent = sent[i + n - 1].sequence_number
            session.stamps_due += n if session.stamped else 0
            i, retried = i + n, False
        if session.stamps_due:
            self._collect_departures(session)

    def _read_promptly(self, wait_ns: int) -> None:
        """Wait up to ``wait_ns`` for replies of the sessions without kernel receive timestamps,
        and read each as it comes (select: microsecond timeouts, where epoll has milliseconds)."""
        end = time.monotonic_ns() + wait_ns
        while True:
            ready, _, _ = select.select(list(self._prompt), [], [], max(0, end - time.monotonic_ns()) / NS)
            for fd in ready:
                session = self._prompt.get(fd)
                if session is not None:
                    self._drain(session)
            if not ready:
                if wait_ns:  # the wait ran out: how late it woke sizes the spin, as a sleep's does
                    self.wait_until.learn(time.monotonic_ns() - end)
                return
            if time.monotonic_ns() >= end:
                return

    def _send_failed(self, session: Probe, sent: Event, exc: OSError) -> None:
        """``sent`` could not leave (a second ICMP error, or another error): counted as sent,
        it is lost at its timeout (refused, for an ICMP error, which then names it)."""
        session.dispatch(sent)
        icmp = icmp_error(exc)
        if icmp is not None:
            self._act(session, session.engine.icmp_error(icmp, sent.sequence_number))
        else:
            session.dispatch(SendFailed(sent.sequence_number, exc.strerror or str(exc)))

    def _collect_departures(self, session: Probe) -> None:
        """Kernel TX timestamps of the test packets become their T1 (SessionSender.departed);
        each names its packet by Sequence Number (UdpEndpoint.read_departures)."""
        read = session.endpoint.read_departures(session.packet_len)
        for seq, tx_ns in read:
            if seq is not None:
                session.engine.departed(seq, tx_ns)
        session.stamps_due -= len(read)
        if not 0 <= session.stamps_due <= MAX_DEPARTING:  # stamps that never came: no more reads for them
            session.stamps_due = 0

    def _ready(self, ready: list) -> None:
        for data in ready:
            if data is None:  # the stop request: seen at the top of the loop
                continue
            if data is self.work:
                self.work.woken()
            else:
                self._drain(data)

    def _drain(self, session: Probe) -> None:
        ep, engine = session.endpoint, session.engine
        if session.stamps_due:
            self._collect_departures(session)
        now = time.monotonic_ns()
        if now >= session.dropped_unread_due:
            session.dropped_unread_due = now + self._dropped_unread_every
            self.read_dropped_unread(session)
        if session.batched:
            self._drain_batches(session)
            return
        while (rx := self._read(session, ep.recv)) is not None:
            self._act(session, engine.receive(rx.data, rx.kernel_ns if rx.kernel_ns is not None else rx.user_ns,
                                              time.monotonic_ns(), rx.ttl, rx.tos))
            if not self.precise:
                break  # level-triggered: a datagram still queued wakes the loop again
        self._reschedule(session)

    def _read(self, session: Probe, read: Callable[[], Any], transmits: list[Transmit] | None = None) -> Any:
        """What ``read()`` of the session's socket gives, or None once nothing is waiting.  An
        ICMP error said by a read goes to the engine (one error per ICMP message) and reading
        goes on."""
        while True:
            try:
                return read()
            except BlockingIOError:
                return None
            except OSError as exc:
                icmp = icmp_error(exc)
                if icmp is None:
                    raise
                self._act(session, session.engine.icmp_error(icmp), transmits)

    def _drain_batches(self, session: Probe) -> None:
        """A batched session's replies, many a system call; the packets they ask for (capacity
        mode refills its window) leave together after each batch."""
        ep, engine = session.endpoint, session.engine
        transmits: list[Transmit] = []
        while (batch := self._read(session, ep.recv_batch, transmits)) is not None:
            now = time.monotonic_ns()
            for data, _, ttl, tos, _, kernel_ns, user_ns, _ in batch:
                self._act(session, engine.receive(data, kernel_ns if kernel_ns is not None else user_ns, now, ttl, tos),
                          transmits)
            if transmits:
                self._transmit(session, transmits)
                transmits = []
            if len(batch) < BATCH:
                break  # the queue is empty: no read to learn it
        if transmits:
            self._transmit(session, transmits)
        self._reschedule(session)
