"""The reflector as one service, whatever its worker count: one port owner, one stop,
limits and counters that hold for the whole reflector.

A *worker* is one socket of the port's group (:mod:`stamp_suite.net.reuseport`), one
engine and one loop.  With one worker it runs in this process.  With N, this process
opens every socket, maps the shared counter block, forks N workers and supervises them:

- each worker keeps only its own socket; the kernel steers every packet of one source
  address to the same worker, so --max-pps per address is exact, and each worker holds
  its share of --max-sessions, so the reflector never holds more;
- counters (and the processing-time histogram) are written by the workers into the
  shared block and read from it live; sessions are asked of the workers over a pipe;
- SIGINT/SIGTERM, to this process or to the whole group, set a flag; this process then
  signals the workers, collects their last session lists, and kills any that has not
  exited within STOP_GRACE_S; a worker whose parent dies stops too (PDEATHSIG, pipe EOF);
  a worker that ends on its own stops the whole reflector with exit status 1.
"""

from __future__ import annotations

import dataclasses
import mmap
import multiprocessing
import multiprocessing.connection
import os
import selectors
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

from ..net import signals
from ..net.clock import ClockWatcher
from ..net.process import die_with_parent
from ..net.resolve import format_address
from ..net.signals import STOP_SIGNALS, ReloadRequest, StopRequest
from ..net.udp import UdpEndpoint
from .counters import BLOCK_SIZE, ReflectorCounters, local_block
from .engine import Reflector, ReflectorConfig
from .server import ReflectorServer, SessionRecord, session_records
from .sessions import Session

STOP_GRACE_S = 1.2  # a worker gets this long to stop before it is killed
REQUEST_TIMEOUT_S = 0.5
READER_JOIN_S = 0.5  # at shutdown, for a reader to see its worker's end of the pipe close
INDEX_BITS = 26  # SNMP row index = worker << 26 | the worker's own session index (64 workers fit 32 bits)
CLIENTS_LISTED = 20

MakeWatcher = Callable[[Reflector, bool], "ClockWatcher | None"]  # (engine, log changes?) -> watcher


def shared_blocks(workers: int) -> list[memoryview]:
    """One counter block per worker in a shared anonymous mapping, inherited across fork."""
    whole = memoryview(mmap.mmap(-1, BLOCK_SIZE * workers))  # MAP_SHARED | MAP_ANONYMOUS
    return [whole[i * BLOCK_SIZE:(i + 1) * BLOCK_SIZE].cast("Q") for i in range(workers)]


MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """One worker per CPU this process may run on (up to 8) on Linux, where the kernel steers
    packets to them; one elsewhere."""
    if not sys.platform.startswith("linux"):
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), MAX_DEFAULT_WORKERS))


def worker_share(total: int, workers: int, worker: int) -> int:
    """Worker ``worker``'s part of a reflector-wide limit (0 stays 'no limit')."""
    if not total:
        return 0
    return total // workers + (1 if worker < total % workers else 0)


class _WorkerLink:
    """The parent's end of one forked worker: its process, its pipe, and a thread that reads
    every answer as it comes, so that a worker never blocks on an answer nobody reads."""

    def __init__(self, index: int, process: multiprocessing.Process,
                 conn: multiprocessing.connection.Connection) -> None:
        self.index = index
        self.process = process
        self.conn = conn
        self.sessions: list[SessionRecord] = []  # the latest answer (or the final list)
        self.final = False  # the worker has stopped and sent its last list
        self._closed = False
        self._asked = self._answered = 0  # numbers of the latest request and answer
        self._send = threading.Lock()
        self._news = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"worker-{index}-answers", daemon=True)

    def start_reading(self) -> None:
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                kind, number, records = self.conn.recv()
            except (EOFError, OSError):
                break
            with self._news:
                self.sessions = records
                self._answered = max(self._answered, number)
                self.final = self.final or kind == "final"
                self._news.notify_all()
        with self._news:
            self._closed = True
            self._news.notify_all()

    def request_sessions(self, timeout: float = REQUEST_TIMEOUT_S) -> list[SessionRecord]:
        """The worker's sessions now, or the latest list known if it does not answer in time."""
        with self._send:
            if self.final or self._closed:
                return self.sessions
            self._asked += 1
            number = self._asked
            try:
                self.conn.send(("sessions", number))
            except OSError:
                return self.sessions
        with self._news:
            self._news.wait_for(lambda: self._answered >= number or self.final or self._closed, timeout)
            return self.sessions

    def send_reload(self, changes: dict) -> None:
        with self._send:
            try:
                self.conn.send(("reload", changes))
            except OSError:  # the worker is gone: its end is seen by run()
                pass

    def stop_reading(self) -> None:
        """Close the pipe once its reader has seen the worker's end (closing it under a reader
        blocked in recv() would break that read with a TypeError from multiprocessing)."""
        if self._reader.is_alive():
            self._reader.join(READER_JOIN_S)
        self.conn.close()

    def wait_final(self, deadline: float) -> None:
        with self._news:
            self._news.wait_for(lambda: self.final or self._closed, max(0.0, deadline - time.monotonic()))


