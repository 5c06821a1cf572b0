"""Exposition text made by a process of its own from the numbers a sending loop copies out.

A monitor of 10,000 targets exposes 880,000 lines; formatting them is about 0.25 s of CPU.
Its sending loop is busy four fifths of the time, so formatted there, in the time it would
sleep, a scrape took 1.5 s; formatted by a thread, the thread holds the interpreter lock that
the loop needs for its sends.  Here the loop only copies the numbers out in slices, as plain
rows, and a child process formats them on another core.

The child is a fresh interpreter (``python -m`` this module: a fork would copy the monitor's
half-gigabyte heap page by page as the loop writes to it, and multiprocessing's spawn would
run the parent's main script again), in a session of its own so that a Ctrl-C or a signal to
the monitor's process group is the monitor's alone to handle: the child leaves when its stdin
closes.  It is stateless: each render gets every row it shows, as marshal blobs.  Messages
(a 4-octet length, then the octets), in order: to the child, the blobs as the loop makes
them and an empty message; back, the text in pieces, an empty message, and "ok" or what
went wrong.
"""

from __future__ import annotations

import importlib
import marshal
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

Render = Callable[[Iterator], Iterator[bytes]]  # the parts (unmarshalled blobs) -> the text's pieces
STOP_WAIT_S = 1.0  # a child that does not leave when its stdin closes is killed after this
# The text comes back in pieces of this size at least, each read by one system call (a
# stream socket, MSG_WAITALL): the reading thread takes the interpreter lock once a piece,
# and each time it does the sending loop waits.  3,000 pieces of 250 lines, read a pipe
# buffer at a time, took a 10,000-target scrape 3 s and made sends 250 ms late (measured).
PIECE_OCTETS = 8 << 20


class RenderFailed(RuntimeError):
    """The render process failed, or ended while rendering (it is started again next time)."""


def _send(stream: BinaryIO, data: bytes) -> None:
    stream.write(len(data).to_bytes(4, "big"))
    stream.write(data)


def _read_pipe(stream: BinaryIO, size: int) -> bytes:
    return stream.read(size)


def _read_socket(sock: socket.socket, size: int) -> bytes:
    """``size`` octets (fewer at the end), in one system call unless a signal cuts it short."""
    chunks = []
    while size and (data := sock.recv(size, socket.MSG_WAITALL)):
        chunks.append(data)
        size -= len(data)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    data = read(size) if size else b""
    if len(data) < size:
        raise EOFError("the other end closed")
    return data


def _receive(read: Callable[[int], bytes]) -> bytes:
    return _read_exactly(read, int.from_bytes(_read_exactly(read, 4), "big"))


class _Parts:
    """The parts of one render, unmarshalled as they come, up to the empty message."""

    def __init__(self, read: Callable[[int], bytes], first: bytes) -> None:
        self._read, self._first, self.done = read, first, not first

    def _message(self) -> bytes:
        data = self._first if self._first is not None else _receive(self._read)
        self._first = None
        self.done = not data
        return data

    def __iter__(self) -> Iterator:
        while not self.done:
            data = self._message()
            if data:
                yield marshal.loads(data)

    def drain(self) -> None:
        """Read the rest, so that the next render starts at its own first message."""
        while not self.done:
            self._message()


def serve(render: Render, inp: BinaryIO, out: BinaryIO) -> None:
    """The child's loop: renders until ``inp`` ends (the parent stopped or is gone).
    ``render`` takes the parts as they come and takes all of them before its first piece."""
    read = lambda n: _read_pipe(inp, n)  # noqa: E731
    try:
        while True:
            parts = _Parts(read, _receive(read))
            status = _render(render, parts, out)
            parts.drain()
            _send(out, b"")
            _send(out, status.encode())
            out.flush()
    except (EOFError, BrokenPipeError):
        return


def _render(render: Render, parts: _Parts, out: BinaryIO) -> str:
    """Send the text of ``parts`` in messages of PIECE_OCTETS or so; "ok", or what went wrong."""
    message, size = [], 0
    try:
        for text in render(iter(parts)):
            message.append(text)
            size += len(text)
            if size >= PIECE_OCTETS:
                _send_pieces(out, message, size)
                message, size = [], 0
        if size:
            _send_pieces(out, message, size)
    except (EOFError, OSError):  # the pipes: the parent is gone
        raise
    except Exception as exc:  # noqa: BLE001 - sent to the parent, whose scraper gets a 500 saying it
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def _send_pieces(out: BinaryIO, pieces: list[bytes], size: int) -> None:
    """One message of ``pieces`` (``size`` octets), written piece by piece: joined, a fresh
    8 MB buffer would be faulted in page by page (a third of the render's time, measured)."""
    out.write(size.to_bytes(4, "big"))
    for piece in pieces:
        out.write(piece)


