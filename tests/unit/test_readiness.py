"""Which sockets can be read (net/readiness.py): epoll here, the selectors module elsewhere."""

from __future__ import annotations

import select
import socket

import pytest

from stamp_suite.net.readiness import Readiness


@pytest.mark.parametrize("platform", ["epoll", "selectors"])
def test_the_data_of_readable_sockets_and_only_theirs(platform, monkeypatch):
    if platform == "selectors":
        monkeypatch.delattr(select, "epoll", raising=False)
    elif not hasattr(select, "epoll"):
        pytest.skip("no epoll on this platform")
    r = Readiness()
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        for i, (a, _) in enumerate(pairs):
            r.register(a.fileno(), f"session {i}")
        assert r.wait(0) == []
        pairs[0][1].send(b"x")
        pairs[2][1].send(b"y")
        assert sorted(r.wait(1)) == ["session 0", "session 2"]
        r.unregister(pairs[0][0].fileno())
        r.unregister(pairs[0][0].fileno())  # twice: nothing happens
        assert r.wait(0) == ["session 2"]  # level-triggered: still unread
    finally:
        r.close()
        for a, b in pairs:
            a.close()
            b.close()
