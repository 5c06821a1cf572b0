"""Write a seed corpus of valid packets of every kind to fuzz/corpus/ (one file each)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from stamp_suite.reflector.engine import Reflection, Reflector, ReflectorConfig
from stamp_suite.wire.datagram import Received
from stamp_suite.sender.engine import SenderConfig, SessionSender
from stamp_suite.wire.auth import KeyStore
from stamp_suite.wire.tlv import RawTlv, TlvType
from stamp_suite.tlvs import (AccessReport, ClassOfService, DestinationNodeAddress, DirectMeasurement,
                              FollowUpTelemetry, Location, MicroSessionId, ReturnPath, TimestampInformation)
from stamp_suite.tlvs.location import LocationSubType
from stamp_suite.tlvs.return_path import ReturnPathSubType

KEY = bytes(range(16))
NOW = 1_700_000_000_000_000_000
EVERY_TLV = (ClassOfService(46), Location.request(), TimestampInformation(), DirectMeasurement(), FollowUpTelemetry(),
             AccessReport(1, 1), DestinationNodeAddress(ipaddress.ip_address("192.0.2.2")),
             ReturnPath(return_address=ipaddress.ip_address("192.0.2.9"),
                        sr_mpls_labels=ReturnPath.label_stack([16005, 16006])), MicroSessionId(1, 3))


def first_packet(cfg: SenderConfig) -> bytes:
    sender = SessionSender(cfg)
    sender.start(0, NOW)
    (transmit,) = sender.handle_timer(0)
    return sender.stamp(transmit, NOW, 0).data


def seeds() -> dict[str, bytes]:
    out = {}
    configs = {
        "open": SenderConfig(),
        "open-ssid": SenderConfig(ssid=7),
        "auth": SenderConfig(authenticated=True, key=KEY),
        "open-every-tlv": SenderConfig(ssid=7, tlvs=EVERY_TLV, padding=16),
        "open-hmac-tlv": SenderConfig(ssid=7, key=KEY, hmac_tlv=True, tlvs=(ClassOfService(10),)),
        "auth-every-tlv": SenderConfig(authenticated=True, key=KEY, ssid=7, tlvs=EVERY_TLV, padding=8),
        "return-path-cc": SenderConfig(tlvs=(ReturnPath(control_code=1),)),
        "return-path-srv6": SenderConfig(tlvs=(ReturnPath(srv6_segments=(ipaddress.IPv6Address("2001:db8::1"),)),)),
    }
    reflector = Reflector(ReflectorConfig(keys=KeyStore(KEY), stateful=True, member_link_id=3))
    auth_reflector = Reflector(ReflectorConfig(authenticated=True, keys=KeyStore(KEY), stateful=True))
    for name, cfg in configs.items():
        pkt = first_packet(cfg)
        out[f"sender-{name}"] = pkt
        r = auth_reflector if cfg.authenticated else reflector
        reply = r.reflect(Received(pkt, ("192.0.2.1", 40000), 64, 0, bytes([192, 0, 2, 2]), NOW, NOW), NOW)
        if isinstance(reply, Reflection):
            r.stamp((reply,), NOW)
            out[f"reply-{name}"] = bytes(reply.data)
    # Replies our reflector does not make here (an IPv6 session, a MAC it learned, sub-TLVs
    # given twice), so that the sender's readers meet every answer form.
    v6 = ipaddress.IPv6Address("2001:db8::2").packed
    answers = Location(862, 40000, (RawTlv(0, LocationSubType.SOURCE_EUI48, 8, bytes.fromhex("020000000001") + b"\0\0"),
                                    RawTlv(0, LocationSubType.DESTINATION_IPV6, 16, v6),
                                    RawTlv(0, LocationSubType.SOURCE_IPV6, 16, v6)))
    twice = RawTlv.build(TlvType.RETURN_PATH, b"".join(sub.to_bytes() for sub in 2 * (
        RawTlv.build(ReturnPathSubType.CONTROL_CODE, bytes(4), 0),
        RawTlv.build(ReturnPathSubType.RETURN_ADDRESS, bytes([192, 0, 2, 9]), 0),
        RawTlv.build(ReturnPathSubType.SR_MPLS_LABEL_STACK, bytes.fromhex("03e8a1ff"), 0),
        RawTlv.build(ReturnPathSubType.SRV6_SEGMENT_LIST, v6, 0))), 0)
    out["reply-location-v6-eui48"] = out["reply-open"] + answers.to_tlv(flags=0).to_bytes()
    out["reply-return-path-twice"] = out["reply-open"] + twice.to_bytes()
    out["twamp-light-14"] = out["sender-open"][:14]
    out["truncated-tlv"] = out["sender-open"] + RawTlv(0x80, 4, 40, b"\0\0").to_bytes()
    return out


if __name__ == "__main__":
    d = Path(__file__).parent / "corpus"
    d.mkdir(exist_ok=True)
    for name, data in seeds().items():
        (d / name).write_bytes(data)
    print(f"wrote {len(seeds())} seeds to {d}")
