"""Which of many sockets have something to read: epoll where the platform has it, else the
selectors module (kqueue, poll or select).

A monitor has a socket per target.  selectors' EpollSelector asks the kernel for as many
events as it has sockets (a 120 KB array for 10,000, allocated on every wait) and builds a
key object per ready socket; here the wait asks for MAX_EVENTS at most (the rest, still
ready, come with the next wait) and hands back what was registered with each socket.
"""

from __future__ import annotations

import select
import selectors
from typing import Any

MAX_EVENTS = 1024


class Readiness:
    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._selector = None if self._epoll is not None else selectors.DefaultSelector()
        self._data: dict[int, Any] = {}

    def register(self, fd: int, data: Any) -> None:
        """Watch ``fd`` for reading; :meth:`wait` gives ``data`` when it is readable."""
        self._data[fd] = data
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            self._selector.register(fd, selectors.EVENT_READ, data)

    def unregister(self, fd: int) -> None:
        if self._data.pop(fd, None) is None:
            return
        if self._epoll is not None:
            self._epoll.unregister(fd)
        else:
            self._selector.unregister(fd)

    def wait(self, timeout_s: float) -> list[Any]:
        """The data of the descriptors readable within ``timeout_s`` (0: now), in no order."""
        if self._epoll is None:
            return [key.data for key, _ in self._selector.select(timeout_s)]
        data = self._data  # (a signal does not end the wait: PEP 475; the stop request's socket does)
        return [data[fd] for fd, _ in self._epoll.poll(timeout_s, MAX_EVENTS)]

    def close(self) -> None:
        (self._epoll or self._selector).close()
