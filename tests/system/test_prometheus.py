"""A real Prometheus (Debian's server and promtool) reads what stamp-suite serves: the example
configuration and alert rules in deploy/ as they are, scraping a live reflector and monitor."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from ci import require_tool
from helpers import CMD, ENV, ReflectorProcess, free_tcp_port, send, wait_for
from relay import Impairment, ImpairmentRelay

from stamp_suite.api import start_reflector

pytestmark = pytest.mark.system

DEPLOY = Path(__file__).parents[2] / "deploy"


def test_alert_rules_pass_promtool_check_and_unit_tests():
    require_tool("promtool")
    check = subprocess.run(["promtool", "check", "rules", "stamp-alerts.yml"], cwd=DEPLOY, capture_output=True,
                           text=True)
    assert check.returncode == 0 and "SUCCESS: 10 rules found" in check.stdout, check.stdout + check.stderr
    tests = subprocess.run(["promtool", "test", "rules", "stamp-alerts.test.yml"], cwd=DEPLOY, capture_output=True,
                           text=True)
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr


def test_example_configuration_passes_promtool():
    require_tool("promtool")
    res = subprocess.run(["promtool", "check", "config", "prometheus.example.yml"], cwd=DEPLOY,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _dead_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """Debian's prometheus on a loopback port, with a configuration made from deploy/'s example
    (its targets pointed at the test's processes, scraped every second)."""

    def __init__(self, tmp: Path, config: str) -> None:
        shutil.copy(DEPLOY / "stamp-alerts.yml", tmp / "stamp-alerts.yml")
        (tmp / "prometheus.yml").write_text(config)
        self.address = f"127.0.0.1:{free_tcp_port()}"
        self.proc = subprocess.Popen(["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address={self.address}",
                                      "--log.level=warn"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)

    def api(self, path: str, **params: str) -> dict:
        url = f"http://{self.address}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[str, float]:
        """Instant vector: the value per series, keyed by its labels' text."""
        try:
            result = self.api("query", query=expr)["result"]
        except OSError:  # not listening yet
            return {}
        return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}

    @classmethod
    def from_example(cls, tmp: Path, reflector: str, monitor: str) -> Prometheus:
        """deploy/prometheus.example.yml with the test's addresses, scraping every second."""
        config = (DEPLOY / "prometheus.example.yml").read_text()
        assert '"127.0.0.1:9862"' in config and '"127.0.0.1:9863"' in config  # the units' addresses
        return cls(tmp, config.replace('"127.0.0.1:9862"', f'"{reflector}"').replace('"127.0.0.1:9863"', f'"{monitor}"')
                   .replace("scrape_interval: 15s", "scrape_interval: 1s")
                   .replace("evaluation_interval: 15s", "evaluation_interval: 1s"))

    def stop(self) -> str:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=15)
        return out


