"""Stopping on SIGINT and SIGTERM: the handler sets a flag and wakes the loop, nothing else.

A handler that does real work (takes a lock, sets a threading.Event, raises into
whatever code is running) can deadlock or corrupt state when a second signal arrives
while the first is being handled, which is what ``systemctl stop`` and a Ctrl-C on a
process group do.  Here the handler stores a bool and writes one octet to a socket pair
that the loop watches, so the loop wakes at once and stops at a point of its choosing.

Installed first thing at start-up (:mod:`stamp_suite.entry`).  Until the program says it
has started (:meth:`StopRequest.started`), a stop signal ends the process at once: start-up
has nothing to wind down, and may be blocked where a flag would wait (a name that does not
resolve, a key file that never opens).
"""

from __future__ import annotations

import os
import signal
import socket
import threading

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class StopRequest:
    """A stop flag with a file descriptor that becomes readable when the flag is set."""

    def __init__(self, starting: bool = False) -> None:
        self.requested = False
        self.starting = starting  # a stop signal now ends the process at once
        self._pair: tuple[socket.socket, socket.socket] | None = None

    def _sockets(self) -> tuple[socket.socket, socket.socket]:
        if self._pair is None:  # made when first needed, not when the module is imported
            r, w = socket.socketpair()
            r.setblocking(False)
            w.setblocking(False)
            self._pair = (r, w)
        return self._pair

    def fileno(self) -> int:
        return self._sockets()[0].fileno()

    def set(self) -> None:
        """Request a stop (from a signal handler or any thread): safe to call re-entrantly."""
        self.requested = True
        try:
            self._sockets()[1].send(b"\0")
        except OSError:  # the pair's buffer is full: the loop is already awake
            pass

    def install(self) -> StopRequest:
        """Make SIGINT and SIGTERM set this flag (main thread only; a no-op elsewhere)."""
        if threading.current_thread() is threading.main_thread():
            self._sockets()  # before any signal can come, so the handler allocates nothing
            for sig in STOP_SIGNALS:
                signal.signal(sig, self._handler)
        return self

    def _handler(self, signum: int, frame: object) -> None:
        if self.starting:
            stopped_while_starting(signum)
        self.set()

    def started(self) -> None:
        """Start-up is over: from now on a stop signal sets the flag, for the loop to stop."""
        self.starting = False

    def close(self) -> None:
        if self._pair is not None:
            for sock in self._pair:
                sock.close()
            self._pair = None


class ReloadRequest(StopRequest):
    """SIGHUP's flag: set by the handler, taken by the loop that reloads (which may be asked
    again later, unlike a stop)."""

    def install(self) -> ReloadRequest:
        if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
            self._sockets()
            signal.signal(signal.SIGHUP, lambda signum, frame: self.set())
        return self

    def take(self) -> bool:
        """Was a reload asked for since the last take?  Each request leaves an octet in the
        pair (or finds it full): reading them away is the answer, with no flag to race."""
        asked = False
        try:
            while self._sockets()[0].recv(64):
                asked = True
        except BlockingIOError:
            pass
        self.requested = False
        return asked


def stopped_while_starting(signum: int) -> None:
    """End the process as a stop signal does, with one line (what is safe in a handler)."""
    os.write(2, b"stamp-suite: stopped while starting\n")
    os._exit(128 + signum)


# The process's stop request, installed at start-up by stamp_suite.entry.  A forked
# reflector worker makes its own (reflector/service.py), as the socket pair would
# otherwise be shared with its parent.
STOP = StopRequest()


def renew_after_fork() -> StopRequest:
    """In a forked child: a stop request of its own, installed, keeping a pending stop."""
    global STOP
    pending = STOP.requested
    STOP.close()  # this process's copies of the parent's socket pair
    STOP = StopRequest().install()
    if pending:
        STOP.set()
    return STOP
