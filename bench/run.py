"""Reflector capacity, latency, CPU and memory, side by side, in one run.

Builds the independent C load generator and the minimal C reflector (the floor), then
measures on loopback, each figure as the median of --repeat runs:
- packets/s with a window of 64 packets in flight (and the loss seen: < 0.1 % to count);
- round trip p50/p99 with a window of 1 (the reflector's added latency);
- CPU seconds per million packets (the reflector's processes, from /proc);
for the C floor, the Rust stamp-suite (--rust), stamp-suite's reflector with 1 and 2 workers
(2 workers get 8 flows, as several senders would give them) on the batched socket path and on
the standard socket module's, and three bare Python echo loops (the Python floor).
Then the RSS of the engine holding 100,000 stateful sessions, the sender's capacity mode
(--window 64) against the C reflector beside the C load generator's, and the sender's
schedule error at 1,000 and 10,000 packets/s.  Every rate is also printed as a ratio to the C floor.

Run: python bench/run.py [--quick] [--rust PATH-TO-THE-RUST-stamp-suite]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "out"
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")


def build() -> None:
    OUT.mkdir(exist_ok=True)
    for name in ("loadgen", "c_reflector"):
        src, exe = HERE / f"{name}.c", OUT / name
        if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
            subprocess.run(["cc", "-O2", "-o", str(exe), str(src), "-lm"], check=True)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / TICK


def children(pid: int) -> list[int]:
    """``pid`` and its descendants, whichever of its threads started them."""
    try:
        kids = [k for task in Path(f"/proc/{pid}/task").iterdir() for k in (task / "children").read_text().split()]
    except OSError:
        return [pid]
    return [pid] + [p for k in kids for p in children(int(k))]


# The least a Python reflector can do: read, copy the sender's 14 octets to offset 24, send.
ECHO_RECVFROM = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
print("listening on 127.0.0.1:%d" % s.getsockname()[1], flush=True)
while True:
    d, a = s.recvfrom(2048); d = bytearray(d); d[24:38] = d[0:14]; s.sendto(d, a)
"""
ECHO_RECVMSG = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
s.setsockopt(0, 12, 1); s.setsockopt(0, 13, 1); s.setsockopt(1, 35, 1)  # TTL, TOS, SO_TIMESTAMPNS
print("listening on 127.0.0.1:%d" % s.getsockname()[1], flush=True)
while True:
    d, anc, f, a = s.recvmsg(2048, 256); t = time.time_ns(); d = bytearray(d); d[24:38] = d[0:14]; s.sendto(d, a)
"""

# The same over the C extension's recvmmsg/sendmmsg (replies in groups of 8, as the reflector
# sends them): the least a Python reflector on the batched path can do, no rules at all.
ECHO_MMSG = """
import selectors, socket, struct
from stamp_suite.net._mmsg import Batch
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.setblocking(False)
s.setsockopt(0, 12, 1); s.setsockopt(0, 13, 1); s.setsockopt(0, 8, 1); s.setsockopt(1, 35, 1)
b = Batch(s.fileno(), 32, 9216)
IN, OUT = struct.Struct("!IQHH28x"), struct.Struct("!IQHHQIQH2xB3x")
sel = selectors.DefaultSelector(); sel.register(s, selectors.EVENT_READ)
print("listening on 127.0.0.1:%d" % s.getsockname()[1], flush=True)
while True:
    sel.select()
    batch = [None] * 32
    while len(batch) == 32:
        try:
            batch = b.recv()
        except BlockingIOError:
            break
        out = []
        for data, src, ttl, tos, dst, kernel_ns, user_ns, truncated in batch:
            seq, ts, ee, ssid = IN.unpack_from(data)
            out.append((bytearray(OUT.pack(seq, 0, ee, ssid, kernel_ns, seq, ts, ee, ttl)), src, None, None))
            if len(out) == 8:
                b.send(socket.AF_INET, out, False, False); out = []
        if out:
            b.send(socket.AF_INET, out, False, False)
