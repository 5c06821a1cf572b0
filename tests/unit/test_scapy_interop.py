"""Our packets decoded by an independent codec: scapy.contrib.stamp."""


from ci import require_module

stamp = require_module("scapy.contrib.stamp")

from vectors import At, answer  # noqa: E402

from stamp_suite.reflector.engine import Reflector  # noqa: E402
from stamp_suite.sender.engine import SenderConfig, SessionSender  # noqa: E402
from stamp_suite.tlvs import ClassOfService, DirectMeasurement  # noqa: E402
from stamp_suite.wire.timestamp import ErrorEstimate  # noqa: E402


def test_scapy_decodes_sender_and_reflector_packets():
    s = SessionSender(SenderConfig(ssid=0x1234, error_estimate=ErrorEstimate(True, scale=3, multiplier=7),
                                   tlvs=(ClassOfService(46), DirectMeasurement())))
    s.start(0, 1_704_067_200_500_000_000)
    (transmit,) = s.handle_timer(0)
    pkt = s.stamp(transmit, 1_704_067_200_500_000_000, 0).data
    sp = stamp.STAMPSessionSenderTestUnauthenticated(pkt)
    assert sp.seq == 0 and sp.ssid == 0x1234
    assert (sp.err_estimate.S, sp.err_estimate.Z, sp.err_estimate.scale, sp.err_estimate.multiplier) == (1, 0, 3, 7)
    assert [(t.type, t.len, int(t.flags)) for t in sp.tlv_objects] == [(4, 4, 0x80), (5, 12, 0x80)]
    # (scapy's FlagsField names bits from the LSB, so its 'U' label sits on 0x01: compare octets, not names)
    assert sp.tlv_objects[0].value == bytes.fromhex("b8000000")

    reply, _ = answer(Reflector(), bytes(pkt), At(("127.0.0.1", 1), ttl=61), 1_704_067_200_600_000_000)
    rp = stamp.STAMPSessionReflectorTestUnauthenticated(reply)
    assert rp.seq == 0 and rp.ssid == 0x1234 and rp.seq_sender == 0 and rp.ttl_sender == 61
    assert [t.type for t in rp.tlv_objects] == [4, 5]
    assert int(rp.tlv_objects[0].flags) == 0  # processed: U cleared
