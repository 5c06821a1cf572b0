"""Several reflector processes on one UDP port (SO_REUSEPORT), each with its own engine.

The kernel hashes a flow (source and destination address and port) to one socket of the
group, so all packets of a session reach the same worker and per-session state (stateful
sequence numbers, Direct Measurement counters, Follow-Up Telemetry) stays correct.  This
process is worker 0; the others are forked and report their counters and sessions over
a pipe twice a second (and once more when they stop), so totals, Prometheus and SNMP
show the whole pool.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

from ..net.process import die_with_parent
from .engine import ReflectorCounters
from .server import ReflectorServer
from .sessions import Session

REPORT_INTERVAL_S = 0.5
MAX_SESSIONS_REPORTED = 10_000  # per worker and report, to keep the pipe cheap
INDEX_BITS = 28  # SNMP row index = worker << 28 | the worker's own session index


def _snapshot(server: ReflectorServer) -> dict:
    c = server.engine.counters
    sessions = []
    for s in server.engine.sessions:
        if len(sessions) >= MAX_SESSIONS_REPORTED:
            break
        sessions.append((s.key, s.first_seen_ns, s.last_seen_ns, s.index, s.received, s.transmitted,
                         s.last_sender_sequence))
    return {"received": c.received, "reflected": c.reflected, "dropped": dict(c.dropped),
            "tlvs_by_type": dict(c.tlvs_by_type), "tlv_flags_set": dict(c.tlv_flags_set),
            "tlv_integrity_failures": c.tlv_integrity_failures, "send_errors": server.send_errors,
            "active_sessions": len(server.engine.sessions), "sessions": sessions}


def _child(worker: int, make_server: Callable[[], ReflectorServer], conn: multiprocessing.connection.Connection,
           ) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the pool stops
    die_with_parent()
    server = make_server()
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    stop_reporting = threading.Event()

    def report() -> None:
        while not stop_reporting.wait(REPORT_INTERVAL_S):
            conn.send(_snapshot(server))

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        server.serve()
    finally:
        stop_reporting.set()
        reporter.join()
        conn.send(_snapshot(server))
        conn.close()
        server.endpoint.close()


class WorkerPool:
    """Worker 0 in this process, workers 1..n-1 forked; read like one ReflectorServer."""

    def __init__(self, first: ReflectorServer, make_server: Callable[[], ReflectorServer], workers: int) -> None:
        self.first = first
        self.endpoint = first.endpoint
        self.started_ns = first.started_ns
        ctx = multiprocessing.get_context("fork")
        self._reports: dict[int, dict] = {}
        self._conns: dict[int, multiprocessing.connection.Connection] = {}
        self._procs = []
        for w in range(1, workers):
            parent_end, child_end = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(w, make_server, child_end), name=f"stamp-reflector-{w}",
                               daemon=True)
            proc.start()
            child_end.close()
            self._conns[w] = parent_end
            self._procs.append(proc)
        self._lock = threading.Lock()
        self._collector = threading.Thread(target=self._collect, name="worker-reports", daemon=True)
        self._collector.start()

    def _collect(self) -> None:
        while self._conns:
            ready = multiprocessing.connection.wait(list(self._conns.values()), timeout=1.0)
            for conn in ready:
                w = next(k for k, v in self._conns.items() if v is conn)
                try:
                    report = conn.recv()
                except (EOFError, OSError):
                    del self._conns[w]
                    continue
                with self._lock:
                    self._reports[w] = report

    # -- the ReflectorServer surface the rest of the program reads --------------------
    @property
    def running(self) -> bool:
        return self.first.running

    @property
    def send_errors(self) -> int:
        with self._lock:
            return self.first.send_errors + sum(r["send_errors"] for r in self._reports.values())

    @property
    def counters(self) -> ReflectorCounters:
        total = ReflectorCounters()
        parts = [_snapshot(self.first)]
        with self._lock:
            parts += list(self._reports.values())
        for r in parts:
            total.received += r["received"]
            total.reflected += r["reflected"]
            total.dropped.update(r["dropped"])
            total.tlvs_by_type.update(r["tlvs_by_type"])
            total.tlv_flags_set.update(r["tlv_flags_set"])
            total.tlv_integrity_failures += r["tlv_integrity_failures"]
        return total

    @property
    def active_sessions(self) -> int:
        with self._lock:
            return len(self.first.engine.sessions) + sum(r["active_sessions"] for r in self._reports.values())

    def sessions(self) -> Iterator[Session]:
        yield from self.first.engine.sessions
        with self._lock:
            reports = dict(self._reports)
        for w, r in sorted(reports.items()):
            for key, first, last, index, received, transmitted, last_seq in r["sessions"]:
                yield Session(key, first, last, (w << INDEX_BITS) | (index & ((1 << INDEX_BITS) - 1)), received,
                              transmitted, last_seq)

    def serve(self) -> None:
        self.first.serve()

    def stop(self) -> None:
        """Stop every worker and wait for their final reports."""
        self.first.stop()
        for proc in self._procs:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self._procs:
            proc.join(max(0.1, deadline - time.monotonic()))
        self._collector.join(2)


def default_workers() -> int:
    """One worker per CPU on Linux (SO_REUSEPORT spreads flows there); one elsewhere."""
    import sys
    if not sys.platform.startswith("linux"):
        return 1
    return max(1, min(os.cpu_count() or 1, 8))
