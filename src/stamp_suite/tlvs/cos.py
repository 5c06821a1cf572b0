"""Class of Service TLV, Type 4 (RFC 8972 §4.4), Length 4.

Value bits: DSCP1(6) DSCP2(6) ECN(2) RP(2) Reserved(16).  DSCP1 is what the sender asks
for in the reply; DSCP2 and ECN are what the reflector received; RP=1 says the reflector
refused DSCP1.  There is no "ECN1": that field comes from draft-ietf-ippm-stamp-cos-ecn,
which the Rust tool follows (README, "Differences from the Rust stamp-suite").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ..wire.tlv import RawTlv, TlvType, require_length
from .base import PROCESSED, ReflectContext, TlvValue

_WORD = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class ClassOfService(TlvValue):
    TYPE = TlvType.CLASS_OF_SERVICE
    KEY = "cos"
    dscp1: int = 0
    dscp2: int = 0
    ecn: int = 0
    rp: int = 0

    def __post_init__(self) -> None:
        for name, limit in (("dscp1", 63), ("dscp2", 63), ("ecn", 3), ("rp", 3)):
            if not 0 <= getattr(self, name) <= limit:
                raise ValueError(f"Class of Service {name} must be 0..{limit}")

    @classmethod
    def from_value(cls, value: bytes) -> ClassOfService:
        require_length(value, 4, what="Class of Service")
        (w,) = _WORD.unpack(value)
        return cls(w >> 26, (w >> 20) & 0x3F, (w >> 18) & 3, (w >> 16) & 3)

    def to_value(self) -> bytes:
        return _WORD.pack((self.dscp1 << 26) | (self.dscp2 << 20) | (self.ecn << 18) | (self.rp << 16))

    @classmethod
    def reflect(cls, tlv: RawTlv, ctx: ReflectContext) -> tuple[int, bytes]:
        """DSCP2 and ECN: what arrived; the reply goes out with DSCP1 unless policy refuses it
        (then RP = 1 and the reply keeps the DSCP it came with, with ECN Not-ECT)."""
        cos = cls.from_value(tlv.value)
        tos = ctx.meta.tos
        dscp2, ecn = (tos >> 2, tos & 3) if tos is not None else (0, 0)
        allowed = ctx.config.cos_allowed_dscp
        if allowed is None or cos.dscp1 in allowed:
            ctx.tos = cos.dscp1 << 2
            rp = 0
        else:
            ctx.tos = (tos or 0) & 0xFC
            rp = 1
        return PROCESSED, cls(cos.dscp1, dscp2, ecn, rp).to_value()

    def record(self) -> dict[str, Any]:
        return {"dscp_requested": self.dscp1, "dscp_at_reflector": self.dscp2, "ecn_at_reflector": self.ecn,
                "reverse_path_refused": bool(self.rp)}
