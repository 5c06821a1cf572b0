"""Location TLV, Type 2 (RFC 8972 §4.2): ports plus request/answer sub-TLVs.

The sender sends generic request sub-TLVs sized for the largest answer (Source MAC 8,
Destination IP 16, Source IP 16); the reflector answers each with a specific sub-TLV of
the same length (RFC 8972 §4.2.2).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from ..tlv import FLAG_U, MalformedTlv, RawTlv, TlvType, TlvValue, build_tlvs, parse_sub_tlvs

_PORTS = struct.Struct("!HH")


class LocationSubType:
    """STAMP TLV Location sub-TLV types (RFC 8972 §5.3)."""

    SOURCE_MAC = 1
    SOURCE_EUI48 = 2
    SOURCE_EUI64 = 3
    DESTINATION_IP = 4
    DESTINATION_IPV4 = 5
    DESTINATION_IPV6 = 6
    SOURCE_IP = 7
    SOURCE_IPV4 = 8
    SOURCE_IPV6 = 9


SUB_TLV_LENGTH = {1: 8, 2: 8, 3: 8, 4: 16, 5: 16, 6: 16, 7: 16, 8: 16, 9: 16}


@dataclass(frozen=True, slots=True)
class Location(TlvValue):
    TYPE = TlvType.LOCATION
    destination_port: int = 0
    source_port: int = 0
    sub_tlvs: tuple[RawTlv, ...] = ()

    @classmethod
    def from_value(cls, value: bytes) -> Location:
        if len(value) < 4:
            raise MalformedTlv(f"Location: Length {len(value)} < 4")
        subs = parse_sub_tlvs(value, 4, "Location")
        for sub in subs:
            expected = SUB_TLV_LENGTH.get(sub.type)
            if expected is not None and sub.length != expected:
                raise MalformedTlv(f"Location sub-TLV {sub.type}: Length {sub.length}, expected {expected}")
        return cls(*_PORTS.unpack_from(value), tuple(subs))

    def to_value(self) -> bytes:
        return _PORTS.pack(self.destination_port, self.source_port) + build_tlvs(list(self.sub_tlvs))

    @classmethod
    def request(cls, source_mac: bool = True, destination_ip: bool = True, source_ip: bool = True) -> Location:
        """What a sender sends: ports zero, generic request sub-TLVs of zeros, U set."""
        wanted = [(source_mac, LocationSubType.SOURCE_MAC), (destination_ip, LocationSubType.DESTINATION_IP),
                  (source_ip, LocationSubType.SOURCE_IP)]
        subs = tuple(RawTlv.build(t, bytes(SUB_TLV_LENGTH[t]), FLAG_U) for on, t in wanted if on)
        return cls(0, 0, subs)

    def answers(self) -> dict[str, str]:
        """Decode a reflector's answer sub-TLVs into readable values (skipping U-flagged ones)."""
        out: dict[str, str] = {}
        for sub in self.sub_tlvs:
            if sub.flags & FLAG_U:
                continue
            v = sub.value
            if sub.type == LocationSubType.SOURCE_EUI48:
                out["source_mac"] = ":".join(f"{b:02x}" for b in v[:6])
            elif sub.type == LocationSubType.SOURCE_EUI64:
                out["source_mac"] = ":".join(f"{b:02x}" for b in v[:8])
            elif sub.type in (LocationSubType.DESTINATION_IPV4, LocationSubType.SOURCE_IPV4):
                key = "destination_ip" if sub.type == LocationSubType.DESTINATION_IPV4 else "source_ip"
                out[key] = str(ipaddress.IPv4Address(v[:4]))
            elif sub.type in (LocationSubType.DESTINATION_IPV6, LocationSubType.SOURCE_IPV6):
                key = "destination_ip" if sub.type == LocationSubType.DESTINATION_IPV6 else "source_ip"
                out[key] = str(ipaddress.IPv6Address(v[:16]))
        return out
