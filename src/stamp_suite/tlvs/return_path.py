"""Return Path TLV, Type 10 (RFC 9503 §4), with its own sub-TLV registry (RFC 9503 §7).

Sub-TLVs: Control Code (1, Length 4), Return Address (2, Length 4 or 16), SR-MPLS Label
Stack (3, 4*n, n >= 1), SRv6 Segment List (4, 16*n, n >= 1).  A reflector processes only
the first of each kind; a Control Code makes it ignore all the others.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..wire.srh import segment_routing_header
from ..wire.tlv import FLAG_U, MalformedTlv, RawTlv, TlvType, build_tlvs, parse_sub_tlvs
from .base import PROCESSED, ReflectContext, TlvDiscard, TlvValue, unmapped_address
from .destination import IPAddress

_WORD = struct.Struct("!I")


class ReturnPathOutcome(StrEnum):
    """What became of a Return Path request; each a counter of the reflector (``outcome`` label)."""

    NO_REPLY = "no_reply"  # Control Code 0
    SAME_LINK = "same_link"  # Control Code 1
    RETURN_ADDRESS = "return_address"
    RETURN_ADDRESS_NOT_ALLOWED = "return_address_not_allowed"
    SRV6_IMPOSED = "srv6_imposed"  # the reply left with the Segment Routing Header asked for
    SRV6_NOT_ALLOWED = "srv6_not_allowed"
    SRV6_IPV4_SESSION = "srv6_ipv4_session"
    SRV6_UNAVAILABLE = "srv6_unavailable"  # this platform or socket cannot send an SRH
    SR_MPLS_UNAVAILABLE = "sr_mpls_unavailable"


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
    sub_flags: tuple[tuple[int, int], ...] = field(default=(), compare=False)  # (type, flags) as received

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
        return cls(cc, addr, labels, segments, tuple(unknown), len(subs), tuple((t.type, t.flags) for t in subs))

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
        1: reply on the link the packet came in on; either way the other sub-TLVs are
        ignored.  Otherwise the Return Address, then the SRv6 Segment List to reach it, each
        used if allowed and possible.  Each sub-TLV used gets U = 0, every other U = 1; the
        TLV gets U = 1 unless the whole return path asked for is used."""
        rp = cls.from_value(tlv.value)
        ctx.work += rp.sub_tlv_count
        if ctx.return_path_seen:
            return FLAG_U, tlv.value
        ctx.return_path_seen = True
        used: set[int] = set()  # sub-TLV types followed
        complete = rp.sub_tlv_count > len(rp.unknown)  # something known was asked for
        if rp.control_code is not None:
            no_reply = rp.control_code & CONTROL_REPLY_SAME_LINK == CONTROL_NO_REPLY
            if no_reply:
                ctx.discard_reason = TlvDiscard.RETURN_PATH_NO_REPLY
            # The reply leaves from the socket and address the packet came in on: the same
            # link on a host with one route back.
            ctx.return_path_outcomes.append(ReturnPathOutcome.NO_REPLY if no_reply else ReturnPathOutcome.SAME_LINK)
            used.add(ReturnPathSubType.CONTROL_CODE)
        else:
            if rp.return_address is not None:
                refused = _refused_return_address(ctx, rp.return_address)
                if refused is not None:
                    ctx.notes.append(f"return address {rp.return_address} refused: {refused}")
                    ctx.return_path_outcomes.append(ReturnPathOutcome.RETURN_ADDRESS_NOT_ALLOWED)
                    complete = False
                elif _allowed(ctx, rp.return_address, ctx.config.return_address_allow):
                    ctx.destination = (str(rp.return_address), ctx.meta.source[1])
                    used.add(ReturnPathSubType.RETURN_ADDRESS)
                    ctx.return_path_outcomes.append(ReturnPathOutcome.RETURN_ADDRESS)
                else:
                    ctx.notes.append(f"return address {rp.return_address} not allowed")
                    ctx.return_path_outcomes.append(ReturnPathOutcome.RETURN_ADDRESS_NOT_ALLOWED)
                    complete = False
            if rp.srv6_segments is not None:
                if _impose_srv6(rp.srv6_segments, ctx):
                    used.add(ReturnPathSubType.SRV6_SEGMENT_LIST)
                else:
                    complete = False
            if rp.sr_mpls_labels is not None:
                ctx.notes.append("an SR-MPLS label stack cannot be imposed from a UDP socket")
                ctx.return_path_outcomes.append(ReturnPathOutcome.SR_MPLS_UNAVAILABLE)
                complete = False
        return (PROCESSED if complete else FLAG_U), _with_sub_tlv_flags(tlv.value, used)

    @property
    def followed(self) -> list[str]:
        """In a reply read with U = 0 (the return path asked for was used): the sub-TLVs the
        reflector followed (U = 0 on each), e.g. that an SRv6 segment list was imposed."""
        return [_SUB_NAMES.get(t, str(t)) for t, flags in self.sub_flags if not flags & FLAG_U]

    def record(self) -> dict[str, Any]:
        return {"honoured": True, "followed": self.followed}


