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
from .engine import PacketMeta, Reflector, Reply

IDLE_WAKEUP_S = 0.5
_SW_LOCAL, _CONTROL_PLANE = int(TimestampMethod.SW_LOCAL), int(TimestampMethod.CONTROL_PLANE)
MAX_AWAITING_TX = 4096


class ReflectorServer:
    def __init__(self, engine: Reflector, endpoint: UdpEndpoint, *, print_packets: bool = False,
                 out: TextIO | None = None, local_addresses: frozenset[str] = frozenset(),
                 busy_poll_us: int = 0) -> None:
        self.engine = engine
        self.endpoint = endpoint
        self.print_packets = print_packets
        self.out = out or sys.stdout
        self.local_addresses = local_addresses
        self.send_errors = 0
        self.busy_poll_ns = busy_poll_us * 1000
        self.started_ns = time.time_ns()
        self.running = False
        self.observe_processing: Callable[[int], None] | None = None  # ns per packet, for metrics
        self._awaiting_tx: dict[int, Reply] = {}  # TX timestamp key -> reply (Follow-Up Telemetry)
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
                    if self.busy_poll_ns:
                        self._busy_poll()
        finally:
            self.running = False

    def _busy_poll(self) -> None:
        """Keep reading without sleeping for busy_poll_ns after the last packet: the next one
        is then taken without a wake-up, which on a virtual machine can cost hundreds of us
        of residence time (T3 - T2).  Costs a core while traffic flows."""
        end = time.monotonic_ns() + self.busy_poll_ns
        while time.monotonic_ns() < end and not self._stop.is_set():
            if self._drain():
                end = time.monotonic_ns() + self.busy_poll_ns

    def _drain(self) -> int:
        """Read and answer every datagram waiting; return how many there were."""
        ep = self.endpoint
        engine = self.engine
        local_port = ep.local[1]
        n = 0
        while True:
            try:
                rx = ep.recv()
            except BlockingIOError:
                if self._awaiting_tx:  # an unread error queue would keep the socket ready
                    self._collect_tx_timestamps()
                return n
            except OSError:  # e.g. ECONNREFUSED queued by an earlier reply: nothing to reflect
                n += 1
                continue
            n += 1
            meta = PacketMeta(rx.source, rx.destination, local_port, rx.ttl, rx.tos, rx.kernel_ns,
                              _SW_LOCAL if rx.kernel_ns is not None else _CONTROL_PLANE, self.local_addresses)
            for reply in engine.receive(rx.data, meta, rx.user_ns):
                data = reply.stamp(time.time_ns())
                try:
                    key = ep.send(data, reply.destination, reply.source_address, reply.tos, reply.want_tx_timestamp)
                except OSError:
                    self.send_errors += 1
                    continue
                if key is not None:
                    self._await_tx(key, reply)
                if self.print_packets:
                    self._print(rx, reply)
            if self.observe_processing is not None:
                self.observe_processing(time.time_ns() - rx.user_ns)

    def _await_tx(self, key: int, reply: Reply) -> None:
        if len(self._awaiting_tx) >= MAX_AWAITING_TX:
            self._awaiting_tx.pop(next(iter(self._awaiting_tx)))
        self._awaiting_tx[key] = reply
        # On the wire already: the stamp is usually in the error queue when sendmsg returns.
        self._collect_tx_timestamps()

    def _collect_tx_timestamps(self) -> None:
        for key, tx_ns in self.endpoint.read_tx_timestamps():
            reply = self._awaiting_tx.pop(key, None)
            if reply is not None:
                reply.confirm_transmit(tx_ns, TimestampMethod.SW_LOCAL)

    def _print(self, rx: Received, reply: Reply) -> None:
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
