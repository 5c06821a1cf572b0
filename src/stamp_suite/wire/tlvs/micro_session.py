"""Micro-session ID TLV, Type 11 (RFC 9534 §3.1), Length 4: Sender ID(16) Reflector ID(16)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..tlv import TlvType, TlvValue, require_length

_IDS = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class MicroSessionId(TlvValue):
    TYPE = TlvType.MICRO_SESSION_ID
    sender_id: int = 0
    reflector_id: int = 0  # 0 = unknown, not checked (RFC 9534 §3.2)

    @classmethod
    def from_value(cls, value: bytes) -> MicroSessionId:
        require_length(value, 4, what="Micro-session ID")
        return cls(*_IDS.unpack(value))

    def to_value(self) -> bytes:
        return _IDS.pack(self.sender_id, self.reflector_id)
