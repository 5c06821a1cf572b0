"""No packet may start a reflection loop (security issue: reflection loops).

In network namespaces made by the test: one packet from outside, sent from a reflector's
port with a Return Path that points a reflector at itself or at another reflector, makes
at most one packet from each of our reflectors, open or authenticated; every packet the
reflectors send in the next 3 s is counted, by the reflectors and by the kernel.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from netns import Namespaces

KEY = "00112233445566778899aabbccddeeff"
# One packet, built with the project's own sender engine (the bytes are checked elsewhere):
# SSID 1, a Return Path TLV with a Return Address, signed in authenticated mode.
SEND_ONE = textwrap.dedent("""
    import ipaddress, socket, sys, time
    from stamp_suite.sender.engine import SenderConfig, SessionSender
    from stamp_suite.sender.events import Transmit
    from stamp_suite.tlvs import ReturnPath
    src, dst, port, return_address, auth = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "A"
    cfg = SenderConfig(authenticated=auth, key=bytes.fromhex("{key}") if auth else None, ssid=1,
                       tlvs=(ReturnPath(return_address=ipaddress.ip_address(return_address)),))
    engine = SessionSender(cfg)
    data = engine.stamp(Transmit(0), 1_700_000_000_000_000_000, 0).data
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, port))
    s.sendto(data, (dst, port))
    time.sleep(3)  # open while the packets are counted: an answer to it is taken, not refused (ICMP)
