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
closes (or when it is killed: a render that outlives its scrape's timeout, or a monitor that
stops during a render).  It is stateless: each render gets every row it shows, as marshal blobs.  Messages
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
import weakref
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
    """The render process made no text for a render (said to the scraper as a 500)."""


class RenderDied(RenderFailed):
    """The render process ended while rendering (killed, out of memory): a new one next time."""


class RenderClosed(RenderFailed):
    """The render process was closed (the monitor stops or moves its metrics address)."""


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


def _parts(read: Callable[[int], bytes], data: bytes) -> Iterator:
    """One render's parts, unmarshalled as they come, from ``data`` (its first message) up to
    the empty message; all of them read even when one is not marshal data."""
    while data:
        try:
            part = marshal.loads(data)
        except (ValueError, TypeError):
            while _receive(read):  # the rest of this render: the next starts at its own first message
                pass
            raise
        yield part
        data = _receive(read)


def serve(render: Render, inp: BinaryIO, out: BinaryIO) -> None:
    """The child's loop: renders until ``inp`` ends (the parent stopped or is gone).
    ``render`` takes the parts as they come and takes all of them before its first piece."""
    read = lambda n: _read_pipe(inp, n)  # noqa: E731
    try:
        while True:
            parts = _parts(read, _receive(read))
            status = _render(render, parts, out)
            for _ in parts:  # what a failed render left: the next starts at its own first message
                pass
            _send(out, b"")
            _send(out, status.encode())
            out.flush()
    except (EOFError, OSError):  # the parent closed its end, or is gone
        return


def _render(render: Render, parts: Iterator, out: BinaryIO) -> str:
    """Send the text of ``parts`` in messages of PIECE_OCTETS or so; "ok", or what went wrong."""
    message, size = [], 0
    try:
        for text in render(parts):
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
    is done (:meth:`end`) or will not be (:meth:`fail`), and a future of the text's pieces."""

    def __init__(self) -> None:
        self.blobs: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self.answer: Future = Future()
        self._ended = False

    def put(self, blobs: list[bytes]) -> None:
        if not self._ended:
            self.blobs.put(blobs)

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self.blobs.put(None)

    def fail(self, exc: BaseException) -> None:
        """No text for this render: the answer fails with ``exc`` (the child's, if it is
        rendering the parts it has, is dropped)."""
        self.end()
        self.settle(exc=exc)

    def settle(self, value: object = None, exc: BaseException | None = None) -> None:
        try:
            self.answer.set_result(value) if exc is None else self.answer.set_exception(exc)
        except InvalidStateError:  # settled or cancelled already: nobody waits for this
            pass


