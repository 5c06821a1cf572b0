"""Follow-Up Telemetry TLV, Type 7 (RFC 8972 §4.7), Length 16.

The reflector reports the Sequence Number and the real transmit time of its previous
reply in this session, in the format of this reply's Z bit, and how it was taken.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..tlv import TlvType, TlvValue, require_length

_VALUE = struct.Struct("!IQB3x")


@dataclass(frozen=True, slots=True)
class FollowUpTelemetry(TlvValue):
    TYPE = TlvType.FOLLOW_UP_TELEMETRY
    sequence_number: int = 0
    follow_up_timestamp: int = 0
    timestamp_mode: int = 0

    @classmethod
    def from_value(cls, value: bytes) -> FollowUpTelemetry:
        require_length(value, 16, what="Follow-Up Telemetry")
        return cls(*_VALUE.unpack(value))

    def to_value(self) -> bytes:
        return _VALUE.pack(self.sequence_number, self.follow_up_timestamp, self.timestamp_mode)
