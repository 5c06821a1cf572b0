"""STAMP TLVs: header, flags, list parsing and building (RFC 8972 §4).

Header: Flags(1) Type(1) Length(2); Length counts the Value only.  Flags are U (0x80,
unrecognised), M (0x40, malformed), I (0x20, integrity failed).  The same header is
used by Location and Return Path sub-TLVs.

Parsing never raises: a TLV whose Length runs past the end of the packet comes back
with ``truncated`` set (its declared Length kept, so a reply can copy it byte-exact),
and fewer than four trailing octets come back as ``trailing``.  Zero padding (TWAMP-Light
and STAMP senders pad to the MTU with zeros) reads as empty TLVs of the Reserved Type 0:
a run of them comes back as one :class:`RawTlv` with its ``count``, found with a few
memory compares instead of one Python step per four octets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .auth import HMAC_LEN, hmac16, verify16

TLV_HEADER = struct.Struct("!BBH")
HEADER_LEN = 4

FLAG_U = 0x80
FLAG_M = 0x40
FLAG_I = 0x20
FLAGS_DEFINED = FLAG_U | FLAG_M | FLAG_I  # the other five bits are R: zero on transmission (RFC 8972 §4)


class TlvType:
    """STAMP TLV Types (IANA, RFC 8972 §5.1, RFC 9503 §7, RFC 9534 §5)."""

    RESERVED = 0  # what zero padding reads as
    EXTRA_PADDING = 1
    LOCATION = 2
    TIMESTAMP_INFORMATION = 3
    CLASS_OF_SERVICE = 4
    DIRECT_MEASUREMENT = 5
    ACCESS_REPORT = 6
    FOLLOW_UP_TELEMETRY = 7
    HMAC = 8
    DESTINATION_NODE_ADDRESS = 9
    RETURN_PATH = 10
    MICRO_SESSION_ID = 11


# Local policy (RFC 8972 sets no limit): a real test packet carries one TLV of a kind or
# two, and a sub-TLV list a handful; thousands would only make a reflector work for
# nothing, so a packet past these limits is dropped (docs/security.md).  A run of zero
# padding counts as one: it costs one slice assignment however long it is.
MAX_TLVS = 32
MAX_SUB_TLVS = 16


class MalformedTlv(ValueError):
    """The Value does not have a valid length or layout for its Type (sets the M flag)."""


class TlvLimitExceeded(MalformedTlv):
    """More TLVs in a packet, or sub-TLVs in a TLV, than :data:`MAX_TLVS` / :data:`MAX_SUB_TLVS`."""


@dataclass(slots=True)
class RawTlv:
    """One TLV as it is on the wire; ``offset`` is where its header starts in the area parsed."""

    flags: int
    type: int
    length: int
    value: bytes
    offset: int = field(default=0, compare=False)
    truncated: bool = False  # Length runs past the end of the packet
    # How many of it in a row: more than 1 only for a run of zero padding (flags 0, Type 0,
    # Length 0), which is one entry however long the run.
    count: int = 1

    @property
    def size(self) -> int:
        return (HEADER_LEN + len(self.value)) * self.count

    def to_bytes(self) -> bytes:
        return (TLV_HEADER.pack(self.flags, self.type, self.length) + self.value) * self.count

    @classmethod
    def build(cls, tlv_type: int, value: bytes, flags: int = FLAG_U) -> RawTlv:
        return cls(flags, tlv_type, len(value), bytes(value))


@dataclass(slots=True)
class TlvList:
    """The result of parsing a TLV area."""

    tlvs: list[RawTlv]
    trailing: bytes = b""  # 1..3 octets too short for a header
    over_limit: bool = False  # parsing stopped at the limit: more TLVs follow

    @property
    def well_formed(self) -> bool:
        return not self.trailing and not any(t.truncated for t in self.tlvs)


ZEROS = bytes(1 << 16)  # longer than any UDP payload


def _zero_blocks(view: memoryview, pos: int, end: int) -> int:
    """How many whole 4-octet blocks of zeros start at ``pos`` (the first one is known to be).
    One memory compare when the rest is all zeros, as padding is; a binary search otherwise."""
    n = (end - pos) // HEADER_LEN
    if ZEROS.startswith(view[pos:pos + n * HEADER_LEN]):
        return n
    lo, hi = 1, n - 1  # block n - 1 or an earlier one holds the first non-zero octet
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ZEROS.startswith(view[pos:pos + mid * HEADER_LEN]):
            lo = mid
        else:
            hi = mid - 1
    return lo


def parse_tlvs(data: bytes | bytearray | memoryview, start: int = 0, limit: int = 0, runs: bool = True) -> TlvList:
    """Split ``data[start:]`` into TLVs, stopping at the first one that runs past the end,
    or after ``limit`` entries (0: no limit) with ``over_limit`` set when more follow.  With
    ``runs`` (a packet's TLVs, not a TLV's sub-TLVs) a run of zero padding is one entry
    (:attr:`RawTlv.count`)."""
    tlvs: list[RawTlv] = []
    end = len(data)
    pos = start
    view = None
    while pos < end:
        if limit and len(tlvs) == limit:
            return TlvList(tlvs, over_limit=True)
        if end - pos < HEADER_LEN:
            return TlvList(tlvs, bytes(data[pos:]))
        flags, tlv_type, length = TLV_HEADER.unpack_from(data, pos)
        if runs and not (flags or tlv_type or length):
            if view is None:
                view = memoryview(data)
            run = _zero_blocks(view, pos, end)
            tlvs.append(RawTlv(0, TlvType.RESERVED, 0, b"", pos - start, count=run))
            pos += run * HEADER_LEN
            continue
        vstart = pos + HEADER_LEN
        if vstart + length > end:
            tlvs.append(RawTlv(flags, tlv_type, length, bytes(data[vstart:]), pos - start, truncated=True))
            return TlvList(tlvs)
        tlvs.append(RawTlv(flags, tlv_type, length, bytes(data[vstart:vstart + length]), pos - start))
        pos = vstart + length
    return TlvList(tlvs)


def parse_sub_tlvs(value: bytes, start: int, what: str) -> list[RawTlv]:
    """The sub-TLVs of a TLV's Value: well formed and at most :data:`MAX_SUB_TLVS`, or raise."""
    parsed = parse_tlvs(value, start, MAX_SUB_TLVS, runs=False)
    if parsed.over_limit:
        raise TlvLimitExceeded(f"{what}: more than {MAX_SUB_TLVS} sub-TLVs")
    if not parsed.well_formed:
        raise MalformedTlv(f"{what}: a sub-TLV runs past the end of the TLV")
    return parsed.tlvs


