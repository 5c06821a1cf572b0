"""flows = N: one target measured over N flows (source ports), so that one dead member of an
ECMP group or a LAG is one flow down, not a little loss on an average."""

from __future__ import annotations

import json
import random
import select
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

from helpers import CMD, ENV, by_label, free_tcp_port, scrape, scrape_when_serving, wait_for

from stamp_suite.api import start_reflector


class DeadMember:
    """A forwarder to ``upstream`` that loses everything from one source port: an ECMP member
    (a hash of the flow picks it) that blackholes."""

    def __init__(self, upstream: tuple[str, int], dead_port: int) -> None:
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.address = self.front.getsockname()
        self.upstream, self.dead_port = upstream, dead_port
        self.backs: dict[tuple[str, int], socket.socket] = {}  # one per flow, as each source port is a flow
        self.lost = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.front, *self.backs.values()], [], [], 0.1)
            for s in ready:
                data, peer = s.recvfrom(4096)
                if s is not self.front:  # a reply: back to the flow it belongs to
                    client = next(c for c, b in self.backs.items() if b is s)
                    self.front.sendto(data, client)
                elif peer[1] == self.dead_port:
                    self.lost += 1
                else:
                    if peer not in self.backs:
                        self.backs[peer] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        self.backs[peer].connect(self.upstream)
                    self.backs[peer].send(data)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        for s in (self.front, *self.backs.values()):
            s.close()


def _free_ports(n: int) -> int:
    """The first of ``n`` consecutive UDP ports free now on 127.0.0.1 (from a random start: two
    tests looking at once would otherwise find the same ones)."""
    start = random.randrange(20000, 30000)
    for base in range(start, 60000, 97):
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


def test_a_dead_flow_of_four_is_one_flow_down(tmp_path):
    mport, first = free_tcp_port(), _free_ports(4)
    with start_reflector() as refl:
        member = DeadMember(refl.address, dead_port=first + 2)  # flow 3
        try:
            cfg = tmp_path / "t.toml"
            cfg.write_text(f'[monitor]\nwindows = [1]\nmetrics_addr = "127.0.0.1:{mport}"\njsonl = "-"\n'
                           '[defaults]\nsend_delay = 100\ntimeout = 0.3\n'
                           f'[[targets]]\nname = "fra1"\nremote_addr = "127.0.0.1"\nremote_port = {member.address[1]}\n'
                           f'local_addr = "127.0.0.1"\nlocal_port = {first}\nflows = 4\nlabels = {{ site = "fra" }}\n')
            mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=ENV)
            try:
                def up() -> dict[str, float]:  # fra1 is the only target: flow -> up
                    return by_label(scrape_when_serving(mport), "stamp_monitor_target_up", "flow")
                assert wait_for(lambda: up() == {"1": 1, "2": 1, "3": 0, "4": 1}, 10), up()
                m = scrape(mport)
                lost = by_label(m, "stamp_sender_packets_lost_total", "flow")
                received = by_label(m, "stamp_sender_packets_received_total", "flow")
                assert lost["3"] > 0 and received["3"] == 0
                assert all(lost[f] == 0 and received[f] > 0 for f in "124")
                assert all(dict(labels)["site"] == "fra" for (name, labels) in m if "target" in dict(labels))
            finally:
                mon.terminate()
                out, err = mon.communicate(timeout=10)
        finally:
            member.close()
    assert set(member.backs) == {("127.0.0.1", first + k) for k in (0, 1, 3)}  # the flows' own source ports
    windows = [json.loads(line) for line in out.splitlines()]
    assert {(w["target"], w["flow"]) for w in windows} == {("fra1", k) for k in (1, 2, 3, 4)}
    assert "target 'fra1#3' is down" in err and "fra1#1' is down" not in err, err


def test_a_local_port_another_program_holds_is_refused_even_if_it_shares_ports():
    """A fixed local port is bound shareable (a reload's new session takes it before the old one
    stops); a port another program holds, even with SO_REUSEPORT, is refused, not split."""
    first = _free_ports(1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other, start_reflector() as refl:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as another monitor's would be
        other.bind(("127.0.0.1", first))
        cfg = Path(tempfile.mkdtemp()) / "t.toml"
        cfg.write_text(f'[[targets]]\nname = "a"\nremote_addr = "127.0.0.1"\nremote_port = {refl.address[1]}\n'
                       f'local_addr = "127.0.0.1"\nlocal_port = {first}\n')
        res = subprocess.run([*CMD, "monitor", "--config", str(cfg)], capture_output=True, text=True, env=ENV,
                             timeout=20)
    assert res.returncode != 0 and res.stderr.count("\n") == 1, res.stderr
    assert f"target 'a': local port {first} on 127.0.0.1: Address already in use" in res.stderr
