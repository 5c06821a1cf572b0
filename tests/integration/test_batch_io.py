"""The two socket paths agree: recvmmsg/sendmmsg (the C extension) and the standard socket
module read the same datagrams with the same metadata, and a reflector on either sends the
same replies, byte for byte but for its timestamps (T2, T3)."""

from __future__ import annotations

import errno
import random
import socket
import threading
import time

import pytest
from ci import require
from helpers import wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from make_corpus import seeds

from stamp_suite.net import udp
from stamp_suite.reflector.engine import Reflector, ReflectorConfig
from stamp_suite.reflector.server import ReflectorServer

SEEDS = [s for s in seeds().values() if len(s) >= 14]


@pytest.fixture(scope="module", autouse=True)
def batched_path_built():
    require(udp._MmsgBatch is not None, "the C extension (stamp_suite.net._mmsg) is not built")


def endpoint(batch: bool, host: str = "127.0.0.1", port: int = 0) -> udp.UdpEndpoint:
    ep = udp.UdpEndpoint(host, port, batch=batch)
    ep.setblocking(False)
    assert (ep._mmsg is not None) == batch
    return ep


def drain(ep: udp.UdpEndpoint, want: int, timeout: float = 2.0) -> list[tuple]:
    got, end = [], time.monotonic() + timeout
    while len(got) < want and time.monotonic() < end:
        try:
            got += ep.recv_batch()
        except BlockingIOError:
            time.sleep(0.001)
    return got


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.binary(max_size=1500), st.sampled_from([0, 0x28, 0xb8, 0x01])), min_size=1,
                max_size=40))
def test_both_paths_read_the_same_datagrams_and_metadata(datagrams):
    batched, plain = endpoint(True), endpoint(False)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for data, tos in datagrams:
            client.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
            for ep in (batched, plain):
                client.sendto(data, ep.local)
        seen = [drain(ep, len(datagrams)) for ep in (batched, plain)]
        # (data, source, ttl, tos, destination, kernel_ns, user_ns, truncated): times differ
        a, b = ([(d, src, ttl, tos, dst, k is not None, trunc) for d, src, ttl, tos, dst, k, _, trunc in s]
                for s in seen)
        assert a == b and len(a) == len(datagrams)
        assert [x[0] for x in a] == [d for d, _ in datagrams] and [x[3] for x in a] == [t for _, t in datagrams]
    finally:
        for s in (batched, plain, client):
            s.close()


def mutated(rng: random.Random) -> bytes:
    data = bytearray(rng.choice(SEEDS))
    for _ in range(rng.randrange(4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2**32), st.sampled_from(["127.0.0.1", "::"]))
def test_a_reflector_on_either_path_sends_the_same_replies(seed, host):
    batched, plain = replies_on_both_paths(seed, host)
    assert batched == plain


def test_the_comparison_compares_something():
    batched, plain = replies_on_both_paths(0, "127.0.0.1")
    assert len(batched) > 10 and batched == plain


def replies_on_both_paths(seed: int, host: str) -> list[list[bytearray]]:
    rng = random.Random(seed)
    datagrams = [mutated(rng) for _ in range(rng.randrange(1, 48))]
    replies = []
    loopback = "::1" if host == "::" else "127.0.0.1"
    client = socket.socket(socket.AF_INET6 if host == "::" else socket.AF_INET, socket.SOCK_DGRAM)
    client.bind((loopback, 0))  # one client for both: the Location TLV reports its port
    client.settimeout(0.1)
    port = 0  # both reflectors on one port too: the Location TLV reports that as well
    for batch in (True, False):
        ep = endpoint(batch, host, port)
        port = ep.local[1]
        server = ReflectorServer(Reflector(ReflectorConfig(member_link_id=3)), ep)
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        try:
            for d in datagrams:  # all at once: the batched path reads several per call
                client.sendto(d, (loopback, ep.local[1]))
            got = []
            while True:
                try:
                    got.append(bytearray(client.recv(65535)))
                except TimeoutError:
                    break
        finally:
            server.stop()
            thread.join(2)
            ep.close()
        for r in got:  # T3 and T2 (open mode, RFC 8762 §4.3.1): the only octets that may differ
            r[4:12] = r[16:24] = bytes(8)
        replies.append(got)
    client.close()
    return replies


