"""Location TLV, Type 2 (RFC 8972 §4.2): ports plus request/answer sub-TLVs.

The sender sends generic request sub-TLVs sized for the largest answer (Source MAC 8,
Destination IP 16, Source IP 16); the reflector answers each with a specific sub-TLV of
the same length (RFC 8972 §4.2.2).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Any

from ..wire.tlv import FLAG_U, MalformedTlv, RawTlv, TlvType, build_tlvs, parse_sub_tlvs
from .base import PROCESSED, ReflectContext, TlvValue, unmapped_address

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
    KEY = "location"
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

    @classmethod
    def reflect(cls, tlv: RawTlv, ctx: ReflectContext) -> tuple[int, bytes]:
        """The ports as received, and each request sub-TLV answered with one of the same
        length (RFC 8972 §4.2.2)."""
        loc = cls.from_value(tlv.value)
        ctx.work += len(loc.sub_tlvs)
        meta = ctx.meta
        answers = tuple(_answer(sub, meta.local_address, meta.source[0]) for sub in loc.sub_tlvs)
        return PROCESSED, cls(meta.local_port, meta.source[1], answers).to_value()

    def record(self) -> dict[str, Any]:
        return {"destination_port": self.destination_port, "source_port": self.source_port, **self.answers()}


def _answer(sub: RawTlv, destination: str | bytes | None, source: str) -> RawTlv:
    """One request sub-TLV's answer, of the same length."""
    length = sub.length
    if sub.type == LocationSubType.SOURCE_MAC:
        # A UDP socket never sees the frame's source MAC: answer EUI-64 all zeros, as the
        # RFC says for "no source MAC at all".
        return RawTlv(0, LocationSubType.SOURCE_EUI64, length, bytes(length))
    if sub.type in (LocationSubType.DESTINATION_IP, LocationSubType.SOURCE_IP):
        is_dst = sub.type == LocationSubType.DESTINATION_IP
        ip = unmapped_address(destination if is_dst else source)
        if ip is None:  # not known on this platform: leave the request, flagged not processed
            return RawTlv(FLAG_U, sub.type, length, sub.value)
        if ip.version == 4:
            new_type = LocationSubType.DESTINATION_IPV4 if is_dst else LocationSubType.SOURCE_IPV4
        else:
            new_type = LocationSubType.DESTINATION_IPV6 if is_dst else LocationSubType.SOURCE_IPV6
        return RawTlv(0, new_type, length, ip.packed.ljust(length, b"\0"))
    # An answer type or an unknown sub-TLV: nothing to fill, returned as not processed.
    return RawTlv(FLAG_U, sub.type, length, sub.value)
