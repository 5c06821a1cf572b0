"""Faults: the reflector going away and coming back, ICMP errors, bursts, signals, bad outputs."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from helpers import CMD, ENV, ReflectorProcess, json_lines, run, send


def test_sender_keeps_measuring_when_the_reflector_stops_and_returns():
    refl = ReflectorProcess()
    port = refl.port
    sender = subprocess.Popen([*CMD, "-r", "127.0.0.1", "-p", str(port), "-c", "150", "-d", "20", "-L", "0.5",
                               "--output-format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=ENV)
    time.sleep(0.8)
    refl.stop()
    time.sleep(0.8)
    with ReflectorProcess("-o", str(port)) as again:
        assert again.port == port
        out, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    _, summary = json_lines(out)
    p = summary["packets"]
    assert p["sent"] == 150
    assert 20 < p["received"] < 150 and p["lost"] == 150 - p["received"]
    assert p["refused"] > 0  # ICMP port unreachable while nobody listened


def test_reflector_survives_a_burst_beyond_capacity_and_recovers():
    with ReflectorProcess() as refl:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        pkt = bytes.fromhex("00000001e93c7f00800000000001") + bytes(30)
        for _ in range(60_000):  # as fast as Python can send: beyond what it reflects
            try:
                s.sendto(pkt, (refl.host, refl.port))
            except OSError:
                pass
        s.close()
        time.sleep(0.5)
        res = send(refl, count=5)
        assert res.returncode == 0 and "Packets received: 5" in res.stdout
        code, out, _ = refl.stop()
    assert code == 0


def test_sigint_and_sigterm_print_statistics():
    for sig in (signal.SIGINT, signal.SIGTERM):
        with ReflectorProcess() as refl:
            proc = subprocess.Popen([*CMD, "-r", refl.host, "-p", str(refl.port), "-c", "0", "-d", "10"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
            assert "sending to" in proc.stdout.readline()  # started: a signal before it ends the start (130)
            time.sleep(0.5)
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=10)
            assert proc.returncode == 0, err
            assert "Packets sent:" in out and "Traceback" not in err
            refl.proc.send_signal(sig)
            out, err = refl.proc.communicate(timeout=10)
            assert refl.proc.returncode == 0 and "Packets received:" in out and "Traceback" not in err


def test_closed_stdout_is_one_line():
    with ReflectorProcess() as refl:
        r, w = os.pipe()
        os.close(r)  # nobody will ever read
        proc = subprocess.Popen([*CMD, "-r", refl.host, "-p", str(refl.port), "-c", "5", "-d", "5", "-R",
                                 "--output-format", "csv"], stdout=w, stderr=subprocess.PIPE, text=True, env=ENV)
        os.close(w)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and err.strip().splitlines()[-1] == "stamp-suite: output closed (broken pipe); stopped"
    assert "Traceback" not in err


@pytest.mark.parametrize("flags", [["--print-completion", "bash"], ["--print-man-page"], ["-V", "--verbose"]])
def test_a_text_read_only_in_part_is_no_error(flags):
    """stamp-suite --print-completion bash | head -2: the reader stops early, and that is fine."""
    r, w = os.pipe()
    os.close(r)
    proc = subprocess.Popen([*CMD, *flags], stdout=w, stderr=subprocess.PIPE, text=True, env=ENV)
    os.close(w)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and err == ""


def test_full_disk_is_one_line():
    with ReflectorProcess() as refl, open("/dev/full", "w") as full:
        proc = subprocess.run([*CMD, "-r", refl.host, "-p", str(refl.port), "-c", "3", "-d", "5",
                               "--output-format", "json", "-R"], stdout=full, stderr=subprocess.PIPE, text=True,
                              env=ENV, timeout=30)
    assert proc.returncode == 1 and "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_ipv6_refused_and_unreachable_are_counted_not_fatal():
    res = run("-r", "::1", "-p", "9", "-c", "3", "-d", "5", "-L", "0.3")
    assert res.returncode == 1 and "ICMP port unreachable" in res.stderr


def test_a_stop_signal_while_starting_ends_the_program_at_once():
    """issue 34: start-up may block (a name to resolve, a file to open) where a stop flag would
    wait; until a command has started, SIGTERM and SIGINT end the process with one line."""
    code = ("from stamp_suite.net.signals import StopRequest\n"
            "import time\n"
            "StopRequest(starting=True).install()\n"
            "print('starting', flush=True)\n"
            "time.sleep(30)  # blocked, as in a resolver call\n")
    for sig in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=ENV)
        assert proc.stdout.readline() == "starting\n"
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=5)
        assert time.monotonic() - t0 < 1 and proc.returncode == 128 + sig
        assert err == "stamp-suite: stopped while starting\n"


def test_a_fifo_for_a_key_file_is_one_line_not_a_hang(tmp_path):
    fifo = tmp_path / "k"
    os.mkfifo(fifo, 0o600)
    res = run("-i", "-A", "A", "--hmac-key-file", str(fifo), timeout=10)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "is not a regular file" in res.stderr


def test_a_fifo_or_a_huge_file_for_a_settings_file_is_one_line_not_a_hang(tmp_path):
    fifo = tmp_path / "settings.toml"
    os.mkfifo(fifo, 0o600)
    for args in (["--config", str(fifo)], ["monitor", "--config", str(fifo)]):
        res = run(*args, timeout=10)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not a regular file" in res.stderr, res.stderr
    huge = tmp_path / "huge.toml"
    with open(huge, "wb") as f:
        f.truncate((64 << 20) + 1)  # sparse: no disk spent
    res = run("--config", str(huge), timeout=10)
    assert res.returncode == 2 and "too large (at most 67,108,864)" in res.stderr
