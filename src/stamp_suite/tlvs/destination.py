"""Destination Node Address TLV, Type 9 (RFC 9503 §3): the intended reflector, IPv4 or IPv6."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from ..wire.tlv import FLAG_U, RawTlv, TlvType, require_length
from .base import PROCESSED, ReflectContext, TlvValue, unmapped_address

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class DestinationNodeAddress(TlvValue):
    TYPE = TlvType.DESTINATION_NODE_ADDRESS
    KEY = "destination_node"
    address: IPAddress

    @classmethod
    def from_value(cls, value: bytes) -> DestinationNodeAddress:
        require_length(value, 4, 16, what="Destination Node Address")
        return cls(ipaddress.ip_address(bytes(value)))

    def to_value(self) -> bytes:
        return self.address.packed

    @classmethod
    def reflect(cls, tlv: RawTlv, ctx: ReflectContext) -> tuple[int, bytes]:
        """"Ours" is the packet's destination address or any address of this host; then it
        becomes the reply's source address (RFC 9503 §3)."""
        wanted = unmapped_address(cls.from_value(tlv.value).address.packed)
        if wanted == unmapped_address(ctx.meta.local_address) or ctx.config.host.is_local(wanted):
            ctx.source_address = wanted.packed
            return PROCESSED, tlv.value
        return FLAG_U, tlv.value  # recognised, but we are not the intended node

    def record(self) -> dict[str, Any]:
        return {"address": str(self.address), "accepted": True}
