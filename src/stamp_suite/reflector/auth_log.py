"""Why authenticated sessions get no answer, said while the reflector runs: a reflector drops
a packet whose HMAC fails without a word on the wire (RFC 8762 §4.4), so its operator is the
only one who can be told.  The first drop of each kind is said at once, then at most one line
a minute of that kind, with how many there were since: a flood of bad packets cannot flood
the log."""

from __future__ import annotations

from collections.abc import Callable

from ..net.resolve import format_address
from .counters import DropReason

INTERVAL_NS = 60_000_000_000


class AuthDropLog:
    def __init__(self, authenticated: bool, write: Callable[[str], None], interval_ns: int = INTERVAL_NS) -> None:
        self.authenticated = authenticated
        self.write = write
        self.interval_ns = interval_ns
        self._next_ns: dict[DropReason, int] = {}  # by kind: when the next line may be said
        self._since: dict[DropReason, int] = {}  # by kind: drops since the last line

    def __call__(self, reason: DropReason, source: tuple, now_ns: int) -> None:
        """A drop: said if it is the first, or the first after a quiet interval."""
        if reason is not DropReason.HMAC_FAILURE and reason is not DropReason.WRONG_MODE:
            return
        since = self._since[reason] = self._since.get(reason, 0) + 1
        if now_ns < self._next_ns.get(reason, now_ns):
            return
        if reason is DropReason.HMAC_FAILURE:
            why = "HMAC does not verify: the sender's key differs from ours"
        elif self.authenticated:
            why = "an open-mode packet, and this reflector runs authenticated mode (-A A)"
        else:
            why = "an authenticated-mode packet, and this reflector runs open mode"
        more = f" ({since} such drops since the last line)" if since > 1 else ""
        self.write(f"stamp-suite: no reply to {format_address(source)}: {why}{more}")
        self._next_ns[reason], self._since[reason] = now_ns + self.interval_ns, 0