"""


class Reflector:
    def __init__(self, name: str, cmd: list[str], env: dict | None = None, port: int | None = None) -> None:
        """``port``: a reflector told its port on the command line (its banner is not read)."""
        self.name = name
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        if port is None:
            line = self.proc.stdout.readline()
            m = re.search(r"(?:port |:)(\d+)", line)
            if not m:
                raise RuntimeError(f"{name} did not start: {line!r}")
            port = int(m.group(1))
        self.port = port
        time.sleep(0.3 if port is None else 1.0)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def free_udp_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadgen(port: int, count: int, window: int, flows: int = 1, addresses: int = 1) -> dict:
    out = subprocess.run([str(OUT / "loadgen"), "127.0.0.1", str(port), str(count), str(window), "44", str(flows),
                          str(addresses)], capture_output=True, text=True, timeout=300).stdout
    return json.loads(out)


def measure(ref: Reflector, count: int, repeat: int, flows: int) -> dict:
    """``flows`` flows, each from its own source address (as ``flows`` sender hosts)."""
    runs, cpu = [], []
    for _ in range(repeat):
        pids = children(ref.proc.pid)
        c0 = cpu_seconds(pids)
        r = loadgen(ref.port, count, 64, flows, flows)
        cpu.append((cpu_seconds(pids) - c0) / max(1, r["received"]) * 1e6)
        runs.append(r)
    lat = [loadgen(ref.port, max(2000, count // 20), 1) for _ in range(repeat)]
    return {"pps": statistics.median(r["pps"] for r in runs), "loss": max(r["loss"] for r in runs),
            "p50_us": statistics.median(r["rtt_p50_us"] for r in lat),
            "p99_us": statistics.median(r["rtt_p99_us"] for r in lat),
            "cpu_s_per_million": statistics.median(cpu)}


def session_memory(n: int = 100_000) -> float:
    code = f"""
import resource, time
from stamp_suite.reflector.engine import Reflector, ReflectorConfig
from stamp_suite.wire.datagram import Received
pkt = bytes.fromhex("00000001e93c7f00800000000001") + bytes(30)  # an open test packet, seq 1
r = Reflector(ReflectorConfig(stateful=True, max_sessions={n}))
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
before = rss()
for i in range({n}):
    now = time.time_ns()
    r.reflect(Received(pkt, ("10.%d.%d.%d" % (i >> 16, (i >> 8) & 255, i & 255), 40000 + i % 20000), 64, 0,
                       bytes([192, 0, 2, 1]), None, now), now)
