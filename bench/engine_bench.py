"""Micro-benchmark of the pure reflector engine: reflect() + stamp(), as the socket loop calls
them, per second, no sockets.

Prints packets/s for open, authenticated and TLV-laden packets, and each as a ratio to a
baseline measured in the same run (the cost of struct-unpacking and re-packing a 44-octet
packet, the least any Python reflector must do).  With --baseline, the same cases of an older
tree's engine, in the same run, and this tree's time per packet against it.

    python bench/engine_bench.py [--seconds 1] [--baseline /path/to/old/src]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

MEASURE = r"""
import ipaddress, json, struct, sys, time
from stamp_suite.reflector.engine import Reflector, ReflectorConfig
from stamp_suite.sender.engine import SenderConfig, SessionSender
from stamp_suite.wire.auth import KeyStore
from stamp_suite.tlvs import (ClassOfService, DestinationNodeAddress, DirectMeasurement, FollowUpTelemetry,
                              Location, TimestampInformation)

KEY = bytes(range(16))
NOW = time.time_ns()
SECONDS = float(sys.argv[1])
SOURCE, LOCAL = ("192.0.2.1", 40000), bytes([192, 0, 2, 2])


def rate(fn):
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(1000):
            fn()
        n += 1000
        dt = time.perf_counter() - t0
        if dt >= SECONDS:
            return n / dt


def first_packet(cfg):
    sender = SessionSender(cfg)
    sender.start(0, NOW)
    (transmit,) = sender.handle_timer(0)
    return bytes(sender.stamp(transmit, NOW, 0).data)


def case(sender_cfg, reflector_cfg):
    pkt = first_packet(sender_cfg)
    engine = Reflector(reflector_cfg)
    if hasattr(engine, "stamp_group"):  # an older tree: the metadata as arguments, stamp_group(), and
        def one():                      # the reflected count its socket loop kept (now the engine's)
            engine.stamp_group((engine.reflect(pkt, SOURCE, LOCAL, 862, 64, 0, NOW, 2, NOW),), NOW)
            engine._c[1] += 1
        return one
    from stamp_suite.wire.datagram import Received
    received = Received(pkt, SOURCE, 64, 0, LOCAL, NOW, NOW)

    def one():
        engine.stamp((engine.reflect(received, NOW),), NOW)
    return one


s_in, s_out = struct.Struct("!IQHH28x"), struct.Struct("!IQHHQIQH2xB3x")
pkt = first_packet(SenderConfig())


def baseline():
    seq, ts, ee, ssid = s_in.unpack_from(pkt)
    s_out.pack(seq, ts, ee, ssid, ts, seq, ts, ee, 64)


tlvs = (ClassOfService(46), Location.request(), TimestampInformation(), DirectMeasurement(), FollowUpTelemetry(),
        DestinationNodeAddress(ipaddress.ip_address("192.0.2.2")))
cases = {
    "baseline (unpack + pack only)": baseline,
    "open, stateless": case(SenderConfig(), ReflectorConfig()),
    "open, stateful": case(SenderConfig(), ReflectorConfig(stateful=True)),
    "authenticated": case(SenderConfig(authenticated=True, key=KEY),
                          ReflectorConfig(authenticated=True, keys=KeyStore(KEY))),
    "open, 6 TLVs": case(SenderConfig(ssid=1, tlvs=tlvs), ReflectorConfig(stateful=True)),
    "authenticated, 6 TLVs + HMAC TLV": case(SenderConfig(authenticated=True, key=KEY, ssid=1, tlvs=tlvs),
                                             ReflectorConfig(authenticated=True, keys=KeyStore(KEY), stateful=True)),
}
print(json.dumps({name: rate(fn) for name, fn in cases.items()}))
"""


def measure(seconds: float, src: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    res = subprocess.run([sys.executable, "-c", MEASURE, str(seconds)], capture_output=True, text=True, env=env)
    if res.returncode:
        sys.exit(f"engine_bench: the measurement failed{' with ' + src if src else ''}: "
                 f"{res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
    return json.loads(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="per case [default: 1]")
    ap.add_argument("--baseline", metavar="SRC", help="src/ directory of an older tree, measured in the same run")
    args = ap.parse_args()
    before = measure(args.seconds, args.baseline) if args.baseline else None
    now = measure(args.seconds, None)
    base = now["baseline (unpack + pack only)"]
    head = f"{'case':<36} {'packets/s':>12} {'us/packet':>10} {'vs baseline':>12}"
    print(head + (f" {'before us':>10} {'now/before':>11}" if before else ""))
    for name, r in now.items():
        line = f"{name:<36} {r:>12,.0f} {1e6 / r:>10.2f} {r / base:>11.3f}x"
        if before and name in before:
            line += f" {1e6 / before[name]:>10.2f} {before[name] / r:>10.2f}x"
        print(line)


if __name__ == "__main__":
    main()
