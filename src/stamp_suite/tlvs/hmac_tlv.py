"""HMAC TLV, Type 8 (RFC 8972 §4.8), Length 16.

Computing and verifying it is :mod:`stamp_suite.wire.tlv`'s; the engines handle it before
and after every other TLV (it covers them), so it has no rule of its own here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..wire.auth import HMAC_LEN
from ..wire.tlv import TlvType, require_length
from .base import TlvValue


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
