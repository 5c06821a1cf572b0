"""The reflector's procedure for a packet's TLVs (RFC 8972 §4), in place on the reply's copy
of the TLV area.  Each TLV type's own rule is in its module of :mod:`stamp_suite.tlvs`; this
is what surrounds them: the limits, the HMAC TLV, the U, M and I flags, and zero padding."""

from __future__ import annotations

from ..tlvs import REGISTRY, ReflectContext
from ..tlvs.base import TlvDiscard
from ..wire.tlv import (
    FLAG_I,
    FLAG_M,
    FLAG_U,
    HEADER_LEN,
    MAX_TLVS,
    ZEROS,
    MalformedTlv,
    RawTlv,
    TlvLimitExceeded,
    TlvType,
    compute_hmac_tlv,
    hmac_tlv_required,
    parse_tlvs,
    verify_hmac_tlv,
)
from .counters import FLAG_I_SLOT, FLAG_M_SLOT, FLAG_U_SLOT, TLV_INTEGRITY_FAILURES, TLV_TYPE_BASE, DropReason

_RUN_PATTERNS: dict[int, memoryview] = {}


def is_zero_padding(area: bytes | memoryview) -> bool:
    """Zeros only: empty TLVs of the Reserved Type 0, which real senders pad with (one compare)."""
    return ZEROS.startswith(area)


def answer_zero_padding(length: int, c: memoryview, integrity_required: bool) -> memoryview | bytes:
    """The reply's TLV area for ``length`` octets of zero padding, as :func:`process_tlvs` would
    make it but without parsing or copying the request: every empty TLV U = 1 (an unknown
    type), with I too where an HMAC TLV is required and so missing; 1-3 octets left over stay."""
    count, odd = divmod(length, HEADER_LEN)
    answer = _pattern(FLAG_I | FLAG_U if integrity_required else FLAG_U)[:count * HEADER_LEN]
    c[TLV_TYPE_BASE + TlvType.RESERVED] += count
    if integrity_required:
        c[FLAG_I_SLOT] += count
        c[TLV_INTEGRITY_FAILURES] += 1
    else:
        c[FLAG_U_SLOT] += count
    return answer if not odd else bytes(answer) + bytes(odd)


def process_tlvs(area: bytearray, sequence_field: bytes, reply_seq: int, key: bytes | None,
                 integrity_required: bool, ctx: ReflectContext, c: memoryview) -> DropReason | TlvDiscard | None:
    """Answer the TLVs in ``area``; a drop reason when the packet must get no reply.

    ``integrity_required``: authenticated mode or --verify-tlv-hmac (RFC 8972 §4.8: then an
    HMAC TLV must cover the TLVs).  The reply's flags of every TLV looked at are U, M and I
    as found here, the R bits zero; the remainder after a malformed TLV is copied unchanged."""
    parsed = parse_tlvs(area, 0, MAX_TLVS)
    if parsed.over_limit:
        return DropReason.TOO_MANY_TLVS
    tlvs = parsed.tlvs
    ctx.work += len(tlvs)
    for t in tlvs:
        c[TLV_TYPE_BASE + t.type] += t.count
    # RFC 8972 §4.8: an HMAC TLV is verified before any TLV data is used.  One this reflector
    # cannot verify (no key for the session) fails like a wrong one: nothing under it is used,
    # so it changes neither the reply's path, its TOS nor whether there is a reply.
    check = any(t.type == TlvType.HMAC for t in tlvs) or (integrity_required and hmac_tlv_required(tlvs))
    if check and (key is None or not verify_hmac_tlv(key, sequence_field, bytes(area), tlvs)):
        # Integrity failure: stop, copy every TLV, set I in each (and U in each not understood).
        for t in tlvs:
            _set_flags(area, t, FLAG_I if t.type in REGISTRY else FLAG_I | FLAG_U)
        c[FLAG_I_SLOT] += sum(t.count for t in tlvs)
        c[TLV_INTEGRITY_FAILURES] += 1
        return None
    for t in tlvs:
        if t.type == TlvType.HMAC:  # verified above; its Value is made anew for the reply
            area[t.offset] = 0
            continue
        kind = REGISTRY.get(t.type)
        if kind is None and not t.truncated:  # an unknown type (zero padding among them): U = 1
            _set_flags(area, t, FLAG_U)
            c[FLAG_U_SLOT] += t.count
            continue
        try:
            if t.truncated:
                raise MalformedTlv("Length runs past the end of the packet")
            flags, value = kind.reflect(t, ctx)
            if len(value) != t.length:  # a rule never grows or shrinks the reply
                raise MalformedTlv("answer does not fit")
        except TlvLimitExceeded:
            return DropReason.TOO_MANY_TLVS
        except (MalformedTlv, ValueError):
            # Malformed: set M (and U if not understood), stop processing; what follows is
            # already copied unchanged.  Some types say what to zero (Follow-Up Telemetry).
            area[t.offset] = FLAG_M if kind is not None else FLAG_M | FLAG_U
            if kind is not None:
                start = t.offset + HEADER_LEN
                area[start:start + len(t.value)] = kind.malformed_value(t.value)
            c[FLAG_M_SLOT] += 1
            break
        flags &= FLAG_U  # a rule says only whether it processed the TLV
        area[t.offset] = flags
        area[t.offset + HEADER_LEN:t.offset + HEADER_LEN + t.length] = value
        if flags:
            c[FLAG_U_SLOT] += 1
    if ctx.discard_reason is not None:
        return ctx.discard_reason
    if check and key is not None:  # on every reply that carries one, whatever else was malformed
        _rehmac(area, tlvs, reply_seq, key)
    return None


def _rehmac(area: bytearray, tlvs: list[RawTlv], reply_seq: int, key: bytes) -> None:
    """The reply's HMAC TLV covers its own Sequence Number and TLVs (RFC 8972 §4.8)."""
    h = next(t for t in tlvs if t.type == TlvType.HMAC)
    mac = compute_hmac_tlv(key, reply_seq.to_bytes(4, "big"), bytes(area[:h.offset]), flags=0)
    area[h.offset:h.offset + HEADER_LEN + 16] = mac.to_bytes()


def _set_flags(area: bytearray, tlv: RawTlv, flags: int) -> None:
    """Write ``flags`` into a TLV's header, or into every header of a run of zero padding."""
    if tlv.count == 1:
        area[tlv.offset] = flags
    else:
        _flag_run(area, tlv.offset, tlv.count, flags)


def _flag_run(area: bytearray, offset: int, count: int, flags: int) -> None:
    """A run of ``count`` empty Type 0 TLVs at ``offset`` becomes ``flags 00 00 00`` repeated:
    one copy from a pattern made once per value."""
    area[offset:offset + count * HEADER_LEN] = _pattern(flags)[:count * HEADER_LEN]


def _pattern(flags: int) -> memoryview:
    """``flags 00 00 00`` repeated, longer than any datagram (made once per value)."""
    pattern = _RUN_PATTERNS.get(flags)
    if pattern is None:
        pattern = _RUN_PATTERNS[flags] = memoryview(bytes((flags, 0, 0, 0)) * (len(ZEROS) // HEADER_LEN))
    return pattern
