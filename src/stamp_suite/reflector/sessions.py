"""Per-client state of a Session-Reflector: counters, sequence, last reflection.

A session is identified by the 4-tuple and the SSID (RFC 8972 §3).  The table is an
LRU: every packet moves its session to the end, so idle expiry and eviction when the
table is full both take from the front (oldest activity first) in O(1).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

from .counters import ACTIVE_SESSIONS, SESSIONS_EVICTED, SESSIONS_EXPIRED, local_block

# source address, source port, local address (text or packed, as the socket gives it), local port, SSID
SessionKey = tuple[str, int, str | bytes, int, int]


@dataclass(slots=True)
class Session:
    key: SessionKey
    first_seen_ns: int
    last_seen_ns: int
    index: int = 0  # stable number while the session lives (SNMP table index)
    received: int = 0  # R_RxC: test packets received in this session
    transmitted: int = 0  # R_TxC: replies sent; also the next stateful Sequence Number
    last_sender_sequence: int | None = None
    last_reply_sequence: int | None = None  # for Follow-Up Telemetry
    last_reply_tx_ns: int | None = None
    last_reply_tx_method: int = 0

    @property
    def source(self) -> tuple[str, int]:
        return self.key[0], self.key[1]


class SessionTable:
    """Bounded, idle-expiring map of sessions (``max_sessions`` 0 means unbounded).

    Its size, evictions and expiries are kept in the reflector's counter block, so they
    are live for the whole reflector whatever process this table lives in."""

    def __init__(self, idle_timeout_ns: int, max_sessions: int, counters: memoryview | None = None) -> None:
        self.idle_timeout_ns = idle_timeout_ns
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[SessionKey, Session] = OrderedDict()
        self._c = counters if counters is not None else local_block()
        self._next_index = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self):
        return iter(list(self._sessions.values()))

    def get(self, key: SessionKey) -> Session | None:
        return self._sessions.get(key)

    def touch(self, key: SessionKey, now_ns: int) -> Session:
        """The session for ``key``, marked active at ``now_ns``.  A new one stays out of the
        table until :meth:`admit` puts it there: a packet that is dropped leaves no state, so
        spoofed packets that are never answered cannot evict anyone's session."""
        session = self._sessions.get(key)
        if session is None:
            return Session(key, now_ns, now_ns)  # index 0: not in the table
        self._sessions.move_to_end(key)
        session.last_seen_ns = now_ns
        return session

    def admit(self, session: Session, now_ns: int) -> None:
        """Put a new session in the table, the least recently active one evicted if it is full."""
        sessions = self._sessions
        self.expire(now_ns)
        if self.max_sessions and len(sessions) >= self.max_sessions:
            sessions.popitem(last=False)
            self._c[SESSIONS_EVICTED] += 1
        self._next_index = self._next_index % 0xFFFF_FFFF + 1
        session.index = self._next_index
        sessions[session.key] = session
        self._c[ACTIVE_SESSIONS] = len(sessions)

    def expire(self, now_ns: int) -> int:
        """Drop sessions idle for longer than the timeout (0 disables expiry)."""
        if not self.idle_timeout_ns:
            return 0
        horizon = now_ns - self.idle_timeout_ns
        sessions = self._sessions
        n = 0
        while sessions:
            oldest = next(iter(sessions.values()))
            if oldest.last_seen_ns >= horizon:
                break
            sessions.popitem(last=False)
            n += 1
        if n:
            self._c[SESSIONS_EXPIRED] += n
            self._c[ACTIVE_SESSIONS] = len(sessions)
        return n


class RateLimiter:
    """Token buckets per client (a source address, or an IPv6 /64): ``rate`` packets/s with
    bursts of ``burst``; ``now_ns`` is monotonic.

    Keyed by address, not by session, so a flood from many source ports of one host is
    limited as one client.  A packet needs one token to be looked at; one that turns out to
    be heavy is charged more afterwards (:meth:`charge`), down to a debt of one burst, so a
    source pays for the work it causes, not only for its packets.  The table is an LRU
    capped at ``max_clients``.
    """

    def __init__(self, rate: float, burst: float, max_clients: int = 100_000) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, list] = OrderedDict()  # client -> [tokens, last_ns]
        self._prefixes: dict[str, str] = {}  # IPv6 address -> its /64

    def _client(self, address: str) -> str:
        """The client an address belongs to: itself (IPv4, v4-mapped), or its /64 (IPv6): a host
        has a whole /64 to send from, so the /64 is what is limited, and steered (net/reuseport)."""
        if ":" not in address or address.startswith("::ffff:"):
            return address
        prefix = self._prefixes.get(address)
        if prefix is None:
            if len(self._prefixes) >= self.max_clients:
                self._prefixes.clear()
            packed = ipaddress.IPv6Address(address.split("%", 1)[0]).packed
            prefix = self._prefixes[address] = packed[:8].hex()
        return prefix

    def allow(self, address: str, now_ns: int) -> bool:
        buckets = self._buckets
        address = self._client(address)
        b = buckets.get(address)
        if b is None:
            if len(buckets) >= self.max_clients:
                buckets.popitem(last=False)
            b = buckets[address] = [self.burst, now_ns]
        else:
            buckets.move_to_end(address)
            b[0] = min(self.burst, b[0] + max(0, now_ns - b[1]) * self.rate / 1e9)
            b[1] = now_ns
        if b[0] < 1.0:
            return False
        b[0] -= 1.0
        return True

    def charge(self, address: str, tokens: float) -> None:
        """Take ``tokens`` more from ``address``'s bucket (after it was allowed a packet)."""
        b = self._buckets.get(self._client(address))
        if b is not None:
            b[0] = max(-self.burst, b[0] - tokens)
