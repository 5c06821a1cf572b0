"""Extra Padding TLV, Type 1 (RFC 8972 §4.1): any number of octets, content ours to choose."""

from __future__ import annotations

from dataclasses import dataclass

from ..wire.tlv import RawTlv, TlvType
from .base import PROCESSED, ReflectContext, TlvValue


@dataclass(frozen=True, slots=True)
class ExtraPadding(TlvValue):
    TYPE = TlvType.EXTRA_PADDING
    padding: bytes = b""

    @classmethod
    def from_value(cls, value: bytes) -> ExtraPadding:
        return cls(bytes(value))

    def to_value(self) -> bytes:
        return self.padding

    @classmethod
    def of_length(cls, length: int) -> ExtraPadding:
        """Padding the sender controls: zeros (RFC 8972 §4.1 allows it; they compress nowhere on the path)."""
        return cls(bytes(length))

    @classmethod
    def reflect(cls, tlv: RawTlv, ctx: ReflectContext) -> tuple[int, bytes]:
        return PROCESSED, tlv.value  # copied: the reply is as large as the request
