"""Direct Measurement TLV, Type 5 (RFC 8972 §4.5), Length 12: S_TxC, R_RxC, R_TxC counters."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..tlv import TlvType, TlvValue, require_length

_COUNTERS = struct.Struct("!III")


@dataclass(frozen=True, slots=True)
class DirectMeasurement(TlvValue):
    TYPE = TlvType.DIRECT_MEASUREMENT
    sender_tx_count: int = 0  # S_TxC
    reflector_rx_count: int = 0  # R_RxC
    reflector_tx_count: int = 0  # R_TxC

    @classmethod
    def from_value(cls, value: bytes) -> DirectMeasurement:
        require_length(value, 12, what="Direct Measurement")
        return cls(*_COUNTERS.unpack(value))

    def to_value(self) -> bytes:
        return _COUNTERS.pack(self.sender_tx_count & 0xFFFFFFFF, self.reflector_rx_count & 0xFFFFFFFF,
                              self.reflector_tx_count & 0xFFFFFFFF)