_SUB_NAMES = {ReturnPathSubType.CONTROL_CODE: "control_code", ReturnPathSubType.RETURN_ADDRESS: "return_address",
              ReturnPathSubType.SR_MPLS_LABEL_STACK: "sr_mpls_label_stack",
              ReturnPathSubType.SRV6_SEGMENT_LIST: "srv6_segment_list"}


def _allowed(ctx: ReflectContext, address: ipaddress.IPv4Address | ipaddress.IPv6Address,
             allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    """A path the sender chooses is a redirection: served to authenticated packets, or to
    addresses inside the operator's allow-list (docs/security.md)."""
    return ctx.authenticated_packet or any(address in net for net in allow)


def _refused_return_address(ctx: ReflectContext, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a Return Address can never be used, whoever asks: not one host (unspecified,
    multicast, broadcast, reserved), or this reflector itself (a local address, on our port:
    the reply would come back to our own socket).  None when it may be."""
    address = unmapped_address(address.packed)
    host = ctx.config.host
    if (address.is_unspecified or address.is_multicast or (address.version == 4 and address.is_reserved)
            or host.is_broadcast(address)):
        return "not a unicast address"  # IPv4's reserved 240/4 holds the limited broadcast too
    if ctx.meta.source[1] == ctx.meta.local_port and host.is_local(address):
        return "this reflector's own address and port"
    return None


def _impose_srv6(segments: tuple[ipaddress.IPv6Address, ...], ctx: ReflectContext) -> bool:
    """Ask for a Segment Routing Header on the reply, if this reflector may and can."""
    cfg = ctx.config
    destination = unmapped_address((ctx.destination or ctx.meta.source)[0])
    if cfg.srv6_unavailable is not None:
        outcome, why = ReturnPathOutcome.SRV6_UNAVAILABLE, cfg.srv6_unavailable
    elif not isinstance(destination, ipaddress.IPv6Address):
        outcome, why = ReturnPathOutcome.SRV6_IPV4_SESSION, "an SRv6 segment list needs an IPv6 session"
    elif not all(sid == destination or _allowed(ctx, sid, cfg.return_srv6_allow) for sid in segments):
        outcome, why = ReturnPathOutcome.SRV6_NOT_ALLOWED, "SRv6 segments outside --return-srv6-allow"
    elif segments == (destination,):  # the path the reply takes anyway: nothing to impose
        ctx.return_path_outcomes.append(ReturnPathOutcome.SRV6_IMPOSED)
        return True
    else:
        try:
            ctx.routing_header = segment_routing_header(segments, destination)
        except ValueError as exc:  # longer than an SRH can hold
            outcome, why = ReturnPathOutcome.SRV6_UNAVAILABLE, str(exc)
        else:
            ctx.return_path_outcomes.append(ReturnPathOutcome.SRV6_IMPOSED)
            return True
    ctx.notes.append(why)
    ctx.return_path_outcomes.append(outcome)
    return False


def _with_sub_tlv_flags(value: bytes, used: set[int]) -> bytes:
    """The Value with U = 0 on the first sub-TLV of each type in ``used``, U = 1 on the others."""
    out = bytearray(value)
    seen: set[int] = set()
    for sub in parse_sub_tlvs(value, 0, "Return Path"):
        first = sub.type not in seen
        seen.add(sub.type)
        out[sub.offset] = 0 if first and sub.type in used else FLAG_U  # M, I and R zero (RFC 8972 §4)
    return bytes(out)
