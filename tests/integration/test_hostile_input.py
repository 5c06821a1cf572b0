"""40,000 hostile datagrams at a running reflector; a flood of distinct clients at the engine."""

import json
import random
import socket
import struct
import subprocess
import sys
import time

import pytest
from helpers import CMD, ENV, ReflectorProcess, free_tcp_port, json_lines, scrape, send, wait_for

BOTH_PATHS = pytest.mark.usefixtures("reflector_io")  # a test of traffic: on both socket paths (tests/conftest.py)

KEY_HDR = struct.Struct("!BBH")


def hostile(rng: random.Random, base: bytes) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:  # random length 0..9000, random content
        return rng.randbytes(rng.randrange(9001))
    if kind == 1:  # truncated valid packet
        return base[:rng.randrange(len(base))]
    if kind == 2:  # valid header, hostile TLV lengths
        return base[:44] + b"".join(KEY_HDR.pack(rng.randrange(256), rng.randrange(1, 12), rng.randrange(65536))
                                    + rng.randbytes(rng.randrange(24)) for _ in range(rng.randrange(1, 5)))
    if kind == 3:  # Return Path with nested, mis-sized sub-TLVs
        subs = b"".join(KEY_HDR.pack(0x80, rng.randrange(0, 6), rng.choice([0, 2, 4, 5, 16, 17, 300]))
                        + rng.randbytes(rng.choice([0, 4, 16])) for _ in range(rng.randrange(1, 6)))
        return base[:44] + KEY_HDR.pack(0x80, 10, len(subs)) + subs
    if kind == 4:  # HMAC TLV in every position
        tlvs = [KEY_HDR.pack(0x80, 4, 4) + bytes(4), KEY_HDR.pack(0x80, 1, 8) + bytes(8),
                KEY_HDR.pack(0x80, 5, 12) + bytes(12)]
        tlvs.insert(rng.randrange(len(tlvs) + 1), KEY_HDR.pack(0x80, 8, 16) + rng.randbytes(16))
        return base[:44] + b"".join(tlvs)
    data = bytearray(base)  # bit flips
    for _ in range(rng.randrange(1, 10)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


@BOTH_PATHS
def test_hostile_datagrams_are_all_counted_and_the_reflector_still_reflects():
    rng = random.Random(7)
    base = bytes.fromhex("00000001e93c7f00800000000001") + bytes(30) + bytes.fromhex("80040004b8000000")
    mport = free_tcp_port()
    total = 20_000  # per socket path
    with ReflectorProcess("--metrics", "--metrics-addr", f"127.0.0.1:{mport}", "--verify-tlv-hmac",
                          "--hmac-key", "00" * 16, "--stateful-reflector") as refl:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # replies we do not read
        sent = 0
        for chunk in range(0, total, 1000):
            for _ in range(1000):
                s.sendto(hostile(rng, base), (refl.host, refl.port))
                sent += 1
            # pace on the reflector's own count, so the kernel never drops for lack of buffer
            assert wait_for(lambda: scrape(mport)[("stamp_reflector_packets_received_total", ())] >= sent, 30)
        s.close()
        m = scrape(mport)
        received = m[("stamp_reflector_packets_received_total", ())]
        reflected = m[("stamp_reflector_packets_reflected_total", ())]
        dropped = {dict(k[1])["reason"]: v for k, v in m.items() if k[0] == "stamp_reflector_packets_dropped_total"}
        assert received == total
        assert reflected + sum(dropped.values()) == total
        assert not any(r.startswith("internal_error") for r in dropped)
        assert dropped.get("short_packet", 0) > 0 and dropped.get("error_estimate_invalid", 0) > 0
        res = send(refl, count=3)
        assert res.returncode == 0 and "Packets received: 3" in res.stdout
        print(f"\n{total:,} hostile datagrams: reflected {reflected:.0f}, dropped by reason "
              f"{json.dumps(dropped, sort_keys=True)}")


@pytest.mark.alone  # no loss under a flood: a figure of capacity
def test_a_flood_of_dropped_packets_takes_no_session_from_a_legitimate_sender():
    """issue 34: 9,216-octet packets of 2,290 TLVs (dropped as too_many_tlvs) from many
    source ports filled the session table; a legitimate stateful session was evicted and lost
    packets.  Now a dropped packet makes no session: its numbering runs unbroken."""
    mport = free_tcp_port()
    bomb = bytes.fromhex("00000001e93c7f00800000000001") + bytes(30) + bytes.fromhex("80010000") * 2293
    with ReflectorProcess("--stateful-reflector", "--max-sessions", "20", "--workers", "1",
                          "--metrics", "--metrics-addr", f"127.0.0.1:{mport}") as refl:
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(200)]
        sender = subprocess.Popen([*CMD, "-r", refl.host, "-p", str(refl.port), "-c", "100", "-d", "10",
                                   "--output-format", "json", "-R"], stdout=subprocess.PIPE, text=True, env=ENV)
        try:
            while sender.poll() is None:
                for s in sockets:  # 200 spoofed clients, each a new session to a naive reflector
                    s.sendto(bomb, (refl.host, refl.port))
                time.sleep(0.05)  # 4,000 packets/s: within what it drops without losing others
        finally:
            for s in sockets:
                s.close()
        out, _ = sender.communicate(timeout=30)
        m = scrape(mport)
    packets, summary = json_lines(out)
    assert summary["packets"]["lost"] == 0
    assert [p["reflector_seq"] for p in packets if p["kind"] == "sample"] == list(range(100))
    assert m[("stamp_reflector_active_sessions", ())] == 1  # the sender's, and no other
    dropped = {dict(k[1])["reason"]: v for k, v in m.items() if k[0] == "stamp_reflector_packets_dropped_total"}
    assert dropped["too_many_tlvs"] > 1000


