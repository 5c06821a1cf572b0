"""Run the real CLI as subprocesses on loopback."""

from __future__ import annotations

import http.server
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import jsonschema
from prometheus_client.parser import text_string_to_metric_families

CMD = [sys.executable, "-m", "stamp_suite"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "stamp-report.schema.json").read_text())
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def json_safe(value, where="") -> None:
    """No integer beyond 2^53 anywhere (jq 1.6 and JavaScript round those)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        assert abs(value) <= 2**53, f"{where} = {value} is beyond 2^53"
    elif isinstance(value, dict):
        for k, v in value.items():
            json_safe(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            json_safe(v, f"{where}[{i}]")


def check_report(obj: dict) -> dict:
    """Every JSON object any test reads from the program is checked against the strict schema."""
    _VALIDATOR.validate(obj)
    json_safe(obj)
    return obj


class ReflectorProcess:
    """``stamp-suite -i`` on an ephemeral port; the port is read from its banner."""

    def __init__(self, *args: str, host: str | None = "127.0.0.1") -> None:
        """``host`` None: no -S, the reflector's own default (the dual-stack wildcard)."""
        if "--workers" not in args:  # one process unless a test is about workers
            args = ("--workers", "1", *args)
        bind = ("-S", host) if host is not None else ()
        self.proc = subprocess.Popen([*CMD, "-i", *bind, "-o", "0", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=ENV)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (?:\[([0-9a-f:.]+)\]|([0-9.]+)):(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"reflector did not start: {line!r} {self.proc.stderr.read()}")
        self.host, self.port = m.group(1) or m.group(2), int(m.group(3))
        if self.host in ("::", "0.0.0.0"):  # a wildcard: reach it on loopback
            self.host = "::1" if self.host == "::" else "127.0.0.1"
        self.banner = line
        self._err = b""

    def next_stderr_line(self, containing: str, timeout: float = 8.0) -> str:
        """The reflector's next stderr line holding ``containing`` (other lines skipped).

        Reads the pipe's descriptor itself: select() on the text wrapper would miss lines
        that an earlier readline() already pulled into the wrapper's buffer."""
        fd = self.proc.stderr.fileno()
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self._err:
                line, self._err = self._err.split(b"\n", 1)
                if containing in (text := line.decode(errors="replace")):
                    return text.strip()
            left = end - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            assert ready, f"no line with {containing!r} within {timeout} s"
            chunk = os.read(fd, 65536)
            assert chunk, "the reflector ended"
            self._err += chunk

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out, err

    def __enter__(self) -> ReflectorProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def send(refl: ReflectorProcess, *args: str, count: int = 5) -> subprocess.CompletedProcess:
    return run("-r", refl.host, "-p", str(refl.port), "-c", str(count), "-d", "5", "-L", "1", *args)


def json_lines(stdout: str) -> tuple[list[dict], dict]:
    objs = [check_report(json.loads(line)) for line in stdout.splitlines() if line.strip()]
    packets = [o for o in objs if o.get("type") == "packet"]
    summary = next(o for o in objs if o.get("type") == "summary")
    return packets, summary


def wait_for(pred, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


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


def scrape_when_serving(port):
    """scrape(port), or {} while nothing serves there yet."""
    try:
        return scrape(port)
    except OSError:
        return {}


def by_label(samples, name, label):
    """{the ``label`` of each sample of metric ``name``: its value} in a scrape's samples."""
    return {dict(labels)[label]: v for (metric, labels), v in samples.items() if metric == name}


class HttpSdEndpoint:
    """An HTTP SD endpoint on loopback whose answer (status, body) the test sets."""

    def __init__(self) -> None:
        endpoint = self
        self.status, self.body, self.headers = 200, b"[]", []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the base class's name
                endpoint.headers.append(dict(self.headers))
                self.send_response(endpoint.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(endpoint.body)

            def log_message(self, *args) -> None:
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sd"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SrvServer:
    """A DNS server on loopback that answers SRV questions from ``records`` (name -> list of
    (target, port)), with ``ttl``; ``fail`` makes it answer SERVFAIL.  Made with dnspython's own
    message API, so the answers are real DNS on the wire."""

    def __init__(self, records: dict[str, list[tuple[str, int]]], ttl: int = 5) -> None:
        self.records, self.ttl, self.fail, self.questions = records, ttl, False, 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.message.from_wire(data)
            self.questions += 1
            reply = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text()
            if self.fail:
                reply.set_rcode(dns.rcode.SERVFAIL)
            elif name not in self.records:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.SRV:
                reply.answer.append(dns.rrset.from_text_list(
                    name, self.ttl, "IN", "SRV", [f"10 5 {port} {target}" for target, port in self.records[name]]))
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()
