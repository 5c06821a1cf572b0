"""AgentX PDUs (RFC 2741 §5, §6) from hand-written bytes, and the MIB view's ordering rules."""

import struct

import pytest

from stamp_suite.observability import agentx as ax
from stamp_suite.observability.snmp import MibView


def test_oid_uses_internet_prefix():
    # 1.3.6.1.4.1.65134.1: n_subid 3, prefix 4, include 1, then 1, 65134, 1
    enc = ax.encode_oid((1, 3, 6, 1, 4, 1, 65134, 1), include=True)
    assert enc == bytes.fromhex("03040100" "00000001" "0000fe6e" "00000001")
    assert ax.decode_oid(enc, 0, "!") == ((1, 3, 6, 1, 4, 1, 65134, 1), True, 16)
    assert ax.encode_oid((1, 2)) == bytes.fromhex("02000000" "00000001" "00000002")
    assert ax.encode_oid(()) == bytes(4)  # the null OID


def test_octet_string_padding():
    assert ax.encode_octets(b"abcde") == bytes.fromhex("00000005") + b"abcde\0\0\0"
    assert ax.decode_octets(ax.encode_octets(b"abcde") + b"X", 0, "!") == (b"abcde", 12)


def test_header_in_both_byte_orders():
    be = bytes.fromhex("01 05 10 00 00000007 00000008 00000009 00000000".replace(" ", ""))
    h = ax.parse_header(be)
    assert (h.type, h.session_id, h.transaction_id, h.packet_id, h.payload_length) == (5, 7, 8, 9, 0)
    le = bytes([1, 5, 0, 0]) + struct.pack("<IIII", 7, 8, 9, 0)
    assert ax.parse_header(le).session_id == 7
    with pytest.raises(ax.AgentXError):
        ax.parse_header(bytes([2]) + bytes(19))


def test_varbind_encodings():
    oid = (1, 3, 6, 1, 4, 1, 65134, 1, 1, 2, 1, 0)
    vb = ax.encode_varbind(oid, ax.VarType.COUNTER64, 2**40)
    assert vb[:4] == bytes.fromhex("00460000") and vb[-8:] == (2**40).to_bytes(8, "big")
    assert ax.encode_varbind(oid, ax.VarType.OCTET_STRING, "::")[-8:] == bytes.fromhex("00000002") + b"::\0\0"
    assert ax.encode_varbind(oid, ax.VarType.END_OF_MIB_VIEW)[:4] == bytes.fromhex("00820000")


def request(ptype, ranges, bulk=None):
    payload = b"" if bulk is None else struct.pack("!HH", *bulk)
    for start, include, end in ranges:
        payload += ax.encode_oid(start, include) + ax.encode_oid(end)
    pdu = ax.encode_pdu(ptype, payload, session_id=1, packet_id=5)
    return ax.parse_header(pdu), pdu[20:]


def decode_response(pdu):
    h = ax.parse_header(pdu)
    body = pdu[20:]
    uptime, err, idx = struct.unpack_from("!IHH", body)
    off, binds = 8, []
    while off < len(body):
        vtype = struct.unpack_from("!H", body, off)[0]
        oid, _, off = ax.decode_oid(body, off + 4, "!")
        if vtype in (ax.VarType.GAUGE32, ax.VarType.INTEGER):
            binds.append((oid, vtype, struct.unpack_from("!I", body, off)[0]))
            off += 4
        else:
            binds.append((oid, vtype, None))
    return h, err, binds


VIEW = MibView(lambda: [((1, 3, 6, 1, 4, 1, 9, 2, 0), ax.VarType.GAUGE32, 20),
                        ((1, 3, 6, 1, 4, 1, 9, 1, 0), ax.VarType.GAUGE32, 10),
                        ((1, 3, 6, 1, 4, 1, 9, 3, 1, 5), ax.VarType.GAUGE32, 30)])
A, B, C = (1, 3, 6, 1, 4, 1, 9, 1, 0), (1, 3, 6, 1, 4, 1, 9, 2, 0), (1, 3, 6, 1, 4, 1, 9, 3, 1, 5)


def test_get_and_missing():
    _, err, binds = decode_response(VIEW.answer(*request(ax.PduType.GET, [(A, False, ()),
                                                                           ((1, 3, 6, 1, 4, 1, 9, 1, 7), False, ()),
                                                                           ((1, 3, 6, 1, 4, 1, 8), False, ())])))
    assert err == 0
    assert binds[0] == (A, ax.VarType.GAUGE32, 10)
    assert binds[1][1] == ax.VarType.NO_SUCH_INSTANCE and binds[2][1] == ax.VarType.NO_SUCH_OBJECT


def test_getnext_include_and_end():
    _, _, binds = decode_response(VIEW.answer(*request(ax.PduType.GETNEXT, [(A, False, ()), (A, True, ()),
                                                                               (B, False, C), (C, False, ())])))
    assert [b[0] for b in binds[:2]] == [B, A]
    assert binds[2][1] == ax.VarType.END_OF_MIB_VIEW  # C is outside [B, C)
    assert binds[3] == (C, ax.VarType.END_OF_MIB_VIEW, None)


def test_getbulk_repeats():
    h, _, binds = decode_response(VIEW.answer(*request(ax.PduType.GETBULK, [((1, 3), False, ())], bulk=(0, 3))))
    assert [b[0] for b in binds] == [A, B, C] and h.packet_id == 5
