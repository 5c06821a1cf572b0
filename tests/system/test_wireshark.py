"""The Wireshark dissector (src/stamp_suite/data/stamp.lua) run by Debian's tshark.

- The worked examples of tests/vectors.py decode to their documented values.
- Each RFC rule in the dissector's expert info fires on bytes built from those examples, and
  only there.
- Captures made on loopback of the program itself (open and authenticated, every TLV,
  IPv4 and IPv6, NTP and PTP): every field the dissector shows equals what the project's
  own parser (stamp_suite.wire, stamp_suite.tlvs) reads from the same bytes; replies are
  linked to their requests and carry the round-trip time.
- Thousands of mutated packets decode without a Lua error.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import signal
import struct
import subprocess
import time
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from ci import require, require_tool
from helpers import CMD, ENV, ReflectorProcess
from vectors import BASE_NS, EX_A, EX_B, EX_C, EX_C2, EX_D, EX_E

import stamp_suite
from stamp_suite.tlvs import (
    AccessReport,
    ClassOfService,
    DestinationNodeAddress,
    DirectMeasurement,
    ExtraPadding,
    FollowUpTelemetry,
    HmacTlv,
    Location,
    MicroSessionId,
    ReturnPath,
    TimestampInformation,
    decode,
)
from stamp_suite.wire.packet import ReflectorPacket, SenderPacket
from stamp_suite.wire.timestamp import NS, ErrorEstimate, TimestampFormat, from_wire
from stamp_suite.wire.tlv import RawTlv, build_tlvs, parse_tlvs

pytestmark = pytest.mark.system  # tshark and dumpcap, installed by .ci/run

LUA = Path(stamp_suite.__file__).parent / "data" / "stamp.lua"
KEY = "00112233445566778899aabbccddeeff"
STAMP_PORT = 862
OTHER_PORT = 5555  # not a STAMP port: only the heuristic or a preference decodes it

# Expert info the dissector defines: the RFC rules, and the reflector's flags.
EXPERTS = {
    "stamp.short", "stamp.tlv.overrun", "stamp.tlv.trailing", "stamp.tlv.bad_length", "stamp.ee.multiplier_zero",
    "stamp.ts.bad_nsec", "stamp.tlv.hmac_not_last", "stamp.tlv.hmac_missing", "stamp.tlv.ar.bad_id",
    "stamp.tlv.rp.control_code_combined", "stamp.tlv.rp.repeated", "stamp.tlv.dna.no_ssid",
    "stamp.tlv.unrecognized", "stamp.tlv.malformed", "stamp.tlv.integrity",
}


@pytest.fixture(scope="module", autouse=True)
def _tshark():
    require_tool("tshark", "dumpcap")


# --- running tshark ----------------------------------------------------------------------

class Frame:
    """One frame of ``tshark -T json``: every field name with its values in tree order (tshark
    repeats a key for a field shown twice), and the expert info names."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = defaultdict(list)
        self.experts: list[str] = []

    def one(self, name: str) -> str:
        values = self.fields.get(name, [])
        assert len(values) == 1, f"{name}: {values}"
        return values[0]

    @property
    def stamp_experts(self) -> set[str]:
        return {e for e in self.experts if e.startswith("stamp.")}


def _walk(pairs: list, frame: Frame, in_expert: bool = False) -> None:
    for key, value in pairs:
        if isinstance(value, list) and value and isinstance(value[0], tuple):  # an object: a subtree
            _walk(value, frame, key == "_ws.expert")
            continue
        if in_expert and not key.startswith("_ws.expert."):
            frame.experts.append(key)
        frame.fields[key].append(value)


def tshark(capture: Path, *options: str) -> list[Frame]:
    res = subprocess.run(["tshark", "-n", "-r", str(capture), "-X", f"lua_script:{LUA}", "-T", "json", *options],
                         check=False, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "Lua" not in res.stderr, res.stderr
    frames = []
    for packet in json.loads(res.stdout, object_pairs_hook=lambda pairs: pairs):
        frame = Frame()
        _walk(packet, frame)
        assert "_ws.lua.error" not in frame.fields, frame.fields.get("_ws.expert.message")
        frames.append(frame)
    return frames


# --- writing captures --------------------------------------------------------------------

def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_udp(payload: bytes, sport: int, dport: int, ipv6: bool = False) -> bytes:
    if ipv6:  # the UDP checksum is mandatory over IPv6
        loopback = ipaddress.IPv6Address("::1").packed
        pseudo = loopback * 2 + struct.pack("!IxxxB", 8 + len(payload), 17)
        udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        checksum = _checksum(pseudo + udp + b"\0" * (len(udp) % 2)) or 0xFFFF
        udp = udp[:6] + struct.pack("!H", checksum) + udp[8:]
        return struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + loopback * 2 + udp
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # checksum 0: none, allowed over IPv4
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, bytes([127, 0, 0, 1]),
                       bytes([127, 0, 0, 1]))
    return head[:10] + struct.pack("!H", _checksum(head)) + head[12:] + udp