def test_prometheus_scrapes_reflector_and_monitor_with_the_values_the_traffic_made(tmp_path):
    require_tool("prometheus")
    reflector_metrics, monitor_metrics = f"127.0.0.1:{free_tcp_port()}", f"127.0.0.1:{free_tcp_port()}"
    drops = {seq for seq in range(10_000) if seq % 4 == 0}  # 25 % forward loss for "lossy"
    with ReflectorProcess("--metrics", "--metrics-addr", reflector_metrics) as refl, \
            start_reflector() as healthy, start_reflector() as behind, \
            ImpairmentRelay(behind.address, forward=Impairment(drop=drops)) as relay:
        assert send(refl, count=20).returncode == 0  # the reflector's traffic: 20 packets, all answered
        cfg = tmp_path / "targets.toml"
        cfg.write_text(f'[monitor]\nwindows = [2]\nmetrics_addr = "{monitor_metrics}"\n'
                       f'[defaults]\nsend_delay = 50\ntimeout = 0.5\nmetrics = ["windows"]\n'
                       f'[[targets]]\nname = "healthy"\nremote_addr = "127.0.0.1"\nremote_port = {healthy.address[1]}\n'
                       f'[[targets]]\nname = "lossy"\nremote_addr = "127.0.0.1"\nremote_port = {relay.address[1]}\n'
                       f'[[targets]]\nname = "dead"\nremote_addr = "127.0.0.1"\nremote_port = {_dead_udp_port()}\n')
        monitor = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, env=ENV)
        prom = Prometheus.from_example(tmp_path, reflector_metrics, monitor_metrics)
        try:
            # two scrapes of each job after the monitor's first window closed
            scraped = 'count_over_time(stamp_monitor_window_loss_ratio{target="lossy"}[1m])'
            assert wait_for(lambda: any(v >= 2 for v in prom.query(scraped).values()), 40), prom.stop()
            assert wait_for(lambda: any(v >= 2 for v in
                                        prom.query('count_over_time(up{job="stamp-reflector"}[1m])').values()), 10)

            (reflected,) = prom.query("stamp_reflector_packets_reflected_total").values()
            assert reflected == 20
            loss = {json.loads(k)["target"]: v for k, v in prom.query("stamp_monitor_window_loss_ratio").items()}
            assert loss["healthy"] == 0 and loss["lossy"] == pytest.approx(0.25, abs=0.06), loss
            up = {json.loads(k)["target"]: v for k, v in prom.query("stamp_monitor_target_up").items()}
            assert up == {"healthy": 1, "lossy": 1, "dead": 0}
            # the monitor's own health, as Prometheus read it: keeping up
            assert list(prom.query("stamp_monitor_sends_skipped_total").values()) == [0]
            (lateness,) = prom.query("stamp_monitor_schedule_error_seconds_count").values()
            assert lateness > 0

            groups = prom.api("rules")["groups"]  # deploy/stamp-alerts.yml, loaded and evaluated
            rules = [r for g in groups for r in g["rules"]]
            assert sorted(r["name"] for r in rules) == [
                "StampLossHigh", "StampMonitorDown", "StampMonitorOverloaded", "StampOutage", "StampReflectorDropping",
                "StampRttHigh", "StampTargetDown", "stamp:errored_seconds:ratio_1h", "stamp:loss_ratio:rate5m",
                "stamp:rtt_seconds:p99_10m"]
            assert wait_for(lambda: all(r["health"] == "ok" for g in prom.api("rules")["groups"]
                                        for r in g["rules"]), 5)
            # nothing listens behind "dead", and "lossy" loses 25 %: both alerts pending (they
            # fire after 2 and 3 minutes)
            # "dead" also has an outage once its loss has lasted 3 s (StampOutage, at once): when
            # the check comes that late depends on the machine's load, so it may be there or not.
            def pending():
                alerts = {(a["labels"]["alertname"], a["labels"].get("target"), a["state"])
                          for a in prom.api("alerts")["alerts"]}
                return alerts - {("StampOutage", "dead", "firing"), ("StampOutage", "dead", "pending")}
            assert wait_for(lambda: pending() == {("StampTargetDown", "dead", "pending"),
                                                  ("StampLossHigh", "lossy", "pending")}, 5), pending()
        finally:
            log = prom.stop()
            monitor.terminate()
            _, err = monitor.communicate(timeout=10)
    assert "level=error" not in log, log
    assert monitor.returncode == 0, err


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of deploy/grafana-stamp-dashboard.json, with the
    dashboard's variables as a user would leave them (window 1s here: the test's windows)."""
    dash = json.loads((DEPLOY / "grafana-stamp-dashboard.json").read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$window", "1s").replace("$monitor", ".*").replace("$target", ".*")
            assert "$" not in expr, expr
            out.append((panel["title"], expr))
    return out


def test_every_dashboard_query_returns_data_from_two_monitor_shards(tmp_path):
    require_tool("prometheus")
    cfg = tmp_path / "targets.toml"
    ports = [free_tcp_port(), free_tcp_port()]
    with start_reflector() as refl, ImpairmentRelay(refl.address, forward=Impairment(
            drop={seq for seq in range(10_000) if seq % 5 == 0})) as lossy:
        lines = ["[monitor]", "windows = [1]", "[defaults]", "send_delay = 50", "timeout = 0.3",
                 'metrics = ["windows"]']  # the dashboard reads the windows' series
        for i in range(6):  # one behind a relay that drops 20 %: a worst target to show
            port = lossy.address[1] if i == 0 else refl.address[1]
            lines += ["[[targets]]", f'name = "site{i}"', 'remote_addr = "127.0.0.1"', f"remote_port = {port}"]
        cfg.write_text("\n".join(lines) + "\n")
        monitors = [subprocess.Popen([*CMD, "monitor", "--config", str(cfg), "--shard", f"{k}/2", "--name", f"vp{k}",
                                      "--metrics-addr", f"127.0.0.1:{ports[k - 1]}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=ENV) for k in (1, 2)]
        prom = Prometheus(tmp_path, "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                                    "scrape_configs:\n  - job_name: stamp-monitor\n    static_configs:\n"
                                    f"      - targets: ['127.0.0.1:{ports[0]}', '127.0.0.1:{ports[1]}']\n")
        try:
            assert wait_for(lambda: len(prom.query('count by (monitor) (stamp_monitor_window_loss_ratio)')) == 2, 40)
            time.sleep(3)  # a few more scrapes: rate() needs two samples of each series
            for title, expr in dashboard_queries():
                assert prom.query(expr), f"{title}: no data for {expr}"
            worst = prom.query('topk(1, max by (target) (stamp_monitor_window_loss_ratio{window="1s"}))')
            assert [json.loads(k)["target"] for k in worst] == ["site0"]
        finally:
            log = prom.stop()
            for m in monitors:
                m.terminate()
                m.communicate(timeout=10)
    assert "level=error" not in log, log


def test_a_file_sd_edit_adds_and_removes_targets_and_leaves_the_others_unbroken(tmp_path):
    """Each target has its default 25 series; a file_sd file edited while the monitor runs
    adds and removes targets, and the series of a target it does not touch go on without a gap
    or a reset, as Prometheus stored them over the edit."""
    require_tool("prometheus")
    mport = free_tcp_port()
    with start_reflector() as r0, start_reflector() as r1, start_reflector() as r2:
        a, b = f"127.0.0.1:{r1.address[1]}", f"127.0.0.1:{r2.address[1]}"
        sd = tmp_path / "sd.json"
        sd.write_text(json.dumps([{"targets": [a], "labels": {"site": "ams"}}]))
        cfg = tmp_path / "targets.toml"
        cfg.write_text(f'[monitor]\nwindows = [1]\nmetrics_addr = "127.0.0.1:{mport}"\nfile_sd = ["sd.json"]\n'
                       '[defaults]\nsend_delay = 100\ntimeout = 0.3\n'
                       f'[[targets]]\nname = "static"\nremote_addr = "127.0.0.1"\nremote_port = {r0.address[1]}\n')
        monitor = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, env=ENV)
        prom = Prometheus(tmp_path, "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: stamp-monitor\n"
                                    f"    static_configs:\n      - targets: ['127.0.0.1:{mport}']\n")
        try:
            def series_per_target() -> dict[str, float]:
                return {json.loads(k)["target"]: v
                        for k, v in prom.query('count by (target) ({__name__=~"stamp_.+", target!=""})').items()}
            assert wait_for(lambda: series_per_target() == {"static": 25, a: 25}, 30), series_per_target()
            site = prom.query(f'stamp_sender_packets_sent_total{{target="{a}"}}')
            assert [json.loads(k)["site"] for k in site] == ["ams"]

            steady = time.time()  # from here on every scrape has both targets' series
            time.sleep(3)
            sd.write_text(json.dumps([{"targets": [b], "labels": {"site": "lon"}}]))
            assert wait_for(lambda: series_per_target() == {"static": 25, b: 25}, 15), series_per_target()
            time.sleep(2)
            span = f"{int(time.time() - steady)}s"  # the edit, and 3 s before it
            scrapes = prom.query(f'sum_over_time(up{{job="stamp-monitor"}}[{span}])')  # the scrapes that worked
            kept = prom.query(f'count_over_time(stamp_sender_packets_sent_total{{target="static"}}[{span}])')
            assert list(kept.values()) == list(scrapes.values())  # a sample at every scrape: no gap
            assert list(prom.query(f'resets(stamp_sender_packets_sent_total{{target="static"}}[{span}])').values()) \
                == [0]
            assert prom.query(f'stamp_sender_packets_sent_total{{target="{a}"}}') == {}  # gone at the next scrape
            sources = {json.loads(k)["source"]: v for k, v in prom.query("stamp_monitor_targets").items()}
            assert sources == {"file": 1, "file_sd": 1, "http_sd": 0, "dns_sd": 0}
            stamps = {json.loads(k)["source"]: v for k, v in prom.query("stamp_monitor_timestamping").items()}
            assert stamps == {"kernel": 2, "user": 0}  # Linux: the kernel's receive timestamps
        finally:
            log = prom.stop()
            monitor.terminate()
            _, err = monitor.communicate(timeout=10)
    assert "level=error" not in log, log
    assert monitor.returncode == 0, err
    assert "sd.json changed: reloading" in err and "reloaded: 1 added, 1 removed, 0 changed, 2 running" in err, err
