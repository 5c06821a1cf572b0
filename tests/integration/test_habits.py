"""Issue 29 on the installed program: durations with units, a summary that fits a screen and
says each figure once, refusals said per packet when they come, and a reflector that says
why it does not answer authenticated packets."""

from __future__ import annotations

import json
import socket
import subprocess

from helpers import CMD, ENV, ReflectorProcess, run

KEY1, KEY2 = "11" * 16, "22" * 16


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_durations_take_units_and_a_bare_number_keeps_its_old_unit(tmp_path):
    with ReflectorProcess() as refl:
        res = run("-r", f"{refl.host}:{refl.port}", "-c", "3", "-d", "200ms", "-L", "1.5s", "--output-format", "json")
        assert res.returncode == 0, res.stderr
        session = json.loads(res.stdout.splitlines()[-1])["session"]
        assert session["send_delay_ms"] == 200 and 0.35 < session["duration_s"] < 1.5
        res = run("-r", f"{refl.host}:{refl.port}", "-c", "2", "-d", "50", "--output-format", "json")  # ms
        assert json.loads(res.stdout.splitlines()[-1])["session"]["send_delay_ms"] == 50
        settings = tmp_path / "s.toml"
        settings.write_text(f'remote_addr = "{refl.host}:{refl.port}"\ncount = 2\nsend_delay = "0.02s"\n'
                            'output_format = "json"\n')
        res = run("--config", str(settings))
        assert json.loads(res.stdout.splitlines()[-1])["session"]["send_delay_ms"] == 20
    for bad in ("5x", "ms", "1.5 parsecs"):
        res = run("-r", "127.0.0.1", "-d", bad)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "is not a duration" in res.stderr


def test_the_default_summary_fits_a_screen_and_says_each_figure_once():
    with ReflectorProcess() as refl:
        res = run("-r", f"{refl.host}:{refl.port}", "-c", "20", "-d", "5ms", "-L", "1")
        full = run("-r", f"{refl.host}:{refl.port}", "-c", "20", "-d", "5ms", "-L", "1", "--full")
    assert res.returncode == 0 and full.returncode == 0
    lines = res.stdout.splitlines()
    assert lines[0].startswith("stamp-suite ") and lines[1] == "--- STAMP Statistics ---"  # banner, Rust block
    assert lines[2:8] == [line for line in lines if line.startswith(("Packets ", "Min RTT", "Max RTT", "Avg RTT"))]
    assert lines[2] == "Packets sent: 20" and len(lines) <= 25, res.stdout
    assert res.stdout.count("p99") == 1 and "min / mean / max" not in res.stdout, res.stdout
    assert "TTL" in res.stdout and "--full" in res.stdout
    for section in ("Round-trip delay", "One-way delay", "Delay variation", "Path", "p99.9"):
        assert section in full.stdout
    assert "min / mean / max" not in full.stdout  # in the first lines, not again


def test_a_refusal_is_said_for_its_packet_when_the_icmp_error_comes_not_at_the_timeout():
    res = run("-r", f"127.0.0.1:{_dead_port()}", "-c", "3", "-d", "100ms", "-L", "1s", "-R",
              "--output-format", "json")
    records = [json.loads(line) for line in res.stdout.splitlines()]
    refused = [r for r in records if r.get("kind") == "refused"]
    assert [r["seq"] for r in refused] == [0, 1, 2] and refused[0]["detail"] == "ICMP port unreachable"
    res = run("-r", f"127.0.0.1:{_dead_port()}", "-c", "2", "-d", "100ms", "-L", "1", "-R")
    assert "seq=0 refused (ICMP port unreachable)\nseq=1 refused (ICMP port unreachable)\n" in res.stdout
    assert "lost" not in res.stdout.split("---")[0], res.stdout  # not said twice
    assert res.returncode == 1 and "ICMP port unreachable" in res.stderr


