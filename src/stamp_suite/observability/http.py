"""The /metrics endpoint: a small HTTP server that a slow or hostile client cannot hold.

prometheus_client's own server runs a thread per connection with no timeout and a
listen backlog of 5: a few hundred half-sent requests hold as many threads for as long
as their clients like, and new scrapes queue behind them.  This one is one asyncio loop
in one thread; the exposition is the source's own (exposition.py) or prometheus_client's:

- a request must arrive whole (at most 8 KiB of head) within REQUEST_TIMEOUT_S, and its
  response be taken within WRITE_TIMEOUT_S, or the connection is closed;
- at most MAX_PER_PEER connections from one peer (an IPv4 address, an IPv6 /64) and
  MAX_CONNECTIONS in all.  A new connection beyond the peer's cap closes that peer's oldest
  connection still waiting for its request; beyond the total, the oldest waiting one of the
  peer that holds the most.  Whatever their age: a rule that spared young connections was
  starved by churn (new idle connections from 8 addresses at 150/s kept every one young,
  and 18 of 25 scrapes were refused).  A scrape sends its request at once, so it is never
  the one closed, and a host opening connections takes room only from itself;
- the listen backlog is 1024; one response per connection (``Connection: close``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from ..net.udp import SocketSetupError
from ..sender.sliced import LoopStopped
from .exposition import CONTENT_TYPE
from .loop import LoopThread
from .render_process import RenderClosed

REQUEST_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 10.0
SEND_BUFFER = 1 << 20  # octets the kernel holds for one answer's writer
RENDER_TIMEOUT_S = 10.0  # Prometheus's default scrape timeout
STOP_WAIT_S = 0.3  # for the connections' handlers to finish at stop
MAX_HEAD = 8192
MAX_CONNECTIONS = 64
MAX_PER_PEER = 16
BACKLOG = 1024


def peer_of(address: str | None) -> str | None:
    """Who holds a connection: an IPv4 address, or an IPv6 /64 (a host has a whole one)."""
    if address is None:
        return None
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:  # a Unix socket's path, or nothing
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:  # a dual-stack socket's IPv4 peer
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class _Connection:
    __slots__ = ("writer", "peer", "opened", "answering")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = peer_of(peer[0] if peer else None)
        self.opened = time.monotonic()
        self.answering = False


class MetricsServer(LoopThread):
    """Serves a source's metrics on ``addr`` (HOST:PORT, [v6]:PORT) from a background thread."""

    thread_name = "metrics-http"

    def __init__(self, source: object, addr: str) -> None:
        super().__init__()
        self.source = source
        # A source this big (the monitor's) renders by its own means (its loop copies the
        # numbers out, a render process formats them: monitor/exposition.py); its future is
        # awaited here.
        self.render_future: Callable[[], Future | None] | None = getattr(source, "exposition_future", None)
        self.render = _renderer(source) if self.render_future is None else None
        self._answering = 0  # answers rendered by the source's means, from the request to the last octet
        self._writers: ThreadPoolExecutor | None = None  # made for the first of them
        self._writing: set[socket.socket] = set()  # their sockets, shut at stop so no writer lingers
        self._handlers: set[asyncio.Task] = set()  # connections being answered, finished at stop
        self.addr = addr
        self.sock = _listen(addr)
        self.port = self.sock.getsockname()[1]
        self._connections: list[_Connection] = []
        self.closed_idle = 0  # connections closed for taking too long or to make room

    async def main(self) -> None:
        server = await asyncio.start_server(self._handle, sock=self.sock, backlog=BACKLOG, limit=MAX_HEAD)
        async with server:  # (from Python 3.12 leaving it waits for every connection: close them first)
            await self.stopping.wait()
            server.close()
            for conn in list(self._connections):
                conn.writer.close()
            for sock in list(self._writing):
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # a writer blocked on a slow scraper fails at once
                except OSError:  # the scraper is gone already
                    pass
            if self._handlers:  # each sees its connection end and finishes; none is left pending
                await asyncio.wait(list(self._handlers), timeout=STOP_WAIT_S)
                for task in self._handlers:
                    task.cancel()  # still waiting for a render
                if self._handlers:
                    await asyncio.wait(list(self._handlers), timeout=STOP_WAIT_S)
        if self._writers is not None:
            self._writers.shutdown(wait=False, cancel_futures=True)

    def stop(self, timeout: float = 0.5) -> None:
        """Close the source's own means of rendering (if it has any: the renders it has begun
        fail, and their scrapes get a 503 at once), then stop serving."""
        close = getattr(self.source, "close", None)
        if close is not None:
            close()
        super().stop(timeout)

    def _admit(self, conn: _Connection) -> bool:
        """Room for ``conn``, made if need be by closing a connection still waiting for its
        request: its own peer's oldest, or (all full) the oldest of the peer holding the most."""
        held: dict[str | None, list[_Connection]] = {}
        for c in self._connections:  # oldest first in each list
            held.setdefault(c.peer, []).append(c)
        if len(held.get(conn.peer, ())) >= MAX_PER_PEER:
            victims = [held[conn.peer]]
        elif len(self._connections) >= MAX_CONNECTIONS:
            victims = sorted(held.values(), key=len, reverse=True)
        else:
            victims = []
        if victims:
            waiting = next((c for crowd in victims for c in crowd if not c.answering), None)
            if waiting is None:  # every one is being answered: no room
                return False
            waiting.writer.close()
            self._connections.remove(waiting)
            self.closed_idle += 1
        self._connections.append(conn)
        return True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._handlers.add(task)
        try:
            await self._answer(reader, writer)
        except asyncio.CancelledError:  # cancelled at stop: its connection is closed already
            pass  # (and Python 3.11's streams log a client task that ends cancelled as an error)
        finally:
            self._handlers.discard(task)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(writer)
        if not self._admit(conn):
            writer.close()
            return
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                self.closed_idle += 1
                return
            conn.answering = True
            status, headers, body = self._respond(head)
            head_only = head.startswith(b"HEAD ")
            if body is None:
                if self._answering >= MAX_ANSWERS:  # two are being made or written: no queue
                    status, headers, body = "503 Service Unavailable", {"Retry-After": "1"}, b"busy rendering\n"
                else:
                    self._answering += 1
                    try:
                        status, headers, body = await self._render_by_source()
                        if isinstance(body, list) and not head_only:
                            await self._write_pieces(writer, _response(status, headers, body), body)
                            return
                    finally:
                        self._answering -= 1
            writer.write(_response(status, headers, body, head_only))
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass
        finally:
            if conn in self._connections:
                self._connections.remove(conn)
            writer.close()

    async def _write_pieces(self, writer: asyncio.StreamWriter, head: bytes, pieces: list[bytes]) -> None:
        """A render's pieces (tens of MB for a monitor), written by a worker thread with a
        blocking socket (_sendall), all within WRITE_TIMEOUT_S: written by this loop instead,
        each socket buffer's worth cost a pass of Python that took the interpreter lock from
        the monitor's sending loop (a 61 MB answer held its sends back 200 ms, measured)."""
        if self._writers is None:
            self._writers = ThreadPoolExecutor(MAX_ANSWERS, thread_name_prefix="metrics-write")
        sock = socket.socket(fileno=os.dup(writer.get_extra_info("socket").fileno()))
        # A large buffer: the writing thread wakes (and takes the interpreter lock) less often
        # for a reader that takes the answer a little at a time.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self._writing.add(sock)
        try:
            deadline = time.monotonic() + WRITE_TIMEOUT_S
            await asyncio.get_running_loop().run_in_executor(self._writers, _sendall, sock, [head, *pieces], deadline)
        finally:
            self._writing.discard(sock)
            sock.close()

    async def _render_by_source(self) -> tuple[str, dict[str, str], list[bytes] | bytes]:
        """The source renders by its own means (monitor/exposition.py); 503 when it has two
        renders on its hands already, or has stopped, or takes longer than RENDER_TIMEOUT_S."""
        try:
            future = self.render_future()
        except Exception as exc:  # noqa: BLE001 - a source that cannot even start a render: said, as below
            return "500 Internal Server Error", {}, f"the render failed: {type(exc).__name__}: {exc}\n".encode()
        if future is None:
            return "503 Service Unavailable", {"Retry-After": "1"}, b"busy rendering\n"
        try:
            pieces = await asyncio.wait_for(asyncio.wrap_future(future), RENDER_TIMEOUT_S)
        except asyncio.TimeoutError:  # the render is cancelled too: dropped at its next slice
            return "503 Service Unavailable", {"Retry-After": "1"}, b"the render took too long\n"
        except (LoopStopped, RenderClosed) as exc:
            return "503 Service Unavailable", {}, f"{exc}\n".encode()
        except Exception as exc:  # noqa: BLE001 - a bug in a render: said to the scraper, not a dropped connection
            return "500 Internal Server Error", {}, f"the render failed: {type(exc).__name__}: {exc}\n".encode()
        return "200 OK", {"Content-Type": CONTENT_TYPE}, pieces

    def _respond(self, head: bytes) -> tuple[str, dict[str, str], bytes | None]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "400 Bad Request", {}, b"bad request\n"
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", {"Allow": "GET, HEAD"}, b"GET /metrics\n"
        if target not in ("/metrics", "/"):
            return "404 Not Found", {}, b"the metrics are at /metrics\n"
        accept = next((ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("accept:")), "")
        if self.render_future is not None:
            return "200 OK", {}, None
        content_type, body = self.render(accept)
        return "200 OK", {"Content-Type": content_type}, body


