"""A deterministic impairment relay for tests: UDP on loopback between sender and reflector.

It acts on chosen sequence numbers in each direction (forward: the test packet's
Sequence Number; backward: the reply's Session-Sender Sequence Number): drop, delay by a
given time, duplicate, corrupt (the last octet flipped: in authenticated mode, the HMAC).
Reordering is a delay longer than the packet interval.  It records what it really did
(the hold time measured on its own clock) so tests compare the tool's figures with the
truth, not with the intent.
"""

from __future__ import annotations

import heapq
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

_SEQ = struct.Struct("!I")
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: kernel receive time of each datagram


@dataclass
class Impairment:
    drop: set[int] = field(default_factory=set)
    delay_ms: dict[int, float] = field(default_factory=dict)
    duplicate: set[int] = field(default_factory=set)
    corrupt: set[int] = field(default_factory=set)


@dataclass
class Record:
    forwarded: int = 0
    dropped: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    corrupted: list[int] = field(default_factory=list)
    held_ns: dict[int, int] = field(default_factory=dict)  # seq -> actual extra time in the relay


class ImpairmentRelay:
    def __init__(self, upstream: tuple[str, int], forward: Impairment | None = None,
                 backward: Impairment | None = None, host: str = "127.0.0.1", authenticated: bool = False) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.front = socket.socket(family, socket.SOCK_DGRAM)
        self.front.bind((host, 0))
        self.back = socket.socket(family, socket.SOCK_DGRAM)
        self.back.bind((host, 0))
        self.back.connect(upstream)
        for s in (self.front, self.back):  # arrival times from the kernel: no wake-up latency in the record
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.address = self.front.getsockname()[:2]
        self.forward, self.backward = forward or Impairment(), backward or Impairment()
        self.fwd_record, self.bwd_record = Record(), Record()
        # offsets of the sequence numbers the relay acts on
        self._fwd_off, self._bwd_off = 0, (48 if authenticated else 24)
        self._client: tuple[str, int] | None = None
        self._queue: list[tuple[int, int, bytes, str, int, int]] = []
        self._n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ImpairmentRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)
        self.front.close()
        self.back.close()

    def _handle(self, data: bytes, direction: str, now: int) -> None:
        imp, rec, off = ((self.forward, self.fwd_record, self._fwd_off) if direction == "fwd"
                         else (self.backward, self.bwd_record, self._bwd_off))
        seq = _SEQ.unpack_from(data, off)[0] if len(data) >= off + 4 else -1
        if seq in imp.drop:
            rec.dropped.append(seq)
            return
        if seq in imp.corrupt and data:
            rec.corrupted.append(seq)
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        copies = 2 if seq in imp.duplicate else 1
        if copies == 2:
            rec.duplicated.append(seq)
        delay = int(imp.delay_ms.get(seq, 0) * 1e6)
        for _ in range(copies):
            self._n += 1
            heapq.heappush(self._queue, (now + delay, self._n, data, direction, seq, now))

    def _flush(self) -> None:
        now = time.time_ns()
        while self._queue and self._queue[0][0] <= now:
            _, _, data, direction, seq, arrived = heapq.heappop(self._queue)
            rec = self.fwd_record if direction == "fwd" else self.bwd_record
            # Held until now; read before sending, since a loopback send may run the receiver first.
            rec.held_ns.setdefault(seq, time.time_ns() - arrived)
            if direction == "fwd":
                self.back.send(data)
            elif self._client is not None:
                self.front.sendto(data, self._client)
            rec.forwarded += 1

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.front, selectors.EVENT_READ, "fwd")
            sel.register(self.back, selectors.EVENT_READ, "bwd")
            while not self._stop.is_set():
                timeout = 0.05
                if self._queue:
                    timeout = max(0.0, (self._queue[0][0] - time.time_ns()) / 1e9)
                for key, _ in sel.select(timeout):
                    sock = self.front if key.data == "fwd" else self.back
                    try:
                        data, anc, _, addr = sock.recvmsg(65535, 64)
                    except OSError:
                        continue
                    if key.data == "fwd":
                        self._client = addr[:2]
                    arrived = next((int.from_bytes(c[:8], "little") * 10**9 + int.from_bytes(c[8:16], "little")
                                    for lvl, typ, c in anc if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS),
                                   time.time_ns())
                    self._handle(data, key.data, arrived)
                self._flush()
