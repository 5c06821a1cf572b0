"""The monitor at scale: N targets at one packet per second each, from one process.

All targets measure the minimal C reflector (each target has its own socket, so its own
flow).  After start-up and a warm-up (the first windows closed), measured over the next
--seconds while /metrics is scraped every 15 s, as Prometheus would:
- CPU: the monitor's share of one core and its CPU microseconds per packet round trip, next
  to the C load generator's (one packet in flight at a time, the same kernel path: the floor);
- memory: RSS at the end and its peak (VmHWM);
- schedule error: how late the sends left, from the monitor's own histogram
  (stamp_monitor_schedule_error_seconds): the share under 5 ms and the bucket bound of p99;
- replies: sent, received and lost in the interval (the C reflector loses none: every loss
  is the monitor's own);
- the /metrics scrapes: the slowest, and its size.

Run: python bench/monitor_bench.py [--targets 10000] [--seconds 60] [--baseline OLD/src] [--sets all]
(--baseline: an older tree's src/, measured the same way in the same run, before this tree;
--sets: the sets of series this tree's targets show besides the default, such as all)
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import OUT, PY, Reflector, build, children, cpu_seconds  # noqa: E402

SCRAPE_EVERY_S = 15
SCRAPE_TIMEOUT_S = 30
WINDOW_S = 10


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--baseline", metavar="SRC", help="src/ of an older tree, measured first in the same run")
    ap.add_argument("--sets", metavar="SET,...", help="this tree's targets show these sets of series too "
                    "(metrics = [...]; the baseline's show what its version shows)")
    args = ap.parse_args()
    build()
    ref = Reflector("C floor", [str(OUT / "c_reflector"), "127.0.0.1", "0"])
    try:
        print(f"C load generator, one packet in flight: {c_floor_us(ref.port):.1f} us of CPU per round trip")
        if args.baseline:
            print("baseline:", end=" ", flush=True)
            measure(args, ref.port, {**os.environ, "PYTHONPATH": args.baseline})
            print("this tree:", end=" ", flush=True)
        measure(args, ref.port, None)
    finally:
        ref.stop()


def c_floor_us(port: int, count: int = 20_000) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([str(OUT / "loadgen"), "127.0.0.1", str(port), str(count), "1", "44", "64"], check=True,
                   capture_output=True, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / count * 1e6


class Scrape:
    """One /metrics scrape, read (with regular expressions: the parser of prometheus_client
    would take longer than the scrape itself) only after the run, so that this bench takes no
    core from the monitor while it measures."""

    def __init__(self, port: int) -> None:
        t0 = time.monotonic()
        try:
            self.body: bytes | None = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                                              timeout=SCRAPE_TIMEOUT_S).read()
        except OSError:  # no answer in time: what a Prometheus would record as a failed scrape
            self.body = None
        self.seconds = time.monotonic() - t0

    def read(self) -> Scrape:
        self.text = self.body.decode()
        self.lines = self.text.count("\n")
        self.sent, self.received, self.lost = (self._sum(f"stamp_sender_packets_{k}_total")
                                               for k in ("sent", "received", "lost"))
        self.schedule = {le: float(v) for le, v in re.findall(
            r'^stamp_monitor_schedule_error_seconds_bucket\{[^}]*le="([^"]+)"\} (\S+)', self.text, re.M)}
        return self

    def _sum(self, name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)", self.text, re.M))


def measure(args: argparse.Namespace, ref_port: int, env: dict | None) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        mport = s.getsockname()[1]
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(f'[monitor]\nwindows = [{WINDOW_S}]\nmetrics_addr = "127.0.0.1:{mport}"\n'
                f'[defaults]\nsend_delay = 1000\n')
        if env is None and args.sets:  # this tree's (an older one refuses the key)
            f.write(f"metrics = {args.sets.split(',')}\n")
        for i in range(args.targets):
            f.write(f'[[targets]]\nname = "t{i:05d}"\nremote_addr = "127.0.0.1"\nremote_port = {ref_port}\n')
    t_start = time.monotonic()
    mon = subprocess.Popen([PY, "-m", "stamp_suite", "monitor", "--config", f.name], stderr=subprocess.PIPE,
                           text=True, env=env)
    started = threading.Event()
    log: list[str] = []

    def read_log() -> None:
        for line in mon.stderr:
            log.append(line.rstrip())
            if " targets" in line:
                started.set()
    threading.Thread(target=read_log, daemon=True).start()
    try:
        if not started.wait(300):
            raise SystemExit(f"the monitor did not start: {log[-3:]}")
        start_s = time.monotonic() - t_start
        time.sleep(WINDOW_S + 5)  # warm-up: the first windows closed, memory at its working size
        first = Scrape(mport)  # (the first starts the render process)
        helpers = children(mon.pid)[1:]
        c0, h0, t0 = cpu_seconds([mon.pid]), cpu_seconds(helpers), time.monotonic()
        scrapes = [first]
        while (left := args.seconds - (time.monotonic() - t0)) > 0:
            time.sleep(min(SCRAPE_EVERY_S, left))
            scrapes.append(Scrape(mport))
        cpu_s, elapsed = cpu_seconds([mon.pid]) - c0, time.monotonic() - t0
        helper_s = cpu_seconds(helpers) - h0
        rss, hwm = memory(mon.pid)
        helper_hwm = sum(memory(pid)[1] for pid in helpers)
    finally:
        mon.send_signal(signal.SIGTERM)
        mon.wait(60)
        os.unlink(f.name)
    failed = sum(sc.body is None for sc in scrapes)
    if first.body is None or scrapes[-1].body is None:
        print(f"{args.targets} targets: CPU {cpu_s / elapsed:.1%} of one core; {failed} of {len(scrapes)} /metrics "
              f"scrapes got no answer within {SCRAPE_TIMEOUT_S} s, so no more figures")
        return
    first, last = first.read(), scrapes[-1].read()
    sent, received, lost = last.sent - first.sent, last.received - first.received, last.lost - first.lost
    print(f"{args.targets} targets at 1 packet/s, started in {start_s:.1f} s, measured for {elapsed:.0f} s: "
          f"CPU {cpu_s / elapsed:.1%} of one core, {cpu_s / max(sent, 1) * 1e6:.0f} us per round trip; "
          f"RSS {rss:.0f} MB (peak {hwm:.0f} MB)"
          + (f"; its render process {helper_s / elapsed:.1%} of a core, peak {helper_hwm:.0f} MB" if helpers else ""))
    print(f"  {received:.0f} replies to {sent:.0f} packets, {lost:.0f} lost; schedule error: "
          f"{schedule_share(first, last, '0.005')} under 5 ms, p99 {schedule_p99(first, last)}; "
          f"/metrics scrape median {statistics.median(s.seconds for s in scrapes[1:]) * 1e3:.0f} ms, slowest "
          f"{max(s.seconds for s in scrapes[1:]) * 1e3:.0f} ms ({last.lines:,} lines, {len(last.text) / 1e6:.0f} MB)"
          + (f", {failed} scrapes unanswered" if failed else ""))


def memory(pid: int) -> tuple[float, float]:
    """RSS and its peak (MB); zeros for a process that is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0, 0.0
    rss, hwm = (int(re.search(rf"^{k}:\s+(\d+)", status, re.M).group(1)) / 1024 for k in ("VmRSS", "VmHWM"))
    return rss, hwm


def _delta(first: Scrape, last: Scrape) -> dict[str, float]:
    return {le: n - first.schedule.get(le, 0) for le, n in last.schedule.items()}


def schedule_share(first: Scrape, last: Scrape, le: str) -> str:
    d = _delta(first, last)
    return f"{d[le] / max(d['+Inf'], 1):.2%}" if d else "n/a (no histogram in this tree)"


def schedule_p99(first: Scrape, last: Scrape) -> str:
    """The upper bound of the bucket holding the 99th percentile."""
    d = _delta(first, last)
    for le, n in d.items():
        if n >= 0.99 * d["+Inf"]:
            return f"<= {float(le) * 1e3:g} ms"
    return "unknown"


if __name__ == "__main__":
    main()