def test_the_reflector_says_why_it_drops_authenticated_packets_while_it_runs(tmp_path):
    with ReflectorProcess("-A", "A", "--hmac-key", KEY1) as refl:
        res = run("-r", f"{refl.host}:{refl.port}", "-c", "2", "-d", "10ms", "-L", "300ms", "-A", "A",
                  "--hmac-key", KEY2)
        assert res.returncode == 1
        line = refl.next_stderr_line("no reply to")
        assert "HMAC does not verify: the sender's key differs from ours" in line and KEY2 not in line
        run("-r", f"{refl.host}:{refl.port}", "-c", "1", "-L", "300ms")
        assert "an open-mode packet, and this reflector runs authenticated mode" in refl.next_stderr_line(
            "no reply to")


def test_the_host_is_an_argument_as_with_ping_and_several_are_measured_at_once():
    with ReflectorProcess() as r4, ReflectorProcess(host="::1") as r6:
        one = run(f"{r4.host}:{r4.port}", "-c", "2", "-d", "5ms")
        assert one.returncode == 0 and "Packets received: 2" in one.stdout, one.stderr
        dead = _dead_port()
        res = run(f"{r4.host}:{r4.port}", "-c", "4", "-d", "20ms", f"[::1]:{r6.port}", f"127.0.0.1:{dead}", "-L", "1")
        lines = res.stdout.splitlines()
        assert lines[0].endswith("sending to 3 reflectors (127.0.0.1:%d, [::1]:%d, 127.0.0.1:%d): 4 packets every "
                                 "20 ms each, open mode" % (r4.port, r6.port, dead)), lines[0]
        assert lines[1].split() == ["target", "sent", "recv", "lost", "loss", "min", "avg", "max", "p99", "jitter"]
        rows = {line.split()[0]: line.split()[1:5] for line in lines[2:5]}
        assert rows == {f"127.0.0.1:{r4.port}": ["4", "4", "0", "0.0%"], f"[::1]:{r6.port}": ["4", "4", "0", "0.0%"],
                        f"127.0.0.1:{dead}": ["4", "0", "4", "100.0%"]}, res.stdout
        assert res.returncode == 1 and f"no replies from 127.0.0.1:{dead}: ICMP port unreachable" in res.stderr
        res = run("-r", f"{r4.host}:{r4.port}", f"[::1]:{r6.port}", "-c", "2", "-d", "5ms", "-R",
                  "--output-format", "json")
        objs = [json.loads(line) for line in res.stdout.splitlines()]
        targets = {o["target"] for o in objs if o["type"] == "packet"}
        assert res.returncode == 0 and targets == {f"127.0.0.1:{r4.port}", f"[::1]:{r6.port}"}
        assert sorted(o["session"]["remote"] for o in objs if o["type"] == "summary") == sorted(targets)


def test_what_the_hosts_cannot_share_and_a_host_for_a_reflector_are_refused_in_one_line():
    for args, needle in ((["127.0.0.1", "::1", "-o", "5000"], "--local-port"),
                         (["127.0.0.1", "::1", "--output-format", "csv"], "--output-format csv"),
                         (["-i", "127.0.0.1"], "a reflector (-i) measures no HOST"),
                         (["-r", "127.0.0.1:8620", "-p", "862"], "the reflector's port is given twice")):
        res = run(*args)
        assert res.returncode == 2 and needle in res.stderr and res.stderr.count("\n") == 1, (args, res.stderr)


def test_help_is_by_role_and_fits_a_screen():
    sender, reflector, everything = run("--help"), run("-i", "--help"), run("--help", "all")
    assert sender.returncode == 0 and len(sender.stdout.splitlines()) < 80
    assert "--stateful-reflector" not in sender.stdout and "--count" in sender.stdout
    assert len(reflector.stdout.splitlines()) < 80 and "--stateful-reflector" in reflector.stdout
    assert "--count" not in reflector.stdout
    assert "--cos" in run("--help", "tlvs").stdout and "--cos" not in sender.stdout
    for flag in ("--count", "--stateful-reflector", "--cos", "--print-man-page", "--metrics"):
        assert flag in everything.stdout
    bad = run("--help", "colours")
    assert bad.returncode == 2 and "the topics are sender, reflector, tlvs, all" in bad.stderr