def build_tlvs(tlvs: list[RawTlv]) -> bytes:
    return b"".join(t.to_bytes() for t in tlvs)


def require_length(value: bytes, *allowed: int, what: str) -> None:
    if len(value) not in allowed:
        raise MalformedTlv(f"{what}: Length {len(value)}, expected {' or '.join(map(str, allowed))}")


# --- HMAC TLV (RFC 8972 §4.8) -------------------------------------------------------

def hmac_tlv_position_ok(tlvs: list[RawTlv]) -> bool:
    """The HMAC TLV must be the last TLV except for trailing Extra Padding TLVs."""
    positions = [i for i, t in enumerate(tlvs) if t.type == TlvType.HMAC]
    if len(positions) != 1:
        return False
    return all(t.type == TlvType.EXTRA_PADDING for t in tlvs[positions[0] + 1:])


def hmac_tlv_input(sequence_field: bytes, tlv_area: bytes | memoryview, hmac_offset: int) -> bytes:
    """Sequence Number field (octets 0-3) followed by every TLV before the HMAC TLV, headers included."""
    return bytes(sequence_field) + bytes(tlv_area[:hmac_offset])


def compute_hmac_tlv(key: bytes, sequence_field: bytes, preceding: bytes, flags: int = FLAG_U) -> RawTlv:
    return RawTlv.build(TlvType.HMAC, hmac16(key, bytes(sequence_field) + preceding), flags)


def verify_hmac_tlv(key: bytes, sequence_field: bytes, tlv_area: bytes | memoryview, tlvs: list[RawTlv]) -> bool:
    """True when exactly one HMAC TLV is in an allowed position and its value verifies."""
    if not hmac_tlv_position_ok(tlvs):
        return False
    h = next(t for t in tlvs if t.type == TlvType.HMAC)
    if h.length != HMAC_LEN or h.truncated:
        return False
    return verify16(key, hmac_tlv_input(sequence_field, tlv_area, h.offset), h.value)


def hmac_tlv_required(tlvs: list[RawTlv]) -> bool:
    """In authenticated mode an HMAC TLV is needed unless the only TLV is one Extra Padding."""
    return bool(tlvs) and not (len(tlvs) == 1 and tlvs[0].type == TlvType.EXTRA_PADDING)
