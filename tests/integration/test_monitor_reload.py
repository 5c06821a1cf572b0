"""The monitor on the one sender driver: reloads as transactions, windows with the sent DSCP,
the sender's histograms, Access Report retransmissions (issue: one Session-Sender)."""

import json
import signal
import socket
import subprocess
import time
from functools import partial

from helpers import (
    CMD,
    ENV,
    HttpSdEndpoint,
    SrvServer,
    by_label,
    check_report,
    free_tcp_port,
    scrape,
    scrape_when_serving,
    wait_for,
)

from stamp_suite.api import start_reflector


def _config(path, reflector, *, windows="[1]", jsonl=None, mport=None, extra="", name="a"):
    host, port = reflector.address
    lines = ["[monitor]", f"windows = {windows}"]
    if jsonl:
        lines.append(f'jsonl = "{jsonl}"')
    if mport:
        lines.append(f'metrics_addr = "127.0.0.1:{mport}"')
    lines += ["[defaults]", "send_delay = 100", "timeout = 0.3", 'metrics = ["all"]',
              "[[targets]]", f'name = "{name}"', f'remote_addr = "{host}"', f"remote_port = {port}", extra]
    path.write_text("\n".join(lines) + "\n")


def _windows(path):
    if not path.exists():
        return []
    return [check_report(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def test_reload_applies_windows_jsonl_and_metrics_addr_and_refuses_a_typo(tmp_path):
    cfg, first, second = tmp_path / "t.toml", tmp_path / "w1.jsonl", tmp_path / "w2.jsonl"
    m1, m2 = free_tcp_port(), free_tcp_port()
    with start_reflector() as refl:
        _config(cfg, refl, jsonl=first, mport=m1, extra="dscp = 46\ncos = true")
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            assert wait_for(lambda: len(_windows(first)) >= 2, 10)
            line = _windows(first)[-1]
            assert line["dscp_ecn"]["sent"] == {"dscp": 46, "ecn": 0} and line["dscp_ecn"]["forward_remarked"] == 0
            assert line["ttl"]["at_reflector"] and line["residence_ns"]["count"]  # a line's window is in full
            m = scrape(m1)
            assert any(k[0] == "stamp_sender_forward_delay_seconds_bucket" for k in m)
            # a typo: refused as a whole, one line naming the key, the target goes on
            cfg.write_text(cfg.read_text().replace("windows = [1]", "windows = 1"))
            mon.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            before = len(_windows(first))
            assert wait_for(lambda: len(_windows(first)) > before, 5)
            # windows, jsonl and metrics_addr all change at once, and are applied
            _config(cfg, refl, windows="[2]", jsonl=second, mport=m2)
            mon.send_signal(signal.SIGHUP)
            assert wait_for(lambda: any(w["window_s"] == 2 for w in _windows(second)), 10)
            assert wait_for(lambda: ("stamp_monitor_window_packets_sent", (("target", "a"), ("window", "2s")))
                            in scrape(m2), 5)
        finally:
            mon.send_signal(signal.SIGTERM)
            _, err = mon.communicate(timeout=10)
    assert mon.returncode == 0
    refused = [ln for ln in err.splitlines() if "reload failed" in ln]
    assert len(refused) == 1 and "[monitor] windows: expected a list of whole seconds" in refused[0]
    assert "0 added, 0 removed, 1 changed, 1 running; windows 2s; jsonl " in err  # what else changed, said
    assert f"; metrics 127.0.0.1:{m2}" in err


def test_a_reload_that_cannot_start_a_target_changes_nothing(tmp_path):
    from stamp_suite.assembly import TargetSessions
    from stamp_suite.config import ConfigError
    from stamp_suite.monitor import Monitor
    from stamp_suite.net.signals import StopRequest
    cfg = tmp_path / "t.toml"
    with start_reflector() as refl:
        _config(cfg, refl)
        mon = Monitor(str(cfg), StopRequest(), TargetSessions())
        mon.start()
        try:
            running = mon.targets["a"]
            cfg.write_text(cfg.read_text() + '[[targets]]\nname = "b"\nremote_addr = "127.0.0.1"\n'
                                              'auth_mode = "A"\nhmac_key_file = "/nonexistent/key"\n')
            try:
                mon.apply(mon._load())
            except ConfigError as exc:
                assert "cannot read key file /nonexistent/key" in str(exc)
            else:
                raise AssertionError("the reload should have been refused")
            assert list(mon.targets) == ["a"] and mon.targets["a"] is running
        finally:
            mon.close()


def test_the_monitor_retransmits_access_reports(tmp_path):
    cfg = tmp_path / "t.toml"
    mport = free_tcp_port()

    def sent():
        try:
            return scrape(mport).get(("stamp_sender_packets_sent_total", (("target", "t8"),)), 0)
        except OSError:
            return 0
    with start_reflector(tlv_mode="ignore") as refl:  # echoes the TLV unprocessed: never an answer
        # "t8": a name whose phase in the 20 s interval is small (0.4 s), so the first send is soon
        _config(cfg, refl, mport=mport, name="t8",
                extra="send_delay = 20000\naccess_report = 1\naccess_report_timer = 0.2")
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            # one scheduled send in the first 20 s; then a retransmission every 0.2 s, 4 at most
            assert wait_for(lambda: sent() == 5, 25)
            time.sleep(0.6)
            assert sent() == 5
        finally:
            mon.send_signal(signal.SIGTERM)
            mon.communicate(timeout=10)


def test_a_dead_target_is_down_not_lossy_and_has_no_jitter(tmp_path):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cfg = tmp_path / "t.toml"
    mport = free_tcp_port()
    with start_reflector() as refl:
        _config(cfg, refl, mport=mport)
        cfg.write_text(cfg.read_text() + f'[[targets]]\nname = "dead"\nremote_addr = "localhost:{dead}"\n')
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            def up(name):
                try:
                    return scrape(mport).get(("stamp_monitor_target_up", (("target", name),)))
                except OSError:  # not serving yet
                    return None
            assert wait_for(lambda: up("a") == 1 and up("dead") == 0, 10)
            m = scrape(mport)
            assert ("stamp_sender_jitter_seconds", (("target", "dead"),)) not in m
            assert ("stamp_sender_jitter_seconds", (("target", "a"),)) in m
            assert m[("stamp_sender_packets_lost_total", (("target", "dead"),))] > 0
        finally:
            mon.send_signal(signal.SIGTERM)
            mon.communicate(timeout=10)


def test_window_lines_validate_and_the_first_is_partial(tmp_path):
    cfg, lines = tmp_path / "t.toml", tmp_path / "w.jsonl"
    with start_reflector() as refl:
        _config(cfg, refl, jsonl=lines)
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            assert wait_for(lambda: len(_windows(lines)) >= 2, 10)
        finally:
            mon.send_signal(signal.SIGTERM)
            mon.communicate(timeout=10)
    windows = _windows(lines)  # each checked against the schema as it is read
    assert windows[0]["partial"] and not windows[1]["partial"]


def _started(mon, stderr_lines):
    """Wait for the monitor's first line (its targets are running): changes made after it are
    changes to the running configuration."""
    stderr_lines.append(mon.stderr.readline())
    assert " 1 target, " in stderr_lines[-1], stderr_lines


def _reload_until(mon, stderr_lines, needle, timeout=5.0):
    """SIGHUP, then wait until a stderr line contains ``needle``; that line."""
    mon.send_signal(signal.SIGHUP)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = mon.stderr.readline()
        if not line:  # the monitor ended
            break
        stderr_lines.append(line)
        if needle in line:
            return line
    raise AssertionError(f"no {needle!r} in {stderr_lines[-5:]} (exit {mon.poll()})")


def test_a_rotated_key_restarts_its_target_and_a_bad_number_changes_nothing(tmp_path):
    """Key rotation needs only a reload; inf where a number belongs is refused in one line and
    the monitor goes on (review: an OverflowError used to end it)."""
    key, cfg = tmp_path / "k", tmp_path / "t.toml"
    key.write_text("00" * 16)
    key.chmod(0o600)
    lines = []
    with start_reflector(auth_mode="A", hmac_key_file=str(key)) as refl:
        _config(cfg, refl, extra=f'auth_mode = "A"\nhmac_key_file = "{key}"')
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            _started(mon, lines)
            key.write_text("11" * 16)  # the file now holds another key: the target must pick it up
            assert "1 changed" in _reload_until(mon, lines, "reloaded")
            assert "0 changed" in _reload_until(mon, lines, "reloaded")  # same key again: nothing to do
            cfg.write_text(cfg.read_text() + "timeout = inf\n")
            failed = _reload_until(mon, lines, "reload failed")
            assert "key timeout must be a finite number" in failed and "target 'a'" in failed
            assert mon.poll() is None  # still running
        finally:
            mon.send_signal(signal.SIGTERM)
            mon.communicate(timeout=10)
    assert mon.returncode == 0


def test_targets_refuse_run_settings_and_a_defaults_typo_is_blamed_on_defaults(tmp_path):
    cfg = tmp_path / "t.toml"
    with start_reflector() as refl:
        _config(cfg, refl, extra="window = 5")  # a slip for [monitor] windows: no capacity test at a reflector
        res = subprocess.run([*CMD, "monitor", "--config", str(cfg)], capture_output=True, text=True, env=ENV)
        assert res.returncode == 2 and "'window' is not a target setting" in res.stderr
        _config(cfg, refl)
        cfg.write_text(cfg.read_text().replace("send_delay = 100", "send_dealy = 100"))
        res = subprocess.run([*CMD, "monitor", "--config", str(cfg)], capture_output=True, text=True, env=ENV)
        assert res.returncode == 2 and "[defaults]: 'send_dealy' is not a target setting" in res.stderr
        assert res.stderr.count("\n") == 1


def test_a_full_disk_drops_window_lines_but_not_the_measurements(tmp_path):
    cfg, mport = tmp_path / "t.toml", free_tcp_port()
    with start_reflector() as refl:
        _config(cfg, refl, jsonl="/dev/full", mport=mport)
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            assert wait_for(lambda: ("stamp_monitor_window_packets_sent", (("target", "a"), ("window", "1s")))
                            in _scrape_or_empty(mport), 10)
            time.sleep(1.2)  # another window, another failed write
            assert mon.poll() is None
        finally:
            mon.send_signal(signal.SIGTERM)
            _, err = mon.communicate(timeout=10)
    assert mon.returncode == 0 and err.count("jsonl /dev/full: No space left on device") == 1


def test_a_target_with_a_fixed_local_port_can_be_changed(tmp_path):
    cfg, port = tmp_path / "t.toml", free_tcp_port()  # a free TCP port number is as good a UDP one here
    lines = []
    with start_reflector() as refl:
        _config(cfg, refl, extra=f"local_port = {port}")
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            _started(mon, lines)
            cfg.write_text(cfg.read_text().replace("send_delay = 100", "send_delay = 50"))
            assert "1 changed" in _reload_until(mon, lines, "reload")
        finally:
            mon.send_signal(signal.SIGTERM)
            mon.communicate(timeout=10)
    assert mon.returncode == 0


def _scrape_or_empty(port):
    try:
        return scrape(port)
    except OSError:
        return {}


def test_watch_reloads_a_file_replaced_as_a_configmap_is_without_a_signal(tmp_path):
    """--watch (issue 33): Kubernetes updates a ConfigMap volume by pointing a link at a new
    file; the monitor sees the change within its check (2 s) and reloads, no SIGHUP."""
    mport = free_tcp_port()
    with start_reflector() as refl:
        first, second = tmp_path / "v1.toml", tmp_path / "v2.toml"
        _config(first, refl, mport=mport, name="a")
        _config(second, refl, mport=mport, name="b")
        link = tmp_path / "targets.toml"
        link.symlink_to(first)
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(link), "--watch"], stderr=subprocess.PIPE, text=True,
                               env=ENV)
        try:
            assert wait_for(lambda: ("stamp_sender_packets_sent_total", (("target", "a"),)) in _targets(mport), 10)
            tmp = tmp_path / "next"
            tmp.symlink_to(second)
            tmp.replace(link)  # atomically, as the kubelet swaps its ..data link
            assert wait_for(lambda: ("stamp_sender_packets_sent_total", (("target", "b"),)) in _targets(mport), 8)
            assert ("stamp_sender_packets_sent_total", (("target", "a"),)) not in _targets(mport)
        finally:
            mon.send_signal(signal.SIGTERM)
            _, err = mon.communicate(timeout=10)
    assert mon.returncode == 0 and "targets.toml changed: reloading" in err, err