@pytest.mark.parametrize("batch", [True, False])
def test_a_reply_the_socket_cannot_send_is_counted_not_fatal(batch):
    """Review finding: a Return Address of the other family (::1 at an IPv4 reflector) raised
    out of the batched send and ended the worker.  Now a send error; the next packet is
    answered."""
    import io
    import ipaddress

    from vectors import EX_A
    ep = endpoint(batch)
    config = ReflectorConfig(return_address_allow=(ipaddress.ip_network("::/0"),))
    printed = io.StringIO()
    server = ReflectorServer(Reflector(config), ep, print_packets=True, out=printed)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(1.0)
    try:
        redirected = EX_A + bytes.fromhex("800a0014" "80020010" "00000000000000000000000000000001")  # to ::1
        client.sendto(redirected, ep.local)
        client.sendto(EX_A, ep.local)
        assert len(client.recv(2048)) == 44 and thread.is_alive()
        counters = server.engine.counters  # taken back after the group's send: wait for it
        assert wait_for(lambda: (counters.send_errors, counters.reflected) == (1, 1), 2)
        assert wait_for(lambda: len(printed.getvalue().splitlines()) == 2, 2)  # printed after the send
        lines = printed.getvalue().splitlines()  # -R says so (review finding: it said nothing)
        assert len(lines) == 2 and "to [::1]:" in lines[0] and ": not sent (" in lines[0], lines
        assert lines[1].endswith(f"to 127.0.0.1:{client.getsockname()[1]}")
    finally:
        server.stop()
        thread.join(2)
        ep.close()
        client.close()


@pytest.mark.parametrize("batch", [True, False])
def test_t3_is_taken_right_before_the_send_in_a_burst(batch):
    """Review finding: one T3 for a whole batch left the last replies' T3 100-250 us before
    they left.  Bursts of 32 packets: the clock is read again for every group of replies sent
    together (SEND_GROUP on the batched path, one reply on the plain one), so a burst's replies
    carry at least 32 / SEND_GROUP distinct T3s, in the order they were sent (a structural
    check: how early a T3 is in microseconds depends on this machine's load)."""
    from vectors import EX_A

    from stamp_suite.reflector.server import SEND_GROUP
    ep = endpoint(batch)
    server = ReflectorServer(Reflector(ReflectorConfig()), ep)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(1.0)
    distinct = []
    try:
        for _ in range(10):
            for _ in range(32):
                client.sendto(EX_A, ep.local)
            t3s = [int.from_bytes(client.recv(2048)[4:12], "big") for _ in range(32)]
            assert t3s == sorted(t3s)
            distinct.append(len(set(t3s)))
            time.sleep(0.01)
    finally:
        server.stop()
        thread.join(2)
        ep.close()
        client.close()
    groups = 32 // SEND_GROUP if batch else 32
    assert min(distinct) >= groups, distinct  # a batch's 32 datagrams come in at least one read


@pytest.mark.parametrize("batch", [True, False])
def test_a_reply_leaves_from_the_source_it_names_packed_or_text(batch):
    """A wildcard-bound socket sends each reply from the address it names (4/16 octets, as the
    kernel reports a destination, or text); one of the other family is refused (EAFNOSUPPORT;
    the plain path once pinned its first four octets), and the replies after it still leave."""
    ep = endpoint(batch, "0.0.0.0")
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(1.0)
    to = client.getsockname()
    try:
        failed = ep.send_batch([(b"packed", to, bytes([127, 0, 0, 2]), None), (b"text", to, "127.0.0.3", None),
                                (b"other family", to, "::1", None), (b"unpinned", to, None, 0x28)])
        assert [(i, e.errno) for i, e in failed] == [(2, errno.EAFNOSUPPORT)]
        got = dict(client.recvfrom(64) for _ in range(3))
        assert {data: addr[0] for data, addr in got.items()} == {
            b"packed": "127.0.0.2", b"text": "127.0.0.3", b"unpinned": "127.0.0.1"}
    finally:
        ep.close()
        client.close()


