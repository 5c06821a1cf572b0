"""Settings by role (config.py), in this process: what each role refuses, and how an error
names the setting wherever it came from."""

import pytest

from stamp_suite.args import build_parser
from stamp_suite.config import ConfigError, build_settings

KEY = "00112233445566778899aabbccddeeff"


def settings(*argv, config=None):
    flags = vars(build_parser().parse_args(list(argv)))
    flags.pop("show_version", None), flags.pop("config", None)
    return build_settings(flags, config)


@pytest.mark.parametrize("argv, message", [
    (["-r", "127.0.0.1", "-i"], "--remote-addr is a sender setting, and a reflector (-i) does not use it"),
    (["-i", "-c", "5"], "--count is a sender setting"),
    (["-i", "--cos"], "--cos is a sender setting"),
    (["-i", "--output-format", "json"], "--output-format is a sender setting"),
    (["-r", "127.0.0.1", "--workers", "2"], "--workers is a reflector setting, and a sender does not use it"),
    (["-r", "127.0.0.1", "--stateful-reflector"], "--stateful-reflector is a reflector setting"),
    (["-i", "-6", "-S", "127.0.0.1"], "--local-addr 127.0.0.1 is IPv4, but --force-ipv6 (-6) was given"),
    (["-i", "-4", "-S", "::1"], "--local-addr ::1 is IPv6, but --force-ipv4 (-4) was given"),
    (["-r", "127.0.0.1", "--hmac-key", KEY], "neither -A A nor --hmac-tlv"),
])
def test_a_setting_the_role_would_ignore_is_refused(argv, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings(*argv)


def test_what_each_role_reads_is_accepted():
    assert settings("-i", "-R", "--verbose", "--metrics", "--workers", "2", "--hmac-key", KEY).is_reflector
    assert settings("-r", "127.0.0.1", "--hmac-key", KEY, "--hmac-tlv").tlvs.hmac_tlv
    s = settings("--self-test", "--workers", "1", "-c", "3")  # the self-test plays both roles
    assert s.self_test and s.sender.count == 3


def test_a_file_setting_for_the_other_role_names_the_file(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text("count = 5\n")
    with pytest.raises(ConfigError, match=f"--config {f}: key count is a sender setting"):
        settings("-i", config=str(f))
    f.write_text("stateful_reflector = true\n")
    assert settings("-i", config=str(f)).reflector.stateful_reflector


def test_an_exclusive_bound_is_said_as_one():
    with pytest.raises(ConfigError, match="--timeout 0.0 must be more than 0"):
        settings("-r", "127.0.0.1", "-L", "0")


def test_a_rule_across_settings_names_them_as_they_were_given(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text("force_ipv6 = true\n")
    with pytest.raises(ConfigError) as exc:
        settings("-i", "-S", "127.0.0.1", config=str(f))
    assert str(exc.value) == (f"--config {f}: --local-addr 127.0.0.1 is IPv4, but key force_ipv6 (-6) was given")
    from stamp_suite.api import start_reflector
    with pytest.raises(ConfigError, match="^local_addr 127.0.0.1 is IPv4, but force_ipv6 \\(-6\\) was given$"):
        start_reflector("127.0.0.1", force_ipv6=True)


def test_a_file_takes_modes_in_any_case_as_the_command_line_does(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('remote_addr = "127.0.0.1:8620"\nclock_source = "ptp"\noutput_format = "JSON"\n')
    s = settings(config=str(f))
    assert (s.common.clock_source.value, s.output.output_format.value) == ("PTP", "json")
    f.write_text('[[targets]]\nname = "a"\n')
    with pytest.raises(ConfigError, match="a monitor's targets file: run stamp-suite monitor --config"):
        settings(config=str(f))
