"""RFC 9503 §4 Return Path with an SRv6 Segment List, and the RFC 8754 SRH the reply carries.

Requests are written out in hex from the RFC layouts (TLV header Flags|Type|Length, then the
sub-TLVs with the same header), on the digest's open packet (a) (EX_A), not made by our encoder."""

import ipaddress

import pytest
from vectors import EX_A, EX_C, KEY, T3_NS, At

from stamp_suite.reflector.engine import Reflection, Reflector, ReflectorConfig
from stamp_suite.wire.auth import KeyStore
from stamp_suite.wire.srh import segment_routing_header
from stamp_suite.wire.tlv import compute_hmac_tlv

V6 = ipaddress.IPv6Address
SENDER = "fd00:1::1"
E_SID = "fd000002000000000000000000000002"  # fd00:2::2
S_SID = "fd000001000000000000000000000001"  # fd00:1::1, the sender itself
META6 = At((SENDER, 40000), "fd00:1::2")
META4 = At(("192.0.2.1", 40000), "192.0.2.2")
ABLE = dict(srv6_unavailable=None)  # the socket layer said it can send an SRH
ALLOW_E = dict(ABLE, return_srv6_allow=(ipaddress.IPv6Network("fd00:2::/64"),))

# Return Path TLV (U set, as a sender sends it) with one SRv6 Segment List sub-TLV [E]
RP_E = bytes.fromhex("800a0014" "80040010" + E_SID)
# ... [E, S]: the list may end with the sender's own address (RFC 9503 leaves it open)
RP_E_S = bytes.fromhex("800a0024" "80040020" + E_SID + S_SID)
# ... a Return Address fd00:9::9 and the segment list [E]
RP_ADDR_E = bytes.fromhex("800a0028" "80020010" "fd000009000000000000000000000009" "80040010" + E_SID)

# RFC 8754 §2: Next Header 0 (the kernel's), Hdr Ext Len 4 (two segments), Routing Type 4,
# Segments Left 1, Last Entry 1, Flags 0, Tag 0; Segment List[0] = the final destination,
# Segment List[1] = the first segment to visit.
SRH_E_THEN_SENDER = bytes.fromhex("00040401" "01000000" + S_SID + E_SID)


def reflect(packet, meta=META6, **config):
    r = Reflector(ReflectorConfig(**config))
    reply = r.reflect(meta(packet), T3_NS)
    return r, reply if isinstance(reply, Reflection) else None


def flags_of(reply, base=44):
    """(TLV flags, [sub-TLV flags]) of the reply's Return Path TLV."""
    area = bytes(reply.data[base:])
    subs, pos = [], 4
    while pos < len(area):
        subs.append(area[pos])
        pos += 4 + int.from_bytes(area[pos + 2:pos + 4], "big")
    return area[0], subs


def test_srh_layout_for_one_segment_before_the_destination():
    assert segment_routing_header((V6("fd00:2::2"),), V6(SENDER)) == SRH_E_THEN_SENDER
    # the list may name the destination last: it is not visited twice
    assert segment_routing_header((V6("fd00:2::2"), V6(SENDER)), V6(SENDER)) == SRH_E_THEN_SENDER
    three = segment_routing_header((V6("fd00:2::2"), V6("fd00:3::3")), V6(SENDER))
    assert three[:8] == bytes.fromhex("00060402" "02000000")  # Segments Left = Last Entry = 2
    assert three[8:] == bytes.fromhex(S_SID + "fd000003000000000000000000000003" + E_SID)  # reversed
    with pytest.raises(ValueError):
        segment_routing_header((V6(SENDER),), V6(SENDER))  # nothing to route through
    with pytest.raises(ValueError):
        segment_routing_header(tuple(V6(f"fd00::{i:x}") for i in range(1, 128)), V6(SENDER))


@pytest.mark.parametrize("request_tlv", [RP_E, RP_E_S])
def test_an_allowed_segment_list_is_imposed_with_u_clear(request_tlv):
    r, reply = reflect(EX_A + request_tlv, **ALLOW_E)
    assert flags_of(reply) == (0x00, [0x00])  # TLV and sub-TLV processed
    assert reply.routing_header == SRH_E_THEN_SENDER and reply.destination == (SENDER, 40000)
    assert r.counters.return_path == {"srv6_imposed": 1}


def test_authenticated_sessions_need_no_allow_list():
    # Digest 6.4's authenticated packet (c) with the Return Path TLV and the HMAC TLV that
    # authenticated mode requires after it (RFC 8972 §4.8: over the Sequence Number and the
    # TLVs before it; the HMAC itself is checked against the digest in test_tlv.py).
    hmac_tlv = compute_hmac_tlv(KEY, EX_C[:4], RP_E).to_bytes()
    r, reply = reflect(EX_C + RP_E + hmac_tlv, authenticated=True, keys=KeyStore(KEY), **ABLE)
    assert reply.data[112] == 0x00 and reply.routing_header == SRH_E_THEN_SENDER


@pytest.mark.parametrize("meta, config, outcome", [
    (META6, ABLE, "srv6_not_allowed"),  # open mode, no --return-srv6-allow
    (META6, dict(ALLOW_E, return_srv6_allow=(ipaddress.IPv6Network("fd00:3::/64"),)), "srv6_not_allowed"),
    (META4, ALLOW_E, "srv6_ipv4_session"),
    (META6, dict(ALLOW_E, srv6_unavailable="the kernel refuses a Segment Routing Header"), "srv6_unavailable"),
])
def test_a_segment_list_that_cannot_be_imposed_is_flagged_and_counted(meta, config, outcome):
    r, reply = reflect(EX_A + RP_E, meta, **config)
    assert flags_of(reply) == (0x80, [0x80]) and reply.routing_header is None
    assert reply.destination == meta.source and r.counters.return_path == {outcome: 1}


def test_return_address_and_segment_list_together():
    both = dict(ALLOW_E, return_address_allow=(ipaddress.ip_network("fd00:9::/64"),))
    _, reply = reflect(EX_A + RP_ADDR_E, **both)
    assert flags_of(reply) == (0x00, [0x00, 0x00]) and reply.destination == ("fd00:9::9", 40000)
    assert reply.routing_header == bytes.fromhex("00040401" "01000000" "fd000009000000000000000000000009" + E_SID)
    # the address not allowed: the segment list still leads back to the sender; the TLV says U
    r, reply = reflect(EX_A + RP_ADDR_E, **ALLOW_E)
    assert flags_of(reply) == (0x80, [0x80, 0x00]) and reply.destination == (SENDER, 40000)
    assert reply.routing_header == SRH_E_THEN_SENDER
    assert r.counters.return_path == {"return_address_not_allowed": 1, "srv6_imposed": 1}


def test_a_control_code_makes_the_segment_list_ignored():
    # Control Code 1 (reply on the same link) with a segment list: a sender must not send
    # both (RFC 9503 §4), and a reflector ignores the other sub-TLVs.
    packet = EX_A + bytes.fromhex("800a001c" "80010004" "00000001" "80040010" + E_SID)
    r, reply = reflect(packet, **ALLOW_E)
    assert flags_of(reply) == (0x00, [0x00, 0x80]) and reply.routing_header is None
    assert r.counters.return_path == {"same_link": 1}