def write_pcap(path: Path, frames: list[tuple[int, bytes]]) -> Path:
    """Classic pcap, nanosecond timestamps, LINKTYPE_RAW (the frames start at the IP header)."""
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 101))
        for when_ns, frame in frames:
            fh.write(struct.pack("<IIII", when_ns // NS, when_ns % NS, len(frame), len(frame)) + frame)
    return path


def request(payload: bytes, sport: int = 50000, dport: int = STAMP_PORT) -> bytes:
    return ip_udp(payload, sport, dport)


def reply(payload: bytes, dport: int = 50000) -> bytes:
    return ip_udp(payload, STAMP_PORT, dport)


# --- what the project's own parser reads, in the dissector's field names ----------------

def wireshark_time(unix_ns: int) -> str:
    secs, ns = divmod(unix_ns, NS)
    dt = datetime.fromtimestamp(secs, timezone.utc)
    return f"{dt:%b} {dt.day:2d}, {dt.year} {dt:%H:%M:%S}.{ns:09d} UTC"


def colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


class Expected:
    """Field -> values in tree order, as the dissector should show them."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = defaultdict(list)
        self.errors: dict[str, list[float]] = defaultdict(list)  # Error Estimates in seconds: doubles

    def put(self, name: str, value: object) -> None:
        self.fields[name].append(str(value))

    def timestamp(self, name: str, wire: int, fmt: TimestampFormat) -> None:
        if wire:  # zero is shown as "not set", without an absolute time
            self.put(name, wireshark_time(from_wire(wire, fmt)))
        self.put(f"{name}.sec", wire >> 32)
        if fmt is TimestampFormat.PTP:
            self.put(f"{name}.nsec", wire & 0xFFFFFFFF)
        else:
            self.put(f"{name}.frac", f"0x{wire & 0xFFFFFFFF:08x}")

    def error_estimate(self, name: str, value: int) -> ErrorEstimate:
        ee = ErrorEstimate.from_int(value)
        self.put(name, f"0x{value:04x}")
        self.put(f"{name}.s", int(ee.synchronized))
        self.put(f"{name}.z", int(ee.timestamp_format))
        self.put(f"{name}.scale", ee.scale)
        self.put(f"{name}.multiplier", ee.multiplier)
        if ee.valid:
            self.errors[f"{name}.error"].append(ee.error_ns / NS)
        return ee

    def sub_tlv(self, sub: RawTlv) -> None:
        self.put("stamp.subtlv.flags", f"0x{sub.flags:02x}")
        self.put("stamp.subtlv.type", sub.type)
        self.put("stamp.subtlv.length", sub.length)

    def tlv(self, tlv: RawTlv, fmt: TimestampFormat) -> None:
        self.put("stamp.tlv.flags", f"0x{tlv.flags:02x}")
        for flag, mask in (("u", 0x80), ("m", 0x40), ("i", 0x20)):
            self.put(f"stamp.tlv.flags.{flag}", int(bool(tlv.flags & mask)))
        self.put("stamp.tlv.type", tlv.type)
        self.put("stamp.tlv.length", tlv.length)
        value = decode(tlv)
        if isinstance(value, ExtraPadding):
            self.put("stamp.tlv.padding", colon_hex(value.padding))
        elif isinstance(value, Location):
            self.put("stamp.tlv.location.dst_port", value.destination_port)
            self.put("stamp.tlv.location.src_port", value.source_port)
            for sub in value.sub_tlvs:
                self.sub_tlv(sub)
                name = {2: "eui48", 3: "eui64", 5: "dst_ipv4", 6: "dst_ipv6",
                        8: "src_ipv4", 9: "src_ipv6"}.get(sub.type)
                if name in ("eui48", "eui64"):
                    self.put(f"stamp.tlv.location.{name}", colon_hex(sub.value[:6 if name == "eui48" else 8]))
                elif name:
                    address = ipaddress.ip_address(sub.value[:4 if "ipv4" in name else 16])
                    self.put(f"stamp.tlv.location.{name}", address)
        elif isinstance(value, TimestampInformation):
            for name in ("sync_src_in", "timestamp_in", "sync_src_out", "timestamp_out"):
                self.put(f"stamp.tlv.tsinfo.{name}", getattr(value, name))
        elif isinstance(value, ClassOfService):
            for name in ("dscp1", "dscp2", "ecn", "rp"):
                self.put(f"stamp.tlv.cos.{name}", getattr(value, name))
        elif isinstance(value, DirectMeasurement):
            self.put("stamp.tlv.dm.s_txc", value.sender_tx_count)
            self.put("stamp.tlv.dm.r_rxc", value.reflector_rx_count)
            self.put("stamp.tlv.dm.r_txc", value.reflector_tx_count)
        elif isinstance(value, AccessReport):
            self.put("stamp.tlv.ar.id", value.access_id)
            self.put("stamp.tlv.ar.return_code", value.return_code)
        elif isinstance(value, FollowUpTelemetry):
            self.put("stamp.tlv.fut.seq", value.sequence_number)
            self.timestamp("stamp.tlv.fut.ts", value.follow_up_timestamp, fmt)
            self.put("stamp.tlv.fut.mode", value.timestamp_mode)
        elif isinstance(value, HmacTlv):
            self.put("stamp.tlv.hmac", colon_hex(value.hmac))
        elif isinstance(value, DestinationNodeAddress):
            self.put(f"stamp.tlv.dna.ipv{value.address.version}", value.address)
        elif isinstance(value, ReturnPath):
            for sub in parse_tlvs(tlv.value).tlvs:
                self.sub_tlv(sub)
            if value.control_code is not None:
                self.put("stamp.tlv.rp.cc", f"0x{value.control_code:08x}")
                self.put("stamp.tlv.rp.cc.reply_request", value.control_code & 1)
            if value.return_address is not None:
                self.put(f"stamp.tlv.rp.ipv{value.return_address.version}", value.return_address)
            for lse in value.sr_mpls_labels or ():
                self.put("stamp.tlv.rp.mpls.label", lse.label)
                self.put("stamp.tlv.rp.mpls.tc", lse.tc)
                self.put("stamp.tlv.rp.mpls.s", int(lse.bottom))
                self.put("stamp.tlv.rp.mpls.ttl", lse.ttl)
            for sid in value.srv6_segments or ():
                self.put("stamp.tlv.rp.srv6.sid", sid)
        elif isinstance(value, MicroSessionId):
            self.put("stamp.tlv.micro.sender_id", value.sender_id)
            self.put("stamp.tlv.micro.reflector_id", value.reflector_id)


def expected_fields(payload: bytes, authenticated: bool, is_reply: bool) -> Expected:
    exp = Expected()
    exp.put("stamp.direction", 2 if is_reply else 1)
    exp.put("stamp.authenticated", int(authenticated))
    if is_reply:
        pkt = ReflectorPacket.from_bytes(payload, authenticated)
    else:
        pkt = SenderPacket.from_bytes(payload, authenticated)
    ee = ErrorEstimate.from_int(pkt.error_estimate)
    exp.put("stamp.seq", pkt.sequence_number)
    exp.timestamp("stamp.ts", pkt.timestamp, ee.timestamp_format)
    exp.error_estimate("stamp.ee", pkt.error_estimate)
    exp.put("stamp.ssid", f"0x{pkt.ssid:04x}")
    if is_reply:
        exp.timestamp("stamp.rx_ts", pkt.receive_timestamp, ee.timestamp_format)
        exp.put("stamp.ss.seq", pkt.sender_sequence_number)
        ss_ee = ErrorEstimate.from_int(pkt.sender_error_estimate)
        exp.timestamp("stamp.ss.ts", pkt.sender_timestamp, ss_ee.timestamp_format)
        exp.error_estimate("stamp.ss.ee", pkt.sender_error_estimate)
        exp.put("stamp.ss.ttl", pkt.sender_ttl)
    if authenticated:
        exp.put("stamp.hmac", colon_hex(pkt.hmac))
    parsed = parse_tlvs(pkt.tlvs)
    assert parsed.well_formed
    for tlv in parsed.tlvs:
        exp.tlv(tlv, ee.timestamp_format)
    return exp


def assert_decoded_as_encoded(frame: Frame, exp: Expected) -> None:
    for name, values in exp.fields.items():
        assert frame.fields.get(name) == values, f"{name}: dissector {frame.fields.get(name)}, encoder {values}"
    for name, errors in exp.errors.items():
        assert [float(v) for v in frame.fields[name]] == pytest.approx(errors, rel=1e-12), name


def ns_of(seconds: str) -> int:
    return int(Decimal(seconds) * NS)


# --- the worked examples ---------------------------------------------------------------

T4_NS = BASE_NS + NS  # the capture time given to the replies: 2024-01-01T00:00:01
VECTOR_FRAMES = [request(EX_A, 50001), reply(EX_B, 50001), request(EX_C, 50002), reply(EX_C2, 50002),
                 request(EX_D, 50003), request(EX_E, 50004)]


@pytest.fixture(scope="module")
def vectors(tmp_path_factory) -> list[Frame]:
    path = write_pcap(tmp_path_factory.mktemp("ws") / "vectors.pcap", [(T4_NS, f) for f in VECTOR_FRAMES])
    return tshark(path, "-2")


def test_open_sender_example_decodes_to_its_documented_values(vectors):
    a = vectors[0]
    assert a.one("stamp.direction") == "1" and a.one("stamp.authenticated") == "0"
    assert a.one("stamp.seq") == "1"
    assert a.one("stamp.ts") == "Jan  1, 2024 00:00:00.500000000 UTC"
    assert a.one("stamp.ts.sec") == "3913056000" and a.one("stamp.ts.frac") == "0x80000000"
    assert a.one("stamp.ee") == "0x8001"
    assert [a.one(f"stamp.ee.{x}") for x in ("s", "z", "scale", "multiplier")] == ["1", "0", "0", "1"]
    assert float(a.one("stamp.ee.error")) == pytest.approx(2 ** -32, rel=1e-12)
    assert a.one("stamp.ssid") == "0x0000"
    assert a.one("stamp.response_in") == "2"
    assert not a.experts


def test_open_reply_example_decodes_with_round_trip_time(vectors):
    b = vectors[1]
    assert b.one("stamp.direction") == "2"
    assert b.one("stamp.ts") == "Jan  1, 2024 00:00:00.750249999 UTC"  # T3, fraction truncated (digest §6.3)
    assert b.one("stamp.rx_ts") == "Jan  1, 2024 00:00:00.750000000 UTC"
    assert b.one("stamp.ss.seq") == "1" and b.one("stamp.ss.ee") == "0x8001" and b.one("stamp.ss.ttl") == "64"
    assert b.one("stamp.ss.ts") == "Jan  1, 2024 00:00:00.500000000 UTC"
    assert b.one("stamp.request_in") == "1"
    # (T4 - T1) - (T3 - T2) = (1 - 0.5) - (0.750249999 - 0.75) s
    assert ns_of(b.one("stamp.rtt")) == 499_750_001
    assert not b.experts


def test_authenticated_examples_decode_with_their_hmac(vectors):
    c, c2 = vectors[2], vectors[3]
    assert c.one("stamp.authenticated") == "1" and c.one("stamp.direction") == "1"
    assert c.one("stamp.ts") == "Jan  1, 2024 00:00:00.500000000 UTC"
    assert c.one("stamp.hmac") == colon_hex(bytes.fromhex("874a801fc3dafaa345256e5cf1a7db68"))
    assert c2.one("stamp.authenticated") == "1" and c2.one("stamp.direction") == "2"
    assert c2.one("stamp.rx_ts") == "Jan  1, 2024 00:00:00.750000000 UTC"
    assert c2.one("stamp.ss.seq") == "1" and c2.one("stamp.ss.ttl") == "64"
    assert c2.one("stamp.hmac") == colon_hex(bytes.fromhex("2b42cf41f3d1d4f97d4810ecbe61402d"))
    assert c2.one("stamp.request_in") == "3" and c.one("stamp.response_in") == "4"
    assert not c.experts and not c2.experts


def test_ssid_and_class_of_service_example(vectors):
    d = vectors[4]
    assert d.one("stamp.ssid") == "0x1234"
    assert d.one("stamp.tlv.flags") == "0x80" and d.one("stamp.tlv.flags.u") == "1"
    assert d.one("stamp.tlv.flags.m") == "0" and d.one("stamp.tlv.flags.i") == "0"
    assert d.one("stamp.tlv.type") == "4" and d.one("stamp.tlv.length") == "4"
    assert [d.one(f"stamp.tlv.cos.{x}") for x in ("dscp1", "dscp2", "ecn", "rp")] == ["46", "0", "0", "0"]
    assert not d.experts


def test_hmac_tlv_example(vectors):
    e = vectors[5]
    assert e.fields["stamp.tlv.type"] == ["4", "8"]
    assert e.one("stamp.tlv.hmac") == colon_hex(bytes.fromhex("3c36cb8a8947826f94ed27b13575b18c"))
    assert not e.experts


@pytest.mark.parametrize("index,authenticated,is_reply",
                         [(0, False, False), (1, False, True), (2, True, False), (3, True, True), (4, False, False),
                          (5, True, False)])
def test_examples_decode_as_the_project_parses_them(vectors, index, authenticated, is_reply):
    payload = [EX_A, EX_B, EX_C, EX_C2, EX_D, EX_E][index]
    assert_decoded_as_encoded(vectors[index], expected_fields(payload, authenticated, is_reply))


# --- expert info: one case per RFC rule, and the same bytes without the fault -----------

def tlv(type_: int, value: bytes, flags: int = 0x80) -> bytes:
    return build_tlvs([RawTlv.build(type_, value, flags)])


def with_octets(packet: bytes, at: int, octets: bytes) -> bytes:
    return packet[:at] + octets + packet[at + len(octets):]


COS = tlv(4, bytes.fromhex("b8000000"))  # the CoS TLV of example (d)
PADDING = tlv(1, bytes(8))
CC_REPLY = tlv(1, (1).to_bytes(4, "big"))  # Return Path sub-TLV: Control Code, Reply Requested
RETURN_V4 = tlv(2, bytes([127, 0, 0, 1]))  # Return Path sub-TLV: Return Address
LABELS = tlv(3, (16005 << 12 | 0x1FF).to_bytes(4, "big"))  # label 16005, TC 0, bottom of stack, TTL 255
SIDS = ipaddress.IPv6Address("2001:db8::5").packed + ipaddress.IPv6Address("2001:db8::6").packed

EXPERT_CASES = {
    # name: (frame, experts expected)
    "short sender packet": (request(EX_A[:20]), {"stamp.short"}),
    "short reply, placed by its port": (reply(EX_B[:14]), {"stamp.short"}),
    "multiplier 0": (request(with_octets(EX_A, 12, b"\x80\x00")), {"stamp.ee.multiplier_zero"}),
    "reply: multiplier 0 in the copied estimate": (reply(with_octets(EX_B, 36, b"\x80\x00")),
                                                   {"stamp.ee.multiplier_zero"}),
    "PTP nanoseconds out of range": (request(with_octets(EX_A, 4, bytes.fromhex("e93c7f00ffffffffc001"))),
                                     {"stamp.ts.bad_nsec"}),
    "TLV length past the end": (request(with_octets(EX_D, 46, b"\x00\x08")), {"stamp.tlv.overrun"}),
    "octets too few for a TLV": (request(EX_D + b"\x80\x01"), {"stamp.tlv.trailing"}),
    "CoS Length 2": (request(EX_A + tlv(4, b"\xb8\x00")), {"stamp.tlv.bad_length"}),
    "Direct Measurement Length 8": (request(EX_A + tlv(5, bytes(8))), {"stamp.tlv.bad_length"}),
    "Private Use Length 2": (request(EX_A + tlv(252, bytes(2))), {"stamp.tlv.bad_length"}),
    "Private Use with an Enterprise Number": (request(EX_A + tlv(252, bytes.fromhex("00000009abcd"))), set()),
    "Location sub-TLV Length 8 for an IPv4 answer": (
        request(EX_A + tlv(2, bytes(4) + tlv(5, bytes(8), 0))), {"stamp.tlv.bad_length"}),
    "Location answers": (request(EX_A + tlv(2, bytes(4) + tlv(5, bytes(16), 0) + tlv(3, bytes(8), 0))), set()),
    "sub-TLV past the end of its TLV": (request(EX_D + tlv(10, CC_REPLY[:2] + b"\x00\x08" + CC_REPLY[4:])),
                                        {"stamp.tlv.overrun"}),
    "SR-MPLS label stack Length 6": (request(EX_D + tlv(10, tlv(3, bytes(6)))), {"stamp.tlv.bad_length"}),
    "HMAC TLV not last": (request(EX_E + COS), {"stamp.tlv.hmac_not_last"}),
    "HMAC TLV followed by Extra Padding": (request(EX_E + PADDING), set()),
    "authenticated TLVs without an HMAC TLV": (request(EX_C + COS), {"stamp.tlv.hmac_missing"}),
    "authenticated, only Extra Padding": (request(EX_C + PADDING), set()),
    "Access ID 3": (request(EX_A + tlv(6, bytes.fromhex("30010000"))), {"stamp.tlv.ar.bad_id"}),
    "Access ID 2": (request(EX_A + tlv(6, bytes.fromhex("20010000"))), set()),
    "Control Code with a Return Address": (request(EX_D + tlv(10, CC_REPLY + RETURN_V4)),
                                           {"stamp.tlv.rp.control_code_combined"}),
    "Control Code with a label stack": (request(EX_D + tlv(10, CC_REPLY + LABELS)),
                                        {"stamp.tlv.rp.control_code_combined"}),
    "Return Address with a label stack": (request(EX_D + tlv(10, RETURN_V4 + LABELS)), set()),
    "SRv6 segment list of two": (request(EX_D + tlv(10, tlv(4, SIDS))), set()),
    "two Return Path TLVs": (request(EX_D + tlv(10, CC_REPLY) + tlv(10, CC_REPLY)), {"stamp.tlv.rp.repeated"}),
    "Destination Node Address without SSID": (request(EX_A + tlv(9, bytes([127, 0, 0, 1]))),
                                              {"stamp.tlv.dna.no_ssid"}),
    "Destination Node Address with SSID": (request(EX_D + tlv(9, bytes([127, 0, 0, 1]))), set()),
    "reply: U flag": (reply(EX_B + tlv(4, bytes(4), 0x80)), {"stamp.tlv.unrecognized"}),
    "reply: M flag": (reply(EX_B + tlv(4, bytes(4), 0x40)), {"stamp.tlv.malformed"}),
    "reply: I flag": (reply(EX_B + tlv(4, bytes(4), 0x20)), {"stamp.tlv.integrity"}),
    "reply: flags clear": (reply(EX_B + tlv(4, bytes(4), 0x00)), set()),
}


@pytest.fixture(scope="module")
def expert_frames(tmp_path_factory) -> dict[str, Frame]:
    path = write_pcap(tmp_path_factory.mktemp("ws") / "experts.pcap",
                      [(T4_NS, frame) for frame, _ in EXPERT_CASES.values()])
    return dict(zip(EXPERT_CASES, tshark(path)))


@pytest.mark.parametrize("case", list(EXPERT_CASES))
def test_expert_info_for_each_rfc_rule(expert_frames, case):
    frame = expert_frames[case]
    assert "stamp.seq" in frame.fields, "not decoded as STAMP"
    assert frame.stamp_experts == EXPERT_CASES[case][1]
    assert frame.stamp_experts <= EXPERTS


def test_every_expert_of_the_dissector_has_a_case():
    defined = set(re.findall(r'ProtoExpert\.new\("([^"]+)"', LUA.read_text()))
    assert defined == EXPERTS
    assert set().union(*(experts for _, experts in EXPERT_CASES.values())) == EXPERTS


def test_expert_details(expert_frames):
    assert expert_frames["short reply, placed by its port"].one("stamp.direction") == "2"
    assert "stamp.ee.error" not in expert_frames["multiplier 0"].fields
    assert expert_frames["PTP nanoseconds out of range"].one("stamp.ee.z") == "1"
    assert expert_frames["Private Use with an Enterprise Number"].one("stamp.tlv.enterprise") == "9"
    answers = expert_frames["Location answers"]
    assert answers.one("stamp.tlv.location.dst_ipv4") == "0.0.0.0"
    assert answers.one("stamp.tlv.location.eui64") == colon_hex(bytes(8))
    labels = expert_frames["Return Address with a label stack"]
    assert labels.one("stamp.tlv.rp.mpls.label") == "16005" and labels.one("stamp.tlv.rp.mpls.s") == "1"
    assert labels.one("stamp.tlv.rp.mpls.ttl") == "255" and labels.one("stamp.tlv.rp.ipv4") == "127.0.0.1"
    assert expert_frames["SRv6 segment list of two"].fields["stamp.tlv.rp.srv6.sid"] == ["2001:db8::5", "2001:db8::6"]


# --- preferences, Decode As and the heuristic ---------------------------------------------

@pytest.fixture(scope="module")
def prefs_capture(tmp_path_factory) -> Path:
    zero_multiplier = with_octets(EX_A, 12, b"\x80\x00")
    rng = random.Random(862)
    noise = [ip_udp(rng.randbytes(rng.randrange(44, 200)), 40000, OTHER_PORT) for _ in range(300)]
    frames = [request(EX_C), request(EX_A), request(EX_A, dport=OTHER_PORT), ip_udp(EX_B, OTHER_PORT, 40000),
              request(zero_multiplier, dport=OTHER_PORT), ip_udp(bytes(44), 40000, OTHER_PORT), *noise]
    return write_pcap(tmp_path_factory.mktemp("ws") / "prefs.pcap", [(T4_NS, f) for f in frames])


def test_mode_and_direction_are_detected_and_can_be_forced(prefs_capture):
    auto = tshark(prefs_capture)
    assert auto[0].one("stamp.authenticated") == "1" and auto[1].one("stamp.authenticated") == "0"
    forced = tshark(prefs_capture, "-o", "stamp.mode:open", "-o", "stamp.direction:reflector")
    assert forced[0].one("stamp.authenticated") == "0" and forced[0].one("stamp.direction") == "2"
    assert forced[1].one("stamp.direction") == "2"
    forced = tshark(prefs_capture, "-o", "stamp.mode:authenticated")
    assert forced[1].one("stamp.authenticated") == "1" and "stamp.short" in forced[1].experts


def test_heuristic_takes_stamp_on_other_ports_and_nothing_else(prefs_capture):
    frames = tshark(prefs_capture)
    assert frames[2].one("stamp.direction") == "1" and frames[3].one("stamp.direction") == "2"
    # An invalid Error Estimate, zeros and random octets are left alone.
    assert not any("stamp.seq" in f.fields for f in frames[4:])


def test_port_preference_and_decode_as_take_what_the_heuristic_refuses(prefs_capture):
    by_pref = tshark(prefs_capture, "-o", f"stamp.ports:{STAMP_PORT},{OTHER_PORT}")
    by_decode_as = tshark(prefs_capture, "-d", f"udp.port=={OTHER_PORT},stamp")
    for frames in (by_pref, by_decode_as):
        assert "stamp.ee.multiplier_zero" in frames[4].experts


def test_tai_offset_preference_moves_ptp_times(tmp_path):
    # 2024-01-01T00:00:00 UTC is 1704067200 + 37 s TAI; Error Estimate Z = 1
    ptp = with_octets(EX_A, 4, bytes.fromhex("659200a5" "00000000" "c001"))
    path = write_pcap(tmp_path / "ptp.pcap", [(T4_NS, request(ptp))])
    assert tshark(path)[0].one("stamp.ts") == "Jan  1, 2024 00:00:00.000000000 UTC"  # TAI - UTC = 37 s by default
    assert tshark(path, "-o", "stamp.tai_offset:0")[0].one("stamp.ts") == "Jan  1, 2024 00:00:37.000000000 UTC"


# --- captures of the program on loopback --------------------------------------------------

# Reflectors: name -> (address, flags).  Senders: (reflector, flags).
NO_REPLY = ["--ssid", "10", "--return-path-cc", "0", "-L", "0.3"]  # Control Code 0: no reply wanted
REFLECTORS = {
    # The key checks the HMAC TLV of SSID 7 (RFC 8972 §4.8: no TLV under one is used unverified).
    "open4": ("127.0.0.1", ["--stateful-reflector", "--return-address-allow", "127.0.0.0/8", "--hmac-key", KEY]),
    "open6": ("::1", []),
    "auth4": ("127.0.0.1", ["-A", "A", "--hmac-key", KEY, "-K", "PTP", "--stateful-reflector"]),
    "auth6": ("::1", ["-A", "A", "--hmac-key", KEY]),
}
SENDERS = [
    ("open4", ["--ssid", "7", "--cos", "--location", "--timestamp-info", "--direct-measurement",
               "--follow-up-telemetry", "--access-report", "1", "--dest-node-addr", "127.0.0.1",
               "--micro-session-id", "3", "--hmac-tlv", "--hmac-key", KEY, "--padding", "20"]),
    ("open4", ["--ssid", "8", "--return-path-cc", "1"]),
    ("open4", ["--ssid", "9", "--return-address", "127.0.0.1", "--return-sr-mpls-labels", "16005,16006"]),
    ("open4", NO_REPLY),
    # A segment list of ::1 only: whether the reflector imposes it or not, nothing leaves loopback.
    ("open6", ["-K", "PTP", "--ssid", "11", "--location", "--cos", "--dest-node-addr", "::1",
               "--return-srv6-sids", "::1"]),
    ("auth4", ["-A", "A", "--hmac-key", KEY, "-K", "PTP", "--ssid", "12", "--cos", "--timestamp-info",
               "--follow-up-telemetry", "--access-report", "2", "--access-return-code", "2"]),
    ("auth6", ["-A", "A", "--hmac-key", KEY, "--ssid", "13", "--location", "--direct-measurement",
               "--micro-session-id", "5", "--return-address", "::1", "--padding", "8"]),
]


def _start_capture(path: Path, ports: list[int]) -> subprocess.Popen:
    filt = " or ".join(f"udp port {p}" for p in ports)
    cap = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", filt, "-w", str(path)], stderr=subprocess.PIPE,
                           text=True)
    line = cap.stderr.readline()  # "Capturing on 'Loopback: lo'" once packets are being taken
    if "Capturing on" not in line:
        cap.kill()
        require(False, f"dumpcap cannot capture on lo: {line.strip()} {cap.stderr.read().strip()}")
    return cap


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> tuple[Path, dict[int, tuple[str, bool]]]:
    """A capture of every sender above against its reflector, and each reflector port's
    (name, authenticated)."""
    path = tmp_path_factory.mktemp("ws") / "live.pcapng"
    reflectors = {}
    try:
        for name, (host, flags) in REFLECTORS.items():
            reflectors[name] = ReflectorProcess(*flags, host=host)
        cap = _start_capture(path, [r.port for r in reflectors.values()])
        try:
            senders = [subprocess.Popen([*CMD, "-r", reflectors[name].host, "-p", str(reflectors[name].port), "-c", "3",
                                         "-d", "10", "-L", "1", *flags], env=ENV, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True) for name, flags in SENDERS]
            for (_, flags), s in zip(SENDERS, senders):
                _, err = s.communicate(timeout=30)
                assert s.returncode == (1 if flags is NO_REPLY else 0), err  # 1: a session without replies
            time.sleep(0.3)  # let dumpcap write the last packets
        finally:
            cap.send_signal(signal.SIGINT)
            cap.communicate(timeout=10)
    finally:
        for r in reflectors.values():
            r.__exit__(None, None, None)
    ports = {r.port: (name, "-A" in REFLECTORS[name][1]) for name, r in reflectors.items()}
    return path, ports


@pytest.fixture(scope="module")
def live_frames(live) -> list[Frame]:
    path, ports = live
    return tshark(path, "-2", "-o", "stamp.ports:" + ",".join(map(str, ports)))


def _role(frame: Frame, ports: dict[int, tuple[str, bool]]) -> tuple[bool, bool]:
    """(authenticated, reply) from the capture's ports: the reflector's port tells both."""
    src, dst = int(frame.one("udp.srcport")), int(frame.one("udp.dstport"))
    is_reply = src in ports
    return ports[src if is_reply else dst][1], is_reply


def test_live_capture_covers_every_tlv_both_ip_versions_and_timestamp_formats(live, live_frames):
    _, ports = live
    assert len(live_frames) >= 35
    types = {int(t) for f in live_frames for t in f.fields["stamp.tlv.type"]}
    assert types >= set(range(1, 12))
    assert any("ipv6.src" in f.fields for f in live_frames) and any("ip.src" in f.fields for f in live_frames)
    assert {f.one("stamp.ee.z") for f in live_frames} == {"0", "1"}
    assert {_role(f, ports) for f in live_frames} == {(False, False), (False, True), (True, False), (True, True)}
    assert {int(x) for f in live_frames for x in f.fields["stamp.subtlv.type"]} >= {1, 3, 4, 5, 6, 7, 8, 9}


# Every value field of the dissector; the live capture must have shown each of them.
VALUE_FIELDS = {
    "stamp.seq", "stamp.ts", "stamp.ts.sec", "stamp.ts.frac", "stamp.ts.nsec", "stamp.ee", "stamp.ee.s", "stamp.ee.z",
    "stamp.ee.scale", "stamp.ee.multiplier", "stamp.ee.error", "stamp.ssid", "stamp.rx_ts", "stamp.rx_ts.nsec",
    "stamp.ss.seq", "stamp.ss.ts", "stamp.ss.ts.nsec", "stamp.ss.ee", "stamp.ss.ee.error", "stamp.ss.ttl",
    "stamp.hmac", "stamp.tlv.flags", "stamp.tlv.flags.u", "stamp.tlv.type", "stamp.tlv.length", "stamp.tlv.padding",
    "stamp.subtlv.flags", "stamp.subtlv.type", "stamp.subtlv.length", "stamp.tlv.location.dst_port",
    "stamp.tlv.location.src_port", "stamp.tlv.location.eui64", "stamp.tlv.location.dst_ipv4",
    "stamp.tlv.location.dst_ipv6", "stamp.tlv.location.src_ipv4", "stamp.tlv.location.src_ipv6",
    "stamp.tlv.tsinfo.sync_src_in", "stamp.tlv.tsinfo.timestamp_in", "stamp.tlv.tsinfo.sync_src_out",
    "stamp.tlv.tsinfo.timestamp_out", "stamp.tlv.cos.dscp1", "stamp.tlv.cos.dscp2", "stamp.tlv.cos.ecn",
    "stamp.tlv.cos.rp", "stamp.tlv.dm.s_txc", "stamp.tlv.dm.r_rxc", "stamp.tlv.dm.r_txc", "stamp.tlv.ar.id",
    "stamp.tlv.ar.return_code", "stamp.tlv.fut.seq", "stamp.tlv.fut.ts", "stamp.tlv.fut.ts.frac",
    "stamp.tlv.fut.ts.nsec", "stamp.tlv.fut.mode", "stamp.tlv.hmac", "stamp.tlv.dna.ipv4", "stamp.tlv.dna.ipv6",
    "stamp.tlv.rp.cc", "stamp.tlv.rp.cc.reply_request", "stamp.tlv.rp.ipv4", "stamp.tlv.rp.ipv6",
    "stamp.tlv.rp.mpls.label", "stamp.tlv.rp.mpls.s", "stamp.tlv.rp.srv6.sid", "stamp.tlv.micro.sender_id",
    "stamp.tlv.micro.reflector_id",
}


def test_live_capture_decodes_as_the_project_parses_it(live, live_frames):
    _, ports = live
    compared = set()
    for frame in live_frames:
        authenticated, is_reply = _role(frame, ports)
        payload = bytes.fromhex(frame.one("udp.payload").replace(":", ""))
        exp = expected_fields(payload, authenticated, is_reply)
        assert_decoded_as_encoded(frame, exp)
        compared |= set(exp.fields) | set(exp.errors)
        # The only expert info on our own traffic: TLVs the reflector did not process (an MPLS
        # label stack or a segment list a UDP socket cannot impose).
        assert frame.stamp_experts <= {"stamp.tlv.unrecognized"}
    assert VALUE_FIELDS <= compared, VALUE_FIELDS - compared


def test_live_replies_are_linked_to_their_requests_with_round_trip_time(live, live_frames):
    _, ports = live
    by_number = {int(f.one("frame.number")): f for f in live_frames}
    replies = [f for f in live_frames if _role(f, ports)[1]]
    assert len(replies) >= 18
    for rep in replies:
        req = by_number[int(rep.one("stamp.request_in"))]
        assert req.one("stamp.seq") == rep.one("stamp.ss.seq") and req.one("stamp.ssid") == rep.one("stamp.ssid")
        assert req.one("stamp.response_in") == rep.one("frame.number")
        pkt = ReflectorPacket.from_bytes(bytes.fromhex(rep.one("udp.payload").replace(":", "")), _role(rep, ports)[0])
        fmt = ErrorEstimate.from_int(pkt.error_estimate).timestamp_format
        ss_fmt = ErrorEstimate.from_int(pkt.sender_error_estimate).timestamp_format
        t4 = ns_of(rep.one("frame.time_epoch"))
        expected = (t4 - from_wire(pkt.sender_timestamp, ss_fmt)) - (
            from_wire(pkt.timestamp, fmt) - from_wire(pkt.receive_timestamp, fmt))
        assert ns_of(rep.one("stamp.rtt")) == expected
        assert 0 < expected < NS
    unanswered = [f for f in live_frames if "stamp.response_in" not in f.fields and not _role(f, ports)[1]]
    assert {f.one("stamp.ssid") for f in unanswered} == {"0x000a"}  # NO_REPLY's


def test_heuristic_finds_the_live_capture_without_port_settings(live):
    path, _ = live
    frames = tshark(path, "-o", "udp.try_heuristic_first:TRUE")
    assert all("stamp.seq" in f.fields for f in frames)


# --- fuzzing --------------------------------------------------------------------------------

def _seeds() -> list[bytes]:
    """The examples, and packets of the project's encoder carrying every TLV, answers included."""
    v4, v6 = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("2001:db8::1")
    location = Location(862, 50000, (RawTlv(0, 3, 8, bytes(8)), RawTlv(0, 5, 16, v4.packed + bytes(12)),
                                     RawTlv(0, 9, 16, v6.packed), RawTlv(0x80, 1, 8, bytes(8))))
    values = [ExtraPadding.of_length(12), location, Location.request(), TimestampInformation(5, 2, 5, 3),
              ClassOfService(46, 10, 1, 1), DirectMeasurement(1, 2, 3), AccessReport(1, 1),
              FollowUpTelemetry(4, 0xE93C7F0080000000, 2), DestinationNodeAddress(v6), DestinationNodeAddress(v4),
              ReturnPath(control_code=1),
              ReturnPath(return_address=v4, sr_mpls_labels=ReturnPath.label_stack([16005, 16006])),
              ReturnPath(return_address=v6, srv6_segments=(v6, v6)), MicroSessionId(3, 4), HmacTlv(bytes(range(16)))]
    area = build_tlvs([v.to_tlv() for v in values])
    sender = SenderPacket(1, 0xE93C7F0080000000, 0x8001, 0x1234, area)
    refl = ReflectorPacket(1, 0xE93C7F00C010624D, 0xC001, 0x1234, 0xE93C7F00C0000000, 1, 0xE93C7F0080000000,
                           0x8001, 64, area)
    key = bytes.fromhex(KEY)
    return [EX_A, EX_B, EX_C, EX_C2, EX_D, EX_E, sender.to_bytes(), sender.to_bytes(key), refl.to_bytes(),
            refl.to_bytes(key)]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:  # flip octets
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # cut
        del b[rng.randrange(1, len(b)):]
    elif kind == 2:  # a hostile Length at a random TLV-header-like position past the base
        at = rng.randrange(44, max(45, len(b) - 3))
        b[at:at + 2] = rng.randrange(65536).to_bytes(2, "big")
    elif kind == 3:  # random TLVs after the base
        b = b[:rng.choice((44, 112))]
        for _ in range(rng.randint(1, 6)):
            value = rng.randbytes(rng.randrange(0, 40))
            length = rng.choice((len(value), rng.randrange(48)))
            b += bytes([rng.randrange(256), rng.choice((*range(12), 252, 255))]) + length.to_bytes(2, "big") + value
    elif kind == 4:  # random sub-TLVs inside a Location or Return Path TLV
        subs = rng.randbytes(rng.randrange(4, 64))
        b = b[:44] + bytes([0x80, rng.choice((2, 10)), 0, len(subs)]) + subs
    else:  # noise
        b = bytearray(rng.randbytes(rng.randrange(1, 300)))
    return bytes(b)


def test_fuzzed_capture_decodes_without_a_lua_error(tmp_path):
    rng = random.Random(8762)
    seeds = _seeds()
    frames = []
    for i in range(4000):
        payload = _mutate(rng, rng.choice(seeds))
        sport, dport = rng.choice([(40000 + i % 20000, STAMP_PORT), (STAMP_PORT, 40000 + i % 20000),
                                   (40000, OTHER_PORT)])  # the last by the heuristic, if at all
        frames.append((BASE_NS + i * 1000, ip_udp(payload, sport, dport, ipv6=bool(i % 2))))
    path = write_pcap(tmp_path / "fuzz.pcap", frames)
    res = subprocess.run(["tshark", "-n", "-r", str(path), "-X", f"lua_script:{LUA}", "-T", "fields",
                          "-e", "udp.dstport", "-e", "udp.srcport", "-e", "frame.protocols", "-e", "_ws.expert.message",
                          "-E", "separator=|", "-E", "occurrence=a"],
                         check=False, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "Lua" not in res.stderr, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == len(frames)
    malformed = 0
    for line in lines:
        dport, sport, protocols, messages = line.split("|", 3)
        assert "Lua Error" not in messages, line
        if STAMP_PORT in (int(dport), int(sport)):
            assert protocols.endswith(":stamp"), line  # every packet on the STAMP port is dissected
        malformed += "Length" in messages or "Octets too few" in messages or "Shorter" in messages
    assert malformed > 500  # the mutations did reach the checks