print(rss(), rss() - before, r.counters.active_sessions)
"""
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


SCHEDULE = """
import sys
from stamp_suite.net.udp import UdpEndpoint
from stamp_suite.sender.engine import SenderConfig, SessionSender
rate, seconds, port = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
n = int(rate * seconds)
try:  # this tree: the one sender driver
    from stamp_suite.sender.driver import SenderDriver, Probe
    ep = UdpEndpoint("127.0.0.1", 0, connect=("127.0.0.1", port))
    engine = SessionSender(SenderConfig(count=n, interval_ns=10**9 // rate, timeout_ns=10**9))
    driver = SenderDriver(record_schedule=True)
    driver.add(Probe("bench", engine, ep, ("127.0.0.1", port)))
    driver.run()
    e = sorted(driver.schedule_error_ns)
except ImportError:  # an older tree (--baseline): its runner
    from stamp_suite.sender.runner import SenderRunner
    from stamp_suite.sender.stats import SessionStats
    ep = UdpEndpoint("127.0.0.1", 0, connect=("127.0.0.1", port))
    r = SenderRunner(SessionSender(SenderConfig()), ep, ("127.0.0.1", port), count=n, interval_ns=10**9 // rate,
                     timeout_ns=10**9, stats=SessionStats(), record_schedule=True).run()
    e = sorted(r.schedule_error_ns)
print(e[len(e) // 2] / 1e3, e[int(len(e) * 0.99)] / 1e3)
"""


def sender_capacity(port: int, count: int, env: dict | None = None) -> tuple[float, float, float]:
    """stamp-suite's capacity mode (--window 64) against the C reflector: replies/s, loss and
    the sender's CPU us per reply (every statistic kept, as an operator's run keeps them)."""
    t0 = os.times()
    out = subprocess.run([PY, "-m", "stamp_suite", "-r", f"127.0.0.1:{port}", "--window", "64", "-c", str(count),
                          "--output-format", "json"], capture_output=True, text=True, env=env, timeout=600).stdout
    t1 = os.times()
    summary = json.loads(out.strip().splitlines()[-1])
    cpu = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
    return summary["session"]["capacity_replies_per_s"], summary["packets"]["loss_ratio"], cpu / count * 1e6


def schedule_error(rate: int, seconds: float, port: int, env: dict | None = None) -> tuple[float, float]:
    out = subprocess.run([PY, "-c", SCHEDULE, str(rate), str(seconds), str(port)], capture_output=True, text=True,
                         check=True, env=env).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer packets and repeats (a smoke run)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rust", metavar="PATH", help="the Rust stamp-suite binary: its reflector is measured too "
                    "(skipped when not given or not there)")
    ap.add_argument("--baseline", metavar="SRC", help="src/ of an older stamp-suite tree: its reflector is measured "
                    "too, with 1 and 2 workers and unbatched, in the same run")
    args = ap.parse_args()
    count, repeat = (30_000, 1) if args.quick else (200_000, args.repeat)
    busy = os.getloadavg()[0]
    if busy > 0.5:  # the figures share two cores with whatever else runs
        print(f"note: load average {busy:.2f} before the run: other programs are using the CPU, and the "
              f"figures (the latency ones most) will show it")
    build()
    stamp = [PY, "-m", "stamp_suite", "-i", "-S", "127.0.0.1", "-o", "0"]
    designs = [
        ("C floor (recvmmsg/sendmmsg)", [str(OUT / "c_reflector"), "127.0.0.1", "0"], 1),
        ("stamp-suite, 1 worker", stamp + ["--workers", "1"], 1),
        ("stamp-suite, 1 worker, unbatched", stamp + ["--workers", "1"], 1,
         {**os.environ, "STAMP_SUITE_BATCH_IO": "off"}),
        ("stamp-suite, 1 worker, 8 flows", stamp + ["--workers", "1"], 8),
        ("stamp-suite, 2 workers, 8 flows", stamp + ["--workers", "2"], 8),
        ("stamp-suite, 1 worker, stateful", stamp + ["--workers", "1", "--stateful-reflector"], 1),
        ("Python bare echo, recvfrom", [PY, "-c", ECHO_RECVFROM], 1),
        ("Python bare echo, recvmsg+cmsgs", [PY, "-c", ECHO_RECVMSG], 1),
        ("Python bare echo, C extension", [PY, "-c", ECHO_MMSG], 1),
    ]
    if args.baseline:
        designs[2:2] = [(f"baseline {tag}", cmd, flows, {**os.environ, "PYTHONPATH": args.baseline})
                        for tag, cmd, flows in (("1 worker", stamp + ["--workers", "1"], 1),
                                                ("2 workers, 8 flows", stamp + ["--workers", "2"], 8))]
        designs[4:4] = [("baseline 1 worker, unbatched", stamp + ["--workers", "1"], 1,
                         {**os.environ, "PYTHONPATH": args.baseline, "STAMP_SUITE_BATCH_IO": "off"})]
    if args.rust and Path(args.rust).is_file():
        rust_port = free_udp_port()  # the same flags as ours (the Rust tool's), on a port given to it
        designs[1:1] = [("Rust stamp-suite", [args.rust, "-i", "-S", "127.0.0.1", "-o", str(rust_port)], 1, None,
                         rust_port)]
    elif args.rust:
        print(f"--rust {args.rust}: no such file; the Rust tool is not measured")
    results = {}
    for name, cmd, flows, *extra in designs:
        ref = Reflector(name, cmd, *extra)
        try:
            results[name] = measure(ref, count, repeat, flows)
        finally:
            ref.stop()
    floor = results[designs[0][0]]
    print(f"\nReflector on loopback, 44-octet packets; median of {repeat}; ratios to the C floor; "
          f"p50/p99: round trip with one packet in flight (window 1)")
    print(f"{'design':<34} {'packets/s':>10} {'ratio':>6} {'loss':>7} {'p50 us':>8} {'ratio':>6} "
          f"{'p99 us':>8} {'CPU s/M':>8}")
    for name, r in results.items():
        print(f"{name:<34} {r['pps']:>10,.0f} {r['pps'] / floor['pps']:>6.2f} {r['loss']:>7.2%} "
              f"{r['p50_us']:>8.1f} {r['p50_us'] / floor['p50_us']:>6.2f} {r['p99_us']:>8.1f} "
              f"{r['cpu_s_per_million']:>8.2f}")
    total, grown, n = session_memory()
    print(f"\nEngine with {n:,} stateful sessions: RSS {total:.0f} MB ({grown:.0f} MB for the sessions)")
    ref = Reflector("C floor", [str(OUT / "c_reflector"), "127.0.0.1", "0"])
    try:
        print(f"\nSenders against the C reflector, 64 packets in flight, 44-octet packets; median of {repeat}")
        senders = {"C load generator": [], "stamp-suite --window 64": []}
        for _ in range(repeat):
            r = loadgen(ref.port, count, 64)
            senders["C load generator"].append((r["pps"], r["loss"], None))
            senders["stamp-suite --window 64"].append(sender_capacity(ref.port, count // 4))
        floor_pps = statistics.median(pps for pps, _, _ in senders["C load generator"])
        for name, runs in senders.items():
            pps = statistics.median(r[0] for r in runs)
            cpu = [r[2] for r in runs if r[2] is not None]
            print(f"{name:<34} {pps:>10,.0f} {pps / floor_pps:>6.3f} {max(r[1] for r in runs):>7.2%}"
                  + (f"  {statistics.median(cpu):.1f} us CPU a reply" if cpu else ""))
        trees = [("", None)] + ([("baseline ", {**os.environ, "PYTHONPATH": args.baseline})] if args.baseline else [])
        for rate in (1_000, 10_000):
            for tag, env in trees:
                p50, p99 = schedule_error(rate, 2.0 if args.quick else 5.0, ref.port, env)
                print(f"{tag}Sender schedule error at {rate:,} packets/s: p50 {p50:.1f} us, p99 {p99:.1f} us")
    finally:
        ref.stop()


if __name__ == "__main__":
    main()
