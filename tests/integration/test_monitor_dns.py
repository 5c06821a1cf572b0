"""The monitor starts whatever the DNS says (issue 29 item 6): a target whose name has no
address is down (stamp_monitor_target_up 0, the resolver's error said once), looked up again
with backoff, and measured once it resolves; the others are measured all along."""

import io
import re
import signal
import subprocess
import threading

from helpers import CMD, ENV, free_tcp_port, scrape, wait_for

from stamp_suite.api import start_reflector
from stamp_suite.assembly import TargetSessions
from stamp_suite.monitor import Monitor
from stamp_suite.monitor.unresolved import RetrySchedule
from stamp_suite.net.resolve import NameNotResolved
from stamp_suite.net.signals import StopRequest

NOWHERE = "no-such-host.invalid"  # .invalid never resolves (RFC 6761): no packet leaves for it
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d stamp-suite monitor: ")
NO_JOURNAL = {k: v for k, v in ENV.items() if k != "JOURNAL_STREAM"}


def _config(path, targets, mport=None):
    lines = ["[monitor]", "windows = [1]"] + ([f'metrics_addr = "127.0.0.1:{mport}"'] if mport else [])
    lines += ["[defaults]", "send_delay = 100", "timeout = 0.3"]
    for name, (host, port) in targets.items():
        lines += ["[[targets]]", f'name = "{name}"', f'remote_addr = "{host}"', f"remote_port = {port}"]
    path.write_text("\n".join(lines) + "\n")


def _up(mport):
    try:
        m = scrape(mport)
    except OSError:
        return {}
    return {dict(labels)["target"]: v for (name, labels), v in m.items() if name == "stamp_monitor_target_up"}


def _reload(mon):
    """SIGHUP; the stderr lines up to the one that says the reload is done."""
    mon.send_signal(signal.SIGHUP)
    lines = [mon.stderr.readline()]
    while "reloaded" not in lines[-1]:
        assert lines[-1], "the monitor ended"
        lines.append(mon.stderr.readline())
    return lines


def test_an_unresolvable_target_is_down_and_the_others_are_measured(tmp_path):
    cfg, mport = tmp_path / "t.toml", free_tcp_port()
    with start_reflector() as refl:
        targets = {"good": refl.address, "bad": (NOWHERE, 862)}
        _config(cfg, targets, mport)
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True,
                               env=NO_JOURNAL)
        try:
            assert wait_for(lambda: _up(mport) == {"good": 1, "bad": 0}, 8), _up(mport)
            # a reload that adds another such target: down too, the running ones go on
            targets["worse"] = (f"also-{NOWHERE}", 862)
            _config(cfg, targets, mport)
            before = _reload(mon)
            assert "1 added, 0 removed, 0 changed, 1 running, 2 not resolved yet" in before[-1], before
            assert wait_for(lambda: _up(mport) == {"good": 1, "bad": 0, "worse": 0}, 5), _up(mport)
            m = scrape(mport)  # the monitor's own health says it too
            assert m[("stamp_monitor_unresolved_targets", ())] == 2
            assert m[("stamp_monitor_reloads_total", (("result", "applied"),))] == 1
            assert m[("stamp_monitor_reloads_total", (("result", "failed"),))] == 0
        finally:
            mon.send_signal(signal.SIGTERM)
            _, err = mon.communicate(timeout=10)
    assert mon.returncode == 0
    lines = before + err.splitlines()
    assert all(STAMP.match(line) for line in lines), lines  # every line starts with its time
    said = [line for line in lines if NOWHERE in line]
    assert len(said) == 2, said  # each name once
    assert "target 'bad' is down: cannot resolve 'no-such-host.invalid': " in said[0]
    assert "trying again in 5 s" in said[0]
    assert "target 'worse' is down: cannot resolve 'also-no-such-host.invalid': " in said[1]


def test_under_the_journal_lines_have_no_time_of_their_own(tmp_path):
    cfg = tmp_path / "t.toml"
    _config(cfg, {"bad": (NOWHERE, 862)})  # nothing to measure: it starts, and says so
    mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True,
                           env={**ENV, "JOURNAL_STREAM": "8:12345"})
    try:
        first, second = mon.stderr.readline(), mon.stderr.readline()
    finally:
        mon.send_signal(signal.SIGTERM)
        mon.communicate(timeout=10)
    assert first.startswith("stamp-suite monitor: target 'bad' is down: cannot resolve "), first
    assert second.startswith("stamp-suite monitor: ") and ": 1 target (1 not resolved yet), windows 1s" in second


