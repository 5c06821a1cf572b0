"""Timestamp Information TLV, Type 3 (RFC 8972 §4.3): sync source and timestamping method.

The sender sends zeros; the reflector reports how its ingress obtained T2 and its egress
obtained T3.  Optional sub-TLVs after the four octets are kept byte-exact.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ..wire.timestamp import TimestampMethod
from ..wire.tlv import MalformedTlv, RawTlv, TlvType
from .base import PROCESSED, ReflectContext, TlvValue

_FIXED = struct.Struct("!BBBB")


@dataclass(frozen=True, slots=True)
class TimestampInformation(TlvValue):
    TYPE = TlvType.TIMESTAMP_INFORMATION
    KEY = "timestamp_info"
    sync_src_in: int = 0
    timestamp_in: int = 0
    sync_src_out: int = 0
    timestamp_out: int = 0
    sub_tlvs: bytes = b""

    @classmethod
    def from_value(cls, value: bytes) -> TimestampInformation:
        if len(value) < 4:
            raise MalformedTlv(f"Timestamp Information: Length {len(value)} < 4")
        return cls(*_FIXED.unpack_from(value), bytes(value[4:]))

    def to_value(self) -> bytes:
        return _FIXED.pack(self.sync_src_in, self.timestamp_in, self.sync_src_out, self.timestamp_out) + self.sub_tlvs

    @classmethod
    def reflect(cls, tlv: RawTlv, ctx: ReflectContext) -> tuple[int, bytes]:
        """How T2 was taken (kernel: SW Local; user space: Control Plane) and T3 (user space),
        and the clock's sync source; optional sub-TLVs are copied."""
        received = cls.from_value(tlv.value)
        sync = ctx.clock.sync_source
        filled = cls(sync, ctx.meta.rx_method, sync, TimestampMethod.CONTROL_PLANE, received.sub_tlvs)
        return PROCESSED, filled.to_value()

    def record(self) -> dict[str, Any]:
        return {"sync_src_in": self.sync_src_in, "timestamp_in": self.timestamp_in,
                "sync_src_out": self.sync_src_out, "timestamp_out": self.timestamp_out}
