"""One reflector worker's socket loop: feed the engine, send what it returns.

One non-blocking socket, drained completely on every wake-up (a readiness wait per
burst, not per packet), with TTL, TOS, destination address and the kernel receive
timestamp read on every packet; on the batched path replies leave in small groups (see
:meth:`UdpEndpoint.recv_batch`, :meth:`UdpEndpoint.send_batch`), T3 read right before.  The loop stops
when its :class:`~stamp_suite.net.signals.StopRequest` is set (by a signal, another
thread, or its parent) and wakes for it at once.  Every count goes to the worker's
counter block, where the whole reflector reads it live.
"""

from __future__ import annotations

import errno
import multiprocessing.connection
import selectors
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from ..net.clock import ClockWatcher
from ..net.resolve import format_address
from ..net.signals import ReloadRequest, StopRequest
from ..net.udp import BATCH, UdpEndpoint
from ..say import say
from ..wire.datagram import Received
from ..wire.timestamp import TimestampMethod
from .auth_log import AuthDropLog
from .engine import Drop, InternalError, ReadAddresses, ReadClock, ReadDroppedUnread, Reflection, Reflector
from .sessions import Session

IDLE_WAKEUP_NS = 500_000_000
MAX_AWAITING_TX = 4096
DRAIN_BATCH = 512  # datagrams per wake-up before the loop looks at its stop flag again
SEND_GROUP = 8  # replies per sendmmsg: more would leave T3 earlier than the send by more
DROPPED_UNREAD_SAY_NS = 60_000_000_000  # a line about datagrams dropped unread, once a minute at most
MAX_SESSIONS_REPORTED = 10_000  # per worker, in answers to the parent (SNMP table, totals)
_SIZE_ERRORS = (errno.EMSGSIZE, 10040)  # Windows reports an oversized datagram as WSAEMSGSIZE
# What a datagram too large for the buffer is, where the read fails instead of truncating it.
_TRUNCATED = Received(b"", ("", 0), None, None, None, None, 0, True)

SessionRecord = tuple  # (key, first_seen_ns, last_seen_ns, index, received, transmitted, last_sender_sequence)


def session_records(sessions: Iterator[Session], limit: int = MAX_SESSIONS_REPORTED) -> list[SessionRecord]:
    out = []
    for s in sessions:
        if len(out) >= limit:
            break
        out.append((s.key, s.first_seen_ns, s.last_seen_ns, s.index, s.received, s.transmitted,
                    s.last_sender_sequence))
    return out


