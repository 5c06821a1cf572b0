"""The monitor at scale: N targets at one packet per second each, from one process.

All targets measure the minimal C reflector (each target has its own socket, so its own
flow).  Printed: the monitor's schedule error (actual minus planned send time, p50/p99, as
the monitor reports it when it stops), its CPU use (share of one core, from /proc), its RSS,
and the replies received against packets sent.

Run: python bench/monitor_bench.py [--targets 1000] [--seconds 30] [--baseline OLD/src]
(--baseline: an older tree's src/, measured the same way in the same run, before this tree)
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import OUT, PY, Reflector, build, cpu_seconds  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--baseline", metavar="SRC", help="src/ of an older tree, measured first in the same run")
    args = ap.parse_args()
    build()
    if args.baseline:
        print("baseline:", end=" ")
        measure(args, {**os.environ, "PYTHONPATH": args.baseline})
        print("this tree:", end=" ")
    measure(args, None)


def measure(args: argparse.Namespace, env: dict | None) -> None:
    ref = Reflector("C floor", [str(OUT / "c_reflector"), "127.0.0.1", "0"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        mport = s.getsockname()[1]
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(f'[monitor]\nwindows = [10]\nmetrics_addr = "127.0.0.1:{mport}"\n[defaults]\nsend_delay = 1000\n')
        for i in range(args.targets):
            f.write(f'[[targets]]\nname = "t{i:04d}"\nremote_addr = "127.0.0.1"\nremote_port = {ref.port}\n')
    mon = subprocess.Popen([PY, "-m", "stamp_suite", "monitor", "--config", f.name], stderr=subprocess.PIPE,
                           text=True, env=env)
    try:
        time.sleep(3)  # start-up and the first sends
        c0, t0 = cpu_seconds([mon.pid]), time.monotonic()
        scrapes = []
        while time.monotonic() - t0 < args.seconds:  # scraped every 15 s, as Prometheus would
            time.sleep(min(15, args.seconds - (time.monotonic() - t0)))
            s0 = time.monotonic()
            text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
            scrapes.append(time.monotonic() - s0)
        cpu = (cpu_seconds([mon.pid]) - c0) / (time.monotonic() - t0)
        rss = int(Path(f"/proc/{mon.pid}/statm").read_text().split()[1]) * 4096 / 2**20
        sent = sum(float(v) for v in re.findall(r'^stamp_sender_packets_sent_total\{[^}]*\} (\S+)', text, re.M))
        recv = sum(float(v) for v in re.findall(r'^stamp_sender_packets_received_total\{[^}]*\} (\S+)', text, re.M))
    finally:
        mon.send_signal(signal.SIGTERM)
        _, err = mon.communicate(timeout=30)
        ref.stop()
    sched = next((line for line in err.splitlines() if "schedule error" in line), "no schedule figures")
    print(f"{args.targets} targets at 1 packet/s for {args.seconds:.0f} s: CPU {cpu:.1%} of one core, RSS {rss:.0f} MB, "
          f"{recv:.0f}/{sent:.0f} replies")
    print(sched.replace("stamp-suite monitor: stopped; ", "")
          + f"; a /metrics scrape ({len(text.splitlines())} lines) took {max(scrapes) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
