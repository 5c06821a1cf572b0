"""Prometheus: scrape /metrics over HTTP while traffic flows."""

import socket
import subprocess
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from helpers import CMD, ENV, ReflectorProcess, run, send, wait_for


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port, monitors=None):
    """Samples as {(name, sorted labels): value}.  A monitor's ``monitor`` label (its vantage
    point) is left out of the keys, after checking that one endpoint has one; ``monitors``
    (a set) collects the values seen."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values, seen = {}, set()
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            labels = dict(smp.labels)
            if "monitor" in labels:
                seen.add(labels.pop("monitor"))
            values[(smp.name, tuple(sorted(labels.items())))] = smp.value
    assert len(seen) <= 1, seen
    if monitors is not None:
        monitors.update(seen)
    return values


def test_reflector_counters_move_by_exactly_the_packets_sent():
    port = free_tcp_port()
    with ReflectorProcess("--metrics", "--metrics-addr", f"127.0.0.1:{port}") as refl:
        before = scrape(port)
        assert before[("stamp_reflector_packets_received_total", ())] == 0
        assert ("stamp_build_info", (("python", before_python(before)), ("version", "0.1.0"))) in before
        send(refl, "--cos", count=20)
        m = scrape(port)
        assert m[("stamp_reflector_packets_received_total", ())] == 20
        assert m[("stamp_reflector_packets_reflected_total", ())] == 20
        assert m[("stamp_reflector_tlvs_total", (("type", "4"),))] == 20
        assert m[("stamp_reflector_processing_seconds_count", ())] == 20
        assert m[("stamp_reflector_active_sessions", ())] == 1
        send(refl, "--return-path-cc", "0", count=7)
        m = scrape(port)
        assert m[("stamp_reflector_packets_received_total", ())] == 27
        assert m[("stamp_reflector_packets_dropped_total", (("reason", "return_path_no_reply"),))] == 7
        assert m[("stamp_reflector_hmac_failures_total", ())] == 0


def before_python(values):
    return next(dict(labels)["python"] for (name, labels) in values if name == "stamp_build_info")


def test_sender_metrics_during_a_run():
    port = free_tcp_port()
    with ReflectorProcess() as refl:
        proc = subprocess.Popen([*CMD, "-r", refl.host, "-p", str(refl.port), "-c", "30", "-d", "50",
                                 "--metrics", "--metrics-addr", f"127.0.0.1:{port}", "--output-format", "json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        labels = (("remote", f"{refl.host}:{refl.port}"), ("ssid", "0"))

        def sent():
            try:
                return scrape(port).get(("stamp_sender_packets_sent_total", labels), 0)
            except OSError:
                return 0
        assert wait_for(lambda: sent() >= 5, 10)
        m = scrape(port)
        assert m[("stamp_sender_packets_received_total", labels)] <= m[("stamp_sender_packets_sent_total", labels)]
        assert m[("stamp_sender_rtt_seconds_count", labels)] == m[("stamp_sender_packets_received_total", labels)]
        assert m[("stamp_sender_ttl", tuple(sorted(labels + (("end", "reflector"),))))] == 64
        assert 0 < m[("stamp_sender_last_rtt_seconds", labels)] < 1
        proc.communicate(timeout=30)
        assert proc.returncode == 0


def test_metrics_bind_failure_is_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run("-i", "-S", "127.0.0.1", "-o", "0", "--metrics", "--metrics-addr", f"127.0.0.1:{port}")
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "cannot serve metrics" in res.stderr


def _scrape_from(source: str, port: int) -> float:
    """A scrape from another loopback address (another host, as far as the server can tell);
    its duration in seconds."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=2, source_address=(source, 0)) as c:
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK") and b"stamp_reflector_packets_received_total" in data
    return time.monotonic() - t0


def test_half_open_connections_cannot_hold_the_metrics_endpoint():
    """300 clients on one host that connect and never finish their request: a scrape from
    another host still answers within 100 ms, the reflector goes on reflecting, and once the
    stale connections have waited a second, a scrape from their own host gets through too."""
    port = free_tcp_port()
    with ReflectorProcess("--metrics", "--metrics-addr", f"127.0.0.1:{port}") as refl:
        scrape(port)
        hogs = []
        for _ in range(300):
            c = socket.create_connection(("127.0.0.1", port), timeout=2)
            c.sendall(b"GET /metr")  # and nothing more
            hogs.append(c)
        times = [_scrape_from("127.0.0.2", port) for _ in range(5)]
        assert max(times) < 0.1, times
        res = send(refl, count=5)
        assert res.returncode == 0 and "Packets received: 5" in res.stdout
        time.sleep(1.2)
        assert _scrape_from("127.0.0.1", port) < 0.1  # makes room by closing a stale one
        assert scrape(port)[("stamp_reflector_packets_reflected_total", ())] == 5
        closed = 0
        for c in hogs:  # the server refused all but its per-host share, then closed stale ones
            c.settimeout(0.01)
            try:
                closed += c.recv(1) == b""
            except ConnectionResetError:
                closed += 1
            except socket.timeout:
                pass
            c.close()
        assert closed >= 300 - 16


def test_a_monitor_sized_exposition_is_rendered_in_another_process():
    """A source that renders apart (the monitor's) is answered by a child process, so the
    sending loop keeps its interpreter lock; GET and HEAD both get a whole response."""
    import os

    from stamp_suite.observability.http import serve

    class Source:
        render_apart = True

        def exposition(self) -> bytes:
            return f"stamp_renderer_pid {os.getpid()}\n".encode()

    server = serve(Source(), "127.0.0.1:0")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            body, ctype = r.read(), r.headers["Content-Type"]
        head = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics",
                                                             method="HEAD"), timeout=5)
        assert head.read() == b"" and int(head.headers["Content-Length"]) == len(body)
    finally:
        server.stop()
    (fam,) = text_string_to_metric_families(body.decode())
    assert ctype.startswith("text/plain; version=0.0.4")
    assert fam.samples[0].value not in (os.getpid(), 0)


def test_render_processes_are_reaped_and_capped():
    """Render processes are the server's children: reaped once done (none left as zombies, even
    where the monitor is PID 1), and at most MAX_RENDERS at once (a scrape beyond gets 503)."""
    import concurrent.futures
    import urllib.error

    from stamp_suite.observability.http import MAX_RENDERS, serve

    class Slow:
        render_apart = True

        def exposition(self) -> bytes:
            time.sleep(1.0)
            return b"stamp_x 1\n"

    server = serve(Slow(), "127.0.0.1:0")

    def get() -> int:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10).status
        except urllib.error.HTTPError as exc:
            return exc.code
    try:
        with concurrent.futures.ThreadPoolExecutor(MAX_RENDERS + 1) as pool:
            statuses = sorted(pool.map(lambda _: get(), range(MAX_RENDERS + 1)))
        assert statuses == [200] * MAX_RENDERS + [503]
        assert wait_for(lambda: not server._renders, 3)
    finally:
        server.stop()