FLOOD = """
import resource, time
from stamp_suite.reflector.engine import Reflector, ReflectorConfig
from stamp_suite.wire.datagram import Received
pkt = bytes.fromhex("00000001e93c7f00800000000001") + bytes(30)
r = Reflector(ReflectorConfig(stateful=True, max_sessions=100_000))
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
now = time.time_ns()
peaks = []
for i in range(1_000_000):
    r.reflect(Received(pkt, ("198.51.100.%d" % (i >> 16), i & 0xFFFF), 64, 0, None, None, now), now + i)
    if i % 250_000 == 249_999:
        peaks.append(rss())
print(r.counters.active_sessions, r.counters.sessions_evicted, " ".join("%.1f" % p for p in peaks))
"""


def test_flood_of_a_million_clients_keeps_memory_bounded():
    out = subprocess.run([sys.executable, "-c", FLOOD], capture_output=True, text=True, check=True,
                         timeout=300).stdout.split()
    sessions, evicted, rss = int(out[0]), int(out[1]), [float(x) for x in out[2:]]
    assert sessions == 100_000 and evicted == 900_000
    # once the table is full (first quarter), RSS stays bounded: allocator slack, not growth
    assert rss[-1] < rss[0] * 1.3 and rss[-1] < 200, rss
    print(f"\n1,000,000 distinct clients: {sessions} sessions kept, {evicted} evicted, RSS MB by quarter {rss}")


def test_an_agentx_master_announcing_a_huge_pdu_gets_its_session_closed(tmp_path):
    """issue 34: a peer on the AgentX socket that announced a huge PDU and streamed data grew
    the process to 1.7 GB.  Now a PDU over agentx.MAX_PAYLOAD closes the session (counted,
    said once) and nothing beyond it is read."""
    import threading

    from stamp_suite.observability import agentx as ax
    from stamp_suite.observability.snmp import SubAgent
    path = str(tmp_path / "master")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    streamed: list[int] = []

    def hostile_master() -> None:
        conn, _ = server.accept()
        with conn:
            for _ in range(2):  # answer Open (session 1) and Register
                header = ax.parse_header(conn.recv(ax.HEADER_LEN, socket.MSG_WAITALL))
                conn.recv(header.payload_length, socket.MSG_WAITALL)
                reply = ax.response_pdu(header, [])
                conn.sendall(reply[:4] + (1).to_bytes(4, "big") + reply[8:])
            conn.sendall(ax.encode_pdu(ax.PduType.GET)[:16] + (100 << 20).to_bytes(4, "big"))  # 100 MB to come
            sent, chunk = 0, bytes(1 << 16)
            try:
                while sent < 100 << 20:
                    sent += conn.send(chunk)
            except OSError:  # closed by the sub-agent
                pass
            streamed.append(sent)

    master = threading.Thread(target=hostile_master, daemon=True)
    master.start()
    said = []
    agent = SubAgent(path, (1, 3, 6, 1, 4, 1, 65134, 9), lambda: [], "test", log=None)
    agent.log = type("Log", (), {"write": lambda self, text: said.append(text), "flush": lambda self: None})()
    agent.start()
    try:
        master.join(10)
        assert not master.is_alive() and streamed and streamed[0] < 100 << 20  # it stopped reading
        assert wait_for(lambda: agent.oversized_pdus == 1, 5)
        assert sum("over the 65,536 accepted" in line for line in said) == 1
    finally:
        agent.stop()
        server.close()
