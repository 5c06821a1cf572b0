"""Direct Measurement TLV, Type 5 (RFC 8972 §4.5), Length 12: S_TxC, R_RxC, R_TxC counters."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ..wire.tlv import RawTlv, TlvType, require_length
from .base import PROCESSED, ReflectContext, TlvValue

_COUNTERS = struct.Struct("!III")


@dataclass(frozen=True, slots=True)
class DirectMeasurement(TlvValue):
    TYPE = TlvType.DIRECT_MEASUREMENT
    KEY = "direct_measurement"
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

    @classmethod
    def reflect(cls, tlv: RawTlv, ctx: ReflectContext) -> tuple[int, bytes]:
        dm = cls.from_value(tlv.value)
        s = ctx.session
        # R_TxC counts this reply too: R_RxC - R_TxC is then what the reflector itself lost.
        return PROCESSED, cls(dm.sender_tx_count, s.received, s.transmitted + 1).to_value()

    def record(self) -> dict[str, Any]:
        return {"s_txc": self.sender_tx_count, "r_rxc": self.reflector_rx_count, "r_txc": self.reflector_tx_count}