class ReflectorService:
    def __init__(self, config: ReflectorConfig, endpoints: list[UdpEndpoint], *, stop: StopRequest,
                 make_watcher: MakeWatcher | None = None, read_addresses: Callable[[], None] | None = None,
                 print_packets: bool = False, busy_poll_us: int = 0, observe_processing_time: bool = False,
                 reload: tuple[ReloadRequest, Callable[[], dict | None]] | None = None) -> None:
        self.config = config
        self.endpoints = endpoints
        self.local = endpoints[0].local
        self.workers = len(endpoints)
        self.stop_request = stop
        self.reload = reload  # SIGHUP's request, and what makes the new settings (None: refused)
        self.make_watcher = make_watcher
        self.server_options = {"print_packets": print_packets, "busy_poll_us": busy_poll_us,
                               "observe_processing_time": observe_processing_time, "read_addresses": read_addresses}
        self.blocks = [local_block()] if self.workers == 1 else shared_blocks(self.workers)
        self.counters = ReflectorCounters(self.blocks)
        self.started_ns = time.time_ns()
        self.failure: str | None = None  # why the reflector stopped, if not asked to
        self._server: ReflectorServer | None = None
        self._links: list[_WorkerLink] = []

    # -- the surface totals, Prometheus and SNMP read ------------------------------------
    @property
    def running(self) -> bool:
        return not self.stop_request.requested

    @property
    def active_sessions(self) -> int:
        return self.counters.active_sessions

    def sessions(self) -> Iterator[Session]:
        if self._server is not None:
            yield from self._server.engine.sessions()
            return
        for link in self._links:
            for key, first, last, index, received, transmitted, last_seq in link.request_sessions():
                yield Session(key, first, last, (link.index << INDEX_BITS) | (index & ((1 << INDEX_BITS) - 1)),
                              received, transmitted, last_seq)

    # -- life cycle ----------------------------------------------------------------------
    def _engine(self, worker: int) -> Reflector:
        share = worker_share(self.config.max_sessions, self.workers, worker)
        return Reflector(dataclasses.replace(self.config, max_sessions=share), self.blocks[worker])

    def _server_for(self, worker: int, stop: StopRequest,
                    control: multiprocessing.connection.Connection | None = None) -> ReflectorServer:
        engine = self._engine(worker)
        watcher = self.make_watcher(engine, worker == 0) if self.make_watcher else None
        return ReflectorServer(engine, self.endpoints[worker], stop=stop, clock=watcher, control=control,
                               **self.server_options)

    def start(self, not_for_workers: tuple = ()) -> None:
        """Fork the workers (none with one worker).  Call before starting any thread;
        ``not_for_workers``: sockets of this process (the metrics port) that workers close."""
        if self.workers == 1:
            self._server = self._server_for(0, self.stop_request)
            self._server.reload = self.reload  # made and applied between packets, in its loop
            return
        ctx = multiprocessing.get_context("fork")
        parent = os.getpid()
        # A signal that comes while a child is being forked would be lost to it (Python clears
        # a new child's pending signals): block them until the child has its own handlers.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            for i in range(self.workers):
                here, there = ctx.Pipe(duplex=True)
                proc = ctx.Process(target=self._worker_main, args=(i, there, parent, blocked, not_for_workers),
                                   name=f"stamp-reflector-{i}", daemon=True)
                proc.start()
                there.close()
                self._links.append(_WorkerLink(i, proc, here))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for link in self._links:  # threads only once every child is forked
            link.start_reading()
        # This process keeps its copies of the workers' sockets until they have all stopped:
        # a worker that closed its socket early would shrink the port's group, and the
        # kernel would hand its senders to another worker (sessions split, numbering reset).

    def _worker_main(self, worker: int, conn: multiprocessing.connection.Connection, parent: int,
                     mask: set[signal.Signals], not_for_workers: tuple) -> None:
        stop = signals.renew_after_fork()
        if hasattr(signal, "SIGHUP"):  # a hangup of the whole group: the parent reloads, and tells us
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # signals that came meanwhile arrive now
        die_with_parent()
        if os.getppid() != parent:  # the parent died before PDEATHSIG was armed
            return
        for i, ep in enumerate(self.endpoints):
            if i != worker:
                ep.close()
        for link in self._links:  # the parent's ends of the workers forked before this one
            link.conn.close()
        for sock in not_for_workers:
            sock.close()
        server = self._server_for(worker, stop, conn)
        try:
            server.serve()
            conn.send(("final", 0, session_records(server.engine.sessions())))
        except (OSError, EOFError):  # the parent is gone
            pass
        finally:
            self.endpoints[worker].close()
            sys.stdout.flush()

    def run(self) -> None:
        """Serve (one worker) or supervise the workers, until a stop is requested."""
        if self._server is not None:
            self._server.serve()
            return
        stop = self.stop_request
        with selectors.DefaultSelector() as sel:
            sel.register(stop.fileno(), selectors.EVENT_READ, None)
            if self.reload is not None:
                sel.register(self.reload[0].fileno(), selectors.EVENT_READ, self.reload)
            for link in self._links:
                sel.register(link.process.sentinel, selectors.EVENT_READ, link)
            while not stop.requested:
                for key, _ in sel.select(1.0):
                    if key.data is None:  # the stop request: seen by the loop's test
                        continue
                    if key.data is self.reload:
                        self._reload_workers()
                    elif not stop.requested:
                        key.data.process.join(0.1)
                        self.failure = (f"worker {key.data.index} ended while the reflector ran "
                                        f"({_exit_reason(key.data.process.exitcode)}); stopping the reflector")
                        stop.set()

    def _reload_workers(self) -> None:
        """SIGHUP with N workers: the settings made once here, then handed to each worker
        (its share of --max-sessions), which applies them between its packets."""
        request, make = self.reload
        if not request.take():
            return
        changes = make()
        if not changes:
            return
        for link in self._links:
            share = dict(changes)
            if "max_sessions" in share:
                share["max_sessions"] = worker_share(changes["max_sessions"], self.workers, link.index)
            link.send_reload(share)

    def shutdown(self) -> None:
        """Stop every worker within STOP_GRACE_S (then kill it) and keep their last sessions."""
        self.stop_request.set()
        if self._server is None:
            deadline = time.monotonic() + STOP_GRACE_S
            for link in self._links:
                _signal(link.process, signal.SIGTERM)
            for link in self._links:
                link.wait_final(deadline)
                link.process.join(max(0.0, deadline - time.monotonic()))
                if link.process.exitcode is None:
                    if hasattr(signal, "SIGUSR1"):  # its stack on stderr first (faulthandler, see entry.py)
                        _signal(link.process, signal.SIGUSR1)
                        time.sleep(0.05)
                    _signal(link.process, signal.SIGKILL)
                    link.process.join(1.0)
                    self.failure = self.failure or f"worker {link.index} did not stop in time and was killed"
                link.stop_reading()
        for ep in self.endpoints:
            ep.close()


