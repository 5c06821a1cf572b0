"""Where a Session-Sender's reply goes, part by part, in us of CPU: the engine's stamp (T1 and
the packet) and receive (matching and reading the reply), the statistics of one reply (a
SessionStats as the CLI keeps it), against a bare unpack and pack of the same octets.  No
socket: replies are made by the reflector engine beforehand.  Best of ``--repeat`` runs of
``--packets`` replies each, so that a busy moment of the machine does not count.

    python bench/sender_parts.py [--packets 30000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import struct
import time

from stamp_suite.reflector.engine import Reflector
from stamp_suite.sender.engine import SenderConfig, SessionSender
from stamp_suite.sender.events import Transmit
from stamp_suite.sender.stats import SessionStats
from stamp_suite.wire.datagram import Received

REPLY = struct.Struct("!IQHHQIQHB")


def one_run(n: int) -> dict[str, float]:
    engine = SessionSender(SenderConfig(in_flight=64, count=n + 1, timeout_ns=10**12))
    engine.start(time.monotonic_ns(), time.time_ns())
    t0 = time.process_time()
    sent = []
    for _ in range(n):
        now = time.monotonic_ns()
        sent.append(bytes(engine.stamp(Transmit(now), time.time_ns(), now).data))
    stamp = time.process_time() - t0
    reflector = Reflector()
    replies = []
    for data in sent:
        r = reflector.reflect(Received(data, ("127.0.0.1", 9), 64, 0, None, time.time_ns(), time.time_ns()),
                              time.monotonic_ns())
        reflector.stamp([r], time.time_ns())
        replies.append(bytes(r.data))
    t0 = time.process_time()
    events = [engine.receive(d, time.time_ns(), time.monotonic_ns(), 64, 0) for d in replies]
    receive = time.process_time() - t0
    stats = SessionStats()
    t0 = time.process_time()
    for evs in events:
        for ev in evs:
            stats.on_event(ev)
    stats.to_dict()
    statistics = time.process_time() - t0
    t0 = time.process_time()
    for d in replies:
        fields = REPLY.unpack_from(d)
        REPLY.pack(*fields)
    bare = time.process_time() - t0
    return {"stamp": stamp, "receive": receive, "statistics": statistics, "bare unpack+pack": bare}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for part, seconds in one_run(args.packets).items():
            best[part] = min(best.get(part, seconds), seconds)
    bare = best["bare unpack+pack"]
    print(f"A reply's parts, us of CPU (best of {args.repeat} runs of {args.packets:,}); ratio to the bare unpack+pack")
    for part, seconds in best.items():
        us = seconds / args.packets * 1e6
        print(f"{part:<18} {us:7.2f} us {seconds / bare:6.1f}x")
    total = sum(v for k, v in best.items() if k != "bare unpack+pack") / args.packets * 1e6
    print(f"{'stamp+receive+statistics':<18} {total:7.2f} us")


if __name__ == "__main__":
    main()
