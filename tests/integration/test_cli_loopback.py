"""The real program, sender against reflector, on 127.0.0.1 and ::1."""

import json
import socket

import pytest
from helpers import ReflectorProcess, check_report, json_lines, run, send

from stamp_suite.sender.report import parse_rfc3339

BOTH_PATHS = pytest.mark.usefixtures("reflector_io")  # a test of traffic: on both socket paths (tests/conftest.py)

KEY = "00112233445566778899aabbccddeeff"


@BOTH_PATHS
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("auth", [False, True])
@pytest.mark.parametrize("stateful", [False, True])
def test_sender_against_reflector(host, auth, stateful):
    rargs = (["--stateful-reflector"] if stateful else []) + (["-A", "A", "--hmac-key", KEY] if auth else [])
    with ReflectorProcess(*rargs, host=host) as refl:
        sargs = ["-A", "A", "--hmac-key", KEY] if auth else []
        res = send(refl, *sargs, "--output-format", "json", "-R", count=5)
        assert res.returncode == 0, res.stderr
        packets, summary = json_lines(res.stdout)
        assert summary["packets"]["sent"] == 5 and summary["packets"]["received"] == 5
        assert [p["seq"] for p in packets] == list(range(5))
        assert all(p["reflector_ttl"] == 64 and p["reply_ttl"] == 64 for p in packets)
        assert all(p["rtt_ns"] > 0 for p in packets)
        code, out, _ = refl.stop()
        assert code == 0
        assert "Packets received: 5" in out and "Packets reflected: 5" in out
        assert "received=5 reflected=5" in out  # per-client totals


@BOTH_PATHS
def test_text_output_keeps_rust_lines():
    with ReflectorProcess() as refl:
        res = send(refl, count=3)
    lines = res.stdout.splitlines()
    for prefix in ("Packets sent: 3", "Packets received: 3", "Packets lost: 0 (0.0%)", "Min RTT: ", "Max RTT: ",
                   "Avg RTT: "):
        assert any(line.startswith(prefix) for line in lines), prefix


@BOTH_PATHS
def test_stateful_reflector_reveals_directional_loss_fields():
    with ReflectorProcess("--stateful-reflector") as refl:
        res = send(refl, "--output-format", "json", "-R", count=4)
    packets, _ = json_lines(res.stdout)
    assert [p["reflector_seq"] for p in packets] == [0, 1, 2, 3]


def tlv_run(*flags, reflector_args=(), count=3):
    with ReflectorProcess(*reflector_args) as refl:
        res = send(refl, "--output-format", "json", "-R", *flags, count=count)
        assert res.returncode == 0, res.stderr
        packets, summary = json_lines(res.stdout)
        return packets, summary, refl


@BOTH_PATHS
def test_cos_tlv_reports_dscp_and_sets_reply_dscp():
    packets, summary, _ = tlv_run("--cos", "--dscp", "46", "--ecn", "1")
    cos = packets[-1]["tlv"]["cos"]
    assert cos == {"dscp_requested": 46, "dscp_at_reflector": 46, "ecn_at_reflector": 1,
                   "reverse_path_refused": False}
    assert packets[-1]["reply_dscp"] == 46
    assert summary["dscp_ecn"]["at_reflector"] == {"46/1": 3}


@BOTH_PATHS
def test_cos_refused_by_policy():
    packets, _, _ = tlv_run("--cos", "--dscp", "46", reflector_args=("--cos-allowed-dscp", "0,10"))
    assert packets[-1]["tlv"]["cos"]["reverse_path_refused"] is True
    assert packets[-1]["reply_dscp"] == 46  # refused: the reply keeps the DSCP it was received with


@BOTH_PATHS
def test_location_tlv():
    packets, _, refl = tlv_run("--location")
    loc = packets[0]["tlv"]["location"]
    assert loc["destination_port"] == refl.port and loc["destination_ip"] == "127.0.0.1"
    assert loc["source_ip"] == "127.0.0.1" and loc["source_port"] > 0


@BOTH_PATHS
def test_timestamp_info_tlv_says_kernel_or_user():
    packets, _, _ = tlv_run("--timestamp-info")
    assert packets[0]["tlv"]["timestamp_info"]["timestamp_in"] == 2  # SW local: kernel receive timestamp
    packets, _, _ = tlv_run("--timestamp-info", reflector_args=("--timestamping", "user"))
    assert packets[0]["tlv"]["timestamp_info"]["timestamp_in"] == 3  # control plane: user space


@BOTH_PATHS
def test_direct_measurement_tlv():
    packets, summary, _ = tlv_run("--direct-measurement", count=4)
    assert packets[-1]["tlv"]["direct_measurement"] == {"s_txc": 4, "r_rxc": 4, "r_txc": 4}