def _signal(process: multiprocessing.Process, sig: int) -> None:
    """Signal a worker that has not been reaped yet (its pid is still its own)."""
    try:
        if process.pid is not None and process.exitcode is None:
            os.kill(process.pid, sig)
    except ProcessLookupError:
        pass


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code == 0:
        return "it stopped on its own, exit status 0: was it sent a signal alone?"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def format_totals(service: ReflectorService) -> str:
    """The reflector's totals over every worker, printed once when it stops."""
    c = service.counters
    lines = ["--- STAMP Reflector Statistics ---",
             f"Packets received: {c.received}",
             f"Packets reflected: {c.reflected}",
             f"Packets dropped: {c.dropped_total}"]
    lines += [f"  {reason}: {n}" for reason, n in sorted(c.dropped.items())]
    lines.append(f"Send errors: {c.send_errors}")
    if c.dropped_unread:  # never read, so in no count above: the senders see them as loss
        lines.append(f"Never read, dropped by this host's kernel: {c.dropped_unread} (the receive buffer was full: "
                     f"the reflector fell behind; in no count above)")
    if c.return_path:
        lines.append("Return Path requests: " + ", ".join(f"{k} {n}" for k, n in sorted(c.return_path.items())))
    lines.append(f"Uptime: {(time.time_ns() - service.started_ns) / 1e9:.1f} s")
    sessions = sorted(service.sessions(), key=lambda s: -s.received)
    lines.append(f"Clients: {c.active_sessions}")
    for s in sessions[:CLIENTS_LISTED]:
        lines.append(f"  {format_address(s.source)} ssid={s.key[4]} received={s.received} "
                     f"reflected={s.transmitted} last_seq={s.last_sender_sequence}")
    if len(sessions) > CLIENTS_LISTED:
        lines.append(f"  ... and {len(sessions) - CLIENTS_LISTED} more")
    return "\n".join(lines) + "\n"