def test_a_setting_that_can_never_work_still_stops_the_start(tmp_path):
    """Only a name without an address waits; an address of the wrong family is an error."""
    cfg = tmp_path / "t.toml"
    _config(cfg, {"v6": ("::1", 862)})
    cfg.write_text(cfg.read_text() + "force_ipv4 = true\n")
    run = subprocess.run([*CMD, "monitor", "--config", str(cfg)], capture_output=True, text=True, env=ENV,
                         timeout=10)
    assert run.returncode == 2
    assert run.stderr == ("stamp-suite: error: target 'v6': ::1 is an IPv6 address, but IPv4 is asked for "
                          "(-4, or a --local-addr of that family)\n")


def test_a_name_that_resolves_later_is_measured_from_then_on(tmp_path):
    """The resolver fails at the start and at the first retry, then answers: the target
    starts, is said once to be down, once to resolve and once to be up, and is measured."""
    looked_up = []

    def resolver(host, port, family):
        looked_up.append(host)
        if len(looked_up) < 3:
            raise NameNotResolved(f"cannot resolve {host!r}: Temporary failure in name resolution")
        return "127.0.0.1", port

    cfg, log, stop = tmp_path / "t.toml", io.StringIO(), StopRequest()
    with start_reflector() as refl:
        _config(cfg, {"later": ("later.example", refl.address[1])})
        mon = Monitor(str(cfg), stop, TargetSessions(resolver), log=log, retry=RetrySchedule(0.05, 0.2))
        mon.start()
        loop = threading.Thread(target=mon.run)
        try:
            assert list(mon.targets) == [] and dict(mon.targets_up()) == {"later": False}
            loop.start()
            assert wait_for(lambda: dict(mon.targets_up()) == {"later": True}, 5)  # its first window answered
        finally:
            stop.set()
            if loop.is_alive():
                loop.join(5)
            mon.close()
    assert looked_up == ["later.example"] * 3
    assert mon.targets["later"].destination == ("127.0.0.1", refl.address[1])
    lines = log.getvalue().splitlines()
    down, resolved, up, *rest = [line for line in lines if "later" in line]
    assert down == ("stamp-suite monitor: target 'later' is down: cannot resolve 'later.example': Temporary failure "
                    "in name resolution; trying again in 0.05 s, then less and less often (every 0.2 s at most)")
    assert resolved == f"stamp-suite monitor: target 'later' resolves now, to 127.0.0.1:{refl.address[1]}: measuring it"
    assert up.startswith("stamp-suite monitor: target 'later' is up again: ") and not rest, lines


def test_at_a_reload_a_name_without_an_address_keeps_its_target_running_unless_its_settings_changed(tmp_path):
    class DnsDown(TargetSessions):
        """Names resolve at the start; at the reload the resolver fails."""

        def still_at(self, s, destination):
            raise NameNotResolved(f"cannot resolve {s.sender.remote()[0]!r}: Temporary failure in name resolution")

    def resolver(host, port, family):
        if host == "moved.example":
            raise NameNotResolved(f"cannot resolve {host!r}: Name or service not known")
        return "127.0.0.1", port

    cfg, log = tmp_path / "t.toml", io.StringIO()
    with start_reflector() as refl:
        port = refl.address[1]
        _config(cfg, {"a": ("a.example", port), "b": ("b.example", port)})
        mon = Monitor(str(cfg), StopRequest(), DnsDown(resolver), log=log)
        mon.start()
        try:
            running = dict(mon.targets)
            assert mon.apply(mon._load()) == ([], [], [])  # nothing changed: both go on where they are
            assert mon.targets == running and not mon.unresolved
            _config(cfg, {"a": ("a.example", port), "b": ("moved.example", port)})
            assert mon.apply(mon._load()) == ([], [], ["b"])  # b's new name has no address: down, waiting
            assert list(mon.targets) == ["a"] and list(mon.unresolved) == ["b"]
            assert dict(mon.targets_up()) == {"b": False}
        finally:
            mon.close()
    lines = log.getvalue().splitlines()
    assert lines[0] == (f"stamp-suite monitor: target 'a' goes on at 127.0.0.1:{port}: cannot resolve 'a.example': "
                        "Temporary failure in name resolution; so does 1 more target whose name has no address now")
    assert lines[1].startswith("stamp-suite monitor: target 'b' is down: cannot resolve 'moved.example': Name or "
                               "service not known; trying again in 5 s")
