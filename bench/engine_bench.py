"""Micro-benchmark of the pure reflector engine: reflect() + stamp_group() (as the socket loop
calls them; receive() + stamp(), the API, for one case) per second, no sockets.

Prints packets/s for open, authenticated and TLV-laden packets, and each as a ratio to a
baseline measured in the same run (the cost of struct-unpacking and re-packing a 44-octet
packet, the least any Python reflector must do).
Run: python bench/engine_bench.py [seconds-per-case]
"""

from __future__ import annotations

import ipaddress
import struct
import sys
import time

from stamp_suite.reflector.engine import PacketMeta, Reflector, ReflectorConfig
from stamp_suite.sender.engine import SenderConfig, SessionSender
from stamp_suite.wire.auth import KeyStore
from stamp_suite.tlvs import (ClassOfService, DestinationNodeAddress, DirectMeasurement, FollowUpTelemetry,
                                   Location, TimestampInformation)

KEY = bytes(range(16))
NOW = time.time_ns()


def rate(fn, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(1000):
            fn()
        n += 1000
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def first_packet(cfg: SenderConfig) -> bytes:
    sender = SessionSender(cfg)
    sender.start(0, NOW)
    (transmit,) = sender.handle_timer(0)
    return sender.stamp(transmit, NOW, 0).data


def case(sender_cfg: SenderConfig, reflector_cfg: ReflectorConfig):
    """reflect() and stamp_group(), as the socket loop calls them."""
    pkt = first_packet(sender_cfg)
    engine = Reflector(reflector_cfg)
    source, local = ("192.0.2.1", 40000), bytes([192, 0, 2, 2])

    def one() -> None:
        reply = engine.reflect(pkt, source, local, 862, 64, 0, NOW, 2, NOW)
        engine.stamp_group((reply,), NOW)
    return one


def api_case(sender_cfg: SenderConfig, reflector_cfg: ReflectorConfig):
    """receive() and stamp(), the API (PacketMeta in, a list of replies out)."""
    pkt = first_packet(sender_cfg)
    engine = Reflector(reflector_cfg)
    meta = PacketMeta(("192.0.2.1", 40000), bytes([192, 0, 2, 2]), 862, 64, 0, NOW, 2)

    def one() -> None:
        for reply in engine.receive(pkt, meta, NOW):
            engine.stamp(reply, NOW)
    return one


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    s_in, s_out = struct.Struct("!IQHH28x"), struct.Struct("!IQHHQIQH2xB3x")
    pkt = first_packet(SenderConfig())

    def baseline() -> None:
        seq, ts, ee, ssid = s_in.unpack_from(pkt)
        s_out.pack(seq, ts, ee, ssid, ts, seq, ts, ee, 64)

    tlvs = (ClassOfService(46), Location.request(), TimestampInformation(), DirectMeasurement(), FollowUpTelemetry(),
            DestinationNodeAddress(ipaddress.ip_address("192.0.2.2")))
    cases = {
        "baseline (unpack + pack only)": baseline,
        "open, stateless": case(SenderConfig(), ReflectorConfig()),
        "open, stateless, receive() (API)": api_case(SenderConfig(), ReflectorConfig()),
        "open, stateful": case(SenderConfig(), ReflectorConfig(stateful=True)),
        "authenticated": case(SenderConfig(authenticated=True, key=KEY),
                              ReflectorConfig(authenticated=True, keys=KeyStore(KEY))),
        "open, 6 TLVs": case(SenderConfig(ssid=1, tlvs=tlvs), ReflectorConfig(stateful=True)),
        "authenticated, 6 TLVs + HMAC TLV": case(SenderConfig(authenticated=True, key=KEY, ssid=1, tlvs=tlvs),
                                                 ReflectorConfig(authenticated=True, keys=KeyStore(KEY),
                                                                 stateful=True)),
    }
    base = None
    print(f"{'case':<36} {'packets/s':>12} {'us/packet':>10} {'vs baseline':>12}")
    for name, fn in cases.items():
        r = rate(fn, seconds)
        base = base or r
        print(f"{name:<36} {r:>12,.0f} {1e6 / r:>10.2f} {r / base:>11.3f}x")


if __name__ == "__main__":
    main()