def _targets(mport):
    """The sent counters by target alone (the monitor label dropped)."""
    try:
        m = scrape(mport)
    except OSError:
        return set()
    return {(k[0], tuple(kv for kv in k[1] if kv[0] == "target")) for k in m
            if k[0] == "stamp_sender_packets_sent_total"}


def test_new_labels_keep_a_targets_counters_and_a_file_sd_edit_adds_a_target(tmp_path):
    """A reload that changes only what a target's series show goes on counting (its series
    take the new labels, the old ones are gone); a file_sd file written while running adds
    its target without a signal."""
    cfg, sd, mport = tmp_path / "t.toml", tmp_path / "sd.json", free_tcp_port()
    sd.write_text("[]")
    with start_reflector() as refl:
        def config(site: str) -> None:
            _config(cfg, refl, windows="[1]", mport=mport, extra=f'labels = {{ site = "{site}" }}')
            cfg.write_text(cfg.read_text().replace("[monitor]", '[monitor]\nfile_sd = ["sd.json"]'))
        config("ams")

        def sent(site: str, target: str = "a") -> float | None:
            return scrape_when_serving(mport).get(("stamp_sender_packets_sent_total",
                                                   (("site", site), ("target", target))))
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            assert wait_for(lambda: (sent("ams") or 0) >= 5, 10)
            before = sent("ams")
            config("lon")
            mon.send_signal(signal.SIGHUP)
            assert wait_for(lambda: sent("lon") is not None, 5)
            assert sent("lon") >= before and sent("ams") is None  # counted on, under its new labels
            other = f"127.0.0.1:{refl.address[1]}"
            sd.write_text(json.dumps([{"targets": [other], "labels": {"site": "fra"}}]))
            assert wait_for(lambda: (sent("fra", other) or 0) >= 1, 8)
        finally:
            mon.terminate()
            _, err = mon.communicate(timeout=10)
    assert "reloaded: 0 added, 0 removed, 1 changed, 1 running" in err
    assert "sd.json changed: reloading" in err and "reloaded: 1 added, 0 removed, 0 changed, 2 running" in err, err


