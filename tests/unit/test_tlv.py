"""TLV header, list parsing and every typed Value, from the RFC layouts (hand-written bytes)."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vectors import EX_E, KEY

from stamp_suite.tlvs import (
    REGISTRY,
    AccessReport,
    ClassOfService,
    DestinationNodeAddress,
    DirectMeasurement,
    ExtraPadding,
    FollowUpTelemetry,
    HmacTlv,
    LabelStackEntry,
    Location,
    MicroSessionId,
    ReturnPath,
    TimestampInformation,
    decode,
)
from stamp_suite.wire.tlv import (
    FLAG_I,
    FLAG_M,
    FLAG_U,
    MalformedTlv,
    RawTlv,
    build_tlvs,
    hmac_tlv_position_ok,
    hmac_tlv_required,
    parse_tlvs,
    verify_hmac_tlv,
)


def test_flag_masks_msb_first():
    assert (FLAG_U, FLAG_M, FLAG_I) == (0x80, 0x40, 0x20)


def test_header_length_counts_value_only():
    tlvs = parse_tlvs(bytes.fromhex("80040004b8000000" "00010002abcd"))
    assert [(t.flags, t.type, t.length, t.value.hex(), t.offset) for t in tlvs.tlvs] == [
        (0x80, 4, 4, "b8000000", 0), (0, 1, 2, "abcd", 8)]
    assert tlvs.well_formed


def test_length_past_end_is_truncated_not_an_error():
    parsed = parse_tlvs(bytes.fromhex("80040004b8000000" "80050010" "0000"))
    assert parsed.tlvs[1].truncated and parsed.tlvs[1].length == 16 and parsed.tlvs[1].value == b"\0\0"
    assert parsed.tlvs[1].to_bytes() == bytes.fromhex("800500100000")  # copied byte-exact
    with pytest.raises(MalformedTlv):
        decode(parsed.tlvs[1])


def test_short_trailing_header():
    parsed = parse_tlvs(bytes.fromhex("80040004b8000000" "8004"))
    assert parsed.trailing == b"\x80\x04" and not parsed.well_formed


def test_class_of_service_layout():
    # RFC 8972 §4.4: DSCP1(6) DSCP2(6) ECN(2) RP(2) Reserved(16). Digest §6.5: DSCP1 46 -> b8000000
    assert ClassOfService(46).to_value() == bytes.fromhex("b8000000")
    # DSCP1 = 46, DSCP2 = 10 (0b001010), ECN = 3, RP = 1 -> 101110 001010 11 01 + 16 zero bits
    word = (46 << 26) | (10 << 20) | (3 << 18) | (1 << 16)
    assert word == 0xB8AD0000
    cos = ClassOfService.from_value(bytes.fromhex("b8ad0000"))
    assert (cos.dscp1, cos.dscp2, cos.ecn, cos.rp) == (46, 10, 3, 1)
    with pytest.raises(MalformedTlv):
        ClassOfService.from_value(b"\0\0")


def test_direct_measurement_layout():
    dm = DirectMeasurement.from_value(bytes.fromhex("00000005" "00000004" "00000003"))
    assert (dm.sender_tx_count, dm.reflector_rx_count, dm.reflector_tx_count) == (5, 4, 3)
    with pytest.raises(MalformedTlv):
        DirectMeasurement.from_value(bytes(8))


def test_access_report_layout():
    # ID in the high 4 bits of octet 0, Return Code in octet 1, 16-bit Reserved (Length 4, not 2)
    ar = AccessReport.from_value(bytes.fromhex("20010000"))
    assert (ar.access_id, ar.return_code, ar.valid_id) == (2, 1, True)
    assert AccessReport(1, 2).to_value() == bytes.fromhex("10020000")
    assert not AccessReport.from_value(bytes.fromhex("30010000")).valid_id
    with pytest.raises(MalformedTlv):
        AccessReport.from_value(bytes.fromhex("2001"))


def test_follow_up_telemetry_layout():
    fu = FollowUpTelemetry.from_value(bytes.fromhex("00000007" "e93c7f00c010624d" "02000000"))
    assert (fu.sequence_number, fu.follow_up_timestamp, fu.timestamp_mode) == (7, 0xE93C7F00C010624D, 2)


def test_timestamp_information_with_sub_tlvs():
    ti = TimestampInformation.from_value(bytes.fromhex("01020503" "00010000"))
    assert (ti.sync_src_in, ti.timestamp_in, ti.sync_src_out, ti.timestamp_out) == (1, 2, 5, 3)
    assert ti.sub_tlvs == bytes.fromhex("00010000")
    with pytest.raises(MalformedTlv):
        TimestampInformation.from_value(b"\0\0\0")


def test_location_request_layout():
    # Ports 0, then Source MAC (1, len 8), Destination IP (4, len 16), Source IP (7, len 16), U set
    want = bytes.fromhex("00000000" "80010008" + "00" * 8 + "80040010" + "00" * 16 + "80070010" + "00" * 16)
    assert Location.request().to_value() == want
    loc = Location.from_value(want)
    assert [s.type for s in loc.sub_tlvs] == [1, 4, 7]


def test_location_answers_and_bad_sub_length():
    answer = bytes.fromhex("035e" "1f90" "00030008" + "00" * 8 + "00050010" "c0000201" + "00" * 12
                           + "00090010" "20010db8" + "00" * 11 + "01")
    loc = Location.from_value(answer)
    assert (loc.destination_port, loc.source_port) == (862, 8080)
    assert loc.answers() == {"source_mac": "00:00:00:00:00:00:00:00", "destination_ip": "192.0.2.1",
                             "source_ip": "2001:db8::1"}
    with pytest.raises(MalformedTlv):  # Destination IP request must be 16 octets
        Location.from_value(bytes.fromhex("00000000" "80040004" "00000000"))


def test_return_path_sub_tlvs():
    # Control Code 1 (Reply Requested on the Same Link = bit 31 = 0x00000001)
    rp = ReturnPath.from_value(bytes.fromhex("00010004" "00000001"))
    assert rp.control_code == 1
    # Return Address 198.51.100.7 + SR-MPLS label 16005, TC 0, S=1, TTL 255 = 0x03e851ff
    rp = ReturnPath.from_value(bytes.fromhex("00020004" "c6336407" "00030004" "03e851ff"))
    assert rp.return_address == ipaddress.ip_address("198.51.100.7")
    assert rp.sr_mpls_labels == (LabelStackEntry(16005, 0, True, 255),)
    assert ReturnPath(sr_mpls_labels=ReturnPath.label_stack([16005])).to_value() == bytes.fromhex("80030004" "03e851ff")
    seg = ReturnPath.from_value(bytes.fromhex("00040010" "20010db8" + "00" * 11 + "02"))
    assert seg.srv6_segments == (ipaddress.IPv6Address("2001:db8::2"),)
    for bad in ("00030000", "00030006" "000000000000", "00040008" + "00" * 8, "00010002" "0000", "0002000500"):
        with pytest.raises(MalformedTlv):
            ReturnPath.from_value(bytes.fromhex(bad))


def test_return_path_sender_composition():
    with pytest.raises(ValueError):
        ReturnPath(control_code=1, return_address=ipaddress.ip_address("192.0.2.1")).validate_for_sending()
    with pytest.raises(ValueError):
        LabelStackEntry(1 << 20)


def test_destination_node_address_and_micro_session():
    assert DestinationNodeAddress.from_value(bytes.fromhex("7f000001")).address == ipaddress.ip_address("127.0.0.1")
    with pytest.raises(MalformedTlv):
        DestinationNodeAddress.from_value(bytes(6))
    ms = MicroSessionId.from_value(bytes.fromhex("00030009"))
    assert (ms.sender_id, ms.reflector_id) == (3, 9)


def test_hmac_tlv_from_digest_example_e():
    area = EX_E[112:]
    parsed = parse_tlvs(area)
    assert [t.type for t in parsed.tlvs] == [4, 8]
    assert verify_hmac_tlv(KEY, EX_E[:4], area, parsed.tlvs)
    assert parsed.tlvs[1].value.hex() == "3c36cb8a8947826f94ed27b13575b18c"
    tampered = bytearray(area)
    tampered[4] ^= 0x04  # the flags and values before the HMAC TLV are covered
    assert not verify_hmac_tlv(KEY, EX_E[:4], bytes(tampered), parse_tlvs(bytes(tampered)).tlvs)


def test_hmac_tlv_position_rules():
    pad, cos, mac = RawTlv.build(1, b"xx"), RawTlv.build(4, bytes(4)), RawTlv.build(8, bytes(16))
    assert hmac_tlv_position_ok([cos, mac, pad, pad])
    assert not hmac_tlv_position_ok([mac, cos])
    assert not hmac_tlv_position_ok([cos, mac, mac])
    assert not hmac_tlv_required([pad]) and hmac_tlv_required([pad, pad]) and hmac_tlv_required([cos])


TLV_EXAMPLES = [ExtraPadding(b"abc"), Location.request(), TimestampInformation(1, 2, 5, 3, b"\x00\x01\x00\x00"),
                ClassOfService(46, 10, 2, 1), DirectMeasurement(1, 2, 3), AccessReport(2, 1),
                FollowUpTelemetry(1, 2, 3), HmacTlv(bytes(range(16))),
                DestinationNodeAddress(ipaddress.ip_address("2001:db8::1")),
                ReturnPath(return_address=ipaddress.ip_address("192.0.2.9"),
                           srv6_segments=(ipaddress.IPv6Address("2001:db8::5"),)),
                MicroSessionId(1, 2)]


@pytest.mark.parametrize("value", TLV_EXAMPLES, ids=lambda v: type(v).__name__)
def test_every_type_round_trips(value):
    tlv = value.to_tlv()
    assert tlv.flags == FLAG_U  # the sender sets U on every TLV
    again = decode(parse_tlvs(tlv.to_bytes()).tlvs[0])
    assert again == value


def test_registry_covers_types_1_to_11():
    assert sorted(REGISTRY) == list(range(1, 12))


@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40)), max_size=8))
def test_list_round_trip(items):
    tlvs = [RawTlv(f, t, len(v), v) for f, t, v in items]
    data = build_tlvs(tlvs)
    parsed = parse_tlvs(data)
    assert parsed.well_formed and build_tlvs(parsed.tlvs) == data


@given(st.binary(max_size=200))
def test_parse_never_raises_and_covers_all_octets(data):
    parsed = parse_tlvs(data)
    assert sum(t.size for t in parsed.tlvs) + len(parsed.trailing) == len(data)


@given(st.sampled_from(sorted(REGISTRY)), st.binary(max_size=64))
def test_decode_raises_only_malformed(tlv_type, value):
    try:
        decode(RawTlv(0, tlv_type, len(value), value))
    except MalformedTlv:
        pass


u8, u16, u32 = st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1)
ipv4 = st.builds(ipaddress.IPv4Address, u32)
ipv6 = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1))
TYPED = st.one_of(
    st.builds(ExtraPadding, st.binary(max_size=64)),
    st.builds(Location.request, st.booleans(), st.booleans(), st.booleans()),
    st.builds(TimestampInformation, u8, u8, u8, u8, st.just(b"")),
    st.builds(ClassOfService, st.integers(0, 63), st.integers(0, 63), st.integers(0, 3), st.integers(0, 3)),
    st.builds(DirectMeasurement, u32, u32, u32),
    st.builds(AccessReport, st.integers(0, 15), u8),
    st.builds(FollowUpTelemetry, u32, st.integers(0, 2**64 - 1), u8),
    st.builds(HmacTlv, st.binary(min_size=16, max_size=16)),
    st.builds(DestinationNodeAddress, st.one_of(ipv4, ipv6)),
    st.builds(ReturnPath, control_code=u32),
    st.builds(lambda a, labels: ReturnPath(return_address=a, sr_mpls_labels=tuple(
        LabelStackEntry(lab, tc, s, ttl) for lab, tc, s, ttl in labels)),
        st.one_of(ipv4, ipv6), st.lists(st.tuples(st.integers(0, 0xFFFFF), st.integers(0, 7), st.booleans(), u8),
                                        min_size=1, max_size=4)),
    st.builds(lambda segs: ReturnPath(srv6_segments=tuple(segs)), st.lists(ipv6, min_size=1, max_size=3)),
    st.builds(MicroSessionId, u16, u16),
)


@given(TYPED)
def test_every_typed_tlv_round_trips(value):
    assert decode(parse_tlvs(value.to_tlv().to_bytes()).tlvs[0]) == value
