"""What a Session-Reflector does with each TLV (RFC 8972 §4, RFC 9503 §3-4, RFC 9534 §3).

Each rule gets the received TLV and a :class:`TlvContext`, and returns the reply's
flags and Value (always the received Length: the reply is symmetric).  A rule raises
:class:`MalformedTlv` for a Value it cannot accept; the engine then applies the
malformed procedure.  Rules may also change how the reply is routed (source address,
destination, DSCP) or suppress it, through the context.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..wire.timestamp import to_wire
from ..wire.tlv import FLAG_U, RawTlv, TlvType
from ..wire.tlvs import (AccessReport, ClassOfService, DestinationNodeAddress, DirectMeasurement,
                         FollowUpTelemetry, Location, LocationSubType, MicroSessionId, ReturnPath,
                         TimestampInformation, TimestampMethod)
from ..wire.tlvs.return_path import CONTROL_NO_REPLY

if TYPE_CHECKING:
    from .engine import ClockDescription, PacketMeta, ReflectorConfig
    from .sessions import Session

PROCESSED = 0  # U = M = I = 0


@dataclass(slots=True)
class TlvContext:
    """Everything a rule may read, and the routing decisions it may take."""

    config: ReflectorConfig
    clock: ClockDescription
    meta: PacketMeta
    session: Session
    authenticated_packet: bool
    # decisions
    source_address: str | None = None
    destination: tuple[str, int] | None = None
    tos: int | None = None
    discard_reason: str | None = None
    return_path_seen: bool = False
    follow_up_requested: bool = False
    work: int = 0  # TLVs and sub-TLVs looked at: what the packet costs (see Reflector)
    notes: list[str] = field(default_factory=list)


Rule = Callable[[RawTlv, TlvContext], tuple[int, bytes]]


def _padding(tlv: RawTlv, ctx: TlvContext) -> tuple[int, bytes]:
    return PROCESSED, tlv.value


def unmapped_address(addr: str | bytes | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address as the peer sees it: v4-mapped IPv6 (dual-stack sockets) becomes IPv4."""
    if not addr:
        return None
    ip = ipaddress.ip_address(addr if isinstance(addr, bytes) else addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _location(tlv: RawTlv, ctx: TlvContext) -> tuple[int, bytes]:
    loc = Location.from_value(tlv.value)
    ctx.work += len(loc.sub_tlvs)
    meta = ctx.meta
    if not ctx.config.report_location:  # local policy: leave every field unreported (zero)
        return PROCESSED, tlv.value
    answers = tuple(_location_answer(sub, meta) for sub in loc.sub_tlvs)
    answered = Location(meta.local_port, meta.source[1], answers)
    return PROCESSED, answered.to_value()


def _location_answer(sub: RawTlv, meta: PacketMeta) -> RawTlv:
    """Map one request sub-TLV to its answer of the same length (RFC 8972 §4.2.2)."""
    length = sub.length
    if sub.type == LocationSubType.SOURCE_MAC:
        # A UDP socket never sees the frame's source MAC: answer EUI-64 all zeros, as
        # the RFC says for "no source MAC at all".
        return RawTlv(0, LocationSubType.SOURCE_EUI64, length, bytes(length))
    if sub.type in (LocationSubType.DESTINATION_IP, LocationSubType.SOURCE_IP):
        is_dst = sub.type == LocationSubType.DESTINATION_IP
        ip = unmapped_address(meta.local_address if is_dst else meta.source[0])
        if ip is None:  # not known on this platform: leave the request, flagged not processed
            return RawTlv(sub.flags | FLAG_U, sub.type, length, sub.value)
        if ip.version == 4:
            new_type = LocationSubType.DESTINATION_IPV4 if is_dst else LocationSubType.SOURCE_IPV4
        else:
            new_type = LocationSubType.DESTINATION_IPV6 if is_dst else LocationSubType.SOURCE_IPV6
        return RawTlv(0, new_type, length, ip.packed.ljust(length, b"\0"))
    # An answer type or an unknown sub-TLV: nothing to fill, returned as not processed.
    return RawTlv(sub.flags | FLAG_U, sub.type, length, sub.value)


def _timestamp_information(tlv: RawTlv, ctx: TlvContext) -> tuple[int, bytes]:
    received = TimestampInformation.from_value(tlv.value)
    sync = ctx.clock.sync_source
    filled = TimestampInformation(sync, ctx.meta.rx_method, sync, TimestampMethod.CONTROL_PLANE, received.sub_tlvs)
    return PROCESSED, filled.to_value()


def _class_of_service(tlv: RawTlv, ctx: TlvContext) -> tuple[int, bytes]:
    cos = ClassOfService.from_value(tlv.value)
    tos = ctx.meta.tos
    dscp2, ecn = (tos >> 2, tos & 3) if tos is not None else (0, 0)
    allowed = ctx.config.cos_allowed_dscp
    if allowed is None or cos.dscp1 in allowed:
        ctx.tos = cos.dscp1 << 2
        rp = 0
    else:  # refused: keep the received DSCP on the reply, say so with RP = 1
        ctx.tos = (tos or 0) & 0xFC
        rp = 1
    return PROCESSED, ClassOfService(cos.dscp1, dscp2, ecn, rp).to_value()


def _direct_measurement(tlv: RawTlv, ctx: TlvContext) -> tuple[int, bytes]:
    dm = DirectMeasurement.from_value(tlv.value)
    s = ctx.session
    # R_TxC counts this reply too: R_RxC - R_TxC is then what the reflector itself lost.
    return PROCESSED, DirectMeasurement(dm.sender_tx_count, s.received, s.transmitted + 1).to_value()


def _access_report(tlv: RawTlv, ctx: TlvContext) -> tuple[int, bytes]:
    report = AccessReport.from_value(tlv.value)
    if not report.valid_id:  # "MUST be discarded": returned unprocessed (U = 1)
        return tlv.flags | FLAG_U, tlv.value
    return PROCESSED, tlv.value


def _follow_up_telemetry(tlv: RawTlv, ctx: TlvContext) -> tuple[int, bytes]:
    FollowUpTelemetry.from_value(tlv.value)
    ctx.follow_up_requested = True
    s = ctx.session
    cfg = ctx.config
    if not cfg.stateful or s.last_reply_sequence is None:  # a stateless reflector MUST zero both
        return PROCESSED, FollowUpTelemetry().to_value()
    ts = to_wire(s.last_reply_tx_ns, cfg.timestamp_format, ctx.clock.tai_offset_s)
    return PROCESSED, FollowUpTelemetry(s.last_reply_sequence, ts, s.last_reply_tx_method).to_value()


def _destination_node_address(tlv: RawTlv, ctx: TlvContext) -> tuple[int, bytes]:
    wanted = DestinationNodeAddress.from_value(tlv.value).address
    ours = {a for a in (unmapped_address(x) for x in ctx.meta.local_addresses) if a is not None}
    here = unmapped_address(ctx.meta.local_address)
    if here is not None:
        ours.add(here)
    if wanted in ours:
        ctx.source_address = wanted.packed
        return PROCESSED, tlv.value
    return FLAG_U, tlv.value  # recognised, but we are not the intended node (RFC 9503 §3)


def _return_path(tlv: RawTlv, ctx: TlvContext) -> tuple[int, bytes]:
    rp = ReturnPath.from_value(tlv.value)
    ctx.work += rp.sub_tlv_count
    if ctx.return_path_seen:  # only the first Return Path TLV counts
        return tlv.flags | FLAG_U, tlv.value
    ctx.return_path_seen = True
    if rp.control_code is not None:
        if rp.control_code & 1 == CONTROL_NO_REPLY:
            ctx.discard_reason = "return_path_no_reply"
        # Reply Requested on the Same Link: the reply leaves from the socket and address
        # the packet came in on, which is the same link on a host with one route back.
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


def _micro_session_id(tlv: RawTlv, ctx: TlvContext) -> tuple[int, bytes]:
    """RFC 9534 §3.2: copy the Sender ID, answer our member-link ID; a non-zero Reflector ID
    that is not ours means the packet arrived on the wrong member link: discard.  Without a
    configured member link the ID is not known: answer 0 ("unknown") and check nothing."""
    ids = MicroSessionId.from_value(tlv.value)
    ours = ctx.meta.member_link_id if ctx.meta.member_link_id is not None else ctx.config.member_link_id
    if ours is not None and ids.reflector_id not in (0, ours):
        ctx.discard_reason = "micro_session_mismatch"
    return PROCESSED, MicroSessionId(ids.sender_id, ours or 0).to_value()


RULES: dict[int, Rule] = {
    TlvType.EXTRA_PADDING: _padding,
    TlvType.LOCATION: _location,
    TlvType.TIMESTAMP_INFORMATION: _timestamp_information,
    TlvType.CLASS_OF_SERVICE: _class_of_service,
    TlvType.DIRECT_MEASUREMENT: _direct_measurement,
    TlvType.ACCESS_REPORT: _access_report,
    TlvType.FOLLOW_UP_TELEMETRY: _follow_up_telemetry,
    TlvType.DESTINATION_NODE_ADDRESS: _destination_node_address,
    TlvType.RETURN_PATH: _return_path,
    TlvType.MICRO_SESSION_ID: _micro_session_id,
}
