"""Follow-Up Telemetry TLV, Type 7 (RFC 8972 §4.7), Length 16.

The reflector reports the Sequence Number and the real transmit time of its previous
reply in this session, in the format of this reply's Z bit, and how it was taken.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from typing import Any

from ..wire.timestamp import from_wire, to_wire
from ..wire.tlv import RawTlv, TlvType, require_length
from .base import PROCESSED, ReadContext, ReflectContext, TlvValue

_VALUE = struct.Struct("!IQB3x")


@dataclass(frozen=True, slots=True)
class FollowUpTelemetry(TlvValue):
    TYPE = TlvType.FOLLOW_UP_TELEMETRY
    KEY = "follow_up"
    sequence_number: int = 0
    follow_up_timestamp: int = 0
    timestamp_mode: int = 0
    # Read by a sender: the Follow-Up Timestamp in POSIX ns (not on the wire; None when 0).
    tx_ns: int | None = field(default=None, compare=False)

    @classmethod
    def from_value(cls, value: bytes) -> FollowUpTelemetry:
        require_length(value, 16, what="Follow-Up Telemetry")
        return cls(*_VALUE.unpack(value))

    def to_value(self) -> bytes:
        return _VALUE.pack(self.sequence_number, self.follow_up_timestamp, self.timestamp_mode)

    @classmethod
    def reflect(cls, tlv: RawTlv, ctx: ReflectContext) -> tuple[int, bytes]:
        """The previous reply's Sequence Number and real departure time; a stateless reflector
        MUST answer zeros."""
        cls.from_value(tlv.value)
        ctx.follow_up_requested = True
        s = ctx.session
        cfg = ctx.config
        if not cfg.stateful or s.last_reply_sequence is None:
            return PROCESSED, cls().to_value()
        ts = to_wire(s.last_reply_tx_ns, cfg.timestamp_format, ctx.clock.tai_offset_s)
        return PROCESSED, cls(s.last_reply_sequence, ts, s.last_reply_tx_method).to_value()

    @classmethod
    def malformed_value(cls, value: bytes) -> bytes:
        """RFC 8972 §4.7: with an invalid Length the reflector MUST zero the Sequence Number
        and the Follow-Up Timestamp (the first 12 octets, as far as the Value goes)."""
        return bytes(min(len(value), 12)) + value[12:]

    def read(self, ctx: ReadContext) -> None:
        # Its timestamp is in the format of this reply's Z bit (RFC 8972 §4.7).
        ts = self.follow_up_timestamp
        tx_ns = from_wire(ts, ctx.timestamp_format, ctx.tai_offset_s, ctx.pivot_ns) if ts else None
        ctx.read[FollowUpTelemetry] = replace(self, tx_ns=tx_ns)

    def record(self) -> dict[str, Any]:
        return {"sequence_number": self.sequence_number, "timestamp_mode": self.timestamp_mode, "tx_ns": self.tx_ns}
