"""Prometheus: scrape /metrics over HTTP while traffic flows."""

import socket
import subprocess
import time
import urllib.request

import pytest
from helpers import CMD, ENV, ReflectorProcess, free_tcp_port, run, scrape, send, wait_for
from prometheus_client.parser import text_string_to_metric_families


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
    another host still answers, typically within 100 ms (each within 0.5 s on a busy machine),
    the reflector goes on reflecting, and a scrape from their own host gets through too (it
    closes the oldest of them)."""
    port = free_tcp_port()
    with ReflectorProcess("--metrics", "--metrics-addr", f"127.0.0.1:{port}") as refl:
        scrape(port)
        hogs = []
        for _ in range(300):
            c = socket.create_connection(("127.0.0.1", port), timeout=2)
            c.sendall(b"GET /metr")  # and nothing more
            hogs.append(c)
        times = sorted(_scrape_from("127.0.0.2", port) for _ in range(5))
        assert times[2] < 0.1 and times[-1] < 0.5, times
        res = send(refl, count=5)
        assert res.returncode == 0 and "Packets received: 5" in res.stdout
        assert _scrape_from("127.0.0.1", port) < 0.5  # makes room by closing the oldest waiting one
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


@pytest.mark.alone  # answers within a second while it churns: a figure of timing
@pytest.mark.parametrize("addresses, per_second", [(8, 150), (64, 100)])
def test_scrapes_are_answered_while_other_hosts_churn_idle_connections(addresses, per_second):
    """issue 34: new connections that never send a request, from several addresses, opened
    faster than the old ones aged past the eviction rule, refused 18 of 25 scrapes.  Now the
    oldest waiting connection of whoever holds the most goes: 25 scrapes of 25, each within 1 s."""
    import threading
    port = free_tcp_port()
    with ReflectorProcess("--metrics", "--metrics-addr", f"127.0.0.1:{port}"):
        stop = threading.Event()
        held: list[socket.socket] = []

        def churn() -> None:
            i = 0
            while not stop.is_set():
                source = f"127.0.1.{i % addresses + 1}"
                try:
                    held.append(socket.create_connection(("127.0.0.1", port), timeout=1,
                                                         source_address=(source, 0)))
                except OSError:
                    pass
                if len(held) > 2000:
                    held.pop(0).close()
                i += 1
                time.sleep(1 / per_second)
        churner = threading.Thread(target=churn, daemon=True)
        churner.start()
        try:
            time.sleep(1.0)  # the pool full of idle connections, and churning
            times = []
            for _ in range(25):
                times.append(_scrape_from("127.0.0.1", port))
                time.sleep(0.05)
        finally:
            stop.set()
            churner.join(2)
            for c in held:
                c.close()
    assert len(times) == 25 and max(times) < 1.0, times


class _LoopSource:
    """A source rendered by its own loop, as the monitor's is: a thread that steps SlicedWork
    (the sending loop's part), ``step_s`` per slice; records which thread rendered."""

    def __init__(self, pieces: list[bytes], step_s: float = 0.0) -> None:
        import threading

        from stamp_suite.sender.sliced import SlicedWork
        self.work, self.pieces, self.step_s = SlicedWork(), pieces, step_s
        self.rendered_in: set[str] = set()
        self.running = True
        self.thread = threading.Thread(target=self._loop, name="sending-loop", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while self.running:
            if self.work.pending:
                self.work.step()
            else:
                time.sleep(0.001)
        self.work.stop("the sending loop has stopped")

    def render(self):
        import threading
        for _ in self.pieces:
            self.rendered_in.add(threading.current_thread().name)
            time.sleep(self.step_s)
            yield
        return list(self.pieces)

    def exposition_future(self):
        return self.work.submit(self.render())


def test_a_monitor_sized_exposition_is_rendered_by_its_own_loop_in_slices():
    """A source with a loop of its own (the monitor's) renders there, a slice per step, so the
    sending loop never waits for the interpreter lock; the pieces make one response, whole to
    GET, its head (Content-Length included) to HEAD."""
    from stamp_suite.observability.http import serve

    pieces = [b"# TYPE stamp_x gauge\n", b'stamp_x{n="1"} 1\n', b'stamp_x{n="2"} 2\n']
    source = _LoopSource(pieces)
    server = serve(source, "127.0.0.1:0")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            body, ctype = r.read(), r.headers["Content-Type"]
        head = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics",
                                                             method="HEAD"), timeout=5)
        assert head.read() == b"" and int(head.headers["Content-Length"]) == len(body)
    finally:
        server.stop()
        source.running = False
    assert body == b"".join(pieces)
    assert ctype.startswith("text/plain; version=0.0.4")
    (fam,) = text_string_to_metric_families(body.decode())
    assert [s.value for s in fam.samples] == [1, 2]
    assert source.rendered_in == {"sending-loop"}


