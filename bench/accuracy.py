"""Measurement accuracy: our sender's RTT against an independent C measurement, same reflector.

For each reflector (the minimal C one, and stamp-suite's), at idle and with a CPU-burning
background load: the C load generator measures the round trip with a window of 1 (its own
clock reads, the raw T4 - T1), then stamp-suite's sender measures with the same pattern
(--window 1) with kernel timestamps on (--timestamping kernel) and off (user).  Printed: p50/p99 of our reported RTT
((T4 - T1) - (T3 - T2)) and of our raw T4 - T1, as ratios to the C-measured RTT, and the
reflector's residence time T3 - T2 (stamp-suite's reflector only: the C one writes T2 and
T3 in one go).  Also the kernel-to-user delivery delay on this machine, the floor under
any user-space residence time.

Run: python bench/accuracy.py [--packets N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import OUT, PY, Reflector, build, loadgen  # noqa: E402


def burn(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def ours(port: int, n: int, timestamping: str) -> dict:
    # --window 1: one packet in flight, the next sent when the reply is in: the C generator's pattern
    out = subprocess.run([PY, "-m", "stamp_suite", "-r", "127.0.0.1", "-p", str(port), "-c", str(n), "--window", "1",
                          "-L", "1", "--timestamping", timestamping, "--output-format", "json", "-R"],
                         capture_output=True, text=True, timeout=600).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    samples = [r for r in rows if r.get("type") == "packet" and r["kind"] == "sample"]

    def pct(key: str, p: float) -> float:
        v = sorted(r[key] for r in samples)
        return v[min(len(v) - 1, int(p * len(v)))] / 1e3
    return {k: pct(field, p) for k, field, p in (("rtt_p50", "rtt_ns", .5), ("rtt_p99", "rtt_ns", .99),
                                                 ("raw_p50", "rtt_raw_ns", .5), ("res_p50", "residence_ns", .5))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=2000)
    args = ap.parse_args()
    build()
    designs = [("C reflector", [str(OUT / "c_reflector"), "127.0.0.1", "0"]),
               ("stamp-suite reflector", [PY, "-m", "stamp_suite", "-i", "-S", "127.0.0.1", "-o", "0",
                                          "--workers", "1"])]
    print(f"{'reflector':<22} {'load':<5} {'C RTT p50/p99 us':>17} | {'ts':<6} {'ours p50/p99 us':>16} "
          f"{'ratio p50/p99':>14} {'raw p50':>8} {'residence p50':>14}")
    for load in (False, True):
        stop = multiprocessing.Event()
        burners = [multiprocessing.Process(target=burn, args=(stop,), daemon=True) for _ in range(2 if load else 0)]
        for b in burners:
            b.start()
        try:
            for name, cmd in designs:
                ref = Reflector(name, cmd)
                try:
                    c = loadgen(ref.port, args.packets, 1)
                    for ts in ("kernel", "user"):
                        r = ours(ref.port, args.packets, ts)
                        res = f"{r['res_p50']:>11.1f} us" if "stamp" in name else f"{'n/a':>14}"
                        print(f"{name:<22} {'yes' if load else 'idle':<5} "
                              f"{c['rtt_p50_us']:>8.1f}/{c['rtt_p99_us']:<8.1f}"
                              f" | {ts:<6} {r['rtt_p50']:>7.1f}/{r['rtt_p99']:<8.1f} "
                              f"{r['rtt_p50'] / c['rtt_p50_us']:>6.2f}/{r['rtt_p99'] / c['rtt_p99_us']:<7.2f} "
                              f"{r['raw_p50']:>8.1f} {res}")
                finally:
                    ref.stop()
        finally:
            stop.set()
            for b in burners:
                b.join()


if __name__ == "__main__":
    main()
