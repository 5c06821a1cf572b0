"""Issue 29 on the installed program: durations with units, a summary that fits a screen and
says each figure once, refusals said per packet when they come, and a reflector that says
why it does not answer authenticated packets."""

from __future__ import annotations

import json
import socket

from helpers import ReflectorProcess, run

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
    res = run("-r", f"127.0.0.1:{_dead_port()}", "-c", "3", "-d", "100ms", "-L", "5s", "-R",
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
