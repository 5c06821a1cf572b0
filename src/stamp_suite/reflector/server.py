"""The Session-Reflector's socket loop: feed the engine, send what it returns.

One non-blocking socket, drained completely on every wake-up (a readiness wait per
burst, not per packet), with TTL, TOS, destination address and the kernel receive
timestamp read on every packet.  T3 is taken right before each send.
"""

from __future__ import annotations

import selectors
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from ..net.udp import Received, UdpEndpoint, format_address
from ..wire.tlvs import TimestampMethod
from .engine import PacketMeta, Reflector

IDLE_WAKEUP_S = 0.5


class ReflectorServer:
    def __init__(self, engine: Reflector, endpoint: UdpEndpoint, *, print_packets: bool = False,
                 out: TextIO | None = None, local_addresses: frozenset[str] = frozenset()) -> None:
        self.engine = engine
        self.endpoint = endpoint
        self.print_packets = print_packets
        self.out = out or sys.stdout
        self.local_addresses = local_addresses
        self.send_errors = 0
        self.started_ns = time.time_ns()
        self.running = False
        self.observe_processing: Callable[[int], None] | None = None  # ns per packet, for metrics
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    # The surface totals, Prometheus and SNMP read (a WorkerPool offers the same).
    @property
    def counters(self):
        return self.engine.counters

    @property
    def active_sessions(self) -> int:
        return len(self.engine.sessions)

    def sessions(self):
        return iter(self.engine.sessions)

    def serve(self) -> None:
        """Reflect until :meth:`stop` (or an exception such as KeyboardInterrupt)."""
        ep = self.endpoint
        ep.setblocking(False)
        self.running = True
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(ep.sock, selectors.EVENT_READ)
                while not self._stop.is_set():
                    if not sel.select(IDLE_WAKEUP_S):
                        self.engine.sessions.expire(time.time_ns())
                        continue
                    self._drain()
        finally:
            self.running = False

    def _drain(self) -> None:
        ep = self.endpoint
        engine = self.engine
        local_port = ep.local[1]
        while True:
            try:
                rx = ep.recv()
            except BlockingIOError:
                return
            except OSError:  # e.g. ECONNREFUSED queued by an earlier reply: nothing to reflect
                continue
            meta = PacketMeta(rx.source, rx.destination, local_port, rx.ttl, rx.tos, rx.kernel_ns,
                              TimestampMethod.SW_LOCAL if rx.kernel_ns is not None else TimestampMethod.CONTROL_PLANE,
                              self.local_addresses)
            for reply in engine.receive(rx.data, meta, rx.user_ns):
                data = reply.stamp(time.time_ns())
                try:
                    ep.send(data, reply.destination, reply.source_address, reply.tos)
                except OSError:
                    self.send_errors += 1
                if self.print_packets:
                    self._print(rx, reply)
            if self.observe_processing is not None:
                self.observe_processing(time.time_ns() - rx.user_ns)

    def _print(self, rx: Received, reply) -> None:
        ttl = "unknown" if rx.ttl is None else rx.ttl
        tos = "unknown" if rx.tos is None else f"{rx.tos >> 2}/{rx.tos & 3}"
        print(f"from {format_address(rx.source)} len={len(rx.data)} ttl={ttl} dscp/ecn={tos} "
              f"-> seq={reply.sequence_number} to {format_address(reply.destination)}"
              + (f" ({'; '.join(reply.notes)})" if reply.notes else ""), file=self.out, flush=True)



def format_totals(state) -> str:
    """Per-reflector and per-client totals, printed when the reflector stops."""
    c = state.counters
    lines = ["--- STAMP Reflector Statistics ---",
             f"Packets received: {c.received}",
             f"Packets reflected: {c.reflected}",
             f"Packets dropped: {c.dropped_total}"]
    lines += [f"  {reason}: {n}" for reason, n in sorted(c.dropped.items())]
    if state.send_errors:
        lines.append(f"Send errors: {state.send_errors}")
    lines.append(f"Uptime: {(time.time_ns() - state.started_ns) / 1e9:.1f} s")
    sessions = list(state.sessions())
    lines.append(f"Clients: {len(sessions)}")
    for s in sessions:
        lines.append(f"  {format_address(s.source)} ssid={s.key[4]} received={s.received} "
                     f"reflected={s.transmitted} last_seq={s.last_sender_sequence}")
    return "\n".join(lines) + "\n"