def test_an_unwritable_plot_path_is_refused_before_the_first_packet(tmp_path):
    for out in (str(tmp_path / "no" / "such" / "dir" / "x.png"), str(tmp_path)):
        res = run("-r", "127.0.0.1:9", "-c", "50", "-d", "1s", "--plot-output", out, timeout=10)  # 50 s if it ran
        assert res.returncode == 2 and res.stderr.startswith(f"stamp-suite: error: cannot write {out}"), res.stderr
        assert "sending to" not in res.stdout


def test_local_addresses_take_names_and_banners_say_where_exports_and_how_long():
    with ReflectorProcess("--metrics", "--metrics-addr", "127.0.0.1:0", host="localhost") as refl:
        assert refl.host in ("127.0.0.1", "::1") and "Prometheus metrics at http://127.0.0.1:0/metrics" in refl.banner
    res = run("-r", "127.0.0.1:9", "-S", "localhost", "-4", "-c", "30", "-d", "1s", "-w", "300ms", "-L", "100ms")
    assert "from 127.0.0.1:" in res.stdout.splitlines()[0] and "for 0.3 s" in res.stdout
    with subprocess.Popen([*CMD, "-r", "127.0.0.1:9"], stdout=subprocess.PIPE, text=True, env=ENV) as proc:
        banner = proc.stdout.readline()  # the defaults: a quarter of an hour, said at once
        proc.terminate()
    assert "1000 packets every 1000 ms (about 16 min 44 s)" in banner, banner
    res = run("-i", "-S", "no-such-host.invalid")
    assert res.returncode == 2 and "--local-addr: cannot resolve 'no-such-host.invalid'" in res.stderr


def test_verbose_packet_lines_name_the_registry_codes():
    res = run("--self-test", "-c", "1", "-R", "-v", "--timestamp-info", "--follow-up-telemetry")
    (line,) = [ln for ln in res.stdout.splitlines() if ln.startswith("seq=")]
    assert "timestamp_info=sync_src_in:" in line and ("timestamp_in:sw_local" in line or "timestamp_in:control_plane"
                                                      in line)
    assert "None" not in line and "tx:" in line


def test_review_of_the_habits_what_a_trial_found():
    """A new user's trial of this round's changes: each finding, as it now behaves."""
    with ReflectorProcess() as refl:
        target = f"{refl.host}:{refl.port}"
        # a name with no address among several: said, the others measured, exit 2 (fping's)
        res = run(target, "no-such-host.invalid", "-c", "2", "-d", "5ms", "-L", "1")
        assert res.returncode == 2 and "cannot resolve 'no-such-host.invalid'" in res.stderr
        assert f"{target} " in res.stdout and "Packets" not in res.stdout
        # a summary with a target each in JSON; several --full summaries each named
        res = run(target, "[::1]:9", "-c", "1", "-L", "300ms", "--output-format", "json")
        assert sorted(json.loads(line)["target"] for line in res.stdout.splitlines()) == sorted(["[::1]:9", target])
        res = run(target, "[::1]:9", "-c", "1", "-L", "300ms", "--full")
        assert f"\n{target}:\n--- STAMP Statistics ---" in res.stdout and "\n[::1]:9:\n" in res.stdout
        res = run(target, f"127.0.0.1:{refl.port}", "-c", "2")
        assert res.returncode == 2 and "is given twice" in res.stderr
        res = run(target, "-c", "50", "--window", "4", "-d", "10ms")
        assert res.returncode == 2 and "--send-delay has no use with --window" in res.stderr
    for args, needle in ((["-r", "127.0.0.1", "--plot-html", "x.html"], "--plot-html needs --plot-output"),
                         (["-i", "--session-timeout", "1.5s"], "not a whole number of seconds"),
                         (["-r", "127.0.0.1", "-d", "-1ms"], "negative values are not accepted")):
        res = run(*args)
        assert res.returncode == 2 and needle in res.stderr and res.stderr.count("\n") == 1, (args, res.stderr)
    assert "-R" in run("-i", "--help").stdout  # the reflector's -R is in its help