def test_renders_in_the_loop_are_capped_and_end_with_the_loop():
    """At most MAX_TASKS renders wait on the loop at once (a scrape beyond gets 503 at once, not
    a queue that grows while the loop is busy); when the loop stops, a waiting scrape gets 503."""
    import concurrent.futures
    import urllib.error

    from stamp_suite.observability.http import serve
    from stamp_suite.sender.sliced import MAX_TASKS

    source = _LoopSource([b"stamp_x 1\n"] * 10, step_s=0.1)
    server = serve(source, "127.0.0.1:0")

    def get() -> int:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10).status
        except urllib.error.HTTPError as exc:
            return exc.code
    try:
        with concurrent.futures.ThreadPoolExecutor(MAX_TASKS + 1) as pool:
            statuses = sorted(pool.map(lambda _: get(), range(MAX_TASKS + 1)))
        assert statuses == [200] * MAX_TASKS + [503]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(get)
            time.sleep(0.3)
            source.running = False
            assert waiting.result(5) == 503
    finally:
        server.stop()


def test_pieces_are_written_whole_and_in_order_whatever_each_call_takes():
    """The writer of a render's pieces (observability.http._sendall) resumes after any partial
    write: a socket pair with a small buffer, read slowly, gets every octet in order."""
    import threading

    from stamp_suite.observability.http import IOV_BATCH, _sendall

    pieces = [bytes([i % 251]) * (1 + (i * 7919) % 5000) for i in range(3 * IOV_BATCH)]
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    a.settimeout(10)
    got = bytearray()

    def read() -> None:
        while chunk := b.recv(3000):
            got.extend(chunk)
            time.sleep(0.0002)
    reader = threading.Thread(target=read)
    reader.start()
    with a:
        _sendall(a, pieces, time.monotonic() + 20)
        a.shutdown(socket.SHUT_WR)
        reader.join(20)
    b.close()
    assert bytes(got) == b"".join(pieces)


def test_scrapers_that_do_not_read_hold_no_more_than_two_answers_and_a_failed_render_is_a_500():
    """Answers made by a source's loop count until their last octet is written: two scrapers
    that send a request and never read hold two, a third scrape gets 503 at once (no queue of
    60 MB answers in memory); when they go, scrapes are answered again.  A render that raises is
    answered 500 with its error, not a dropped connection."""
    import urllib.error

    from stamp_suite.observability.http import MAX_ANSWERS, serve

    source = _LoopSource([b"stamp_x 1\n" + b"# padding\n" * 200_000] * 10)  # 20 MB an answer
    server = serve(source, "127.0.0.1:0")
    url = f"http://127.0.0.1:{server.port}/metrics"
    stalled = []
    try:
        for _ in range(MAX_ANSWERS):
            c = socket.create_connection(("127.0.0.1", server.port))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            stalled.append(c)
        time.sleep(1.0)  # both rendered, both writers blocked on a full socket
        try:
            urllib.request.urlopen(url, timeout=5)
            status = 200
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == 503
        for c in stalled:
            c.close()

        def answered() -> bool:
            try:
                return urllib.request.urlopen(url, timeout=10).status == 200
            except urllib.error.HTTPError:  # 503 until the writers have seen their scrapers go
                return False
        assert wait_for(answered, 10)
    finally:
        for c in stalled:
            c.close()
        server.stop()
        source.running = False

    class Broken(_LoopSource):
        def render(self):
            yield
            raise KeyError("no such target")
    broken = Broken([])
    server = serve(broken, "127.0.0.1:0")
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        assert err.value.code == 500 and b"KeyError" in err.value.read()
    finally:
        server.stop()
        broken.running = False
