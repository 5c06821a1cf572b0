"""The Session-Sender's cost against the C reflector, beside the C load generator, in one run:

- paced: ``--rates`` packets/s for ``--seconds`` each, every statistic kept (SessionStats, as
  the CLI keeps them): CPU us a packet (user + system, the whole process), the share of a core,
  schedule error p50/p99 (how late each send left), loss, and how much of it this host's socket
  dropped unread (the sender did not keep up);
- capacity: ``stamp-suite --window 64`` (the CLI, JSON summary) replies/s and CPU us a reply,
  against the C load generator's packets/s with 64 in flight (the ratio is the figure).

With ``--baseline SRC`` (the src/ of an older tree) the same rows for that tree, in the same
run.  Loopback, 44-octet packets; the machine's two cores are shared by sender and reflector.

    python bench/sender_bench.py [--rates 10000,40000] [--seconds 5] [--baseline SRC]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import OUT, PY, Reflector, build, loadgen, sender_capacity  # noqa: E402

PACED = """
import os, sys, time
from stamp_suite.net.udp import UdpEndpoint
from stamp_suite.sender.driver import Probe, SenderDriver
from stamp_suite.sender.engine import SenderConfig, SessionSender
from stamp_suite.sender.stats import SessionStats
rate, seconds, port = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
n = int(rate * seconds)
ep = UdpEndpoint("127.0.0.1", 0, connect=("127.0.0.1", port))
stats = SessionStats()
engine = SessionSender(SenderConfig(count=n, interval_ns=10**9 // rate, timeout_ns=10**9))
driver = SenderDriver(record_schedule=True)
driver.add(Probe("bench", engine, ep, ("127.0.0.1", port), [stats.on_event]))
t0, w0 = os.times(), time.monotonic()
driver.run()
t1, w1 = os.times(), time.monotonic()
stats.to_dict()
cpu = (t1.user - t0.user) + (t1.system - t0.system)
e = sorted(driver.schedule_error_ns)
drops = getattr(stats, "dropped_unread", None)  # an older tree's statistics have no such count
print(cpu / n * 1e6, cpu / (w1 - w0), e[len(e) // 2] / 1e3, e[int(len(e) * 0.99)] / 1e3, stats.lost / n,
      -1 if drops is None else drops / n)
"""


def paced(rate: int, seconds: float, port: int, env: dict | None) -> tuple[float, ...]:
    out = subprocess.run([PY, "-c", PACED, str(rate), str(seconds), str(port)], capture_output=True, text=True,
                         check=True, env=env, timeout=600).stdout.split()
    return tuple(float(x) for x in out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="10000,40000")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--count", type=int, default=60_000, help="packets of each capacity run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", metavar="SRC", help="src/ of an older tree, measured in the same run")
    args = ap.parse_args()
    build()
    trees = [("this tree", None)]
    if args.baseline:
        trees.append(("baseline", {**os.environ, "PYTHONPATH": args.baseline}))
    ref = Reflector("C reflector", [str(OUT / "c_reflector"), "127.0.0.1", "0"])
    try:
        print(f"Paced sender against the C reflector, every statistic kept; {args.seconds:g} s a rate, "
              f"median of {args.repeat}")
        print(f"{'tree':<10} {'packets/s':>9} {'CPU us/pkt':>10} {'cores':>6} {'late p50 us':>11} "
              f"{'late p99 us':>11} {'loss':>7} {'of it this host':>15}")
        for rate in (int(r) for r in args.rates.split(",")):
            for tag, env in trees:
                runs = [paced(rate, args.seconds, ref.port, env) for _ in range(args.repeat)]
                us, cores, p50, p99, loss, here = (statistics.median(r[i] for r in runs) for i in range(6))
                # the replies this host's socket dropped unread (SessionStats.dropped_unread), of all packets
                here = "n/a" if here < 0 else f"{here:.2%}"
                print(f"{tag:<10} {rate:>9,} {us:>10.1f} {cores:>6.2f} {p50:>11.1f} {p99:>11.1f} {loss:>7.2%} "
                      f"{here:>15}")
        print(f"\nCapacity (64 in flight), {args.count:,} packets a run, median of {args.repeat}; "
              f"ratio to the C load generator")
        floor = statistics.median(loadgen(ref.port, 200_000, 64)["pps"] for _ in range(args.repeat))
        print(f"{'C load generator':<22} {floor:>10,.0f} {1:>7.3f}")
        for tag, env in trees:
            runs = [sender_capacity(ref.port, args.count, env) for _ in range(args.repeat)]
            pps = statistics.median(r[0] for r in runs)
            us = statistics.median(r[2] for r in runs)
            print(f"{'stamp-suite, ' + tag:<22} {pps:>10,.0f} {pps / floor:>7.3f}  loss {max(r[1] for r in runs):.2%}"
                  f"  {us:.1f} us CPU a reply")
    finally:
        ref.stop()


if __name__ == "__main__":
    main()
