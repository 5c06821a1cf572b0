"""Several reflector processes on one port: per-session state stays right, totals add up."""

import subprocess
import urllib.request

from helpers import CMD, ENV, ReflectorProcess, free_tcp_port, json_lines, wait_for


def test_two_workers_serve_many_senders_statefully():
    port = free_tcp_port()
    with ReflectorProcess("--workers", "2", "--stateful-reflector", "--metrics", "--metrics-addr",
                          f"127.0.0.1:{port}") as refl:
        assert "2 workers" in refl.banner
        senders = [subprocess.Popen([*CMD, "-r", refl.host, "-p", str(refl.port), "-c", "30", "-d", "2", "-L", "1",
                                     "--output-format", "json", "-R"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(6)]
        for proc in senders:
            out, err = proc.communicate(timeout=60)
            packets, summary = json_lines(out)
            assert summary["packets"]["received"] == 30, err
            # each flow stays on one worker, so its stateful numbering has no gaps
            assert [p["reflector_seq"] for p in packets] == list(range(30))
        def scrape() -> str:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        # the other worker reports its counters within a second
        assert wait_for(lambda: "stamp_reflector_packets_received_total 180.0" in scrape(), 5), scrape()
        code, out, _ = refl.stop()
    assert code == 0 and "Packets received: 180" in out and "Clients: 6" in out