def test_a_datagram_carries_one_receive_timestamp():
    """SO_TIMESTAMPING (asked for TX timestamps) would add a second receive timestamp
    (SCM_TIMESTAMPING, 48 octets) to every datagram beside SO_TIMESTAMPNS's: a copy per packet
    for nothing.  Where the kernel has SOF_TIMESTAMPING_OPT_RX_FILTER (6.12+), it is filtered;
    TX timestamps still come."""
    from stamp_suite.net import options as o
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client.setsockopt(o.SOL_SOCKET, o.SO_TIMESTAMPING, o.SOF_TIMESTAMPING_OPT_RX_FILTER)
    except OSError:
        client.close()
        require(False, "this kernel has no SOF_TIMESTAMPING_OPT_RX_FILTER")
    ep = udp.UdpEndpoint("127.0.0.1", 0)
    try:
        client.sendto(b"x" * 44, ep.local)
        _, ancillary, _, _ = ep.sock.recvmsg(64, 1024)
        assert [(level, kind) for level, kind, _ in ancillary if level == o.SOL_SOCKET] == [
            (o.SOL_SOCKET, o.SO_TIMESTAMPNS)]
        key = ep.send(b"y" * 44, client.getsockname(), None, None, True)
        assert key is not None and wait_for(lambda: list(ep.read_tx_timestamps()), 1)
    finally:
        ep.close()
        client.close()


def test_the_extension_speaks_the_api_this_module_expects():
    """An extension built from an older source (an editable install not rebuilt) takes other
    arguments: udp.py uses it only when its API_VERSION is the one it was written for."""
    assert udp._mmsg.API_VERSION == udp.MMSG_API_VERSION and not udp._STALE


def odd_replies(host: str, port: int) -> list[tuple]:
    """Replies no reflector makes, each a way to be wrong: (name, reply)."""
    return [("nul", (b"nul", (host + "\x00junk", port), None, None)),
            ("wrapped", (b"wrapped", (host, port + 2**32), None, None)),
            ("huge", (b"huge", (host, 2**70), None, None)),
            ("port text", (b"port text", (host, "1"), None, None)),
            ("list", (b"list", [host, port], None, None)),
            ("tos 256", (b"tos 256", (host, port), None, 256)),
            ("tos -1", (b"tos -1", (host, port), None, -1)),
            ("text data", ("text data", (host, port), None, None)),
            ("no data", (None, (host, port), None, None))]


def odd_replies_outcome(batch: bool, family: int) -> tuple[list, list]:
    """send_batch of a good reply, then each odd one followed by a good one, then a short
    tuple: (failed index and errno, datagrams that arrived)."""
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    ep = endpoint(batch, "::" if family == socket.AF_INET6 else "0.0.0.0")
    client = socket.socket(family, socket.SOCK_DGRAM)
    client.bind((host, 0))
    client.settimeout(0.3)
    port = client.getsockname()[1]
    replies = [(b"first", (host, port), None, None)]
    for name, reply in odd_replies(host, port):
        replies += [reply, (b"after " + name.encode(), (host, port), b"", None)]
    replies.append((b"short",))
    try:
        failed = [(i, e.errno) for i, e in ep.send_batch(replies)]
        got = []
        with pytest.raises(TimeoutError):
            while True:
                got.append(client.recv(64))
    finally:
        ep.close()
        client.close()
    return failed, got


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_both_paths_refuse_the_same_odd_replies_and_send_the_rest(family):
    """Review findings: the C send cut a port past 2^31 to 32 bits and a host at an embedded
    NUL, sending those replies to another port or host, and raised (every reply of the call
    lost) on others that the plain path fails one by one.  Now the batched send leaves every
    reply it cannot send as given to the plain path: the same replies fail with the same errors,
    and every other one leaves, in order."""
    batched, plain = odd_replies_outcome(True, family), odd_replies_outcome(False, family)
    assert batched == plain
    failed, got = batched
    names = [name for name, _ in odd_replies("", 0)]
    bad = {i for i, _ in failed}
    assert bad >= {1 + 2 * k for k, name in enumerate(names) if name != "tos -1"}  # tos -1: the kernel's call
    assert len(names) * 2 + 1 in bad and all(i % 2 for i in bad)  # the short one; no good reply failed
    assert got[0] == b"first" and [g for g in got if g.startswith(b"after")] == [
        b"after " + name.encode() for name in names]
    assert all(errno_ in (errno.EINVAL, errno.EAFNOSUPPORT) for _, errno_ in failed), failed