def _sent_by_target(mport: int) -> dict[str, float]:
    return by_label(scrape_when_serving(mport), "stamp_sender_packets_sent_total", "target")


def test_an_http_sd_endpoint_adds_and_removes_targets_and_a_failed_answer_keeps_them(tmp_path):
    cfg, mport = tmp_path / "t.toml", free_tcp_port()
    endpoint = HttpSdEndpoint()
    with start_reflector() as r1, start_reflector() as r2:
        a, b = (f"127.0.0.1:{r.address[1]}" for r in (r1, r2))
        endpoint.body = json.dumps([{"targets": [a], "labels": {"site": "ams"}}]).encode()
        cfg.write_text(f'[monitor]\nwindows = [1]\nmetrics_addr = "127.0.0.1:{mport}"\nhttp_sd = "{endpoint.url}"\n'
                       'http_sd_refresh = "1s"\n[defaults]\nsend_delay = 100\ntimeout = 0.3\n')
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env=ENV)
        sent = partial(_sent_by_target, mport)
        try:
            assert wait_for(lambda: sent().get(a, 0) >= 3, 10), sent()  # there from the start
            endpoint.body = json.dumps([{"targets": [b]}]).encode()
            assert wait_for(lambda: set(sent()) == {b}, 5), sent()
            endpoint.status = 503
            time.sleep(2.5)  # two refreshes that fail: b goes on
            before = sent()[b]
            time.sleep(0.5)
            assert set(sent()) == {b} and sent()[b] > before
            failures = scrape(mport)[("stamp_monitor_sd_failures_total", (("source", "http_sd"),))]
            assert failures >= 2
            endpoint.status = 200
            time.sleep(1.5)
        finally:
            mon.terminate()
            _, err = mon.communicate(timeout=10)
            endpoint.close()
    assert err.count("HTTP 503 Service Unavailable; keeping the targets of its last good answer") == 1, err
    assert f"http_sd {endpoint.url} answers again" in err
    assert "gives other targets: reloading" in err and "reloaded: 1 added, 1 removed, 0 changed, 1 running" in err