""").format(key=KEY)


def _start(ns: Namespaces, where: str, *args: str):
    proc = ns.stamp(where, "-i", "--workers", "1", *args)
    line = proc.stdout.readline()
    assert "listening on" in line, proc.stderr.read()
    return proc


def _reflected(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    return int(re.search(r"Packets reflected: (\d+)", out).group(1))


def _send_one(ns: Namespaces, where: str, *args: str) -> None:
    """One packet, from a socket kept open for the 3 s in which what follows it is counted."""
    res = ns.run_in(where, [sys.executable, "-c", SEND_ONE, *args])
    assert res.returncode == 0, res.stderr


@pytest.fixture
def ns():
    with Namespaces() as n:
        yield n


@pytest.mark.parametrize("mode", ["O", "A"])
def test_a_reflector_cannot_be_made_to_answer_itself(ns, mode):
    ns.add("r1")
    auth = ["-A", "A", "--hmac-key", KEY] if mode == "A" else []
    refl = _start(ns, "r1", "-S", "127.0.0.1", "-o", "20003", "--return-address-allow", "127.0.0.0/8", *auth)
    before = ns.counter("r1", "lo")
    _send_one(ns, "r1", "127.0.0.3", "127.0.0.1", "20003", "127.0.0.1", mode)
    sent_by_kernel = ns.counter("r1", "lo") - before  # the test packet itself, and what followed it
    assert _reflected(refl) <= 1
    assert sent_by_kernel <= 2


@pytest.mark.parametrize("mode", ["O", "A"])
def test_two_reflectors_cannot_be_played_against_each_other(ns, mode):
    for name in ("sw", "r1", "r2", "a"):
        ns.add(name)
    ns.run_in("sw", ["ip", "link", "add", "br0", "type", "bridge"], check=True)
    ns.run_in("sw", ["ip", "link", "set", "br0", "up"], check=True)
    ifs = {}
    for name, addr in (("r1", "10.99.0.1/24"), ("r2", "10.99.0.2/24"), ("a", "10.99.0.3/24")):
        ifs[name], peer = ns.link(name, addr, "sw")
        ns.ip("sw", "link", "set", peer, "master", "br0")
    auth = ["-A", "A", "--hmac-key", KEY] if mode == "A" else []
    r1 = _start(ns, "r1", "-S", "10.99.0.1", "--return-address-allow", "10.99.0.2/32", *auth)
    r2 = _start(ns, "r2", "-S", "10.99.0.2", *auth)
    before = {n: ns.counter(n, ifs[n]) for n in ("r1", "r2")}
    _send_one(ns, "a", "10.99.0.3", "10.99.0.1", "862", "10.99.0.2", mode)
    frames = {n: ns.counter(n, ifs[n]) - before[n] for n in ("r1", "r2")}
    reflected = {"r1": _reflected(r1), "r2": _reflected(r2)}
    assert reflected["r1"] <= 1 and reflected["r2"] <= 1, reflected
    assert sum(frames.values()) <= 2 + 4, frames  # the replies and a few ARP frames at most


# One packet sent from namespace "a" with the source address and port of a reflector (a raw
# socket), or from its own address with a Return Path TLV naming one: T1 now, SSID 1.
INJECT = textwrap.dedent("""
    import ipaddress, socket, struct, sys, time
    from stamp_suite.sender.engine import SenderConfig, SessionSender
    from stamp_suite.sender.events import Transmit
    from stamp_suite.tlvs import ReturnPath
    src, sport, dst, dport, auth, return_address = (sys.argv[1], int(sys.argv[2]), sys.argv[3],
                                                    int(sys.argv[4]), sys.argv[5] == "A", sys.argv[6])
    tlvs = (ReturnPath(return_address=ipaddress.ip_address(return_address)),) if return_address != "-" else ()
    cfg = SenderConfig(authenticated=auth, key=bytes.fromhex("{key}") if auth else None, ssid=1, tlvs=tlvs)
    payload = bytes(SessionSender(cfg).stamp(Transmit(0), time.time_ns(), 0).data)
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(ip + udp, (dst, 0))
""").format(key=KEY)

# A reflector of another implementation, as RFC 8762 §4.3.1 describes one (open, stateless):
# its own Sequence Number, T3 and Error Estimate, the SSID, T2, the sender's first 14 octets
# copied, its TTL; or an echo service that returns every datagram as it came.
FOREIGN = textwrap.dedent("""
    import signal, socket, struct, sys, time
    addr, port, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    s.settimeout(0.2)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening on", addr, port, flush=True)
    sent = 0
    try:
        while True:
            try:
                data, peer = s.recvfrom(65535)
            except socket.timeout:
                continue
            if kind == "copy" and len(data) >= 14:
                now = time.time_ns()
                ntp = (((now // 10**9) + 2208988800) << 32) | (((now % 10**9) << 32) // 10**9)
                data = (data[:4] + struct.pack("!QH", ntp, 1) + data[14:16] + struct.pack("!Q", ntp)
                        + data[:14] + bytes(2) + bytes([64]) + bytes(3) + data[44:])
            s.sendto(data, peer)
            sent += 1
    finally:
        print(f"Packets reflected: {sent}", flush=True)
""")

# (name, r1's flags, r2's flags or "copy"/"echo" for a foreign one, mode, how the packet comes in)
PAIRS = [
    ("open NTP/NTP, spoofed source", [], [], "O", "spoof"),
    ("open NTP/PTP, spoofed source", [], ["-K", "PTP"], "O", "spoof"),
    ("open PTP/NTP, Return Address through an allow-list", ["-K", "PTP", "--return-address-allow", "10.99.0.2/32"],
     [], "O", "return"),
    ("authenticated NTP/PTP, a replayed packet", [], ["-K", "PTP"], "A", "spoof"),
    ("authenticated PTP/PTP, Return Address", ["-K", "PTP"], ["-K", "PTP"], "A", "return"),
    ("ours and a copying reflector", [], "copy", "O", "spoof"),
    ("ours and an echo service", [], "echo", "O", "spoof"),
]


def test_no_pair_of_reflectors_exchanges_more_than_a_handful(ns):
    """Every pair above at once, each on its own port: one packet from outside to r1, every
    packet either side sends in the next 3 s counted (by the processes, and by the kernel)."""
    for name in ("sw", "r1", "r2", "a"):
        ns.add(name)
    ns.run_in("sw", ["ip", "link", "add", "br0", "type", "bridge"], check=True)
    ns.run_in("sw", ["ip", "link", "set", "br0", "up"], check=True)
    ifs = {}
    for name, addr in (("r1", "10.99.0.1/24"), ("r2", "10.99.0.2/24"), ("a", "10.99.0.3/24")):
        ifs[name], peer = ns.link(name, addr, "sw")
        ns.ip("sw", "link", "set", peer, "master", "br0")
    procs = []
    for i, (_, flags1, flags2, mode, _) in enumerate(PAIRS):
        port = str(21100 + i)
        auth = ["-A", "A", "--hmac-key", KEY] if mode == "A" else []
        r1 = _start(ns, "r1", "-S", "10.99.0.1", "-o", port, *flags1, *auth)
        if isinstance(flags2, str):
            r2 = ns.popen("r2", [sys.executable, "-c", FOREIGN, "10.99.0.2", port, flags2],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert "listening on" in r2.stdout.readline(), r2.stderr.read()
        else:
            r2 = _start(ns, "r2", "-S", "10.99.0.2", "-o", port, *flags2, *auth)
        procs.append((r1, r2))
    before = {n: ns.counter(n, ifs[n]) for n in ("r1", "r2")}
    for i, (_, _, _, mode, how) in enumerate(PAIRS):
        port = str(21100 + i)
        if how == "spoof":  # from r2's reflector port, to r1's
            args = ["10.99.0.2", port, "10.99.0.1", port, mode, "-"]
        else:  # from the outsider, asking r1 to answer r2's reflector
            args = ["10.99.0.3", port, "10.99.0.1", port, mode, "10.99.0.2"]
        res = ns.run_in("a", [sys.executable, "-c", INJECT, *args])
        assert res.returncode == 0, res.stderr
    time.sleep(3)
    frames = sum(ns.counter(n, ifs[n]) - before[n] for n in ("r1", "r2"))
    counts = {name: (_reflected(r1), _reflected(r2)) for (name, *_), (r1, r2) in zip(PAIRS, procs)}
    for name, (a, b) in counts.items():
        assert a <= 2 and b <= 2 and a + b >= 1, (name, counts)
    assert frames <= 4 * len(PAIRS) + 6, (frames, counts)  # the replies and a few ARP frames at most
