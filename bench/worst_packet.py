"""What one hostile packet costs the reflector engine, shape by shape.

    python bench/worst_packet.py                       # this tree
    python bench/worst_packet.py --baseline /path/src  # and an older tree's src/, same run

Each shape is the worst of its kind that fits a 9,216-octet datagram, or what real senders
send (zero padding to the MTU); the figures are microseconds of engine time per packet
(median of 5 runs) and the work units the per-address budget (--max-pps) charges for it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SHAPES = """
import struct
def tlv(t, value, flags=0x80):
    return struct.pack("!BBH", flags, t, len(value)) + value
HEAD = bytes.fromhex("00000001e93c7f00800000008001000000000000000000000000000000000000000000000000000000000000")
loc_sub = tlv(1, bytes(8)) * 0 + tlv(4, bytes(16))
def location(n_sub):
    return tlv(2, bytes(4) + tlv(4, bytes(16)) * n_sub)
def fill(piece, budget=9216 - 44, limit=None):
    n = budget // len(piece)
    return piece * (min(n, limit) if limit else n)
SHAPES = {
    "base packet (44 octets)": HEAD,
    "1,400 octets, 6 TLVs": HEAD + tlv(4, bytes(4)) + location(3) + tlv(3, bytes(4)) + tlv(5, bytes(12))
                              + tlv(7, bytes(16)) + tlv(1, bytes(1400 - 44 - 8 - 56 - 8 - 16 - 20 - 4)),
    "Location TLVs, 16 sub-TLVs each, as many as fit": HEAD + fill(location(16)),
    "Location TLVs, 200 sub-TLVs each (over the sub-TLV limit)": HEAD + fill(location(200)),
    "2,000+ empty TLVs (over the TLV limit)": HEAD + fill(tlv(1, b"")),
    "32 TLVs of 280 octets of padding": HEAD + fill(tlv(1, bytes(280)), limit=32),
    "32 Return Path TLVs, 16 sub-TLVs each": HEAD + fill(tlv(10, tlv(2, bytes(4)) * 16), limit=32),
    "zero padding to 1,472 octets (TWAMP-Light MTU test)": HEAD + bytes(1472 - 44),
    "zero padding to 9,000 octets": HEAD + bytes(9000 - 44),
    "a zero TLV, then zeros to 9,000 octets after one octet": HEAD + bytes(4) + b"\x01" + bytes(9000 - 49),
}
"""

MEASURE = SHAPES + """
import json, statistics, sys, time
from stamp_suite.reflector.engine import Reflector, ReflectorConfig
NOW = 1_700_000_000_000_000_000
SOURCE, LOCAL = ("192.0.2.1", 40000), bytes([192, 0, 2, 2])
try:
    from stamp_suite.wire.datagram import Received
    def receive(r, pkt, now):
        return r.reflect(Received(pkt, SOURCE, 64, 0, LOCAL, NOW, NOW), now)
except ImportError:  # an older tree: its engine took the metadata as a PacketMeta
    from stamp_suite.reflector.engine import PacketMeta
    meta = PacketMeta(SOURCE, LOCAL, 862, 64, 0, NOW, 2)
    def receive(r, pkt, now):
        return r.receive(pkt, meta, now)
out = {}
for name, pkt in SHAPES.items():
    r = Reflector(ReflectorConfig(stateful=True))
    runs = []
    n = 2000 if len(pkt) < 2000 else 200
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for i in range(n):
            receive(r, pkt, NOW + i)
        runs.append((time.perf_counter_ns() - t0) / n / 1000)
    # What --max-pps charges: the tokens one packet takes from a fresh bucket (this tree only).
    limited = Reflector(ReflectorConfig(max_pps=1000))
    units = None
    if hasattr(limited.rate_limiter, "charge"):
        receive(limited, pkt, NOW)
        units = 1000 - next(iter(limited.rate_limiter._buckets.values()))[0]
    out[name] = (len(pkt), statistics.median(runs), units, dict(r.counters.dropped))
print(json.dumps(out))
"""


def measure(src: str | None) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    res = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", help="src/ directory of an older tree, measured in the same run")
    args = ap.parse_args()
    now = measure(None)
    before = measure(args.baseline) if args.baseline else None
    print(f"{'shape':58} {'octets':>6} {'before us':>10} {'now us':>8} {'units':>6}  dropped now")
    for name, (size, us, units, dropped) in now.items():
        b = f"{before[name][1]:10.1f}" if before else f"{'':10}"
        u = f"{units:6.1f}" if units is not None else f"{'-':>6}"
        print(f"{name:58} {size:6d} {b} {us:8.1f} {u}  {','.join(dropped) or '-'}")
    base, padded = now["base packet (44 octets)"][1], now["zero padding to 9,000 octets"][1]
    print(f"\nzero padding to 9,000 octets against the base packet: {padded / base:.2f}x (the aim: at most 2x)")


if __name__ == "__main__":
    t0 = time.time()
    main()
