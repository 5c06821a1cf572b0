"""The defaults the README states, read from the real parser and settings (docs/claims.md)."""

import os

from stamp_suite.args import build_parser
from stamp_suite.config import build_settings
from stamp_suite.reflector.service import default_workers


def settings(*argv):
    flags = vars(build_parser().parse_args(list(argv)))
    flags.pop("show_version", None), flags.pop("config", None)
    return build_settings(flags)


def test_sender_defaults_are_the_rust_tools():
    s = settings("-r", "192.0.2.1")
    # 1000 packets, one a second, port 862
    assert (s.sender.count, s.sender.send_delay, s.sender.remote()[1]) == (1000, 1000.0, 862)
    assert s.tlvs.access_report_timer == 3.0 and s.tlvs.access_report_retries == 4  # RFC 8972 §4.6
    assert settings("-r", "192.0.2.1", "-d", "0.1").sender.send_delay == 0.1  # fractional milliseconds


def test_reflector_and_metrics_defaults():
    s = settings("-i")
    assert s.export.metrics_addr == "127.0.0.1:9090" and s.common.local_addr is None  # None: the dual-stack wildcard
    assert not s.reflector.drop_short_packets  # short packets answered (RFC 8762 §4.6)
    assert s.reflector.max_sessions == 100_000 and s.reflector.workers is None
    assert default_workers() == max(1, min(len(os.sched_getaffinity(0)), 8))  # one per CPU, at most 8