class ReflectorServer:
    def __init__(self, engine: Reflector, endpoint: UdpEndpoint, *, stop: StopRequest | None = None,
                 print_packets: bool = False, out: TextIO | None = None, busy_poll_us: int = 0,
                 observe_processing_time: bool = False, clock: ClockWatcher | None = None,
                 read_addresses: Callable[[], None] | None = None,
                 control: multiprocessing.connection.Connection | None = None,
                 reload: tuple[ReloadRequest, Callable[[], dict | None]] | None = None) -> None:
        self.engine = engine
        self.endpoint = endpoint
        self.stop_request = stop or StopRequest()
        self.print_packets = print_packets
        self.out = out or sys.stdout
        self.busy_poll_ns = busy_poll_us * 1000
        self.observe_processing_time = observe_processing_time
        self.clock = clock  # re-read when the engine says so
        self.read_addresses = read_addresses  # likewise: the host's addresses, for the loop guards
        self.control = control  # the parent's pipe, in a forked worker
        self.reload = reload  # SIGHUP's request, and what makes the new settings (one worker)
        self._awaiting_tx: dict[int, Reflection] = {}  # TX timestamp key -> reply (Follow-Up Telemetry)
        self._auth_drops = AuthDropLog(engine.config.authenticated, say)
        self._dropped_unsaid = 0  # dropped unread since the last line that said so
        self._dropped_said_at = -DROPPED_UNREAD_SAY_NS

    def stop(self) -> None:
        self.stop_request.set()

    def serve(self) -> None:
        """Reflect until the stop request is set."""
        ep, engine = self.endpoint, self.engine
        ep.setblocking(False)
        stop = self.stop_request
        busy_until = 0  # --busy-poll: keep reading without sleeping until then
        with selectors.DefaultSelector() as sel:
            sel.register(ep.sock, selectors.EVENT_READ, self._drain)
            sel.register(stop.fileno(), selectors.EVENT_READ, None)
            if self.control is not None:
                sel.register(self.control, selectors.EVENT_READ, self._answer_control)
            if self.reload is not None:
                sel.register(self.reload[0].fileno(), selectors.EVENT_READ, self._reload)
            while not stop.requested:
                now = time.monotonic_ns()
                wait = 0 if now < busy_until else min(IDLE_WAKEUP_NS, max(0, engine.next_timer(now) - now))
                for key, _ in sel.select(wait / 1e9):
                    if key.data is not None and key.data() and self.busy_poll_ns:
                        busy_until = time.monotonic_ns() + self.busy_poll_ns
                now = time.monotonic_ns()
                if now >= engine.next_timer(now):
                    self._on_timer(now)
        self._read_dropped_unread()  # the last count, for the totals

    def _on_timer(self, now: int) -> None:
        for ev in self.engine.handle_timer(now):
            if ev.__class__ is ReadClock:
                if self.clock is not None:
                    self.clock.check()
            elif ev.__class__ is ReadAddresses:
                if self.read_addresses is not None:
                    self.read_addresses()
            elif ev.__class__ is ReadDroppedUnread:
                self._read_dropped_unread()
            elif ev.__class__ is InternalError:
                say(f"stamp-suite: internal error {ev.name} while processing a packet: dropped and counted as "
                         f"internal_error (please report it)")

    def _read_dropped_unread(self) -> None:
        """Count what the kernel dropped before this worker read it, and say so, once a minute at
        most while it goes on: a reflector that falls behind looks like loss to its senders."""
        count = self.endpoint.dropped_unread()
        if count is None:
            return
        self._dropped_unsaid += self.engine.dropped_unread(count)
        now = time.monotonic_ns()
        if self._dropped_unsaid and now >= self._dropped_said_at + DROPPED_UNREAD_SAY_NS:
            say(f"stamp-suite: {self._dropped_unsaid} datagrams dropped by this host before the reflector read them "
                f"({self.engine.counters.dropped_unread} in all; its socket's receive buffer was full: the reflector "
                f"falls behind the traffic): its senders count them as lost")
            self._dropped_unsaid, self._dropped_said_at = 0, now

    def _answer_control(self) -> int:
        """The parent asks for this worker's sessions (totals, SNMP), or hands it the settings
        of a reload; EOF means it is gone.  The parent reads every answer as it comes, so
        sending one never blocks for long."""
        try:
            kind, payload = self.control.recv()
            if kind == "reload":
                self.engine.reconfigure(**payload)
            else:
                self.control.send(("sessions", payload, session_records(self.engine.sessions())))
        except (EOFError, OSError):
            self.stop_request.set()
        return 0

    def _reload(self) -> int:
        """SIGHUP, with one worker: the new settings made here, between packets."""
        request, make = self.reload
        if request.take():
            changes = make()
            if changes:
                self.engine.reconfigure(**changes)
        return 0

    def _drain(self) -> int:
        """Read and answer the datagrams waiting, up to DRAIN_BATCH (so that a flood cannot keep
        the loop from seeing a stop); return how many there were."""
        n = 0
        while n < DRAIN_BATCH:
            try:
                batch = self.endpoint.recv_batch()
            except BlockingIOError:
                batch = []
            except OSError as exc:
                n += 1
                if exc.errno in _SIZE_ERRORS:
                    self.engine.reflect(_TRUNCATED, time.monotonic_ns())  # counted as truncated
                # otherwise e.g. ECONNREFUSED queued by an earlier reply: nothing to reflect
                continue
            if batch:
                n += len(batch)
                self._answer(batch)
            # Fewer than BATCH: the queue was empty (or, on the plain path, an error stopped the
            # read; the socket stays ready and the next wake-up reads it): no read to learn that.
            if len(batch) < BATCH:
                if self._awaiting_tx:  # an unread error queue would keep the socket ready
                    self._collect_tx_timestamps()
                return n
        return n

    def _answer(self, batch: list[Received]) -> None:
        """The replies to a batch of datagrams.  On the batched path they leave in groups of
        SEND_GROUP (2 in authenticated mode, where each T3 also needs its HMAC), a group's T3
        read right before it is stamped and sent, so T3 is at most a few microseconds early;
        a reply that wants its kernel transmit time (Follow-Up Telemetry) or carries a routing
        header, and every reply on the plain path, goes alone with its own T3, in order (and
        with -R every reply, so that its lines keep the order the datagrams came in)."""
        reflect = self.engine.reflect
        printing = self.print_packets
        # -R prints a line as each datagram is handled: one reply a call keeps them in order.
        group = (0 if not self.endpoint.batched else 1 if printing
                 else 2 if self.engine.config.authenticated else SEND_GROUP)
        pending: list[Reflection] = []
        shown: list[Received] = []  # the datagrams pending answers, for -R
        read_at = time.monotonic_ns()  # the batch's: timers need no finer grain than a read
        for rx in batch:
            reply = reflect(rx, read_at)
            if reply.__class__ is not Reflection:
                if printing:
                    self._print_drop(rx, reply)
                self._auth_drops(reply, rx[1], read_at)
                continue
            if group and not reply.want_tx_timestamp and reply.routing_header is None:
                pending.append(reply)
                if printing:
                    shown.append(rx)
                if len(pending) >= group:
                    self._send_together(pending, shown, read_at)
                    pending, shown = [], []
                continue
            if pending:
                self._send_together(pending, shown, read_at)
                pending, shown = [], []
            self._send_alone(reply, rx, read_at)
        if pending:
            self._send_together(pending, shown, read_at)

    def _send_together(self, pending: list[Reflection], shown: list[Received], read_at: int) -> None:
        engine = self.engine
        # Counted as reflected when stamped, and taken back if the send fails: the sender may
        # read the counters the moment its reply arrives, before this loop runs again.
        engine.stamp(pending, time.time_ns())
        try:
            failed: list[tuple[int, Exception]] = self.endpoint.send_batch(pending)
        except Exception as exc:  # noqa: BLE001 - a reply that cannot be sent never stops the worker
            failed = [(i, exc) for i in range(len(pending))]
        for i, _ in reversed(failed):  # latest first: each session's count taken back whole
            engine.send_failed(pending[i])
        if shown:
            errors = dict(failed)
            for i, (reply, rx) in enumerate(zip(pending, shown)):
                self._print(rx, reply, errors.get(i))
        if self.observe_processing_time:
            done = time.monotonic_ns()
            for _ in pending:
                engine.observe_processing(max(0, done - read_at))

    def _send_alone(self, reply: Reflection, rx: Received, read_at: int) -> None:
        engine = self.engine
        engine.stamp((reply,), time.time_ns())
        try:
            key = self.endpoint.send(reply.data, reply.destination, reply.source_address, reply.tos,
                                     reply.want_tx_timestamp, reply.routing_header)
        except (OSError, ValueError) as exc:  # ValueError: an address of the other family
            engine.send_failed(reply)
            if self.print_packets:
                self._print(rx, reply, exc)
            return
        if key is not None:
            self._await_tx(key, reply)
        if self.print_packets:
            self._print(rx, reply)
        if self.observe_processing_time:
            engine.observe_processing(max(0, time.monotonic_ns() - read_at))

    def _await_tx(self, key: int, reply: Reflection) -> None:
        if len(self._awaiting_tx) >= MAX_AWAITING_TX:
            self._awaiting_tx.pop(next(iter(self._awaiting_tx)))
        self._awaiting_tx[key] = reply
        # On the wire already: the stamp is usually in the error queue when sendmsg returns.
        self._collect_tx_timestamps()

    def _collect_tx_timestamps(self) -> None:
        for key, tx_ns in self.endpoint.read_tx_timestamps():
            reply = self._awaiting_tx.pop(key, None)
            if reply is not None:
                self.engine.confirm_transmit(reply, tx_ns, TimestampMethod.SW_LOCAL)

    def _print(self, rx: Received, reply: Reflection, error: Exception | None = None) -> None:
        # one write a line: print() writes the newline apart, and a self-test's sender prints too
        self.out.write(f"{_received_text(rx)} -> seq={reply.sequence_number} to {format_address(reply.destination)}"
                       + (f" ({'; '.join(reply.notes)})" if reply.notes else "")
                       + (f": not sent ({error})" if error is not None else "") + "\n")
        self.out.flush()

    def _print_drop(self, rx: Received, reason: Drop) -> None:
        self.out.write(f"{_received_text(rx)} -> dropped: {reason}\n")
        self.out.flush()


def _received_text(rx: Received) -> str:
    """A received datagram for -R: where from, its length, TTL and DSCP/ECN."""
    data, source, ttl, tos = rx[:4]
    ttl = "unknown" if ttl is None else ttl
    tos = "unknown" if tos is None else f"{tos >> 2}/{tos & 3}"
    size = f">{len(data)}" if rx[7] else f"={len(data)}"  # truncated: only the buffer's worth was read
    return f"from {format_address(source)} len{size} ttl={ttl} dscp/ecn={tos}"
