"""Every platform fallback, end to end on Linux: the detected capability set is cut down the
way macOS or Windows would report it, then a sender measures a reflector through real sockets."""

import pytest

import stamp_suite.net.udp as udp
from stamp_suite.api import run_session, start_reflector
from stamp_suite.tlvs import ClassOfService, FollowUpTelemetry, Location, TimestampInformation

REAL = udp.detect_capabilities


@pytest.fixture
def without(monkeypatch):
    def cut(*names):
        monkeypatch.setattr(udp, "detect_capabilities", lambda family=2: REAL(family).without(*names))
    return cut


def measure(**extra):
    with start_reflector(stateful_reflector=True) as refl:
        host, port = refl.address
        result = run_session(host, port, count=4, send_delay=5, timeout=1, ssid=3, cos=True, dscp=46, location=True,
                             timestamp_info=True, follow_up_telemetry=True, **extra)
    assert result.received == 4
    return result.samples[-1]


def test_everything_available_baseline():
    s = measure()
    assert s.reflector_ttl == 64 and s.reply_ttl == 64 and s.reply_tos == 46 << 2
    assert s.tlvs[ClassOfService].dscp2 == 46 and s.tlvs[Location].record()["destination_ip"] == "127.0.0.1"
    assert s.tlvs[TimestampInformation].timestamp_in == 2 and s.tlvs[FollowUpTelemetry].timestamp_mode == 2


def test_no_recvmsg_at_all_windows_like(without):
    without("recvmsg", "ttl", "tos", "destination_address", "kernel_rx_timestamp", "kernel_tx_timestamp",
            "set_tos_per_packet", "set_source_per_packet")
    s = measure()
    assert s.reflector_ttl == 255  # RFC 5357 §4.2: TTL unknown
    assert s.reply_ttl is None and s.reply_tos is None  # shown as unknown at the sender
    assert s.tlvs[ClassOfService].dscp2 == 0  # received DSCP unknown: left 0
    assert "destination_ip" not in s.tlvs[Location].record() and s.tlvs[Location].record()["source_ip"] == "127.0.0.1"
    assert s.tlvs[TimestampInformation].timestamp_in == 3  # user space: Control Plane
    assert s.tlvs[FollowUpTelemetry].timestamp_mode == 3  # T3 from user space, no TX timestamp


def test_no_ttl(without):
    without("ttl")
    s = measure()
    assert s.reflector_ttl == 255 and s.reply_ttl is None and s.tlvs[ClassOfService].dscp2 == 46


def test_no_tos(without):
    without("tos")
    s = measure()
    assert s.tlvs[ClassOfService].dscp2 == 0 and s.reply_tos is None and s.reflector_ttl == 64


def test_no_destination_address_macos_without_pktinfo(without):
    without("destination_address", "set_source_per_packet")
    s = measure()
    assert "destination_ip" not in s.tlvs[Location].record() and s.tlvs[Location].destination_port > 0


def test_no_kernel_rx_timestamps(without):
    without("kernel_rx_timestamp")
    s = measure()
    assert s.tlvs[TimestampInformation].timestamp_in == 3 and s.rtt_ns > 0


def test_no_kernel_tx_timestamps(without):
    without("kernel_tx_timestamp")
    s = measure()
    assert s.tlvs[FollowUpTelemetry].timestamp_mode == 3 and s.tlvs[FollowUpTelemetry].tx_ns is not None


def test_no_per_packet_tos(without):
    without("set_tos_per_packet")
    s = measure()
    assert s.tlvs[ClassOfService].dscp2 == 46  # what was received is still read
    assert s.reply_tos == 0  # but the reply cannot be sent with the requested DSCP


def test_capability_notes_say_what_is_missing():
    caps = REAL(2).without("ttl", "kernel_rx_timestamp", "set_tos_per_packet", "dropped_unread")
    notes = "\n".join(caps.notes())
    assert "TTL/hop limit cannot be read" in notes and "no kernel receive timestamps" in notes
    assert "DSCP cannot be set per packet" in notes and "loss may include this host's own drops" in notes


def test_no_count_of_datagrams_dropped_unread(without):
    """macOS and Windows give no SO_MEMINFO: how many replies this host dropped unread is unknown
    (JSON null), not 0; where it is counted, a run without any says 0 (read at the end too)."""
    with start_reflector() as refl:
        assert run_session(*refl.address, count=3, send_delay=5, timeout=1).summary["packets"]["dropped_unread"] == 0
        without("dropped_unread")
        assert run_session(*refl.address, count=3, send_delay=5, timeout=1).summary["packets"]["dropped_unread"] is None