class RenderProcess:
    """A child process that renders with ``render`` (named "module:function", importable in
    the child); the talking to it is done by a thread of its own, which waits with the
    interpreter lock released.  One render at a time.  ``pipe``: read its text from a pipe
    (Windows) instead of a stream socket; ``on_died(why)`` is called (by the I/O thread) when
    the child ended while rendering."""

    def __init__(self, render: str, pipe: bool = sys.platform == "win32",
                 on_died: Callable[[str], None] | None = None) -> None:
        self.render = render
        self.pipe = pipe
        self.on_died = on_died  # told why, when the child ended while rendering
        self.died = 0  # renders in a row that ended with the child
        self._killed: str | None = None  # why this process killed the child, if it did
        self._reading: RenderJob | None = None  # the render whose text the child is making
        self._reading_lock = threading.Lock()  # _reading, and a kill for it
        self._lock = threading.Lock()  # the child and its pipes
        self._child: subprocess.Popen | None = None
        self._read: Callable[[int], bytes] | None = None  # from the child's stdout
        self._close_read: Callable[[], None] | None = None
        self._closed = False
        self._jobs: set[RenderJob] = set()  # begun and not finished
        self._io = ThreadPoolExecutor(1, thread_name_prefix="metrics-render")

    def start(self) -> None:
        """Start the child unless it runs (or this is closed); OSError when it cannot be started."""
        with self._lock:
            if not self._closed:
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
        own_group = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if sys.platform == "win32"
                     else {"start_new_session": True})
        if self.pipe:  # a pipe buffer a system call
            self._child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                           **own_group)
            stdout = self._child.stdout
            self._read = lambda n: _read_pipe(stdout, n)
            self._close_read = stdout.close
            return
        ours, theirs = socket.socketpair()  # a message a system call
        try:
            self._child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=theirs.fileno(), env=env,
                                           **own_group)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._read = lambda n: _read_socket(ours, n)
        self._close_read = ours.close

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def begin(self, job: RenderJob) -> None:
        """Render ``job`` as its blobs come: they go to the child as the loop hands them over,
        so that it unmarshals and formats them while the loop copies out the next."""
        if self._closed:
            job.fail(RenderClosed("the metrics render process is closed"))
            return
        self._jobs.add(job)
        # Weakly: a future keeps its callbacks, and job <-> answer would be a cycle that kept
        # the text (88 MB at 10,000 targets) until a full garbage collection (measured).
        ref = weakref.ref(job)
        job.answer.add_done_callback(lambda answer: answer.cancelled() and (j := ref()) is not None
                                     and self._abandon(j))
        try:
            self._io.submit(self._run, job).add_done_callback(lambda done: self._finished(job, done))
        except RuntimeError:  # the I/O thread was shut meanwhile: closed
            self._jobs.discard(job)
            job.fail(RenderClosed("the metrics render process is closed"))

    def _abandon(self, job: RenderJob) -> None:
        """The scrape gave up (its timeout).  A copy still under way ends (the child renders
        what it has, for nobody); a text the child is still making, with every part in, is past
        any use, and a child that slow is likely stuck: it is killed, and a new one starts
        next time."""
        job.end()
        with self._reading_lock:
            if self._reading is job and self._child is not None:
                self._killed = "killed: its scrape gave up waiting for it"
                self._child.kill()

    def _finished(self, job: RenderJob, done: Future) -> None:
        self._jobs.discard(job)
        if done.cancelled():  # never run: closed
            job.fail(RenderClosed("the metrics render process is closed"))
        elif done.exception() is not None:
            job.settle(exc=done.exception())
            if isinstance(done.exception(), RenderDied) and self.on_died is not None:
                self.on_died(str(done.exception()))
        else:
            job.settle(done.result())

    def _run(self, job: RenderJob) -> list[bytes] | None:
        """The pieces of the text for ``job`` (blocking: the I/O thread's)."""
        if job.answer.done():  # given up, or failed, before its turn: its blobs are dropped
            return None
        with self._lock:
            try:
                if self._closed:
                    raise RenderClosed("the metrics render process is closed")
                self._start()
                self._killed = None
                try:
                    pieces, status = self._exchange(job)
                except (EOFError, OSError):  # it died (killed, out of memory): a new one next time
                    exit_status = self._reap()
                    if self._closed:  # killed by close(): no death to tell of
                        raise RenderClosed("the metrics render process is closed") from None
                    self.died += 1
                    why = self._killed or f"exit status {exit_status}"
                    raise RenderDied(f"the metrics render process ended while rendering ({why})") from None
                except BaseException:  # out of step with the child: a new one next time
                    self._reap()
                    raise
            finally:
                with self._reading_lock:
                    self._reading = None
                if self._closed:  # closed while this one rendered
                    self._reap()
        self.died = 0
        if status != "ok":
            raise RenderFailed(f"the metrics render process failed: {status}")
        return pieces

    def _exchange(self, job: RenderJob) -> tuple[list[bytes], str]:
        """Hand the child ``job``'s blobs as they come, then read its text and its status."""
        stdin = self._child.stdin
        while (blobs := job.blobs.get()) is not None:
            for blob in blobs:
                _send(stdin, blob)
            stdin.flush()
        _send(stdin, b"")
        stdin.flush()
        with self._reading_lock:
            self._reading = job
        pieces = []
        while piece := _receive(self._read):
            pieces.append(piece)
        return pieces, _receive(self._read).decode()

    def _reap(self) -> int | None:
        """Close the child's stdin (it leaves), and kill it if it does not; its exit status."""
        child, self._child = self._child, None
        if child is None:
            return None
        for close in (child.stdin.close, self._close_read):
            try:
                close()
            except OSError:  # a broken pipe flushing: it is gone already
                pass
        try:
            return child.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()

    def close(self) -> None:
        """Stop the child and the I/O thread without waiting for a render: those begun fail
        (RenderClosed), and a child that is rendering is killed (the I/O thread reaps it)."""
        self._closed = True
        self._io.shutdown(wait=False, cancel_futures=True)
        for job in list(self._jobs):
            job.fail(RenderClosed("the metrics render process is closed"))
        if self._lock.acquire(blocking=False):
            try:
                self._reap()
            finally:
                self._lock.release()
        elif (child := self._child) is not None:
            child.kill()


def main(argv: list[str]) -> int:
    """``python -m stamp_suite.observability.render_process module:function``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the monitor stops, then closes our stdin
    module, _, function = argv[0].partition(":")
    render = getattr(importlib.import_module(module), function)
    serve(render, sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
