"""atheris fuzz targets: the packet parsers, the TLV list parser and the reflector engine.

Run one (after ``pip install 'stamp-suite[fuzz]'`` and ``python fuzz/make_corpus.py``):

    python fuzz/targets.py reflector fuzz/corpus -atheris_runs=1000000

Targets: packet, tlv, reflector, sender.  A target fails on any exception that escapes,
on a reflector reply larger than its request, and on a drop not counted under a reason.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from stamp_suite.reflector.engine import PacketMeta, Reflector, ReflectorConfig
    from stamp_suite.sender.engine import SenderConfig, SessionSender
    from stamp_suite.wire.auth import KeyStore
    from stamp_suite.wire.packet import MalformedPacket, ReflectorPacket, SenderPacket
    from stamp_suite.wire.tlv import MalformedTlv, decode, parse_tlvs

KEY = bytes(range(16))
NOW = 1_700_000_000_000_000_000
META = PacketMeta(("192.0.2.1", 40000), bytes([192, 0, 2, 2]), 862, 64, 0xB8, NOW, 2)
REFLECTORS = [Reflector(ReflectorConfig(stateful=True, member_link_id=3, verify_tlv_hmac=True, keys=KeyStore(KEY))),
              Reflector(ReflectorConfig(authenticated=True, keys=KeyStore(KEY), stateful=True))]
SENDER = SessionSender(SenderConfig(ssid=1))


def packet(data: bytes) -> None:
    for auth in (False, True):
        for cls in (SenderPacket, ReflectorPacket):
            try:
                cls.from_bytes(data, auth)
            except MalformedPacket:
                pass


def tlv(data: bytes) -> None:
    parsed = parse_tlvs(data)
    assert sum(t.size for t in parsed.tlvs) + len(parsed.trailing) == len(data)
    for t in parsed.tlvs:
        try:
            decode(t)
        except MalformedTlv:
            pass


def reflector(data: bytes) -> None:
    for r in REFLECTORS:
        before = (r.counters.received, r.counters.reflected, r.counters.dropped_total)
        replies = r.receive(data, META, NOW)
        for reply in replies:
            assert len(reply.stamp(NOW)) <= len(data), "reply larger than request"
        c = r.counters
        assert c.received - before[0] == 1
        assert (c.reflected - before[1]) + (c.dropped_total - before[2]) == 1, "drop not counted"
        assert not any(k.startswith("internal_error") for k in c.dropped), c.dropped


def sender(data: bytes) -> None:
    SENDER.receive(data, NOW)


TARGETS = {"packet": packet, "tlv": tlv, "reflector": reflector, "sender": sender}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(TARGETS)}}} [corpus-dir] [libFuzzer options]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
