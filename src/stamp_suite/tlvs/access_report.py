"""Access Report TLV, Type 6 (RFC 8972 §4.6), Length 4: ID(4 bits) Resv(4) Return Code(8) Reserved(16)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ..wire.tlv import FLAG_U, RawTlv, TlvType, require_length
from .base import PROCESSED, ReadContext, ReflectContext, TlvValue

_VALUE = struct.Struct("!BBH")
ACCESS_ID_3GPP = 1
ACCESS_ID_NON_3GPP = 2
RETURN_CODE_AVAILABLE = 1
RETURN_CODE_UNAVAILABLE = 2


@dataclass(frozen=True, slots=True)
class AccessReport(TlvValue):
    TYPE = TlvType.ACCESS_REPORT
    KEY = "access_report"
    access_id: int = ACCESS_ID_3GPP
    return_code: int = RETURN_CODE_AVAILABLE

    @classmethod
    def from_value(cls, value: bytes) -> AccessReport:
        require_length(value, 4, what="Access Report")
        first, code, _ = _VALUE.unpack(value)
        return cls(first >> 4, code)

    @property
    def valid_id(self) -> bool:
        """Any ID but 1 (3GPP) or 2 (non-3GPP) means the TLV MUST be discarded."""
        return self.access_id in (ACCESS_ID_3GPP, ACCESS_ID_NON_3GPP)

    def to_value(self) -> bytes:
        return _VALUE.pack((self.access_id & 0xF) << 4, self.return_code, 0)

    @classmethod
    def reflect(cls, tlv: RawTlv, ctx: ReflectContext) -> tuple[int, bytes]:
        if not cls.from_value(tlv.value).valid_id:  # "MUST be discarded": returned unprocessed (U = 1)
            return FLAG_U, tlv.value
        return PROCESSED, tlv.value

    def read(self, ctx: ReadContext) -> None:
        TlvValue.read(self, ctx)  # (no zero-argument super() in a slots dataclass)
        ctx.access_report_answered = True  # a reply carried it back: the retransmission timer stops

    def record(self) -> dict[str, Any]:
        return {"access_id": self.access_id, "return_code": self.return_code}
