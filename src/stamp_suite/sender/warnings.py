"""Early warnings while a run goes on: what is most likely wrong, said at once and once each
(the end of the run summarises them again)."""

from __future__ import annotations

from collections.abc import Callable

from ..say import say
from .events import (
    WRONG_MODE,
    DroppedUnread,
    Duplicate,
    Event,
    Invalid,
    Late,
    Lost,
    Refused,
    Rejected,
    RejectReason,
    Reply,
    Sent,
)

REFUSALS_BEFORE_WARNING = 3
LATE_SEND_NS = 100_000_000


class EarlyWarnings:
    def __init__(self, where: str, timeout_s: float, write: Callable[[str], None] = say, ssid: int = 0,
                 window: int = 0, receive_buffer: tuple[int, bool] = (0, False), interval_ns: int = 0) -> None:
        """``ssid``: the one the session sends (--ssid), which a reflector should echo;
        ``window``: its packets in flight (--window, capacity mode), 0 when paced (-d);
        ``receive_buffer``: its socket's (UdpEndpoint.receive_buffer: octets, capped or not);
        ``interval_ns``: between its scheduled sends (-d)."""
        self.where = where
        self.timeout_s = timeout_s
        self.ssid = ssid
        self.window = window
        self.receive_buffer = receive_buffer
        # a send this late has broken the pace: more than a stall of the machine, or two intervals
        self.late_limit_ns = max(LATE_SEND_NS, 2 * interval_ns)
        self.write = write
        self.said: set[str] = set()
        self.replied = self.refused = False

    def _once(self, key: str, text: str) -> None:
        if key not in self.said:
            self.said.add(key)
            self.write(f"warning: {text}")

    def __call__(self, ev: Event) -> None:
        if ev.__class__ is Sent:  # half of all events: one comparison each
            if ev.late_ns is not None and ev.late_ns > self.late_limit_ns:
                self._once("late_send", f"sends to {self.where} are falling behind their schedule (one left "
                                        f"{ev.late_ns / 1e6:.0f} ms late): this host cannot keep the rate asked (-d) "
                                        f"with all it does; the figures are at the pace it kept (the summary says)")
            return
        if isinstance(ev, (Reply, Late, Duplicate)):
            self.replied = True
            if self.ssid and not ev.sample.ssid:
                self._once("ssid", f"{self.where} answers with SSID 0, not --ssid {self.ssid}: a reflector of RFC "
                                   f"8762 only (RFC 8972 §3), which tells sessions apart by address and port alone")
        elif isinstance(ev, Invalid):
            self.replied = True
            self._once("invalid", f"replies from {self.where} with timestamps that cannot be ({ev.reason}): "
                                  f"counted as invalid and kept out of the delays; is the reflector's clock stepping?")
        elif isinstance(ev, Refused):
            self.refused = True
            if ev.consecutive >= REFUSALS_BEFORE_WARNING:
                what = "no reflector on" if ev.icmp == "port unreachable" else "cannot reach"
                self._once("refused", f"{what} {self.where}: ICMP {ev.icmp} ({ev.consecutive} in a row); "
                                      f"still trying")
        elif isinstance(ev, DroppedUnread) and ev.new:
            remedy = (f"keep fewer in flight (--window below {self.window})" if self.window
                      else "send slower (a longer -d)")
            size, capped = self.receive_buffer
            if capped:  # the room a burst of replies has: more of it where the kernel cut it short
                remedy += (f", or let its socket have a larger receive buffer ({size // 1024} KiB now: "
                           f"net.core.rmem_max caps it)")
            self._once("dropped_unread", f"this host is dropping replies from {self.where} before reading them "
                                         f"({ev.total} so far; the report gives the total): this program falls "
                                         f"behind, and they count as lost though the path did not lose them; "
                                         f"{remedy}")
        elif isinstance(ev, Lost) and not self.replied and not self.refused:
            self._once("silent", f"no reply yet from {self.where} within --timeout {self.timeout_s:g} s: is a "
                                 f"reflector there, and in which mode (open or authenticated, -A)?")
        elif isinstance(ev, Rejected) and ev.reason is RejectReason.HMAC_FAILURE:
            hint = ("give it -A A and the same key" if ev.detail == WRONG_MODE else
                    "both ends are in authenticated mode with different keys")
            self._once("hmac", f"replies from {self.where} fail HMAC verification: {ev.detail}; {hint}")
        elif isinstance(ev, Rejected) and ev.reason in (RejectReason.FOREIGN, RejectReason.MALFORMED):
            self._once("foreign", f"datagrams from {self.where} that are not replies to our packets ({ev.detail})")