@pytest.mark.parametrize("batch", [True, False])
def test_every_datagram_read_has_every_field_of_received(batch):
    """Received is built with tuple.__new__ on the plain path and as a plain tuple in C: each
    has every field, in Received's order (the reflector unpacks them by position)."""
    ep = endpoint(batch)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    try:
        client.sendto(b"x" * 44, ep.local)
        (rx,) = drain(ep, 1)
        assert len(rx) == len(udp.Received._fields)
        fields = udp.Received(*rx)
        assert (fields.data, fields.source, fields.ttl, fields.destination, fields.truncated) == (
            b"x" * 44, client.getsockname(), 64, bytes([127, 0, 0, 1]), False)
        assert fields.kernel_ns is not None and fields.user_ns >= fields.kernel_ns
    finally:
        ep.close()
        client.close()


@pytest.mark.parametrize("batch", [True, False])
def test_datagrams_the_kernel_drops_unread_are_counted_and_said(batch, capsys):
    """A flood into a receive buffer of a few datagrams, before the worker reads any: the kernel
    drops the rest (never received, so in no other count).  The reflector's counters say how
    many while it runs (SO_MEMINFO, read every second), its log says it once, and its
    Prometheus series and totals say it after the stop."""
    from vectors import EX_A

    from stamp_suite.observability.metrics import ReflectorCollector
    from stamp_suite.reflector.service import format_totals
    ep = udp.UdpEndpoint("127.0.0.1", 0, rcvbuf=2048, batch=batch)
    if not ep.caps.dropped_unread:
        pytest.skip("this platform does not count a socket's drops")
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(300):
        client.sendto(EX_A, ep.local)
    server = ReflectorServer(Reflector(ReflectorConfig()), ep)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        counters = server.engine.counters
        assert wait_for(lambda: counters.received > 0 and counters.dropped_unread + counters.received == 300, 3)
    finally:
        server.stop()
        thread.join(5)
        client.close()
        ep.close()
    assert counters.dropped_unread > 0 and counters.dropped_unread + counters.received == 300
    assert counters.dropped_total == 0  # the engine's drops: none, it never saw them
    said = [line for line in capsys.readouterr().err.splitlines() if "before the reflector read them" in line]
    assert len(said) == 1 and said[0].startswith(f"stamp-suite: {counters.dropped_unread} datagrams dropped")

    class Service:  # what ReflectorCollector and format_totals read of a ReflectorService
        started_ns = 0
        sessions = staticmethod(lambda: [])
    Service.counters = counters
    collector = ReflectorCollector(Service())
    family = {m.name: m for m in collector.collect()}["stamp_reflector_dropped_unread"]
    assert family.samples[0].value == counters.dropped_unread
    collector.counts_dropped_unread = False  # as on a platform that does not count them: no series, not a 0
    assert "stamp_reflector_dropped_unread" not in {m.name for m in collector.collect()}
    assert f"Never read, dropped by this host's kernel: {counters.dropped_unread} " in format_totals(Service())
