"""What a Session-Sender engine tells the code that drives it: inert, typed events.

Each is a small dataclass, as in h11's events.py, that every consumer only reads.  They are
not frozen: a frozen dataclass sets each field through object.__setattr__, six times the cost,
and a monitor makes four events a round trip for each of ten thousand targets.
The engine returns them from ``handle_timer``, ``receive``, ``stamp`` and ``close``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ..tlvs import TlvValue


class ProblemKind(StrEnum):
    """Why a TLV of a reply told nothing."""

    NOT_PROCESSED = "not_processed"  # the reflector set U
    MALFORMED = "malformed"  # the reflector set M
    INTEGRITY = "integrity"  # I set, or an HMAC TLV that does not verify or is missing
    UNKNOWN = "unknown"  # a type this sender does not know
    UNREADABLE = "unreadable"  # its Value does not fit its type
    TRUNCATED = "truncated"  # its Length runs past the reply
    NOT_READ = "not_read"  # after a malformed one: RFC 8972 §4 stops there


class RejectReason(StrEnum):
    """Why a datagram is not a usable reply to us."""

    MALFORMED = "malformed"
    FOREIGN = "foreign"  # not a reply to a packet of ours (SSID, sequence number, copied T1)
    HMAC_FAILURE = "hmac_failure"
    MICRO_SESSION_MISMATCH = "micro_session_mismatch"  # RFC 9534 §3.2


# Why a reply's HMAC failed, as far as its octets tell: a reflector in open mode answers an
# authenticated packet in the open layout, whose T3 sits where ours has MBZ (RFC 8762 §4.2.2).
WRONG_MODE = "the reply has the open mode's layout: the reflector runs open mode"
WRONG_KEY = "the reply's HMAC does not verify with our key"


@dataclass(slots=True)
class TlvProblem:
    """A TLV of a reply that told nothing, and why."""

    tlv_type: int
    kind: ProblemKind
    detail: str


# How far an interval measured on one clock may be off: a reflector's T2 and T3 may come from a
# microsecond clock (and ours carry the loop tag in their lowest bits), and the two clocks may
# run at rates 500 ppm apart (two uncorrected crystals at 250 ppm each, over the residence).
INTERVAL_GRANULARITY_NS = 2_000
RATE_DIFFERENCE = 500e-6


@dataclass(slots=True)
class Sample:
    """One matched reply: the four timestamps and what each end saw."""

    sequence_number: int
    reflector_sequence_number: int
    t1_ns: int  # the best known departure: the kernel's TX timestamp when there is one
    t2_ns: int
    t3_ns: int
    t4_ns: int
    # TTL/Hop Limit the reflector saw (255 may mean unknown); None: the reply has no such field
    # (a TWAMP-Light reflector's reply of 38-40 octets)
    reflector_ttl: int | None
    reply_ttl: int | None  # TTL/Hop Limit of the reply here, None if the platform cannot tell
    reply_tos: int | None
    sender_synchronized: bool
    reflector_synchronized: bool
    reflector_error_ns: float
    sender_error_ns: float
    ssid: int
    # What was read of the reflector's TLVs: the typed values, by type (made plain values only
    # at the edges: JSON, per-packet lines, metrics), and the TLVs that told nothing.
    tlvs: dict[type[TlvValue], TlvValue] = field(default_factory=dict)
    tlv_problems: tuple[TlvProblem, ...] = ()

    def impossible(self) -> str | None:
        """Why these timestamps cannot be (the reply is then :class:`Invalid`), or None: a
        reflector that left before it received (T3 < T2), or stayed longer than the whole round
        trip (T3 - T2 > T4 - T1).  Both are intervals on one clock each, so the clocks' offsets
        (what their Error Estimates state) cancel out; allowed are the timestamps' granularity
        and the two clocks' different rates over the residence time (docs/protocol.md)."""
        residence = self.t3_ns - self.t2_ns
        if residence < -INTERVAL_GRANULARITY_NS:
            return "T3 before T2"
        if residence > self.t4_ns - self.t1_ns + INTERVAL_GRANULARITY_NS + residence * RATE_DIFFERENCE:
            return "T3 - T2 longer than T4 - T1"
        return None

    @property
    def rtt_ns(self) -> int:
        """Round trip without the reflector's residence time: (T4 - T1) - (T3 - T2); 0 when
        it is below 0 within what impossible() allows (beyond, the reply is Invalid)."""
        return max(0, (self.t4_ns - self.t1_ns) - (self.t3_ns - self.t2_ns))

    @property
    def residence_ns(self) -> int:
        return max(0, self.t3_ns - self.t2_ns)

    @property
    def forward_ns(self) -> int:
        """T2 - T1: a delay when :attr:`clocks_synchronized` (never below 0 then), else an offset."""
        d = self.t2_ns - self.t1_ns
        return max(0, d) if self.clocks_synchronized else d

    @property
    def backward_ns(self) -> int:
        """T4 - T3: a delay when :attr:`clocks_synchronized` (never below 0 then), else an offset."""
        d = self.t4_ns - self.t3_ns
        return max(0, d) if self.clocks_synchronized else d

    @property
    def clocks_synchronized(self) -> bool:
        """Both ends say their clocks are synchronised (S bits), and the one-way delays agree:
        neither is below 0 by more than the stated errors (a clock that says it is synchronised
        and is not gives offsets, not delays)."""
        if not (self.sender_synchronized and self.reflector_synchronized):
            return False
        offset = self.reflector_error_ns + self.sender_error_ns  # how far apart the clocks may be, as stated
        return self.t2_ns - self.t1_ns >= -offset and self.t4_ns - self.t3_ns >= -offset


