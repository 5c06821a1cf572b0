"""How early T3 is for replies that leave together: T4 - T3 by a reply's place in a burst.

A client on loopback sends bursts of 64 open-mode packets to a reflector started here and
reads each reply's kernel receive time (T4, SO_TIMESTAMPNS) against the T3 the reflector
wrote.  T4 - T3 is the loopback transit (the first reply of a group) plus how long before its
departure the reflector read T3: the price of sending replies in groups (one T3 per
sendmmsg call; the reflector sends 8 a call, SEND_GROUP).  Prints the median over the bursts
for each place.

Run: python bench/t3_error.py [--bursts 200] [-- extra reflector flags]
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import struct
import subprocess
import sys
import time

from stamp_suite.wire.timestamp import ntp_to_ns

# An open-mode test packet (sequence 1, a valid Error Estimate), as a sender makes it.
PACKET = bytes.fromhex("00000001e93c7f0080000000" "00010000") + bytes(28)
BURST = 64
SO_TIMESTAMPNS = 35


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bursts", type=int, default=200)
    ap.add_argument("flags", nargs="*", help="extra reflector flags (after --)")
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "stamp_suite", "-i", "-S", "127.0.0.1", "-o", "0", "--workers", "1", *args.flags]
    reflector = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(re.search(r":(\d+)", reflector.stdout.readline()).group(1))
        time.sleep(0.5)
        early = measure(port, args.bursts)
    finally:
        reflector.terminate()
        reflector.wait(10)
    medians = [statistics.median(place) for place in early]
    print(f"T4 - T3 (us), median of {args.bursts} bursts of {BURST}, by a reply's place in its burst:")
    for start in range(0, BURST, 8):
        print(f"  {start:2d}-{start + 7:2d}: " + " ".join(f"{m:6.1f}" for m in medians[start:start + 8]))
    print(f"smallest {min(medians):.1f} us (the loopback transit), largest {max(medians):.1f} us")


def measure(port: int, bursts: int) -> list[list[float]]:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    client.settimeout(2.0)
    early: list[list[float]] = [[] for _ in range(BURST)]
    try:
        for _ in range(bursts):
            for _ in range(BURST):
                client.sendto(PACKET, ("127.0.0.1", port))
            for place in range(BURST):
                data, anc, _, _ = client.recvmsg(2048, 256)
                sec, nsec = struct.unpack_from("qq", anc[0][2])
                t4 = sec * 1_000_000_000 + nsec
                early[place].append((t4 - ntp_to_ns(int.from_bytes(data[4:12], "big"), t4)) / 1000)
            time.sleep(0.005)
    finally:
        client.close()
    return early


if __name__ == "__main__":
    main()
