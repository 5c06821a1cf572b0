"""Timestamp Information TLV, Type 3 (RFC 8972 §4.3): sync source and timestamping method.

The sender sends zeros; the reflector reports how its ingress obtained T2 and its egress
obtained T3.  Optional sub-TLVs after the four octets are kept byte-exact.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from ..tlv import MalformedTlv, TlvType, TlvValue

_FIXED = struct.Struct("!BBBB")


class SyncSource(IntEnum):
    """Synchronization Sources registry (RFC 8972 §5.4)."""

    RESERVED = 0
    NTP = 1
    PTP = 2
    SSU_BITS = 3
    GNSS = 4  # GPS/GLONASS/LORAN-C/BDS/Galileo
    LOCAL = 5  # local free-running


class TimestampMethod(IntEnum):
    """Timestamping Methods registry (RFC 8972 §5.5)."""

    RESERVED = 0
    HW_ASSIST = 1
    SW_LOCAL = 2
    CONTROL_PLANE = 3


@dataclass(frozen=True, slots=True)
class TimestampInformation(TlvValue):
    TYPE = TlvType.TIMESTAMP_INFORMATION
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
