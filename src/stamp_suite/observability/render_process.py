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
(a 4-octet length, then the octets), in order: to the child, the blobs and an empty message;
back, the text in pieces, an empty message, and "ok" or what went wrong.
"""

from __future__ import annotations

import importlib
import marshal
import os
import signal
import socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from typing import BinaryIO

Render = Callable[[list], Iterator[bytes]]  # the parts (unmarshalled blobs) -> the text's pieces
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


def serve(render: Render, inp: BinaryIO, out: BinaryIO) -> None:
    """The child's loop: renders until ``inp`` ends."""
    read = lambda n: _read_pipe(inp, n)  # noqa: E731
    while True:
        parts = []
        try:
            while data := _receive(read):
                parts.append(marshal.loads(data))
        except EOFError:  # the parent closed its end (it stopped, or it is gone)
            return
        try:
            piece, size = [], 0
            for text in render(parts):
                piece.append(text)
                size += len(text)
                if size >= PIECE_OCTETS:
                    _send(out, b"".join(piece))
                    piece, size = [], 0
            if size:
                _send(out, b"".join(piece))
        except Exception as exc:  # noqa: BLE001 - sent to the parent, whose scraper gets a 500 saying it
            status = f"{type(exc).__name__}: {exc}"
        else:
            status = "ok"
        _send(out, b"")
        _send(out, status.encode())
        out.flush()


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
        if os.name == "posix":  # its stdout a stream socket, read a piece a system call
            ours, theirs = socket.socketpair()
            try:
                self._child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=theirs.fileno(),
                                               start_new_session=True)
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            self._read = lambda n: _read_socket(ours, n)
            self._close_read = ours.close
        else:  # Windows: a pipe, read a pipe buffer at a time
            self._child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
            stdout = self._child.stdout
            self._read = lambda n: _read_pipe(stdout, n)
            self._close_read = stdout.close

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def after(self, blobs: Future) -> Future:
        """A future of the text's pieces, rendered by the child once ``blobs`` (a future of
        the marshal blobs) is done; cancelling it cancels ``blobs`` too."""
        answer: Future = Future()

        def settle(value: object = None, exc: BaseException | None = None) -> None:
            try:
                answer.set_result(value) if exc is None else answer.set_exception(exc)
            except InvalidStateError:  # cancelled meanwhile: nobody waits for it
                pass

        def rendered(done: Future) -> None:
            exc = done.exception()
            settle(None if exc else done.result(), exc)

        def copied(done: Future) -> None:  # in the sending loop's thread: hand over at once
            if done.cancelled():
                return
            if done.exception() is not None:
                settle(exc=done.exception())
                return
            try:
                self._io.submit(self.run, done.result()).add_done_callback(rendered)
            except RuntimeError:  # the I/O thread is shut: the monitor is stopping
                settle(exc=RenderFailed("the metrics render process is closed"))

        blobs.add_done_callback(copied)
        # Weakly: a future keeps its callbacks, and answer <-> blobs would be a cycle that kept
        # the text (88 MB at 10,000 targets) until a full garbage collection (measured).
        copying = weakref.ref(blobs)
        answer.add_done_callback(lambda a: a.cancelled() and (b := copying()) is not None and b.cancel())
        return answer

    def run(self, blobs: list[bytes]) -> list[bytes]:
        """The pieces of the text for ``blobs`` (blocking: the I/O thread's)."""
        with self._lock:
            if self._closed:
                raise RenderFailed("the metrics render process is closed")
            self._start()
            try:
                for blob in blobs:
                    _send(self._child.stdin, blob)
                _send(self._child.stdin, b"")
                self._child.stdin.flush()
                pieces = []
                while piece := _receive(self._read):
                    pieces.append(piece)
                status = _receive(self._read).decode()
            except (EOFError, OSError) as exc:  # it died (killed, out of memory): a new one next time
                self._reap()
                raise RenderFailed(f"the metrics render process ended while rendering ({exc})") from None
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
