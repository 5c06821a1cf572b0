"""Destination Node Address TLV, Type 9 (RFC 9503 §3): the intended reflector, IPv4 or IPv6."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..tlv import TlvType, TlvValue, require_length

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class DestinationNodeAddress(TlvValue):
    TYPE = TlvType.DESTINATION_NODE_ADDRESS
    address: IPAddress

    @classmethod
    def from_value(cls, value: bytes) -> DestinationNodeAddress:
        require_length(value, 4, 16, what="Destination Node Address")
        return cls(ipaddress.ip_address(bytes(value)))

    def to_value(self) -> bytes:
        return self.address.packed
