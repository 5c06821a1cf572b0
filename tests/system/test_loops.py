"""No packet may start a reflection loop (security issue: reflection loops).

In network namespaces made by the test: one packet from outside, sent from a reflector's
port with a Return Path that points a reflector at itself or at another reflector, makes
at most one packet from each of our reflectors, open or authenticated; every packet the
reflectors send in the next 3 s is counted, by the reflectors and by the kernel.
"""

from __future__ import annotations

import re
import signal
import sys
import textwrap
import time

import pytest

from netns import Namespaces

KEY = "00112233445566778899aabbccddeeff"
# One packet, built with the project's own sender engine (the bytes are checked elsewhere):
# SSID 1, a Return Path TLV with a Return Address, signed in authenticated mode.
SEND_ONE = textwrap.dedent("""
    import ipaddress, socket, sys
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
    time.sleep(3)
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
    time.sleep(3)
    frames = {n: ns.counter(n, ifs[n]) - before[n] for n in ("r1", "r2")}
    reflected = {"r1": _reflected(r1), "r2": _reflected(r2)}
    assert reflected["r1"] <= 1 and reflected["r2"] <= 1, reflected
    assert sum(frames.values()) <= 2 + 4, frames  # the replies and a few ARP frames at most


SPOOF = textwrap.dedent("""
    import socket, struct, sys
    src, sport, dst, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    # A test packet whose T1 is no time at all (zero): a sender that pads with junk
    payload = bytes.fromhex("00000001" "0000000000000000" "0001" "0000") + bytes(28)
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(ip + udp, (dst, 0))
""")


def test_accept_nonzero_mbz_still_ends_a_loop_between_reflectors_on_other_ports(ns):
    """With --accept-nonzero-mbz on both, on ports other than 862 and each other's, one packet
    spoofed from one reflector to the other: the second reply already carries two timestamps
    near the clock, and is refused."""
    ns.add("r1")
    r1 = _start(ns, "r1", "-S", "127.0.0.1", "-o", "21040", "--accept-nonzero-mbz")
    r2 = _start(ns, "r1", "-S", "127.0.0.2", "-o", "21041", "--accept-nonzero-mbz")
    res = ns.run_in("r1", [sys.executable, "-c", SPOOF, "127.0.0.2", "21041", "127.0.0.1", "21040"])
    assert res.returncode == 0, res.stderr
    time.sleep(3)
    assert _reflected(r1) + _reflected(r2) <= 2
