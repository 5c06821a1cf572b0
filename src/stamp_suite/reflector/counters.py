"""The reflector's counters: one fixed block of 64-bit slots per worker.

A worker writes only its own block; readers (totals, Prometheus, SNMP) sum the blocks
when they look.  With several worker processes the blocks live in one shared anonymous
mapping made before the fork (reflector/service.py), so every count is live in the parent
the moment a worker writes it: no reports, no lag.  With one worker the block is a plain
local buffer.

The slot layout is fixed (drop reasons, TLV types, flags, processing-time buckets), so
the hot path does ``counters[SLOT] += 1`` on a memoryview and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from ..tlvs.base import TlvDiscard
from ..tlvs.return_path import ReturnPathOutcome

(RECEIVED, REFLECTED, SEND_ERRORS, TLV_INTEGRITY_FAILURES, ACTIVE_SESSIONS, SESSIONS_EVICTED, SESSIONS_EXPIRED,
 DROPPED_UNREAD) = range(8)


class DropReason(StrEnum):
    """Why the engine gave a datagram no reply; each is a slot and a ``reason`` label in the
    metrics, with the TLVs' own (:class:`~stamp_suite.tlvs.base.TlvDiscard`)."""

    MALFORMED = "malformed"
    SHORT_PACKET = "short_packet"
    TRUNCATED = "truncated"  # larger than the receive buffer: never reflect a partial copy
    ERROR_ESTIMATE_INVALID = "error_estimate_invalid"  # a zero Multiplier
    HMAC_FAILURE = "hmac_failure"
    WRONG_MODE = "wrong_mode"  # an authenticated-mode packet at an open reflector, or the reverse
    SSID_MISMATCH = "ssid_mismatch"
    RATE_LIMITED = "rate_limited"
    REFLECTED_PACKET = "reflected_packet"  # one of our own replies, sent back (loop guard)
    REPLY_TO_SELF = "reply_to_self"  # the reply would come back to this very socket (loop guard)
    TOO_MANY_TLVS = "too_many_tlvs"
    INTERNAL_ERROR = "internal_error"


DROP_REASONS: tuple[StrEnum, ...] = (*DropReason, *TlvDiscard)
DROP_BASE = 16
DROP_SLOT = {reason: DROP_BASE + i for i, reason in enumerate(DROP_REASONS)}
FLAG_BASE = DROP_BASE + 32
FLAG_NAMES = ("U", "M", "I")
FLAG_U_SLOT, FLAG_M_SLOT, FLAG_I_SLOT = FLAG_BASE, FLAG_BASE + 1, FLAG_BASE + 2
TLV_TYPE_BASE = FLAG_BASE + 16  # 256 slots: TLVs received, by Type
PROCESSING_BUCKETS_S = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2)
PROCESSING_BOUNDS_NS = [int(b * 1e9) for b in PROCESSING_BUCKETS_S]
RETURN_PATH_OUTCOMES = tuple(ReturnPathOutcome)
RETURN_PATH_BASE = TLV_TYPE_BASE + 256
RETURN_PATH_SLOT = {outcome: RETURN_PATH_BASE + i for i, outcome in enumerate(RETURN_PATH_OUTCOMES)}
PROCESSING_BASE = RETURN_PATH_BASE + 16  # one slot per bucket and +Inf, then the sum in ns
PROCESSING_SUM = PROCESSING_BASE + len(PROCESSING_BUCKETS_S) + 1
SLOTS = PROCESSING_SUM + 1
BLOCK_SIZE = SLOTS * 8
assert len(DROP_REASONS) <= 32 and len(RETURN_PATH_OUTCOMES) <= 16


def local_block() -> memoryview:
    """Counters for a reflector in one process."""
    return memoryview(bytearray(BLOCK_SIZE)).cast("Q")


class ReflectorCounters:
    """Read-only sums over the blocks of every worker, for totals, Prometheus and SNMP."""

    def __init__(self, blocks: Sequence[memoryview]) -> None:
        self.blocks = list(blocks)

    def _sum(self, slot: int) -> int:
        return sum(b[slot] for b in self.blocks)

    @property
    def received(self) -> int:
        return self._sum(RECEIVED)

    @property
    def reflected(self) -> int:
        """Replies the kernel accepted for sending."""
        return self._sum(REFLECTED)

    @property
    def send_errors(self) -> int:
        return self._sum(SEND_ERRORS)

    @property
    def tlv_integrity_failures(self) -> int:
        return self._sum(TLV_INTEGRITY_FAILURES)

    @property
    def active_sessions(self) -> int:
        return self._sum(ACTIVE_SESSIONS)

    @property
    def sessions_evicted(self) -> int:
        """Sessions pushed out of a full table (--max-sessions), oldest activity first."""
        return self._sum(SESSIONS_EVICTED)

    @property
    def sessions_expired(self) -> int:
        """Sessions idle past --session-timeout."""
        return self._sum(SESSIONS_EXPIRED)

    @property
    def dropped_unread(self) -> int:
        """Datagrams the kernel dropped unread at the workers' sockets (a full receive buffer: the
        reflector did not keep up), as last read (every second); in no other count."""
        return self._sum(DROPPED_UNREAD)

    def _nonzero(self, slots: dict) -> dict:
        """The sums of the named slots, those that are not 0."""
        out = {name: self._sum(slot) for name, slot in slots.items()}
        return {k: v for k, v in out.items() if v}

    @property
    def dropped(self) -> dict[str, int]:
        return self._nonzero(DROP_SLOT)

    @property
    def dropped_total(self) -> int:
        return sum(self._sum(slot) for slot in DROP_SLOT.values())

    @property
    def tlvs_by_type(self) -> dict[int, int]:
        return self._nonzero({t: TLV_TYPE_BASE + t for t in range(256)})

    @property
    def tlv_flags_set(self) -> dict[str, int]:
        return self._nonzero({name: FLAG_BASE + i for i, name in enumerate(FLAG_NAMES)})

    @property
    def return_path(self) -> dict[str, int]:
        return self._nonzero(RETURN_PATH_SLOT)

    def processing(self) -> tuple[list[int], int]:
        """Per-bucket counts (the last is +Inf) and the sum in ns."""
        counts = [self._sum(PROCESSING_BASE + i) for i in range(len(PROCESSING_BUCKETS_S) + 1)]
        return counts, self._sum(PROCESSING_SUM)
