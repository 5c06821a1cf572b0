"""Return Path TLV, Type 10 (RFC 9503 §4), with its own sub-TLV registry (RFC 9503 §7).

Sub-TLVs: Control Code (1, Length 4), Return Address (2, Length 4 or 16), SR-MPLS Label
Stack (3, 4*n, n >= 1), SRv6 Segment List (4, 16*n, n >= 1).  A reflector processes only
the first of each kind; a Control Code makes it ignore all the others.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from ..wire.tlv import FLAG_U, MalformedTlv, RawTlv, TlvType, build_tlvs, parse_sub_tlvs
from ..reflector.counters import DropReason
from .base import PROCESSED, ReadContext, ReflectContext, TlvValue
from .destination import IPAddress

_WORD = struct.Struct("!I")


class ReturnPathSubType:
    CONTROL_CODE = 1
    RETURN_ADDRESS = 2
    SR_MPLS_LABEL_STACK = 3
    SRV6_SEGMENT_LIST = 4


CONTROL_NO_REPLY = 0x00000000
CONTROL_REPLY_SAME_LINK = 0x00000001  # the Reply Request flag, bit 31 (RFC 9503 §4.1.1)


@dataclass(frozen=True, slots=True)
class LabelStackEntry:
    """One MPLS label stack entry: Label(20) TC(3) S(1) TTL(8)."""

    label: int
    tc: int = 0
    bottom: bool = False
    ttl: int = 255

    def __post_init__(self) -> None:
        if not 0 <= self.label <= 0xFFFFF:
            raise ValueError(f"MPLS label {self.label} is outside 0..1048575 (20 bits)")

    def to_int(self) -> int:
        return (self.label << 12) | ((self.tc & 7) << 9) | (int(self.bottom) << 8) | (self.ttl & 0xFF)

    @classmethod
    def from_int(cls, w: int) -> LabelStackEntry:
        return cls(w >> 12, (w >> 9) & 7, bool(w & 0x100), w & 0xFF)


@dataclass(frozen=True, slots=True)
class ReturnPath(TlvValue):
    TYPE = TlvType.RETURN_PATH
    KEY = "return_path"
    control_code: int | None = None
    return_address: IPAddress | None = None
    sr_mpls_labels: tuple[LabelStackEntry, ...] | None = None
    srv6_segments: tuple[ipaddress.IPv6Address, ...] | None = None
    unknown: tuple[RawTlv, ...] = field(default=())
    sub_tlv_count: int = field(default=0, compare=False)  # as received, known kinds and repeats included

    @classmethod
    def from_value(cls, value: bytes) -> ReturnPath:
        subs = parse_sub_tlvs(value, 0, "Return Path")
        cc = addr = labels = segments = None
        unknown: list[RawTlv] = []
        for sub in subs:
            v = sub.value
            if sub.type == ReturnPathSubType.CONTROL_CODE:
                if len(v) != 4:
                    raise MalformedTlv(f"Return Path Control Code: Length {len(v)}, expected 4")
                cc = _WORD.unpack(v)[0] if cc is None else cc
            elif sub.type == ReturnPathSubType.RETURN_ADDRESS:
                if len(v) not in (4, 16):
                    raise MalformedTlv(f"Return Address: Length {len(v)}, expected 4 or 16")
                addr = ipaddress.ip_address(v) if addr is None else addr
            elif sub.type == ReturnPathSubType.SR_MPLS_LABEL_STACK:
                if not v or len(v) % 4:
                    raise MalformedTlv(f"SR-MPLS Label Stack: Length {len(v)} is not a positive multiple of 4")
                if labels is None:
                    labels = tuple(LabelStackEntry.from_int(w) for (w,) in _WORD.iter_unpack(v))
            elif sub.type == ReturnPathSubType.SRV6_SEGMENT_LIST:
                if not v or len(v) % 16:
                    raise MalformedTlv(f"SRv6 Segment List: Length {len(v)} is not a positive multiple of 16")
                if segments is None:
                    segments = tuple(ipaddress.IPv6Address(v[i:i + 16]) for i in range(0, len(v), 16))
            else:
                unknown.append(sub)
        return cls(cc, addr, labels, segments, tuple(unknown), len(subs))

    def to_value(self) -> bytes:
        subs: list[RawTlv] = []
        if self.control_code is not None:
            subs.append(RawTlv.build(ReturnPathSubType.CONTROL_CODE, _WORD.pack(self.control_code), FLAG_U))
        if self.return_address is not None:
            subs.append(RawTlv.build(ReturnPathSubType.RETURN_ADDRESS, self.return_address.packed, FLAG_U))
        if self.sr_mpls_labels is not None:
            data = b"".join(_WORD.pack(e.to_int()) for e in self.sr_mpls_labels)
            subs.append(RawTlv.build(ReturnPathSubType.SR_MPLS_LABEL_STACK, data, FLAG_U))
        if self.srv6_segments is not None:
            data = b"".join(s.packed for s in self.srv6_segments)
            subs.append(RawTlv.build(ReturnPathSubType.SRV6_SEGMENT_LIST, data, FLAG_U))
        return build_tlvs(subs + list(self.unknown))

    @staticmethod
    def label_stack(labels: list[int]) -> tuple[LabelStackEntry, ...]:
        """Entries for plain labels, top first, with the S bit on the bottom one."""
        return tuple(LabelStackEntry(lab, bottom=(i == len(labels) - 1)) for i, lab in enumerate(labels))

    def validate_for_sending(self) -> None:
        """Composition rules for a sender (RFC 9503 §4): never a Control Code with anything else."""
        if self.control_code is not None and (self.return_address or self.sr_mpls_labels or self.srv6_segments):
            raise ValueError("a Return Path Control Code cannot be combined with a return address or segment list")
        if self.sr_mpls_labels is not None and self.srv6_segments is not None:
            raise ValueError("send either an SR-MPLS label stack or an SRv6 segment list, not both")
        if self.sr_mpls_labels == () or self.srv6_segments == ():
            raise ValueError("a Return Path segment list needs at least one segment")

    @classmethod
    def reflect(cls, tlv: RawTlv, ctx: ReflectContext) -> tuple[int, bytes]:
        """Only the first Return Path TLV counts (RFC 9503 §4).  Control Code 0: no reply;
        1: reply on the link the packet came in on.  A Return Address is a redirection: served
        to authenticated packets or inside --return-address-allow only (docs/security.md).
        A segment list cannot be imposed from a UDP socket: U = 1."""
        rp = cls.from_value(tlv.value)
        ctx.work += rp.sub_tlv_count
        if ctx.return_path_seen:
            return tlv.flags | FLAG_U, tlv.value
        ctx.return_path_seen = True
        if rp.control_code is not None:
            if rp.control_code & 1 == CONTROL_NO_REPLY:
                ctx.discard_reason = DropReason.RETURN_PATH_NO_REPLY
            # The reply leaves from the socket and address the packet came in on: the same
            # link on a host with one route back.
            return PROCESSED, tlv.value
        if rp.sr_mpls_labels is not None or rp.srv6_segments is not None:
            ctx.notes.append("segment-routed return path cannot be imposed from a UDP socket")
            return FLAG_U, tlv.value
        if rp.return_address is not None:
            if ctx.authenticated_packet or any(rp.return_address in net for net in ctx.config.return_address_allow):
                ctx.destination = (str(rp.return_address), ctx.meta.source[1])
                return PROCESSED, tlv.value
            ctx.notes.append(f"return address {rp.return_address} not allowed")
            return FLAG_U, tlv.value
        return FLAG_U, tlv.value  # only unknown sub-TLVs

    def read(self, ctx: ReadContext) -> None:
        ctx.values[self.KEY] = {"honoured": True}