class RenderJob:
    """One render: the marshal blobs the sending loop hands over (:meth:`put`) until the copy
    is done (:meth:`end`) or has failed (:meth:`fail`), and a future of the text's pieces."""

    def __init__(self) -> None:
        self.blobs: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self.answer: Future = Future()
        self.failure: BaseException | None = None
        self._ended = False

    def put(self, blobs: list[bytes]) -> None:
        if not self._ended:
            self.blobs.put(blobs)

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self.blobs.put(None)

    def fail(self, exc: BaseException) -> None:
        """The copy will not finish (``exc``): the answer fails with it."""
        if self.failure is None:
            self.failure = exc
        self.end()
        self._settle(exc=exc)

    def _rendered(self, done: Future) -> None:
        exc = done.exception()
        self._settle(None if exc else done.result(), exc)

    def _settle(self, value: object = None, exc: BaseException | None = None) -> None:
        try:
            self.answer.set_result(value) if exc is None else self.answer.set_exception(exc)
        except InvalidStateError:  # settled or cancelled already: nobody waits for this
            pass


class RenderProcess:
    """A child process that renders with ``render`` (named "module:function", importable in
    the child); the talking to it is done by a thread of its own, which waits with the
    interpreter lock released.  One render at a time."""

    def __init__(self, render: str) -> None:
        self.render = render
        self._lock = threading.Lock()
        self._child: subprocess.Popen | None = None
        self._read: Callable[[int], bytes] | None = None  # from the child's stdout
        self._close_read: Callable[[], None] | None = None
        self._closed = False
        self._job: RenderJob | None = None  # the one being rendered
        self._io = ThreadPoolExecutor(1, thread_name_prefix="metrics-render")

    def start(self) -> None:
        """Start the child unless it runs; OSError when it cannot be started."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._child is not None and self._child.poll() is None:
            return
        self._reap()
        if not sys.executable:
            raise OSError("no Python interpreter to start it with (sys.executable is empty)")
        command = [sys.executable, "-m", __name__, self.render]
        # the package this process runs, whatever put it on sys.path, not one the child finds
        here = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (here, os.environ.get("PYTHONPATH"))))}
        if os.name == "posix":  # its stdout a stream socket, read a piece a system call
            ours, theirs = socket.socketpair()
            try:
                self._child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=theirs.fileno(), env=env,
                                               start_new_session=True)
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            self._read = lambda n: _read_socket(ours, n)
            self._close_read = ours.close
        else:  # Windows: a pipe, read a pipe buffer at a time
            self._child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                           creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
            stdout = self._child.stdout
            self._read = lambda n: _read_pipe(stdout, n)
            self._close_read = stdout.close

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def begin(self, job: RenderJob) -> None:
        """Render ``job`` as its blobs come: they go to the child as the loop hands them over,
        so that it unmarshals and formats them while the loop copies out the next."""
        try:
            self._io.submit(self._run, job).add_done_callback(job._rendered)
        except RuntimeError:  # the I/O thread is shut: the monitor is stopping
            job.fail(RenderFailed("the metrics render process is closed"))

    def _run(self, job: RenderJob) -> list[bytes]:
        """The pieces of the text for ``job`` (blocking: the I/O thread's)."""
        with self._lock:
            if self._closed:
                raise RenderFailed("the metrics render process is closed")
            self._start()
            self._job = job
            try:
                while (blobs := job.blobs.get()) is not None:
                    for blob in blobs:
                        _send(self._child.stdin, blob)
                    self._child.stdin.flush()
                _send(self._child.stdin, b"")
                self._child.stdin.flush()
                pieces = []
                while piece := _receive(self._read):
                    pieces.append(piece)
                status = _receive(self._read).decode()
            except (EOFError, OSError) as exc:  # it died (killed, out of memory): a new one next time
                self._reap()
                raise RenderFailed(f"the metrics render process ended while rendering ({exc})") from None
            finally:
                self._job = None
        if job.failure is not None:  # the copy did not finish: what the child made is not the whole
            raise job.failure
        if status != "ok":
            raise RenderFailed(f"the metrics render process failed: {status}")
        return pieces

    def _reap(self) -> None:
        """Close the child's stdin (it leaves), and kill it if it does not."""
        child, self._child = self._child, None
        if child is None:
            return
        for close in (child.stdin.close, self._close_read):
            try:
                close()
            except OSError:  # a broken pipe flushing: it is gone already
                pass
        try:
            child.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def close(self) -> None:
        """Stop the child and the I/O thread; a render under way fails (the child is killed)."""
        self._closed = True
        self._io.shutdown(wait=False, cancel_futures=True)
        job = self._job
        if job is not None:  # its blobs may never come now: it is over
            job.fail(RenderFailed("the metrics render process is closed"))
        if not self._lock.acquire(timeout=STOP_WAIT_S):
            child = self._child
            if child is not None:
                child.kill()  # the render's reads end: it fails and lets go of the lock
            self._lock.acquire()
        try:
            self._reap()
        finally:
            self._lock.release()


def main(argv: list[str]) -> int:
    """``python -m stamp_suite.observability.render_process module:function``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the monitor stops, then closes our stdin
    module, _, function = argv[0].partition(":")
    render = getattr(importlib.import_module(module), function)
    serve(render, sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
