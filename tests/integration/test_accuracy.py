"""Timestamps: from the kernel when asked (and the fallback said), follow-up TX times, honest TLVs."""

import pytest
from helpers import ReflectorProcess, json_lines, send

from stamp_suite.net.clock import read_clock_state
from stamp_suite.sender.report import parse_rfc3339

pytestmark = pytest.mark.usefixtures("reflector_io")  # both socket paths (tests/conftest.py)


def test_kernel_timestamps_when_requested_and_fallback_announced():
    with ReflectorProcess("--timestamping", "kernel", "--stateful-reflector") as refl:
        res = send(refl, "--timestamping", "kernel", "--timestamp-info", "--output-format", "json", "-R", count=3)
        packets, summary = json_lines(res.stdout)
        assert summary["session"]["timestamping"] == "kernel"
        ti = packets[0]["tlv"]["timestamp_info"]
        assert (ti["timestamp_in"], ti["timestamp_out"]) == (2, 3)  # SW local (kernel) in, control plane out
        res = send(refl, "--timestamping", "user", "--output-format", "json", count=2)
        assert "no kernel receive timestamps" in res.stderr  # the fallback is said, once
        assert res.stderr.count("no kernel receive timestamps") == 1
        assert json_lines(res.stdout)[1]["session"]["timestamping"] == "user-space"
    with ReflectorProcess("--timestamping", "user") as refl:
        assert "user-space receive time" in refl.banner
        res = send(refl, "--timestamp-info", "--output-format", "json", "-R", count=2)
        assert json_lines(res.stdout)[0][0]["tlv"]["timestamp_info"]["timestamp_in"] == 3


def test_follow_up_tx_timestamps_lie_between_t3_and_t4():
    with ReflectorProcess("--stateful-reflector") as refl:
        res = send(refl, "--follow-up-telemetry", "--output-format", "json", "-R", count=10)
    packets, summary = json_lines(res.stdout)
    by_refl_seq = {p["reflector_seq"]: p for p in packets}
    checked = 0
    for p in packets[1:]:
        fu = p["tlv"]["follow_up"]
        prev = by_refl_seq[fu["sequence_number"]]
        assert fu["timestamp_mode"] == 2  # the kernel's software TX timestamp (SW local)
        # its real departure: after the T3 it carried (-1 ns: NTP truncation), before it arrived here
        assert parse_rfc3339(prev["t3"]) - 1 <= parse_rfc3339(fu["tx"]) <= parse_rfc3339(prev["t4"])
        checked += 1
    assert checked == 9
    assert summary["follow_up"]["t3_shift_ns"]["count"] == 9
    assert summary["follow_up"]["rtt_ns"]["percentiles"]["p50"] <= summary["rtt_ns"]["percentiles"]["p50"]


def test_s_bit_only_when_stated_or_synchronised():
    synced = read_clock_state().synchronized  # what this machine's kernel says
    with ReflectorProcess() as refl:
        res = send(refl, "--output-format", "json", count=2)
        assert json_lines(res.stdout)[1]["one_way"]["meaningful"] is synced
    with ReflectorProcess("--clock-synchronized") as refl:
        res = send(refl, "--clock-synchronized", "--output-format", "json", count=2)
        assert json_lines(res.stdout)[1]["one_way"]["meaningful"] is True