IOV_BATCH = 256  # pieces per sendmsg (Linux takes up to 1024 buffers a call)
MAX_ANSWERS = 2  # answers rendered by a source's loop at once, writing included; 503 beyond


def _sendall(sock: socket.socket, pieces: list[bytes], deadline: float) -> None:
    """Every piece, in order, a few hundred per system call, before ``deadline`` (monotonic
    s; TimeoutError after it): each call is a moment this thread holds the interpreter lock,
    and a thread preempted while holding it stops the sending loop until it runs again (a
    sendall per piece, 3,000 for a monitor of 10,000 targets, held sends back tens of ms)."""
    def time_left() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the scraper did not take the answer in time")
        return left
    if not hasattr(sock, "sendmsg"):  # Windows
        for piece in pieces:
            sock.settimeout(time_left())
            sock.sendall(piece)
        return
    views = [memoryview(p) for p in pieces if p]
    i = 0
    while i < len(views):
        sock.settimeout(time_left())
        sent = sock.sendmsg(views[i:i + IOV_BATCH])
        while sent:  # past what went: whole pieces, then the front of a piece
            if sent >= len(views[i]):
                sent -= len(views[i])
                i += 1
            else:
                views[i] = views[i][sent:]
                sent = 0


def _renderer(source: object) -> Callable[[str], tuple[str, bytes]]:
    """(content type, body) for a request's Accept header: the source's own text exposition
    when it has one (exposition.py says why), else prometheus_client's in the format asked for."""
    exposition = getattr(source, "exposition", None)
    if exposition is not None:
        return lambda accept: (CONTENT_TYPE, exposition())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(source)

    def render(accept: str) -> tuple[str, bytes]:
        encoder, content_type = choose_encoder(accept)
        return content_type, encoder(registry)
    return render


