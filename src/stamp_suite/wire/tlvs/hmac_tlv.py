"""HMAC TLV, Type 8 (RFC 8972 §4.8), Length 16.  Computation lives in :mod:`..tlv`."""

from __future__ import annotations

from dataclasses import dataclass

from ..auth import HMAC_LEN
from ..tlv import TlvType, TlvValue, require_length


@dataclass(frozen=True, slots=True)
class HmacTlv(TlvValue):
    TYPE = TlvType.HMAC
    hmac: bytes = bytes(HMAC_LEN)

    @classmethod
    def from_value(cls, value: bytes) -> HmacTlv:
        require_length(value, HMAC_LEN, what="HMAC")
        return cls(bytes(value))

    def to_value(self) -> bytes:
        return self.hmac