@dataclass(slots=True)
class Transmit:
    """A test packet is due now: call ``SessionSender.stamp()`` and write what it returns."""

    due_ns: int  # when it was due (monotonic): now minus this is the schedule error
    retransmission: bool = False  # an Access Report retransmission, outside the schedule


@dataclass(slots=True)
class Sent:
    """A test packet, stamped and ready: ``data`` goes on the wire now."""

    sequence_number: int
    t1_ns: int
    data: bytes | bytearray
    retransmission: bool = False
    # When it left on the statistics windows' clock: the monotonic time plus the wall-clock
    # offset taken at the start, the clock WindowClosed is timed by, so that a step of the
    # wall clock (chrony at boot) moves no packet out of its window.
    window_ns: int = 0
    # How late it left against its schedule (the schedule error); None for a packet outside
    # the schedule: capacity mode's, an Access Report retransmission.
    late_ns: int | None = None


@dataclass(slots=True)
class SendFailed:
    """The socket refused to send a test packet (made by the driver, not the engine): the
    packet counts as sent, and will be lost."""

    sequence_number: int
    detail: str


@dataclass(slots=True)
class Reply:
    """A reply within --timeout: a measurement."""

    sample: Sample


@dataclass(slots=True)
class Invalid:
    """A reply within --timeout whose timestamps cannot be (``reason``: Sample.impossible): the
    packet was answered, so it is not lost, but the reply is kept out of every delay figure."""

    sample: Sample
    reason: str


@dataclass(slots=True)
class Late:
    """A reply after its packet was counted lost (RFC 7680: it stays lost)."""

    sample: Sample


@dataclass(slots=True)
class Duplicate:
    """A second (or later) reply to one packet."""

    sample: Sample


@dataclass(slots=True)
class Lost:
    """No valid reply within --timeout (``refused``: an ICMP error was reported for it)."""

    sequence_number: int
    t1_ns: int
    refused: bool = False


@dataclass(slots=True)
class Unanswered:
    """Still within its --timeout when the session was stopped: its fate is unknown, so it is
    counted apart, not as lost."""

    sequence_number: int
    t1_ns: int


@dataclass(slots=True)
class Rejected:
    """A datagram that is not a usable reply to us."""

    reason: RejectReason
    detail: str


@dataclass(slots=True)
class Refused:
    """An ICMP error came back for a test packet: ``icmp`` says which ("port unreachable":
    nothing listens there; "host unreachable", ...); ``consecutive`` counts them since the last
    reply."""

    consecutive: int
    icmp: str = "port unreachable"
    sequence_number: int | None = None  # the packet it answers, taken as the last one sent


@dataclass(slots=True)
class DroppedUnread:
    """The kernel dropped ``new`` datagrams for the session's socket before they were read
    (``total`` since it was opened): its receive buffer was full because this program fell
    behind (or, rarely, a UDP checksum was bad).  The replies among them count as lost (or
    unanswered, at a stop), though the path did not lose them.  The first count comes even
    when 0: the count is then known."""

    new: int
    total: int


@dataclass(slots=True)
class ReportDue:
    """--report-interval elapsed: ``index`` intervals of ``interval_ns`` since the start."""

    index: int
    elapsed_ns: int


@dataclass(slots=True)
class WindowClosed:
    """Tumbling window ``index`` of ``length_ns`` (packets sent in [index * length, (index + 1)
    * length) of wall-clock time) is over: its last packet's timeout has passed.  ``partial``:
    the session did not run for the whole window."""

    length_ns: int
    index: int
    partial: bool


@dataclass(slots=True)
class Finished:
    """Every packet was sent and answered or counted lost: the session is over."""


Event = (Transmit | Sent | SendFailed | Reply | Invalid | Late | Duplicate | Lost | Unanswered | Rejected | Refused
         | DroppedUnread | ReportDue | WindowClosed | Finished)