def _response(status: str, headers: dict[str, str], body: bytes | list[bytes], head_only: bool = False) -> bytes:
    """The response (its head only when ``body`` is in pieces: they follow as they are); to
    HEAD, the same headers (Content-Length included) without the body."""
    length = sum(map(len, body)) if isinstance(body, list) else len(body)
    head = [f"HTTP/1.1 {status}", f"Content-Length: {length}", "Connection: close",
            *(f"{k}: {v}" for k, v in headers.items())]
    if "Content-Type" not in headers:
        head.append("Content-Type: text/plain; charset=utf-8")
    head_text = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
    return head_text if head_only or isinstance(body, list) else head_text + body


def _listen(addr: str) -> socket.socket:
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, int(port)), family=family, backlog=BACKLOG, reuse_port=False)
    except (OSError, ValueError) as exc:
        why = os.strerror(exc.errno) if getattr(exc, "errno", None) else str(exc)
        raise SocketSetupError(f"cannot serve metrics on {addr}: {why}") from None
    sock.setblocking(False)
    return sock


def bind(source: object, addr: str) -> MetricsServer:
    """A server for one source's metrics (a prometheus_client collector, or an object with
    ``exposition()``), its port bound (a bind failure is a one-line error) and not serving
    yet: :meth:`MetricsServer.start` does that."""
    return MetricsServer(source, addr)


def serve(source: object, addr: str) -> MetricsServer:
    """Serve one source's metrics on ``addr`` from now on."""
    return bind(source, addr).start()