def test_dns_sd_names_give_targets_looked_up_again_at_their_ttl(tmp_path):
    cfg, mport = tmp_path / "t.toml", free_tcp_port()
    with start_reflector() as r1, start_reflector() as r2:
        srv = SrvServer({"_stamp._udp.example.net.": [("127.0.0.1.", r1.address[1])]}, ttl=1)
        a, b = (f"127.0.0.1:{r.address[1]}" for r in (r1, r2))
        cfg.write_text(f'[monitor]\nwindows = [1]\nmetrics_addr = "127.0.0.1:{mport}"\n'
                       f'dns_sd = ["_stamp._udp.example.net"]\ndns_sd_server = "{srv.address}"\n'
                       '[defaults]\nsend_delay = 100\ntimeout = 0.3\n')
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env=ENV)
        sent = partial(_sent_by_target, mport)
        try:
            assert wait_for(lambda: sent().get(a, 0) >= 3, 10), sent()  # there from the start
            srv.records["_stamp._udp.example.net."] = [("127.0.0.1.", r2.address[1])]
            assert wait_for(lambda: set(sent()) == {b}, 5), sent()  # at the TTL, 1 s
            srv.fail = True
            time.sleep(2)  # a lookup that fails keeps the targets
            assert set(sent()) == {b}
            assert scrape(mport)[("stamp_monitor_sd_failures_total", (("source", "dns_sd"),))] >= 1
        finally:
            mon.terminate()
            _, err = mon.communicate(timeout=10)
            srv.close()
    assert "dns_sd _stamp._udp.example.net gives other targets: reloading" in err, err
    assert err.count("SERVFAIL") == 1 and "keeping the targets of its last good answer" in err, err


