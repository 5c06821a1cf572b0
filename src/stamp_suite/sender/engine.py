"""The Session-Sender as a pure state machine that owns every timer of its session.

In the manner of aioquic's connection and h11's Connection: time comes in as an
argument (``now_ns`` on the monotonic clock for timers, wall-clock ns for timestamps),
:meth:`SessionSender.next_timer` says when it next needs to be woken, and every call
returns inert, typed events (:mod:`.events`).  The driver (:mod:`.driver`) moves bytes:

- ``handle_timer(now)``: the send schedule (or, in capacity mode, the window of packets in
  flight), reply timeouts (:class:`Lost`), Access Report retransmissions (RFC 8972 §4.6),
  interim reports and tumbling statistics windows; a :class:`Transmit` asks the driver to
  call :meth:`stamp` at once and write the :class:`Sent` data it returns;
- ``receive(datagram, t4, now)``: a reply matched to what was sent, read, and classified
  (:class:`Reply`, :class:`Late`, :class:`Duplicate`, :class:`Rejected`).

Nothing here touches a socket or a clock.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..tlvs import (
    REGISTRY,
    AccessReport,
    DestinationNodeAddress,
    DirectMeasurement,
    ExtraPadding,
    MicroSessionId,
    ReadContext,
    ReturnPath,
    TlvValue,
)
from ..wire.auth import hmac16, verify16
from ..wire.packet import (
    AUTH_BASE_LEN,
    HMAC_COVERED,
    OPEN_REPLY_TTL_AT,
    SENDER_AUTH,
    SENDER_OPEN,
    MalformedPacket,
    reflector_fields,
)
from ..wire.timestamp import (
    DEFAULT_TAI_UTC_OFFSET,
    ErrorEstimate,
    TimestampFormat,
    error_estimate_fields,
    from_wire,
    ntp_from_ns,
    ptp_from_ns,
)
from ..wire.tlv import (
    FLAG_I,
    FLAG_M,
    FLAG_U,
    MalformedTlv,
    RawTlv,
    TlvType,
    build_tlvs,
    compute_hmac_tlv,
    hmac_tlv_required,
    parse_tlvs,
    verify_hmac_tlv,
)
from .events import (
    WRONG_KEY,
    WRONG_MODE,
    DroppedUnread,
    Duplicate,
    Event,
    Finished,
    Invalid,
    Late,
    Lost,
    ProblemKind,
    Refused,
    Rejected,
    RejectReason,
    Reply,
    ReportDue,
    Sample,
    Sent,
    TlvProblem,
    Transmit,
    Unanswered,
    WindowClosed,
)

U32 = 0xFFFF_FFFF
TIMESTAMP_FIELD = struct.Struct("!Q")  # T1, written into a prepared packet
NS = 1_000_000_000
WINDOW_SPREAD_NS = 30 * NS
SKIP_AFTER_NS = NS // 10  # skip_missed: a send at least this late (and an interval) is skipped
MAX_CATCH_UP = 64  # late sends handed out by one handle_timer at most
_OUTSTANDING, _ANSWERED, _LOST = 0, 1, 2


@dataclass(frozen=True)
class SenderConfig:
    authenticated: bool = False
    key: bytes | None = None
    ssid: int = 0
    timestamp_format: TimestampFormat = TimestampFormat.NTP
    tai_offset_s: int = DEFAULT_TAI_UTC_OFFSET
    error_estimate: ErrorEstimate = ErrorEstimate()
    tlvs: tuple[TlvValue, ...] = ()  # request TLVs, in order
    padding: int = 0  # Extra Padding Value length, 0 for none
    hmac_tlv: bool = False  # add an HMAC TLV in open mode (always added in authenticated mode)
    timeout_ns: int = 5 * NS  # no reply within this: the packet is lost
    # RFC 8972 §4.6: an Access Report is retransmitted until a reply carries it back
    access_report_timer_ns: int = 3 * NS
    access_report_retries: int = 4
    # the schedule
    count: int = 0  # test packets to send (retransmissions aside); 0: no limit
    duration_ns: int = 0  # stop sending this long after the start (-w); 0: no limit
    interval_ns: int = NS  # between scheduled packets
    in_flight: int = 0  # capacity mode: keep this many in flight, the next sent on each answer
    report_interval_ns: int = 0  # interim reports (ReportDue), aligned to the start
    windows_ns: tuple[int, ...] = ()  # tumbling statistics windows (WindowClosed), aligned to wall-clock time
    # A scheduled send an interval late (and at least SKIP_AFTER_NS) is skipped, not sent in
    # a burst with the next: a monitor whose core falls behind measures less often (and says so) rather than
    # piling up sends and reading replies after their timeout, which would look like loss.
    skip_missed: bool = False

    def __post_init__(self) -> None:
        if self.authenticated and self.key is None:
            raise ValueError("authenticated mode needs an HMAC key")
        if self.hmac_tlv and self.key is None:
            raise ValueError("an HMAC TLV needs an HMAC key")
        if not 0 <= self.ssid <= 0xFFFF:
            raise ValueError("SSID must be 0..65535")
        if any(isinstance(t, DestinationNodeAddress) for t in self.tlvs) and not self.ssid:
            raise ValueError("a Destination Node Address TLV requires an SSID (RFC 9503 §3)")
        if sum(isinstance(t, ReturnPath) for t in self.tlvs) > 1:
            raise ValueError("at most one Return Path TLV may be sent (RFC 9503 §4)")
        if self.error_estimate.timestamp_format != self.timestamp_format:
            object.__setattr__(self, "error_estimate", self.error_estimate.with_format(self.timestamp_format))

    @property
    def micro_session(self) -> MicroSessionId | None:
        return next((t for t in self.tlvs if isinstance(t, MicroSessionId)), None)


@dataclass(slots=True)
class _Sent:
    t1_wire: int  # the T1 written in the packet (what the reflector copies back)
    t1_ns: int  # the best known departure time: the kernel's TX timestamp when we have it
    state: int = _OUTSTANDING
    replies: int = 0
    refused: bool = False  # an ICMP error came back for it


@dataclass(slots=True)
class _Prepared:
    sequence_number: int
    data: bytearray
    timestamp_offset: int


class SessionSender:
    def __init__(self, config: SenderConfig) -> None:
        self.config = config
        self._ee = config.error_estimate.to_int()
        tai = config.tai_offset_s
        self._encode: Callable[[int], int] = (ntp_from_ns if config.timestamp_format == TimestampFormat.NTP
                                              else lambda ns: ptp_from_ns(ns, tai))
        self._reports_access = any(isinstance(t, AccessReport) for t in config.tlvs)
        self._micro_session = config.micro_session
        self._sent: dict[int, _Sent] = {}
        self._deadlines: deque[tuple[int, int]] = deque()  # (monotonic deadline, seq), in send order
        self._forget: deque[tuple[int, int]] = deque()  # (monotonic time to forget, seq)
        self.sent_count = 0  # packets stamped, retransmissions included
        self.skipped = 0  # scheduled sends skipped for being over an interval late (skip_missed)
        self.outstanding = 0  # sent, neither answered nor lost yet
        self._slots = 0  # scheduled sends issued (retransmissions take none)
        self._end_ns: int | None = None  # no scheduled send at or after this (duration_ns)
        self._schedule_over = False  # count reached or duration passed: only replies to wait for
        self._unstamped = 0  # Transmits issued that the driver has not stamped yet
        self._next_send: int | None = None
        self._start_ns = 0
        self._wall_offset = 0  # wall-clock minus monotonic, taken at the start
        self._window_spread: dict[int, int] = {}  # window length -> its summary's delay (_window_close)
        self._started = False
        self.finished = False
        self._ar_deadline: int | None = None
        self.access_report_retransmissions = 0
        self._next_report: int | None = None
        self._reports = 0
        self._windows: dict[int, int] = {}  # window length -> index of the next window to close
        self._next_window_close: int | None = None  # the earliest of their closes (monotonic)
        self.consecutive_refusals = 0
        self._dropped_unread_count: int | None = None  # the socket's count when last read (dropped_unread)
        self.dropped_unread_total = 0
        self.ssid_not_echoed = 0
        self.learned_reflector_link_id: int | None = None
        self._prepared = self._prepare(0)

    # -- the clock -----------------------------------------------------------------------
    def update_clock(self, error_estimate: ErrorEstimate) -> None:
        """Describe the clock anew (S bit, error) from the next packet on."""
        self._ee = error_estimate.with_format(self.config.timestamp_format).to_int()
        self._prepared = self._prepare(self._prepared.sequence_number)

    # -- timers ----------------------------------------------------------------------------
    def start(self, now_ns: int, wall_ns: int, delay_ns: int = 0) -> None:
        """Begin the schedule ``delay_ns`` from now (monotonic ``now_ns``, wall-clock ``wall_ns``)."""
        cfg = self.config
        self._started = True
        self._start_ns = start = now_ns + delay_ns
        self._wall_offset = wall_ns - now_ns
        share = min(delay_ns, cfg.interval_ns) / cfg.interval_ns
        self._window_spread = {length: int(min(length, WINDOW_SPREAD_NS) * share) for length in cfg.windows_ns}
        self._next_send = start
        if cfg.duration_ns:
            self._end_ns = start + cfg.duration_ns
        if cfg.report_interval_ns:
            self._next_report = start + cfg.report_interval_ns
        for length in cfg.windows_ns:
            self._windows[length] = (wall_ns + delay_ns) // length
        self._next_window_close = self._earliest_window_close()

    def next_timer(self) -> int | None:
        """When :meth:`handle_timer` must next be called (monotonic ns), or None."""
        if self.finished or not self._started:
            return None
        if self._schedule_over and not self.outstanding and not self._unstamped:
            return 0  # finished: say so at once
        due = self._next_send
        end = self._end_ns if not self._schedule_over else None  # capacity mode learns of the end by a timer
        for t in (self._ar_deadline, self._next_report, self._deadlines[0][0] if self._deadlines else None, end):
            if t is not None and (due is None or t < due):
                due = t
        t = self._next_window_close
        if t is not None and (due is None or t < due):
            due = t
        return due

    def next_send(self) -> int | None:
        """When the next scheduled packet is due (for a driver that waits precisely for sends)."""
        return self._next_send

    def _earliest_window_close(self) -> int | None:
        return min((self._window_close(length, index) for length, index in self._windows.items()), default=None)

    def _window_close(self, length: int, index: int) -> int:
        """After the window's last packet's timeout, and then a delay of the session's own (its
        start delay's share of the interval, times the window, at most WINDOW_SPREAD_NS), so
        that the windows of many sessions (a monitor's targets) close spread out, not in the
        one second their sends are spread over (over half a window, 10,000 summaries a 10 s
        window made sends up to 12 ms late while they lasted, measured)."""
        return (index + 1) * length + self.config.timeout_ns + self._window_spread[length] - self._wall_offset

    def _more_to_send(self, due_ns: int) -> bool:
        """May a scheduled packet be sent at ``due_ns``?  Marks the schedule over when not."""
        cfg = self.config
        if (cfg.count and self._slots >= cfg.count) or (self._end_ns is not None and due_ns >= self._end_ns):
            self._schedule_over = True
        return not self._schedule_over

    def handle_timer(self, now_ns: int) -> list[Event]:
        cfg = self.config
        events: list[Event] = []
        # An interval's report first: a packet sent at its end belongs to the next one.
        if self._next_report is not None and now_ns >= self._next_report:
            self._reports += 1
            events.append(ReportDue(self._reports, self._reports * cfg.report_interval_ns))
            self._next_report += cfg.report_interval_ns
        due = self._next_send
        if due is not None and now_ns >= due:
            if cfg.in_flight:
                self._next_send = None
                self._fill_window(due, events)
            else:
                if cfg.skip_missed and now_ns - due >= max(cfg.interval_ns, SKIP_AFTER_NS):
                    missed = (now_ns - due) // cfg.interval_ns  # slots wholly past: the latest one goes
                    if cfg.count:
                        missed = min(missed, cfg.count - self._slots - 1)
                    if self._end_ns is not None:  # and never one at or after the end
                        missed = min(missed, max(0, (self._end_ns - 1 - due) // cfg.interval_ns))
                    self._slots += missed
                    self.skipped += missed
                    due += missed * cfg.interval_ns
                events.append(Transmit(due))
                self._slots += 1
                self._unstamped += 1
                following = self._start_ns + self._slots * cfg.interval_ns
                self._next_send = following if self._more_to_send(following) else None
                # A driver that fell behind gets every send that is due now, to send together
                # (one system call) rather than one per pass; skip_missed drops them instead.
                while (not cfg.skip_missed and self._next_send is not None and self._next_send <= now_ns
                       and self._unstamped < MAX_CATCH_UP):
                    events.append(Transmit(self._next_send))
                    self._slots += 1
                    self._unstamped += 1
                    following = self._start_ns + self._slots * cfg.interval_ns
                    self._next_send = following if self._more_to_send(following) else None
        if self._end_ns is not None and now_ns >= self._end_ns:
            self._more_to_send(now_ns)
            self._next_send = None
        if self._ar_deadline is not None and now_ns >= self._ar_deadline:
            if self.access_report_retransmissions < cfg.access_report_retries:
                self.access_report_retransmissions += 1
                self._unstamped += 1
                events.append(Transmit(self._ar_deadline, retransmission=True))
            self._ar_deadline = None  # re-armed by the next packet that carries the TLV
        self._expire(now_ns, events)
        self._forget_old(now_ns)
        if self._next_window_close is not None and now_ns >= self._next_window_close:
            for length, index in self._windows.items():
                while now_ns >= self._window_close(length, index):
                    events.append(WindowClosed(length, index, index * length < self._start_ns + self._wall_offset))
                    index += 1
                self._windows[length] = index
            self._next_window_close = self._earliest_window_close()
        self._check_finished(events)
        return events

    def _expire(self, now_ns: int, events: list[Event]) -> None:
        """Packets whose timeout has passed without a valid reply are lost."""
        deadlines = self._deadlines
        if not deadlines or deadlines[0][0] > now_ns:
            return  # the head is outstanding and not due (answered ones are dropped as they come)
        while deadlines and deadlines[0][0] <= now_ns:
            seq = deadlines.popleft()[1]
            rec = self._sent.get(seq)
            if rec is not None and rec.state == _OUTSTANDING:
                rec.state = _LOST
                self.outstanding -= 1
                events.append(Lost(seq, rec.t1_ns, rec.refused))
                self._fill_window(now_ns, events)
        self._drop_answered_deadlines()

    def _drop_answered_deadlines(self) -> None:
        """Answered packets need no timeout: drop them from the head of the deadlines, so that
        the next timer is a real one (one wake-up per packet, not two)."""
        deadlines, sent = self._deadlines, self._sent
        while deadlines:
            rec = sent.get(deadlines[0][1])
            if rec is not None and rec.state == _OUTSTANDING:
                return
            deadlines.popleft()

    def _forget_old(self, now_ns: int) -> None:
        """Packets older than twice the timeout: no reply to them counts any more (bounded
        memory).  Done on the way, never worth a wake-up of its own."""
        forget = self._forget
        while forget and forget[0][0] <= now_ns:
            self._sent.pop(forget.popleft()[1], None)

    def _fill_window(self, now_ns: int, events: list[Event]) -> None:
        """Capacity mode: keep ``in_flight`` packets outstanding while there are more to send."""
        cfg = self.config
        if not cfg.in_flight:
            return
        while self.outstanding + self._unstamped < cfg.in_flight and self._more_to_send(now_ns):
            events.append(Transmit(now_ns))
            self._slots += 1
            self._unstamped += 1

    def _check_finished(self, events: list[Event]) -> None:
        if not self.finished and self._schedule_over and not self.outstanding and not self._unstamped:
            self.finished = True
            events.append(Finished())

    def close(self, now_ns: int) -> list[Event]:
        """End the session now (a stop): a packet still within its timeout is not lost, only
        unanswered (loss is counted over the packets whose fate is known)."""
        events: list[Event] = []
        for seq, rec in self._sent.items():
            if rec.state == _OUTSTANDING:
                rec.state = _LOST
                events.append(Unanswered(seq, rec.t1_ns))
        self.outstanding = 0
        if not self.finished:
            self.finished = True
            events.append(Finished())
        return events

    # -- sending ------------------------------------------------------------------------
    def _prepare(self, sequence_number: int) -> _Prepared:
        cfg = self.config
        seq = sequence_number & U32
        if cfg.authenticated:
            head = bytearray(SENDER_AUTH.pack(seq, 0, self._ee, cfg.ssid)) + bytes(16)
            ts_offset = 16
        else:
            head = bytearray(SENDER_OPEN.pack(seq, 0, self._ee, cfg.ssid))
            ts_offset = 4
        return _Prepared(seq, head + self._tlv_area(seq), ts_offset)

    def _tlv_area(self, seq: int) -> bytes:
        cfg = self.config
        if not (cfg.tlvs or cfg.padding):
            return b""
        tlvs: list[RawTlv] = []
        for t in cfg.tlvs:
            if isinstance(t, DirectMeasurement):  # S_TxC counts this packet
                t = DirectMeasurement(self.sent_count + 1)
            elif isinstance(t, MicroSessionId) and self.learned_reflector_link_id and not t.reflector_id:
                t = MicroSessionId(t.sender_id, self.learned_reflector_link_id)
            tlvs.append(t.to_tlv())
        if tlvs and (cfg.authenticated or cfg.hmac_tlv):
            assert cfg.key is not None
            tlvs.append(compute_hmac_tlv(cfg.key, seq.to_bytes(4, "big"), build_tlvs(tlvs)))
        if cfg.padding:
            tlvs.append(ExtraPadding.of_length(cfg.padding).to_tlv())
        return build_tlvs(tlvs)

    def stamp(self, transmit: Transmit, t1_ns: int, now_ns: int) -> Sent:
        """The packet ``transmit`` asked for, with T1 (wall-clock ``t1_ns``, read right before
        the send) and, in authenticated mode, the base HMAC over it; write ``Sent.data`` now."""
        cfg = self.config
        pkt = self._prepared
        seq, data = pkt.sequence_number, pkt.data
        t1_wire = self._encode(t1_ns)
        TIMESTAMP_FIELD.pack_into(data, pkt.timestamp_offset, t1_wire)
        if cfg.authenticated:
            data[HMAC_COVERED:AUTH_BASE_LEN] = hmac16(cfg.key, memoryview(data)[:HMAC_COVERED])
        self._sent[seq] = _Sent(t1_wire, t1_ns)
        self.sent_count += 1
        self.outstanding += 1
        self._unstamped = max(0, self._unstamped - 1)
        self._deadlines.append((now_ns + cfg.timeout_ns, seq))
        self._forget.append((now_ns + 2 * cfg.timeout_ns, seq))  # late replies are still matched until then
        if self._reports_access and self._ar_deadline is None:
            self._ar_deadline = now_ns + cfg.access_report_timer_ns
        self._prepared = self._prepare(seq + 1)
        # this packet's own buffer: never written again
        late = None if cfg.in_flight or transmit.retransmission else now_ns - transmit.due_ns
        return Sent(seq, t1_ns, data, transmit.retransmission, now_ns + self._wall_offset, late)

    def departed(self, sequence_number: int, tx_ns: int) -> None:
        """The kernel's transmit time of a test packet: a better T1 than the clock read before
        the send (the packet keeps the earlier T1; it only identifies the packet)."""
        rec = self._sent.get(sequence_number)
        if rec is not None:
            rec.t1_ns = tx_ns

    def icmp_error(self, meaning: str, sequence_number: int | None = None) -> list[Event]:
        """The socket reported an ICMP error (``meaning``: "port unreachable", ...).  It names no
        packet; it is taken as the answer to the last one sent (``sequence_number``, which the
        driver knows when it stamps several before sending them; else the last one stamped),
        which it is at any pace slower than the round trip (a second error for that packet
        names none)."""
        self.consecutive_refusals += 1
        seq = self._prepared.sequence_number - 1 if sequence_number is None else sequence_number
        rec = self._sent.get(seq)
        if rec is None or rec.refused or rec.state != _OUTSTANDING:
            return [Refused(self.consecutive_refusals, meaning)]
        rec.refused = True
        return [Refused(self.consecutive_refusals, meaning, seq)]

    def dropped_unread(self, count: int) -> list[Event]:
        """The kernel's 32-bit count of datagrams it dropped for this session's socket before
        they were read, since it was opened (``UdpEndpoint.dropped_unread``): a DroppedUnread with
        what is new since the last count (the first count always, so that 0 is known too)."""
        previous = self._dropped_unread_count
        new = count if previous is None else (count - previous) & U32  # (a count that wrapped)
        if previous is not None and not new:
            return []
        self._dropped_unread_count = count
        self.dropped_unread_total += new
        return [DroppedUnread(new, self.dropped_unread_total)]

    # -- receiving ------------------------------------------------------------------------
    def receive(self, data: bytes, t4_ns: int, now_ns: int, ttl: int | None = None,
                tos: int | None = None) -> list[Event]:
        """Match one datagram to what was sent.  Never raises on any input."""
        events: list[Event] = []
        self._expire(now_ns, events)  # a reply after its timeout is late, however soon we look
        cfg = self.config
        try:
            fields, tlvs = reflector_fields(data, cfg.authenticated)
        except MalformedPacket as exc:
            return events + [Rejected(RejectReason.MALFORMED, str(exc))]
        if cfg.authenticated and not verify16(cfg.key, memoryview(data)[:HMAC_COVERED], data[96:112]):
            return events + [Rejected(RejectReason.HMAC_FAILURE, WRONG_MODE if any(data[4:16]) else WRONG_KEY)]
        reflector_seq, t3_wire, ee, ssid, t2_wire, seq, t1_wire, see, reflector_ttl = fields
        if len(data) <= OPEN_REPLY_TTL_AT and not cfg.authenticated:
            reflector_ttl = None  # a TWAMP-Light reply of 38-40 octets: no TTL there, not a TTL of 0
        if ssid != cfg.ssid:
            if ssid != 0:
                return events + [Rejected(RejectReason.FOREIGN, f"SSID {ssid} is not ours ({cfg.ssid})")]
            if cfg.ssid:
                self.ssid_not_echoed += 1  # an RFC 8762-only reflector answers 0 (RFC 8972 §3)
        rec = self._sent.get(seq)
        if rec is None:
            return events + [Rejected(RejectReason.FOREIGN, f"sequence {seq} was not sent by us")]
        if rec.t1_wire != t1_wire:
            return events + [Rejected(RejectReason.FOREIGN, "copied timestamp does not match what we sent")]
        fmt, reflector_synchronized, reflector_error_ns = error_estimate_fields(ee)
        _, sender_synchronized, sender_error_ns = error_estimate_fields(see)
        pivot = rec.t1_ns
        problems, read = (), {}
        if tlvs:  # most replies carry none: no context to make
            ctx = ReadContext(fmt, cfg.tai_offset_s, pivot, self._micro_session, self.learned_reflector_link_id)
            problems = self._read_tlvs(tlvs, data, ctx)
            if ctx.mismatch is not None:  # RFC 9534 §3.2: discard
                return events + [Rejected(RejectReason.MICRO_SESSION_MISMATCH, ctx.mismatch)]
            self.learned_reflector_link_id = ctx.learned_reflector_link_id
            if ctx.access_report_answered:
                self._ar_deadline = None
                self.access_report_retransmissions = 0
            read = ctx.read
        self.consecutive_refusals = 0
        rec.replies += 1
        sample = Sample(seq, reflector_seq, pivot, from_wire(t2_wire, fmt, cfg.tai_offset_s, pivot),
                        from_wire(t3_wire, fmt, cfg.tai_offset_s, pivot), t4_ns, reflector_ttl, ttl, tos,
                        sender_synchronized, reflector_synchronized, reflector_error_ns, sender_error_ns, ssid, read,
                        problems)
        if rec.replies > 1:
            events.append(Duplicate(sample))
        elif rec.state == _LOST:
            events.append(Late(sample))
        else:
            rec.state = _ANSWERED
            self.outstanding -= 1
            self._drop_answered_deadlines()
            impossible = sample.impossible()
            events.append(Reply(sample) if impossible is None else Invalid(sample, impossible))
            self._fill_window(now_ns, events)
            self._check_finished(events)
        return events

    def _read_tlvs(self, area: bytes, data: bytes, ctx: ReadContext) -> tuple[TlvProblem, ...]:
        """Read the reply's TLVs as RFC 8972 §4 says a sender does: none when one has I (or the
        HMAC TLV does not verify, or, where we signed ours, is missing); a TLV with U is
        skipped; at one with M (or whose Length runs past the reply) reading stops, and the
        TLVs after it are reported as not read.  Zero padding (Type 0) is passed over."""
        cfg = self.config
        parsed = parse_tlvs(area)
        tlvs = parsed.tlvs
        if any(t.flags & FLAG_I for t in tlvs):  # RFC 8972 §4.8: none of them can be trusted
            return tuple(TlvProblem(t.type, ProblemKind.INTEGRITY, "the reflector's check of the HMAC TLV failed (I)")
                         for t in tlvs if t.flags & FLAG_I)
        if cfg.key is not None and any(t.type == TlvType.HMAC for t in tlvs):
            if not verify_hmac_tlv(cfg.key, data[:4], area, tlvs):
                return (TlvProblem(TlvType.HMAC, ProblemKind.INTEGRITY, "the reply's HMAC TLV does not verify"),)
        elif (cfg.authenticated or cfg.hmac_tlv) and hmac_tlv_required(tlvs):
            # The base HMAC does not cover TLVs: without an HMAC TLV anyone on the path could
            # have rewritten them (RFC 8972 §4.8).  Counted, and nothing in them used.
            return (TlvProblem(TlvType.HMAC, ProblemKind.INTEGRITY, "the reply's TLVs carry no HMAC TLV"),)
        problems: list[TlvProblem] = []
        for i, t in enumerate(tlvs):
            if t.type == TlvType.HMAC or t.type == TlvType.RESERVED:  # checked above; padding
                continue
            if t.truncated or t.flags & FLAG_M:
                problems.append(TlvProblem(t.type, ProblemKind.TRUNCATED, f"Length {t.length} runs past the reply")
                                if t.truncated else TlvProblem(t.type, ProblemKind.MALFORMED, "the reflector set M"))
                # RFC 8972 §4: stop processing the remainder of the packet.
                problems += [TlvProblem(u.type, ProblemKind.NOT_READ, "after a malformed TLV") for u in tlvs[i + 1:]
                             if u.type != TlvType.HMAC]
                return tuple(problems)
            if t.flags & FLAG_U:
                problems.append(TlvProblem(t.type, ProblemKind.NOT_PROCESSED, "the reflector did not process it (U)"))
                continue
            kind = REGISTRY.get(t.type)
            if kind is None:
                problems.append(TlvProblem(t.type, ProblemKind.UNKNOWN, "a type this sender does not know"))
                continue
            try:
                kind.from_value(t.value).read(ctx)
            except (MalformedTlv, ValueError) as exc:
                problems.append(TlvProblem(t.type, ProblemKind.UNREADABLE, str(exc)))
        if parsed.trailing:
            problems.append(TlvProblem(0, ProblemKind.TRUNCATED, f"{len(parsed.trailing)} octets after the last TLV"))
        return tuple(problems)
