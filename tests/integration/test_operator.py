"""What an operator coming from ping, mtr, iperf3 and twping meets first, on the real CLI:
names, early warnings, per-packet lines, interim reports, quiet runs, docs from the parser."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from ci import have_tool
from helpers import CMD, ENV, ReflectorProcess, run
from relay import Impairment, ImpairmentRelay

KEY = "00112233445566778899aabbccddeeff"


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _has_ipv6_localhost() -> bool:
    try:
        return any(info[4][0] == "::1" for info in socket.getaddrinfo("localhost", 1, socket.AF_INET6))
    except socket.gaierror:
        return False


def test_names_and_host_port_forms_are_accepted():
    with ReflectorProcess(host="::") as refl:  # IPv6 only: [::1]
        res = run(f"-r[::1]:{refl.port}", "-c", "2", "-d", "5", "-L", "1")
        assert res.returncode == 0 and f"sending to [::1]:{refl.port}" in res.stdout, res.stderr
        res = run("-6", "-r", f"localhost:{refl.port}", "-c", "2", "-d", "5", "-L", "1")
        if _has_ipv6_localhost():
            assert res.returncode == 0 and f"sending to localhost ([::1]:{refl.port})" in res.stdout, res.stderr
        else:  # a resolver without ::1 localhost (e.g. a container's /etc/hosts): said in one line
            assert res.returncode == 2 and "cannot resolve 'localhost' as IPv6 (-6)" in res.stderr
            assert res.stderr.count("\n") == 1
    with ReflectorProcess() as refl:
        res = run("-4", "-r", "localhost", "-p", str(refl.port), "-c", "2", "-d", "5", "-L", "1")
        assert res.returncode == 0 and f"localhost (127.0.0.1:{refl.port})" in res.stdout, res.stderr
        res = run("-r", f"127.0.0.1:{refl.port}", "-c", "2", "-d", "5", "-L", "1")
        assert res.returncode == 0 and "Packets received: 2" in res.stdout


@pytest.mark.parametrize("args, needle", [
    ([], "no reflector to measure: give -r HOST[:PORT]"),
    (["-r", "no-such-host.invalid"], "cannot resolve 'no-such-host.invalid'"),
    (["-r", "127.0.0.1:99999"], "the port must be 1..65535"),
    (["-r", "127.0.0.1:8620", "-p", "8621"], "the reflector's port is given twice"),
])
def test_address_mistakes_are_one_line_exit_2(args, needle):
    res = run(*args)
    assert res.returncode == 2 and needle in res.stderr and res.stderr.count("\n") == 1


def _stderr_lines_with_times(args: list[str], timeout: float = 20) -> tuple[float, list[tuple[float, str]], int]:
    """Run the CLI; return when its banner came, (time, line) for each stderr line, exit status."""
    proc = subprocess.Popen([*CMD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    proc.stdout.readline()
    started = time.monotonic()
    lines = []
    for line in proc.stderr:
        lines.append((time.monotonic() - started, line.rstrip("\n")))
    proc.wait(timeout)
    proc.stdout.read()
    return started, lines, proc.returncode


@pytest.mark.alone  # a deadline of one second
def test_no_reflector_is_said_within_a_second_of_the_third_refusal():
    _, lines, code = _stderr_lines_with_times(["-r", "127.0.0.1", "-p", str(_dead_port()), "-c", "8", "-d", "200",
                                               "-L", "1"])
    warning = [(t, ln) for t, ln in lines if "ICMP port unreachable (3 in a row)" in ln]
    assert len(warning) == 1, lines
    assert warning[0][0] < 0.4 + 1.0  # the third packet leaves at 0.4 s
    assert code == 1 and "no replies: ICMP port unreachable" in lines[-1][1]


def test_a_silent_reflector_and_a_mode_mismatch_are_said_early():
    with ReflectorProcess("-A", "A", "--hmac-key", KEY) as refl:  # drops our open-mode packets
        _, lines, _ = _stderr_lines_with_times(["-r", "127.0.0.1", "-p", str(refl.port), "-c", "6", "-d", "200",
                                                "-L", "0.5"])
    silent = [(t, ln) for t, ln in lines if "no reply yet" in ln]
    assert len(silent) == 1 and silent[0][0] < 0.5 + 1.0 and "open or authenticated" in silent[0][1]
    with ReflectorProcess("-A", "A", "--hmac-key", KEY) as refl, \
            ImpairmentRelay((refl.host, refl.port), backward=Impairment(corrupt=set(range(6))),
                            authenticated=True) as relay:  # replies altered on the way back
        _, lines, _ = _stderr_lines_with_times(["-r", relay.address[0], "-p", str(relay.address[1]), "-c", "6",
                                                "-d", "200", "-L", "0.5", "-A", "A", "--hmac-key", KEY])
    hmac = [(t, ln) for t, ln in lines if "fail HMAC verification" in ln]
    assert len(hmac) == 1 and hmac[0][0] < 1.0, lines


def test_per_packet_lines_read_well_and_keep_the_rust_start():
    with ReflectorProcess("--stateful-reflector") as refl:
        res = run("-r", refl.host, "-p", str(refl.port), "-c", "3", "-d", "5", "-L", "1", "-R", "--cos",
                  "--dscp", "46")
        verbose = run("-r", refl.host, "-p", str(refl.port), "-c", "1", "-d", "5", "-L", "1", "-R", "-v")
    packets = [ln for ln in res.stdout.splitlines() if ln.startswith("seq=")]
    assert len(packets) == 3
    for ln in packets:
        assert re.match(r"seq=\d+ rtt=\d+\.\d{3}ms ttl=\d+ ", ln) and len(ln) <= 100, ln
        assert "dscp=46/46" in ln and "reflector_recv_ts" not in ln
    (line,) = [ln for ln in verbose.stdout.splitlines() if ln.startswith("seq=")]
    assert re.search(r"reflector_recv_ts=\S+Z reflector_send_ts=\S+Z", line)
    lost = run("-r", "127.0.0.1", "-p", str(_dead_port()), "-c", "2", "-d", "5", "-L", "0.2", "-R")
    assert [ln for ln in lost.stdout.splitlines() if ln.startswith("seq=")] == [
        "seq=0 refused (ICMP port unreachable)", "seq=1 refused (ICMP port unreachable)"]


def test_interim_reports_come_every_interval_on_time_and_add_up():
    with ReflectorProcess() as refl:
        proc = subprocess.Popen([*CMD, "-r", refl.host, "-p", str(refl.port), "-c", "0", "-d", "50", "-L", "1",
                                 "--report-interval", "0.5", "-w", "2.2"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=ENV)
        banner = proc.stdout.readline()
        started = time.monotonic()
        interim, rest = [], []
        for line in proc.stdout:
            if line.startswith("[interval "):
                interim.append((time.monotonic() - started, line))
            else:
                rest.append(line)
        proc.wait(10)
    assert "for 2.2 s" in banner and proc.returncode == 0
    assert [ln.split("]")[0] for _, ln in interim] == ["[interval 1: 0.0-0.5 s", "[interval 2: 0.5-1.0 s",
                                                        "[interval 3: 1.0-1.5 s", "[interval 4: 1.5-2.0 s",
                                                        "[interval 5: 2.0-2.2 s"]  # the last, shorter
    for k, (t, _) in enumerate(interim[:4], 1):
        assert abs(t - 0.5 * k) < 0.1, (k, t)
    sent = [int(re.search(r"sent (\d+)", ln).group(1)) for _, ln in interim]
    # each interval's own packets (one every 50 ms: the one due at a boundary opens the next),
    # and -w stops sending at 2.2 s: 44 in all, every one answered, none counted lost
    assert sent == [10, 10, 10, 10, 4], sent
    assert "Packets sent: 44\n" in "".join(rest) and "Packets lost: 0 (0.0%)\n" in "".join(rest)


def test_a_stop_leaves_packets_in_flight_unanswered_not_lost():
    # Ctrl-C half a second in, with --timeout 5 s: no packet has had its full timeout yet
    proc = subprocess.Popen([*CMD, "-r", "127.0.0.1", "-p", str(_dead_port()), "-c", "0", "-d", "100", "-L", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    proc.stdout.readline()
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert "Packets lost: 0 (0.0%)," in out and "unanswered when stopped (not counted)" in out, out


def test_quiet_prints_pings_closing_lines_only():
    with ReflectorProcess() as refl:
        res = run("-q", "-r", refl.host, "-p", str(refl.port), "-c", "3", "-d", "5", "-L", "1", "-R")
    lines = res.stdout.splitlines()
    assert lines[0] == f"--- {refl.host}:{refl.port} STAMP statistics ---" and len(lines) == 3, res.stdout
    assert re.fullmatch(r"3 packets transmitted, 3 received, 0% packet loss, time \d+ms", lines[1])
    assert re.fullmatch(r"rtt min/avg/max/mdev = [0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+ ms", lines[2])
    assert res.stderr == ""


def test_a_plot_without_matplotlib_stops_before_the_run(tmp_path):
    fake = tmp_path / "matplotlib"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('not installed')\n")
    t0 = time.monotonic()
    res = subprocess.run([*CMD, "-r", "127.0.0.1", "-c", "100", "--plot-output", str(tmp_path / "x.png")],
                         capture_output=True, text=True, env={**ENV, "PYTHONPATH": str(tmp_path)}, timeout=30)
    assert res.returncode == 2 and "plotting needs matplotlib" in res.stderr and time.monotonic() - t0 < 5
    assert res.stdout == ""


def test_completion_and_man_page_come_from_the_parser():
    bash = run("--print-completion", "bash")
    assert bash.returncode == 0 and "--max-runtime" in bash.stdout and "--drop-short-packets" in bash.stdout
    if shutil.which("bash"):
        assert subprocess.run(["bash", "-n"], input=bash.stdout, text=True).returncode == 0
    man = run("--print-man-page")
    assert man.returncode == 0 and man.stdout.startswith(".TH STAMP") and "max\\-runtime" in man.stdout
    for section in ("MONITOR", "EXIT STATUS", "SIGNALS", "FILES", "EXAMPLES"):
        assert f"\n.SH {section}\n" in man.stdout
    if have_tool("groff"):  # -ww: every warning, and none may come
        out = subprocess.run(["groff", "-man", "-Tutf8", "-ww"], input=man.stdout, capture_output=True, text=True)
        plain = re.sub(".\b", "", out.stdout).replace("‐", "-")  # without overstrike bold and hyphens
        assert out.returncode == 0 and out.stderr == "" and "max-runtime" in plain
        assert "stamp-suite monitor --config FILE" in plain and "--shard K/N" in plain  # the monitor's own parser
        assert "130 for SIGINT" in plain and "/var/agentx/master" in plain
        assert "stamp-suite -r 192.0.2.1 -A A --hmac-key-file /etc/stamp/key" in plain


def test_the_wireshark_dissector_path_is_printed_and_installed():
    res = run("--wireshark-dissector")
    path = Path(res.stdout.strip())
    assert res.returncode == 0 and path.name == "stamp.lua" and path.is_file()
    assert path.read_text().startswith("--") and "Proto(\"stamp\"" in path.read_text()
    contrib = Path(__file__).parents[2] / "contrib" / "wireshark" / "stamp.lua"  # the same file, in the tree
    assert contrib.resolve() == path.resolve()