def test_a_reload_to_an_http_sd_endpoint_that_never_answers_holds_no_send(tmp_path):
    """The new endpoint is asked on its thread: the targets go on being measured meanwhile."""
    cfg, mport = tmp_path / "t.toml", free_tcp_port()
    with start_reflector() as refl, socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts, never answers
        _config(cfg, refl, mport=mport)
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            key = ("stamp_sender_packets_sent_total", (("target", "a"),))
            assert wait_for(lambda: scrape_when_serving(mport).get(key, 0) >= 3, 10)
            cfg.write_text(cfg.read_text().replace("[monitor]", f'[monitor]\nhttp_sd = "http://127.0.0.1:'
                                                               f'{silent.getsockname()[1]}/sd"'))
            mon.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            before = scrape_when_serving(mport)[key]
            time.sleep(1.5)  # 100 ms apart: about 15 more, while the endpoint is silent
            m = scrape_when_serving(mport)
            # A reload held on the endpoint would skip a send every 100 ms for seconds; one or two
            # skipped (a send over 100 ms late) are what a loaded CI machine's scheduler gives
            # a reload (seen once in seven fresh-clone runs).
            assert m[key] - before >= 10 and m[("stamp_monitor_sends_skipped_total", ())] <= 2
        finally:
            mon.terminate()
            _, err = mon.communicate(timeout=10)
    assert "reloaded: 0 added, 0 removed, 0 changed, 1 running" in err, err


def test_replies_dropped_unread_by_the_monitors_host_are_counted_said_and_kept_past_a_reload(tmp_path):
    """What the driver reads of a target's socket (its count of datagrams dropped unread, faked
    here: a socket at a packet a second does not overflow) adds up over the targets into
    stamp_monitor_dropped_unread_total and the overload line, which names the target; the last
    count is read when a target goes, and the total does not fall (carried, as the skipped
    sends' is)."""
    import io

    from stamp_suite.assembly import TargetSessions
    from stamp_suite.monitor import Monitor
    from stamp_suite.net.signals import StopRequest
    cfg = tmp_path / "t.toml"
    log = io.StringIO()
    with start_reflector() as refl:
        _config(cfg, refl)
        mon = Monitor(str(cfg), StopRequest(), TargetSessions(), log=log)
        mon.start()
        try:
            endpoint = mon.targets["a"].session.endpoint
            endpoint.dropped_unread = lambda: 7
            mon.driver.read_dropped_unread(mon.targets["a"].session)  # as when its replies are read
            assert mon.dropped_unread() == 7
            mon._check_overload()
            mon._check_overload()  # nothing new: said once
            said = [line for line in log.getvalue().splitlines() if "before it read them" in line]
            assert len(said) == 1, said
            assert said[0].endswith("overloaded: 7 replies dropped by this host before it read them in the last 60 s "
                                    "(full socket receive buffers; most for a 7): counted lost for their targets, "
                                    "though the paths did not lose them")
            endpoint.dropped_unread = lambda: 9  # two more before it goes: read as it is removed
            _config(cfg, refl, name="b")
            mon.apply(mon._load())
            assert list(mon.targets) == ["b"] and mon.dropped_unread() == 9
        finally:
            mon.close()
