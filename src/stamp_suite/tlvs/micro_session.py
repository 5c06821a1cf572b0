"""Micro-session ID TLV, Type 11 (RFC 9534 §3.1), Length 4: Sender ID(16) Reflector ID(16)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ..wire.tlv import RawTlv, TlvType, require_length
from .base import PROCESSED, ReadContext, ReflectContext, TlvDiscard, TlvValue

_IDS = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class MicroSessionId(TlvValue):
    TYPE = TlvType.MICRO_SESSION_ID
    KEY = "micro_session"
    sender_id: int = 0
    reflector_id: int = 0  # 0 = unknown, not checked (RFC 9534 §3.2)

    @classmethod
    def from_value(cls, value: bytes) -> MicroSessionId:
        require_length(value, 4, what="Micro-session ID")
        return cls(*_IDS.unpack(value))

    def to_value(self) -> bytes:
        return _IDS.pack(self.sender_id, self.reflector_id)

    @classmethod
    def reflect(cls, tlv: RawTlv, ctx: ReflectContext) -> tuple[int, bytes]:
        """Copy the Sender ID, answer our member-link ID; a non-zero Reflector ID that is not
        ours means the packet arrived on the wrong member link: discard.  Without a configured
        member link the ID is not known: answer 0 ("unknown") and check nothing."""
        ids = cls.from_value(tlv.value)
        ours = ctx.config.member_link_id
        if ours is not None and ids.reflector_id not in (0, ours):
            ctx.discard_reason = TlvDiscard.MICRO_SESSION_MISMATCH
        return PROCESSED, cls(ids.sender_id, ours or 0).to_value()

    def read(self, ctx: ReadContext) -> None:
        """The Sender ID must be ours and the Reflector ID the expected one (learned from the
        first reply when the sender did not know it), or the reply is discarded."""
        TlvValue.read(self, ctx)  # (no zero-argument super() in a slots dataclass)
        ours = ctx.micro_session
        if ours is None:
            return
        if self.sender_id != ours.sender_id:
            ctx.mismatch = f"sender member link {self.sender_id}, expected {ours.sender_id}"
            return
        expected = ours.reflector_id or ctx.learned_reflector_link_id
        if expected and self.reflector_id != expected:
            ctx.mismatch = f"reflector member link {self.reflector_id}, expected {expected}"
        elif not expected and self.reflector_id:
            ctx.learned_reflector_link_id = self.reflector_id

    def record(self) -> dict[str, Any]:
        return {"sender_id": self.sender_id, "reflector_id": self.reflector_id}
