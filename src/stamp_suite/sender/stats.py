"""Streaming statistics of a STAMP session: delay, one-way delay, delay variation, loss.

Definitions (each is what the report calls it):
- round-trip delay = (T4 - T1) - (T3 - T2), RFC 8762; the raw T4 - T1 and the reflector's
  residence time T3 - T2 are kept too.
- one-way forward = T2 - T1, backward = T4 - T3: meaningful only when both ends say their
  clocks are synchronised (S bit); their *variation* is meaningful regardless.
- IPDV (RFC 3393): D(i) - D(i-1) for consecutive sequence numbers both received.
- interarrival jitter (RFC 3550 §6.4.1): J += (|D(i) - D(i-1)| - J) / 16, in arrival order.
- PDV (RFC 5481): D - min(D); its percentiles are the delay percentiles minus the minimum.
- loss: a packet with no valid reply within --timeout is lost (the engine's Lost event,
  also for packets still unanswered when the session ends); a late reply is counted as
  late (and stays lost, RFC 7680's threshold).  The loss ratio is lost / (received + lost):
  packets still in flight count for neither.  With a stateful reflector the gaps in its
  sequence numbers split loss into forward and backward.
- reordering (RFC 4737): a reply whose sequence number is below the highest seen so far;
  its extent is how far below.
- sending: how late each scheduled send left against its schedule (the schedule error), and
  the rate achieved from the first send to the last: whether the figures are at the pace asked.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from enum import Enum

from ..tlvs import ClassOfService, DirectMeasurement, FollowUpTelemetry, ReturnPath
from ..wire.tlv import TlvType
from .distribution import Distribution
from .events import (
    DroppedUnread,
    Duplicate,
    Invalid,
    Late,
    Lost,
    ProblemKind,
    Refused,
    Rejected,
    RejectReason,
    Reply,
    Sample,
    Sent,
    Unanswered,
)

U32 = 1 << 32
IPDV_MEMORY = 4096  # recent per-sequence delays kept to pair consecutive packets
SETTLE_EVERY = 128  # replies between two settles of the distributions (at most 2 values each a reply)
SETTLE_EVERY_MOMENTS = 8  # the same without values kept (a monitor's lifetime statistics): little to queue


class Scope(Enum):
    """What a SessionStats reads of each reply.  What is left out costs nothing a reply, where
    every object a reply touches is a cache miss (a monitor of 10,000 targets)."""

    ALL = "all"  # everything: a sender's report, a window's line
    DELAYS = "delays"  # the counts, the order, both directions' delays and jitter: a window's gauges
    ROUND_TRIP = "round_trip"  # the counts, the order and the round trip: a monitor's lifetime counters


def unwrap(seq: int, reference: int) -> int:
    """Extend a 32-bit sequence number to the 64-bit value nearest ``reference``."""
    low = reference % U32
    return reference + ((seq - low + (U32 >> 1)) % U32) - (U32 >> 1)


@dataclass(slots=True)
class _Ipdv:
    """IPDV and RFC 3550 jitter of one delay series (fed by SessionStats._vary)."""

    ipdv: Distribution = field(default_factory=Distribution)
    jitter_ns: float = 0.0
    last_arrival_delay: int | None = None

    def jitter(self, delay: int) -> None:
        last = self.last_arrival_delay
        if last is not None:
            self.jitter_ns += (abs(delay - last) - self.jitter_ns) / 16
        self.last_arrival_delay = delay

    def summary(self) -> dict:
        s = self.ipdv.summary((50, 99))
        s["jitter_rfc3550"] = self.jitter_ns if self.last_arrival_delay is not None else None
        return s


class SessionStats:
    # Slots: a monitor holds three of these per target (lifetime, open and latest window).
    __slots__ = ("sent", "received", "lost", "unanswered", "late", "duplicates", "invalid", "malformed", "foreign",
                 "hmac_failures", "micro_session_mismatches", "refused", "last_icmp_error", "last_hmac_failure",
                 "tlv_integrity_failures", "dropped_unread", "send_lateness", "_first_send_ns", "_last_send_ns",
                 "rtt", "rtt_raw", "residence", "forward", "backward", "rtt_var", "forward_var", "backward_var",
                 "all_synchronized", "reordered", "reorder_extent", "_highest",
                 "reflector_ttl", "reply_ttl", "ttl_changes", "_last_ttl",
                 "dscp_sent", "ecn_sent", "tos_at_reflector", "tos_at_sender",
                 "stateful_reflector", "_max_reflector", "_reflector_seqs_received", "direct_measurement",
                 "return_path", "follow_up_shift", "rtt_follow_up", "_by_reflector_seq",
                 "scope", "_ipdv_memory", "_delays_by_slot", "_settle_every")

    def __init__(self, dscp_sent: int = 0, ecn_sent: int = 0, keep_values: bool = True,
                 ipdv_memory: int = IPDV_MEMORY, scope: Scope = Scope.ALL) -> None:
        """``keep_values=False``: moments only, no percentiles (see :class:`Distribution`);
        ``ipdv_memory``: how many sequence numbers apart two replies can be and still be paired
        for IPDV (0: none; Scope.ROUND_TRIP pairs none);
        ``scope``: what is read of each reply (Scope.ALL, Scope.DELAYS or Scope.ROUND_TRIP)."""
        def dist() -> Distribution:
            return Distribution(keep_values=keep_values)
        self.sent = 0
        self.received = 0  # unique, on time
        self.lost = 0
        self.unanswered = 0  # within their timeout when the run was stopped: neither received nor lost
        self.late = 0
        self.duplicates = 0
        self.invalid = 0  # answered in time, with timestamps that cannot be: in no delay figure
        self.malformed = 0
        self.foreign = 0
        self.hmac_failures = 0
        self.micro_session_mismatches = 0
        self.refused = 0  # ICMP errors (port, host or network unreachable, ...) seen by the socket
        self.last_icmp_error = ""
        # datagrams the kernel dropped for the socket before they were read (DroppedUnread): None
        # where the platform does not say
        self.dropped_unread: int | None = None
        self.last_hmac_failure = ""  # why, as far as the reply's octets tell (events.WRONG_MODE, WRONG_KEY)
        self.tlv_integrity_failures = 0
        self.rtt = dist()
        self.rtt_raw = dist()
        self.residence = dist()
        self.forward = dist()
        self.backward = dist()
        self.rtt_var, self.forward_var, self.backward_var = (_Ipdv(dist()) for _ in range(3))
        # how late the scheduled sends left (Sent.late_ns), and when the first and last left:
        # whether this host kept the pace asked of it (not in a monitor's lifetime statistics:
        # the monitor has its own histogram of the schedule error)
        self.send_lateness = dist() if Scope(scope) is not Scope.ROUND_TRIP else None
        self._first_send_ns: int | None = None
        self._last_send_ns = 0
        # how many sequence numbers apart two replies can be and still be paired for IPDV
        self._ipdv_memory = ipdv_memory
        # a monitor's ten thousand targets at a packet a second: no long queues of values to hold
        self._settle_every = SETTLE_EVERY if keep_values else SETTLE_EVERY_MOMENTS
        self._delays_by_slot: dict[int, tuple[int, int, int, int]] = {}  # seq % memory -> (seq, delays)
        self.all_synchronized = True
        self.reordered = 0
        self.reorder_extent = dist()
        self._highest: int | None = None
        self.reflector_ttl: Counter[int] = Counter()
        self.reply_ttl: Counter[int] = Counter()
        self.ttl_changes = 0
        self._last_ttl: int | None = None
        self.dscp_sent, self.ecn_sent = dscp_sent, ecn_sent
        self.tos_at_reflector: Counter[tuple[int, int]] = Counter()
        self.tos_at_sender: Counter[int] = Counter()
        self.stateful_reflector = False
        self._max_reflector: tuple[int, int] | None = None  # (reflector seq, sender seq) of the latest reply
        self._reflector_seqs_received = 0
        self.direct_measurement: DirectMeasurement | None = None  # the latest reply's
        # RFC 9503 Return Path: replies that say it was used (and which sub-TLVs), or not
        self.return_path: Counter[str] = Counter()
        # Follow-Up Telemetry: the reflector's real departure time of its previous reply
        self.follow_up_shift = dist()  # real departure minus the T3 the reply carried
        self.rtt_follow_up = dist()  # round trip recomputed with the real departure
        self._by_reflector_seq: OrderedDict[int, Sample] | None = None  # made by the first Follow-Up TLV
        self.scope = Scope(scope)

    @classmethod
    def lifetime_counters(cls, dscp_sent: int = 0, ecn_sent: int = 0) -> SessionStats:
        """What a monitor keeps of a target for its whole life: the packet counts, reordering,
        the round trip's moments and jitter (its counters and SNMP row), no values kept.  The
        rest is its windows' to report."""
        return cls(dscp_sent, ecn_sent, keep_values=False, ipdv_memory=0, scope=Scope.ROUND_TRIP)

    # -- feeding ----------------------------------------------------------------------
    def on_event(self, event) -> None:
        handler = self._HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _sent(self, ev: Sent) -> None:
        self.sent += 1
        if ev.late_ns is not None and self.send_lateness is not None:
            self.send_lateness.add(ev.late_ns)
        if self._first_send_ns is None:
            self._first_send_ns = ev.window_ns
        self._last_send_ns = ev.window_ns

    def _reply(self, ev: Reply) -> None:
        self._on_sample(ev.sample)

    def _late(self, ev: Late) -> None:
        self.late += 1

    def _duplicate(self, ev: Duplicate) -> None:
        self.duplicates += 1

    def _invalid(self, ev: Invalid) -> None:
        self.invalid += 1

    def _lost(self, ev: Lost) -> None:
        self.lost += 1

    def _unanswered(self, ev: Unanswered) -> None:
        self.unanswered += 1

    def _rejected(self, ev: Rejected) -> None:
        reason = ev.reason
        if reason is RejectReason.MALFORMED:
            self.malformed += 1
        elif reason is RejectReason.HMAC_FAILURE:
            self.hmac_failures += 1
            self.last_hmac_failure = ev.detail
        elif reason is RejectReason.MICRO_SESSION_MISMATCH:
            self.micro_session_mismatches += 1
        else:
            self.foreign += 1

    def _refused(self, ev: Refused) -> None:
        self.refused += 1
        self.last_icmp_error = ev.icmp

    def _on_dropped_unread(self, ev: DroppedUnread) -> None:
        self.dropped_unread = (self.dropped_unread or 0) + ev.new

    _HANDLERS = {Sent: _sent, Reply: _reply, Invalid: _invalid, Late: _late, Duplicate: _duplicate, Lost: _lost,
                 Unanswered: _unanswered, Rejected: _rejected, Refused: _refused, DroppedUnread: _on_dropped_unread}

    def _on_sample(self, s: Sample) -> None:
        self.received += 1
        if not self.received % self._settle_every:
            self.settle()
        highest = self._highest
        seq = s.sequence_number if highest is None else unwrap(s.sequence_number, highest)
        if highest is not None and seq < highest:
            self.reordered += 1
            self.reorder_extent.add(highest - seq)
        else:
            self._highest = seq
        t1, t2, t3, t4 = s.t1_ns, s.t2_ns, s.t3_ns, s.t4_ns
        # As Sample defines them, inline (a monitor's every reply): no delay below 0 (below it
        # by more than the stated errors, the reply was Invalid); one-way values are delays
        # only with synchronised clocks, offsets (of any sign) otherwise.
        rtt = (t4 - t1) - (t3 - t2)
        if rtt < 0:
            rtt = 0
        self.rtt.add(rtt)
        scope = self.scope
        if scope is Scope.ROUND_TRIP:
            self.rtt_var.jitter(rtt)  # no IPDV pairs: see lifetime_counters
            return
        synchronized = s.clocks_synchronized
        forward, backward = t2 - t1, t4 - t3
        if synchronized:
            forward, backward = max(0, forward), max(0, backward)
        self.forward.add(forward)
        self.backward.add(backward)
        self._vary(seq, rtt, forward, backward)
        self.all_synchronized &= synchronized
        if scope is Scope.DELAYS:
            return
        self.rtt_raw.add(t4 - t1)
        self.residence.add(max(0, t3 - t2))
        self._on_path(s)
        self._on_reflector_sequence(s, seq)
        if s.tlvs or s.tlv_problems:  # most replies carry no TLVs
            self._on_tlvs(s)

    def _vary(self, seq: int, rtt: int, forward: int, backward: int) -> None:
        """Each delay's RFC 3550 jitter, and the IPDV of each pair of consecutive sequence
        numbers, the three series at once: a reply's two neighbours are looked up once."""
        rv, fv, bv = self.rtt_var, self.forward_var, self.backward_var
        rv.jitter(rtt)
        fv.jitter(forward)
        bv.jitter(backward)
        memory = self._ipdv_memory
        if not memory:
            return
        slots = self._delays_by_slot
        prev = slots.get((seq - 1) % memory)
        if prev is not None and prev[0] == seq - 1:
            rv.ipdv.add(rtt - prev[1])
            fv.ipdv.add(forward - prev[2])
            bv.ipdv.add(backward - prev[3])
        nxt = slots.get((seq + 1) % memory)
        if nxt is not None and nxt[0] == seq + 1:
            rv.ipdv.add(nxt[1] - rtt)
            fv.ipdv.add(nxt[2] - forward)
            bv.ipdv.add(nxt[3] - backward)
        slots[seq % memory] = (seq, rtt, forward, backward)

    def _on_tlvs(self, s: Sample) -> None:
        if any(p.kind is ProblemKind.INTEGRITY for p in s.tlv_problems):
            self.tlv_integrity_failures += 1
        dm = s.tlvs.get(DirectMeasurement)
        if dm is not None:
            self.direct_measurement = dm
        self._on_return_path(s)
        self._on_follow_up(s)

    def _on_follow_up(self, s: Sample) -> None:
        """RFC 8972 §4.7: this reply reports when the previous one really left."""
        fu = s.tlvs.get(FollowUpTelemetry)
        if fu is None:
            return
        recent = self._by_reflector_seq
        if recent is None:
            recent = self._by_reflector_seq = OrderedDict()
        if fu.tx_ns is not None:
            prev = recent.get(fu.sequence_number)
            if prev is not None:
                shift = fu.tx_ns - prev.t3_ns
                self.follow_up_shift.add(shift)
                self.rtt_follow_up.add(prev.rtt_ns - shift)
        recent[s.reflector_sequence_number] = s
        if len(recent) > IPDV_MEMORY:
            recent.popitem(last=False)

    def _on_path(self, s: Sample) -> None:
        if s.reflector_ttl is not None:  # (a reply too short to carry it: not counted as a TTL)
            self.reflector_ttl[s.reflector_ttl] += 1
            if self._last_ttl is not None and s.reflector_ttl != self._last_ttl:
                self.ttl_changes += 1
            self._last_ttl = s.reflector_ttl
        if s.reply_ttl is not None:
            self.reply_ttl[s.reply_ttl] += 1
        if s.reply_tos is not None:
            self.tos_at_sender[s.reply_tos] += 1
        cos = s.tlvs.get(ClassOfService)
        if cos is not None:
            self.tos_at_reflector[(cos.dscp2, cos.ecn)] += 1

    def _on_return_path(self, s: Sample) -> None:
        rp = s.tlvs.get(ReturnPath)
        if rp is not None:
            self.return_path["honoured"] += 1
            self.return_path.update(rp.followed)
        elif any(p.tlv_type == TlvType.RETURN_PATH and p.kind is ProblemKind.NOT_PROCESSED for p in s.tlv_problems):
            self.return_path["not_honoured"] += 1

    def _on_reflector_sequence(self, s: Sample, seq: int) -> None:
        if s.reflector_sequence_number != s.sequence_number:
            self.stateful_reflector = True
        self._reflector_seqs_received += 1
        if self._max_reflector is None or s.reflector_sequence_number > self._max_reflector[0]:
            self._max_reflector = (s.reflector_sequence_number, seq)

    def settle(self) -> None:
        """Fold the values queued in the distributions in (Distribution.settle): done every
        SETTLE_EVERY replies, which bounds the queues (every read sees the queued values too)."""
        for d in (self.rtt, self.rtt_raw, self.residence, self.forward, self.backward, self.rtt_var.ipdv,
                  self.forward_var.ipdv, self.backward_var.ipdv, self.reorder_extent, self.follow_up_shift,
                  self.rtt_follow_up):
            d.settle()
        if self.send_lateness is not None:
            self.send_lateness.settle()

    # -- results ----------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Sent, and neither answered nor lost yet."""
        return max(0, self.sent - self.received - self.invalid - self.lost - self.unanswered)

    @property
    def send_rate(self) -> float | None:
        """Packets sent a second, from the first send to the last (None before the second)."""
        span = self._last_send_ns - (self._first_send_ns or 0)
        return (self.sent - 1) * 1e9 / span if self.sent > 1 and span > 0 else None

    @property
    def loss_ratio(self) -> float | None:
        resolved = self.received + self.invalid + self.lost
        return self.lost / resolved if resolved else None

    def directional_loss(self) -> dict | None:
        """Forward/backward loss from a stateful reflector's sequence numbers (RFC 8762 §4)."""
        if not self.stateful_reflector or self._max_reflector is None:
            return None
        r, s = self._max_reflector
        reflected = r + 1  # replies the reflector sent up to its latest one we saw
        forward = (s + 1) - reflected
        backward = reflected - self._reflector_seqs_received
        return {"forward": max(0, forward), "backward": max(0, backward),
                "unknown_direction": max(0, self.lost - max(0, forward) - max(0, backward))}

    def remarking(self) -> dict:
        """DSCP/ECN seen at each end against what was sent (forward) and asked for (backward)."""
        sent_tos = (self.dscp_sent, self.ecn_sent)
        fwd = sum(n for tos, n in self.tos_at_reflector.items() if tos != sent_tos)
        return {"sent": {"dscp": self.dscp_sent, "ecn": self.ecn_sent},
                "at_reflector": {f"{d}/{e}": n for (d, e), n in sorted(self.tos_at_reflector.items())},
                "at_sender": {f"{t >> 2}/{t & 3}": n for t, n in sorted(self.tos_at_sender.items())},
                "forward_remarked": fwd if self.tos_at_reflector else None}

    def to_dict(self) -> dict:
        pdv = None
        if self.rtt.count and self.rtt.keeps_values:
            pdv = {k: v - self.rtt.min for k, v in self.rtt.summary((50, 90, 99))["percentiles"].items()}
        return {
            "packets": {"sent": self.sent, "received": self.received, "lost": self.lost,
                        "loss_ratio": self.loss_ratio, "unanswered_at_stop": self.unanswered,
                        "late": self.late, "duplicates": self.duplicates, "invalid": self.invalid,
                        "reordered": self.reordered, "malformed": self.malformed, "foreign": self.foreign,
                        "hmac_failures": self.hmac_failures, "refused": self.refused,
                        "dropped_unread": self.dropped_unread,
                        "micro_session_mismatches": self.micro_session_mismatches,
                        "tlv_integrity_failures": self.tlv_integrity_failures},
            "sending": {"rate_per_s": self.send_rate,
                        "late_ns": (self.send_lateness or Distribution(keep_values=False)).summary((50, 99))},
            "loss_by_direction": self.directional_loss(),
            "direct_measurement": self.direct_measurement.record() if self.direct_measurement else None,
            "reordering": {"ratio": self.reordered / self.received if self.received else None,
                           "extent_max": self.reorder_extent.max, "extent_mean": self.reorder_extent.mean},
            "rtt_ns": self.rtt.summary(),
            "rtt_raw_ns": self.rtt_raw.summary((50, 99)),
            "residence_ns": self.residence.summary((50, 99)),
            "follow_up": {"t3_shift_ns": self.follow_up_shift.summary((50, 99)),
                          "rtt_ns": self.rtt_follow_up.summary((50, 99))},
            "one_way": {"meaningful": bool(self.received) and self.all_synchronized,
                        "forward_ns": self.forward.summary((50, 99)),
                        "backward_ns": self.backward.summary((50, 99))},
            "delay_variation": {"pdv_rtt_ns": pdv, "ipdv_rtt_ns": self.rtt_var.summary(),
                                "ipdv_forward_ns": self.forward_var.summary(),
                                "ipdv_backward_ns": self.backward_var.summary()},
            "ttl": {"at_reflector": dict(sorted(self.reflector_ttl.items())),
                    "at_sender": dict(sorted(self.reply_ttl.items())), "changes": self.ttl_changes},
            "dscp_ecn": self.remarking(),
            "return_path": self._return_path(),
        }

    def _return_path(self) -> dict | None:
        """None unless replies answered a Return Path TLV: how many used it, and how."""
        if not self.return_path:
            return None
        rp = self.return_path
        return {"honoured": rp["honoured"], "not_honoured": rp["not_honoured"],
                "followed": {k: n for k, n in sorted(rp.items()) if k not in ("honoured", "not_honoured")}}