@BOTH_PATHS
def test_follow_up_telemetry_needs_stateful_reflector():
    packets, _, _ = tlv_run("--follow-up-telemetry", reflector_args=("--stateful-reflector",))
    fu = packets[-1]["tlv"]["follow_up"]
    assert fu["sequence_number"] == 1
    # when the previous reply left
    assert parse_rfc3339(packets[1]["t3"]) - 1 <= parse_rfc3339(fu["tx"]) <= parse_rfc3339(packets[1]["t4"])
    packets, _, _ = tlv_run("--follow-up-telemetry")
    assert packets[-1]["tlv"]["follow_up"]["tx"] is None  # stateless: zeros


@BOTH_PATHS
def test_access_report_tlv():
    packets, _, _ = tlv_run("--access-report", "2", "--access-return-code", "2")
    assert packets[0]["tlv"]["access_report"] == {"access_id": 2, "return_code": 2}
    packets, _, _ = tlv_run("--access-report", "7")
    assert packets[0]["tlv_problems"] == [{"type": 6, "kind": "not_processed",
                                           "detail": "the reflector did not process it (U)"}]


@BOTH_PATHS
def test_destination_node_address_tlv():
    packets, _, _ = tlv_run("--ssid", "9", "--dest-node-addr", "127.0.0.1")
    assert packets[0]["tlv"]["destination_node"]["accepted"] is True
    packets, _, _ = tlv_run("--ssid", "9", "--dest-node-addr", "192.0.2.1")
    assert (9, "not_processed") in [(p["type"], p["kind"]) for p in packets[0]["tlv_problems"]]


@BOTH_PATHS
def test_return_path_no_reply_suppresses_replies():
    with ReflectorProcess() as refl:
        res = send(refl, "--return-path-cc", "0", count=2)
        assert res.returncode == 1 and "Packets lost: 2" in res.stdout
        _, out, _ = refl.stop()
        assert "return_path_no_reply: 2" in out


@BOTH_PATHS
def test_return_address_refused_without_allow_list_and_honoured_with_it():
    packets, _, _ = tlv_run("--return-address", "127.0.0.1")
    assert (10, "not_processed") in [(p["type"], p["kind"]) for p in packets[0]["tlv_problems"]]
    packets, _, _ = tlv_run("--return-address", "127.0.0.1", reflector_args=("--return-address-allow", "127.0.0.0/8"))
    assert packets[0]["tlv"]["return_path"] == {"honoured": True, "followed": ["return_address"]}


@BOTH_PATHS
def test_micro_session_tlv():
    packets, _, _ = tlv_run("--micro-session-id", "3", reflector_args=("--reflector-member-link-id", "7"))
    assert packets[0]["tlv"]["micro_session"] == {"sender_id": 3, "reflector_id": 7}


@BOTH_PATHS
def test_hmac_tlv_in_open_mode_verified():
    packets, _, _ = tlv_run("--cos", "--hmac-tlv", "--hmac-key", KEY,
                            reflector_args=("--verify-tlv-hmac", "--hmac-key", KEY))
    assert not packets[0]["tlv_problems"] and "cos" in packets[0]["tlv"]
    other = "ff" * 16
    packets, summary, _ = tlv_run("--cos", "--hmac-tlv", "--hmac-key", other,
                                  reflector_args=("--verify-tlv-hmac", "--hmac-key", KEY))
    assert {p["kind"] for p in packets[0]["tlv_problems"]} == {"integrity"}
    assert summary["packets"]["tlv_integrity_failures"] == 3


@BOTH_PATHS
def test_padding_and_ptp():
    packets, _, _ = tlv_run("--padding", "100", "-K", "PTP")
    assert packets[0]["rtt_ns"] > 0 and abs(packets[0]["forward_ns"]) < 10**9  # TAI offset applied both ends


def test_csv_output_has_header_and_rows():
    with ReflectorProcess() as refl:
        res = send(refl, "--output-format", "csv", count=3)
    rows = res.stdout.strip().splitlines()
    assert rows[0].startswith("kind,seq,reflector_seq,t1,t2,t3,t4,") and len(rows) == 4
    assert "Packets sent: 3" in res.stderr


@BOTH_PATHS
def test_wrong_key_gives_total_loss_with_reason():
    with ReflectorProcess("-A", "A", "--hmac-key", KEY) as refl:
        res = send(refl, "-A", "A", "--hmac-key", "ff" * 16, count=2)
        assert res.returncode == 1
        assert "Packets lost: 2 (100.0%)" in res.stdout
        assert res.stderr.strip().splitlines()[-1].startswith("stamp-suite: no replies:")
        assert "key" in res.stderr
        _, out, _ = refl.stop()
        assert "hmac_failure: 2" in out


