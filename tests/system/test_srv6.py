"""RFC 9503 Return Path over SRv6, for real: three network namespaces (sender S, reflector R,
SRv6 endpoint E) joined S-R, R-E and E-S.  Asked for the segment list [E, S], the reflector
sends its replies with a Segment Routing Header, so they reach S through E (E's counters
grow by the reply count, and they arrive with one hop less); without it they take the
direct link.  Every address is in fd00::/8 and inside these namespaces: a packet with an
SRH goes to its first segment, so no segment outside them is ever named.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from netns import Namespaces

pytestmark = pytest.mark.system

S_ADDR, R_ADDR, E_SID = "fd00:1::1", "fd00:1::2", "fd00:2::2"
REPLIES = 10
WARM_UP = 1


@pytest.fixture(scope="module")
def triangle():
    with Namespaces() as ns:
        for name in "SRE":
            ns.add(name, ipv6=True)
        ns.link("S", f"{S_ADDR}/64", "R", f"{R_ADDR}/64")  # vSR - vRS: the direct path
        ns.link("R", "fd00:2::1/64", "E", f"{E_SID}/64")  # vRE - vER
        ns.link("E", "fd00:3::1/64", "S", "fd00:3::2/64")  # vES - vSE
        ns.ip("E", "route", "add", "fd00:1::/64", "via", "fd00:3::2")  # E reaches S's address over E-S
        ns.sysctl("E", "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.all.seg6_enabled=1",
                  "net.ipv6.conf.vER.seg6_enabled=1")
        # A host drops a packet with an SRH unless seg6 is enabled where it comes in (RFC 8754 §4.3).
        ns.sysctl("S", "net.ipv6.conf.all.seg6_enabled=1", "net.ipv6.conf.vSE.seg6_enabled=1")
        reflector = ns.stamp("R", "-i", "-S", "::", "-o", "862", "--workers", "1",
                             "--return-srv6-allow", "fd00:2::/64")
        banner = reflector.stdout.readline()
        assert "listening" in banner, reflector.stderr.read()
        for flags in ([], ["--return-srv6-sids", f"{E_SID},{S_ADDR}"]):  # neighbour discovery done first
            measure(ns, *flags, "-L", "3", count=WARM_UP)
        yield ns
        reflector.terminate()
        out, err = reflector.communicate(timeout=10)
        assert reflector.returncode == 0, err
        assert f"srv6_imposed {WARM_UP + REPLIES + 100}" in out, out  # the reflector's own count


def measure(ns: Namespaces, *flags: str, count: int = REPLIES) -> tuple[list[dict], dict[str, int]]:
    """Run the sender in S; return its JSON packets and how many packets E forwarded."""
    before = {i: ns.counter("E", i, "rx_packets") for i in ("vER", "vES")} | {"vES_tx": ns.counter("E", "vES")}
    res = ns.run_in("S", [sys.executable, "-m", "stamp_suite", "-r", f"[{R_ADDR}]:862", "-c", str(count), "-d", "20",
                          "-L", "1", "-R", "--output-format", "json", *flags])  # a later -L wins
    assert res.returncode == 0, res.stderr
    packets = [json.loads(line) for line in res.stdout.splitlines() if '"type": "packet"' in line]
    return packets, {"E_in": ns.counter("E", "vER", "rx_packets") - before["vER"],
                     "E_out": ns.counter("E", "vES") - before["vES_tx"]}


def test_replies_follow_the_segment_list_through_the_endpoint(triangle):
    direct, e_direct = measure(triangle)
    assert len(direct) == REPLIES and {p["reply_ttl"] for p in direct} == {64}
    # none of the replies went near E (its counters also see neighbour discovery: a packet or two)
    assert e_direct["E_in"] <= 2 and e_direct["E_out"] <= 2, e_direct

    routed, e_routed = measure(triangle, "--return-srv6-sids", f"{E_SID},{S_ADDR}")
    assert len(routed) == REPLIES
    assert all(p["tlv"]["return_path"] == {"honoured": True, "followed": ["srv6_segment_list"]} for p in routed)
    assert {p["reply_ttl"] for p in routed} == {63}  # one hop more: E forwarded them
    # every reply went in at E and out towards S (neighbour discovery may add a packet or two)
    assert REPLIES <= e_routed["E_in"] <= REPLIES + 2 and REPLIES <= e_routed["E_out"] <= REPLIES + 2, e_routed


def test_the_header_is_on_that_sessions_replies_only(triangle):
    """Two sessions at once on the reflector's one socket: the SRH is set for one send and
    cleared, so the plain session's replies never take the segment list."""
    def sender(*flags):
        return triangle.popen("S", [sys.executable, "-m", "stamp_suite", "-r", f"[{R_ADDR}]:862", "-c", "100",
                                    "-d", "2", "-L", "1", "-R", "--output-format", "json", *flags],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    routed, plain = sender("--return-srv6-sids", E_SID), sender()
    results = {}
    for name, proc in (("routed", routed), ("plain", plain)):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results[name] = [json.loads(line) for line in out.splitlines() if '"type": "packet"' in line]
    assert {p["reply_ttl"] for p in results["routed"]} == {63} and len(results["routed"]) == 100
    assert {p["reply_ttl"] for p in results["plain"]} == {64} and len(results["plain"]) == 100
