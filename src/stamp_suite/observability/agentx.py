"""AgentX (RFC 2741) PDUs: the subset a read-only sub-agent needs, as bytes <-> values.

Written here because no Python AgentX library on PyPI is fit to depend on (pyagentx is
Python 2 only, pyagentx2 imports MySQLdb, pyagentx3 serves values refreshed on a timer
without GetBulk, netsnmpagent needs libnetsnmp and one agent per process, snmpkit does not
reconnect after snmpd restarts).  We always send in network byte order (flag 0x10) and read either order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

VERSION = 1
HEADER_LEN = 20
# RFC 2741 sets no limit.  A master's request carries the search ranges of one SNMP message,
# which its transport bounds at 65,507 octets (UDP); net-snmp's own PDUs are far smaller.
MAX_PAYLOAD = 65_536
FLAG_INSTANCE_REGISTRATION = 0x01
FLAG_NON_DEFAULT_CONTEXT = 0x08
FLAG_NETWORK_BYTE_ORDER = 0x10
INTERNET = (1, 3, 6, 1)


class PduType(IntEnum):
    OPEN = 1
    CLOSE = 2
    REGISTER = 3
    UNREGISTER = 4
    GET = 5
    GETNEXT = 6
    GETBULK = 7
    TESTSET = 8
    COMMITSET = 9
    UNDOSET = 10
    CLEANUPSET = 11
    NOTIFY = 12
    PING = 13
    RESPONSE = 18


class VarType(IntEnum):
    INTEGER = 2
    OCTET_STRING = 4
    NULL = 5
    OBJECT_IDENTIFIER = 6
    IP_ADDRESS = 64
    COUNTER32 = 65
    GAUGE32 = 66
    TIME_TICKS = 67
    OPAQUE = 68
    COUNTER64 = 70
    NO_SUCH_OBJECT = 128
    NO_SUCH_INSTANCE = 129
    END_OF_MIB_VIEW = 130


class Error(IntEnum):
    NO_ERROR = 0
    GEN_ERR = 5
    NOT_WRITABLE = 17
    PARSE_ERROR = 266
    REQUEST_DENIED = 267
    PROCESSING_ERROR = 268


class CloseReason(IntEnum):
    OTHER = 1
    PARSE_ERROR = 2
    PROTOCOL_ERROR = 3
    TIMEOUTS = 4
    SHUTDOWN = 5


class AgentXError(ValueError):
    """A PDU that cannot be parsed."""


class OversizedPdu(AgentXError):
    """A header announcing more than MAX_PAYLOAD octets: the session is closed, not buffered."""


OID = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Header:
    type: int
    flags: int
    session_id: int
    transaction_id: int
    packet_id: int
    payload_length: int

    @property
    def byte_order(self) -> str:
        return "!" if self.flags & FLAG_NETWORK_BYTE_ORDER else "<"


def parse_header(data: bytes) -> Header:
    if len(data) < HEADER_LEN:
        raise AgentXError("short AgentX header")
    version, ptype, flags = data[0], data[1], data[2]
    if version != VERSION:
        raise AgentXError(f"AgentX version {version}")
    bo = "!" if flags & FLAG_NETWORK_BYTE_ORDER else "<"
    sid, tid, pid, length = struct.unpack_from(bo + "IIII", data, 4)
    if length > MAX_PAYLOAD:
        raise OversizedPdu(f"an AgentX PDU of {length:,} octets, over the {MAX_PAYLOAD:,} accepted")
    return Header(ptype, flags, sid, tid, pid, length)


def encode_pdu(ptype: int, payload: bytes = b"", *, session_id: int = 0, transaction_id: int = 0,
               packet_id: int = 0, flags: int = 0) -> bytes:
    return (struct.pack("!BBBx", VERSION, ptype, flags | FLAG_NETWORK_BYTE_ORDER)
            + struct.pack("!IIII", session_id, transaction_id, packet_id, len(payload)) + payload)


def encode_oid(oid: OID, include: bool = False) -> bytes:
    prefix = 0
    if len(oid) >= 5 and oid[:4] == INTERNET and 0 < oid[4] < 256:
        prefix, oid = oid[4], oid[5:]
    return struct.pack("!BBBx", len(oid), prefix, int(include)) + b"".join(struct.pack("!I", s) for s in oid)


def decode_oid(data: bytes, offset: int, bo: str) -> tuple[OID, bool, int]:
    if offset + 4 > len(data):
        raise AgentXError("truncated OID")
    n, prefix, include = data[offset], data[offset + 1], data[offset + 2]
    offset += 4
    if offset + 4 * n > len(data):
        raise AgentXError("truncated OID")
    subids = struct.unpack_from(f"{bo}{n}I", data, offset)
    oid = (INTERNET + (prefix,) + subids) if prefix else subids
    return tuple(oid), bool(include), offset + 4 * n


def encode_octets(value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack("!I", len(value)) + value + bytes(pad)


def decode_octets(data: bytes, offset: int, bo: str) -> tuple[bytes, int]:
    if offset + 4 > len(data):
        raise AgentXError("truncated octet string")
    (n,) = struct.unpack_from(bo + "I", data, offset)
    offset += 4
    if offset + n > len(data):
        raise AgentXError("truncated octet string")
    return data[offset:offset + n], offset + n + ((-n) % 4)


def encode_varbind(oid: OID, vtype: int, value: object = None) -> bytes:
    head = struct.pack("!Hxx", vtype) + encode_oid(oid)
    if vtype in (VarType.INTEGER, VarType.COUNTER32, VarType.GAUGE32, VarType.TIME_TICKS):
        fmt = "!i" if vtype == VarType.INTEGER else "!I"
        return head + struct.pack(fmt, int(value))  # type: ignore[arg-type]
    if vtype == VarType.COUNTER64:
        return head + struct.pack("!Q", int(value) & 0xFFFF_FFFF_FFFF_FFFF)  # type: ignore[arg-type]
    if vtype in (VarType.OCTET_STRING, VarType.OPAQUE, VarType.IP_ADDRESS):
        raw = value.encode() if isinstance(value, str) else bytes(value)  # type: ignore[arg-type]
        return head + encode_octets(raw)
    if vtype == VarType.OBJECT_IDENTIFIER:
        return head + encode_oid(tuple(value))  # type: ignore[arg-type]
    return head  # Null, noSuchObject, noSuchInstance, endOfMibView carry no data


def open_pdu(subagent_oid: OID, description: str, packet_id: int, timeout_s: int = 0) -> bytes:
    return encode_pdu(PduType.OPEN, struct.pack("!Bxxx", timeout_s) + encode_oid(subagent_oid)
                      + encode_octets(description.encode()), packet_id=packet_id)


def register_pdu(session_id: int, subtree: OID, packet_id: int, priority: int = 127) -> bytes:
    return encode_pdu(PduType.REGISTER, struct.pack("!BBBx", 0, priority, 0) + encode_oid(subtree),
                      session_id=session_id, packet_id=packet_id)


def close_pdu(session_id: int, packet_id: int, reason: int = CloseReason.SHUTDOWN) -> bytes:
    return encode_pdu(PduType.CLOSE, struct.pack("!Bxxx", reason), session_id=session_id, packet_id=packet_id)


def ping_pdu(session_id: int, packet_id: int) -> bytes:
    return encode_pdu(PduType.PING, session_id=session_id, packet_id=packet_id)


def response_pdu(request: Header, varbinds: list[bytes], error: int = 0, index: int = 0) -> bytes:
    payload = struct.pack("!IHH", 0, error, index) + b"".join(varbinds)
    return encode_pdu(PduType.RESPONSE, payload, session_id=request.session_id,
                      transaction_id=request.transaction_id, packet_id=request.packet_id)


@dataclass(frozen=True, slots=True)
class Response:
    sys_uptime: int
    error: int
    index: int


def parse_response(header: Header, payload: bytes) -> Response:
    if len(payload) < 8:
        raise AgentXError("short Response PDU")
    return Response(*struct.unpack_from(header.byte_order + "IHH", payload))


SearchRange = tuple[OID, bool, OID]  # start, include, end (empty = no end)


def parse_request(header: Header, payload: bytes) -> tuple[list[SearchRange], int, int]:
    """A Get, GetNext or GetBulk: its search ranges, and GetBulk's non-repeaters and max-repetitions."""
    bo = header.byte_order
    off = 0
    if header.flags & FLAG_NON_DEFAULT_CONTEXT:
        _, off = decode_octets(payload, off, bo)
    non_repeaters = max_repetitions = 0
    if header.type == PduType.GETBULK:
        if off + 4 > len(payload):
            raise AgentXError("short GetBulk PDU")
        non_repeaters, max_repetitions = struct.unpack_from(bo + "HH", payload, off)
        off += 4
    ranges: list[SearchRange] = []
    while off < len(payload):
        start, include, off = decode_oid(payload, off, bo)
        end, _, off = decode_oid(payload, off, bo)
        ranges.append((start, include, end))
    return ranges, non_repeaters, max_repetitions