@BOTH_PATHS
def test_no_reflector_says_icmp_refused():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    res = run("-r", "127.0.0.1", "-p", str(port), "-c", "2", "-d", "5", "-L", "0.5")
    assert res.returncode == 1 and "ICMP port unreachable" in res.stderr


@pytest.mark.parametrize("args, needle", [
    (["--bogus"], "unrecognized arguments"),
    (["-c", "abc"], "not an integer"),
    (["--dscp", "64"], "--dscp 64 is outside 0..63"),
    (["-L", "0"], "--timeout 0.0 must be more than 0"),
    (["-A", "A"], "needs --hmac-key"),
    (["-r", "127.0.0.1", "-A", "A", "--hmac-key", "xyz"], "not a hexadecimal key"),
    (["--return-path-cc", "1", "--return-address", "127.0.0.1"], "cannot be combined"),
    (["--dest-node-addr", "127.0.0.1"], "requires --ssid"),
    (["-r", "not-an-ip.invalid"], "cannot resolve 'not-an-ip.invalid'"),
    (["--config", "/nonexistent.toml"], "--config"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    res = run(*args)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and needle in res.stderr and "Traceback" not in res.stderr


def test_port_in_use_is_one_line_exit_1():
    with ReflectorProcess() as refl:
        res = run("-i", "-S", "127.0.0.1", "-o", str(refl.port))
    assert res.returncode == 1 and "address already in use" in res.stderr and res.stderr.count("\n") == 1


def test_key_file_permissions_checked(tmp_path):
    kf = tmp_path / "key"
    kf.write_text(KEY)
    kf.chmod(0o644)
    res = run("-r", "127.0.0.1", "-A", "A", "--hmac-key-file", str(kf))
    assert res.returncode == 2 and "chmod 600" in res.stderr


def test_config_file_then_flags(tmp_path):
    cfg = tmp_path / "s.toml"
    with ReflectorProcess() as refl:
        cfg.write_text(f'remote_addr = "127.0.0.1"\nremote_port = {refl.port}\ncount = 2\nsend_delay = 5\n'
                       f'output_format = "json"\n')
        res = run("--config", str(cfg), "-c", "3")
    summary = check_report(json.loads(res.stdout.strip().splitlines()[-1]))
    assert summary["packets"]["sent"] == 3  # flag beats file
    cfg.write_text('bogus_key = 1\n')
    res = run("--config", str(cfg))
    assert res.returncode == 2 and "unknown key 'bogus_key'" in res.stderr


def test_wrong_types_and_misplaced_keys_are_one_line_that_never_shows_a_key(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text("hmac_key_file = 112233\n")
    res = run("--config", str(cfg))
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "hmac_key_file: expected a string, got an integer" in res.stderr and "112233" not in res.stderr
    res = run("-A", "A", "--hmac-key-file", KEY)  # the key itself where its file belongs
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and KEY not in res.stderr


@pytest.mark.parametrize("flags", [["--hmac_key", KEY], [f"--hmac-ke={KEY}"], ["-r", "127.0.0.1", "--ssid", KEY],
                                   ["-r", "127.0.0.1", "--return-address", KEY], ["-i", "--allowed-ssids", KEY],
                                   ["-r", KEY * 2], ["-r", "127.0.0.1", "-c", KEY]])
def test_no_flag_error_shows_a_key(flags):
    res = run(*flags)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and KEY not in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_self_test_runs_short_unless_the_flags_or_the_file_say_otherwise(tmp_path):
    res = run("--self-test")
    assert res.returncode == 0 and "Packets received: 20" in res.stdout
    res = run("--self-test", "-c", "3")
    assert res.returncode == 0 and "Packets received: 3" in res.stdout
    cfg = tmp_path / "s.toml"
    cfg.write_text("count = 4\nsend_delay = 5\n")
    res = run("--self-test", "--config", str(cfg))
    assert res.returncode == 0 and "Packets received: 4" in res.stdout, res.stdout


def test_version():
    res = run("-V", "--verbose")
    assert res.returncode == 0 and "stamp-suite" in res.stdout and "IPv4 capabilities:" in res.stdout


@BOTH_PATHS
def test_capacity_mode_reports_replies_per_second():
    with ReflectorProcess() as refl:
        res = run("-r", f"{refl.host}:{refl.port}", "-c", "3000", "-L", "1", "--window", "16",
                  "--output-format", "json")
    _, summary = json_lines(res.stdout)
    assert summary["packets"]["sent"] == 3000 and summary["packets"]["received"] == 3000
    assert summary["session"]["capacity_replies_per_s"] > 1000
    # (checked against the schema by json_lines) no pace in capacity mode: its window instead
    assert summary["session"]["window"] == 16 and summary["session"]["send_delay_ms"] is None


@BOTH_PATHS
def test_capacity_mode_writes_off_losses_and_finishes():
    from relay import Impairment, ImpairmentRelay
    with ReflectorProcess() as refl, ImpairmentRelay((refl.host, refl.port),
                                                     Impairment(drop={5, 6, 7, 100})) as relay:
        res = run("-r", relay.address[0], "-p", str(relay.address[1]), "-c", "500", "--window", "8", "-L", "0.3")
    assert res.returncode == 0 and "Packets lost: 4 (0.8%)" in res.stdout and "Capacity:" in res.stdout


@BOTH_PATHS
def test_access_report_is_retransmitted_until_answered():
    # nobody answers on this port: 1 packet + 4 retransmissions, 0.2 s apart
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    res = run("-r", "127.0.0.1", "-p", str(port), "-c", "1", "-L", "2", "--access-report", "1",
              "--access-report-timer", "0.2", "--output-format", "json")
    s.close()
    assert check_report(json.loads(res.stdout))["packets"]["sent"] == 5
    with ReflectorProcess() as refl:  # answered at once: no retransmission
        res = send(refl, "--access-report", "1", "--access-report-timer", "0.2", "--output-format", "json", count=1)
    assert check_report(json.loads(res.stdout))["packets"]["sent"] == 1


@BOTH_PATHS
def test_address_family_flags_are_honoured():
    res = run("-4", "-r", "::1", "-c", "1")
    assert res.returncode == 2 and "::1 is an IPv6 address, but IPv4 is asked for" in res.stderr
    res = run("-6", "-r", "127.0.0.1", "-c", "1")
    assert res.returncode == 2 and "127.0.0.1 is an IPv4 address, but IPv6 is asked for" in res.stderr
    with ReflectorProcess(host="::1") as refl:
        res = run("-6", "-r", "::1", "-p", str(refl.port), "-c", "2", "-d", "5", "-L", "1")
    assert res.returncode == 0 and "sending to [::1]" in res.stdout


@BOTH_PATHS
def test_the_reflector_answers_short_packets_by_default_and_not_when_hardened():
    """RFC 8762 §4.6 through the real CLI: a 14-octet TWAMP-Light packet (the digest's packet
    (a) cut short) gets a 44-octet base reply; --drop-short-packets gets it none."""
    short = bytes.fromhex("00000001e93c7f00800000008001")
    for flags, expected in (((), 44), (("--drop-short-packets",), None)):
        with ReflectorProcess(*flags) as refl, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            s.sendto(short, (refl.host, refl.port))
            try:
                got = len(s.recv(2048))
            except TimeoutError:
                got = None
        assert got == expected, flags


@BOTH_PATHS
def test_the_default_reflector_serves_ipv4_and_ipv6_on_one_socket():
    with ReflectorProcess(host=None) as refl:  # no -S: the reflector's default bind
        assert "dual-stack" in refl.banner and send(refl, count=2).returncode == 0  # over ::1
        v4 = run("-r", "127.0.0.1", "-p", str(refl.port), "-c", "2", "-d", "5", "-L", "1")
        assert v4.returncode == 0 and "Packets received: 2" in v4.stdout


@BOTH_PATHS
def test_reflector_r_prints_each_packet_answered_or_dropped_and_why():
    """An operator asking "why no reply?" at the reflector: -R prints every packet received,
    with what became of it (the totals' reason names), on either socket path; the banner says
    which path it is."""
    test_packet = bytes.fromhex("00000007e93c7f0080000000" "00010000") + bytes(28)  # open mode, seq 7
    with ReflectorProcess("-R") as refl:
        assert "socket I/O" in refl.banner
        assert send(refl, count=1).returncode == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            for datagram in (test_packet, bytes(10), test_packet):  # one burst: one read on the batched path
                s.sendto(datagram, (refl.host, refl.port))  # (10 octets: too short to answer)
            s.recv(100), s.recv(100)
        _, out, _ = refl.stop()
    lines = [line for line in out.splitlines() if line.startswith("from ")]
    assert len(lines) == 4, out
    assert " len=44 " in lines[0] and "-> seq=0 to 127.0.0.1:" in lines[0]
    assert [line.split(" -> ")[1].split(" to ")[0] for line in lines[1:]] == [
        "seq=7", "dropped: short_packet", "seq=7"]  # in the order they came
    assert " len=10 " in lines[2]
    assert "short_packet: 1" in out
