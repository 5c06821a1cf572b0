"""What a monitor target's series show (sets, round-trip buckets, labels, groups) and targets from
Prometheus file_sd files: parsed from files as an operator writes them, exposed as Prometheus
reads them."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from helpers import HttpSdEndpoint, SrvServer
from test_exposition import parsed
from vectors import T1, sample

from stamp_suite.config import ConfigError
from stamp_suite.monitor.config import load_config
from stamp_suite.observability.exposition import Families
from stamp_suite.observability.metrics import (
    BUILD_FAMILIES,
    DEFAULT,
    MONITOR_RTT_BUCKETS_S,
    ONE_WAY,
    SESSION_FAMILIES,
    WINDOWS,
    Exposure,
    SenderMetrics,
    session_lines,
)
from stamp_suite.sender.availability import NS, Availability
from stamp_suite.sender.events import Reply, Sent
from stamp_suite.sender.stats import SessionStats


def _load(tmp_path, text: str):
    path = tmp_path / "targets.toml"
    path.write_text(text)
    return load_config(str(path))


def _series(exposure: Exposure) -> dict[str, dict[tuple, float]]:
    """A monitor target's series after one reply whose both ends said their clocks are
    synchronised (every series that can be there is)."""
    stats = SessionStats()
    metrics = SenderMetrics(("monitor", "target"))
    hook = metrics.add_session(("vp1", "a"), stats, Availability(3 * NS), exposure)
    for ev in (Sent(0, T1, b""), Reply(sample(0, 150))):
        stats.on_event(ev)
        hook(ev)
    f = Families(BUILD_FAMILIES + SESSION_FAMILIES)
    session_lines(f, list(next(metrics.rows())))
    return {name: by for name, by in parsed(f.text()).items() if name != "stamp_build_info"}


def test_the_default_set_is_24_series_of_the_session_and_target_up_makes_25():
    series = _series(Exposure(DEFAULT, MONITOR_RTT_BUCKETS_S))
    assert sum(len(by) for by in series.values()) == 24  # + the monitor's stamp_monitor_target_up
    assert len(series["stamp_sender_rtt_seconds_bucket"]) == len(MONITOR_RTT_BUCKETS_S) + 1
    for name in ("sent", "received", "lost", "duplicate", "reordered", "late", "refused"):
        assert any(name in n for n in series), name
    assert {n for n in series if "delay" in n or "ttl" in n or "dscp" in n or "jitter" in n} == set()
    assert len(series["stamp_sender_clock_synchronized"]) == 2  # the clock state, at each end


def test_sets_add_their_families_and_buckets_are_the_targets_own():
    one_way = _series(Exposure(DEFAULT | ONE_WAY, (0.001, 0.01)))
    assert {dict(k)["le"] for k in one_way["stamp_sender_rtt_seconds_bucket"]} == {"0.001", "0.01", "+Inf"}
    assert "stamp_sender_forward_delay_seconds_bucket" in one_way and "stamp_sender_ttl" not in one_way
    everything = _series(Exposure())  # a single run's --metrics: every set, the finer buckets
    assert {"stamp_sender_ttl", "stamp_sender_dscp", "stamp_sender_jitter_seconds",
            "stamp_sender_error_estimate_seconds"} <= set(everything)
    assert len(everything["stamp_sender_rtt_seconds_bucket"]) == 16


def test_labels_of_the_operators_own_come_on_every_series():
    series = _series(Exposure(DEFAULT, MONITOR_RTT_BUCKETS_S, (("site", "fra"), ("tier", 'co"re'))))
    for by in series.values():
        for labels in by:
            assert ("site", "fra") in labels and ("tier", 'co"re') in labels


GROUPED = """
[defaults]
send_delay = 100
labels = { site = "fra", tier = "edge" }
[groups.core]
labels = { tier = "core" }
metrics = ["windows"]
rtt_buckets = ["500us", 0.002, "1ms5ms"]
dscp = 46
[[targets]]
name = "a"
remote_addr = "127.0.0.1:8620"
group = "core"
labels = { rack = "r1" }
[[targets]]
name = "b"
remote_addr = "127.0.0.1:8621"
metrics = ["one_way", "path"]
"""


def test_a_target_takes_its_groups_settings_and_labels_over_the_defaults(tmp_path):
    config = _load(tmp_path, GROUPED)
    a, b = config.exposure["a"], config.exposure["b"]
    assert a == Exposure(DEFAULT | WINDOWS, (0.0005, 0.002, 0.006), (("rack", "r1"), ("site", "fra"), ("tier", "core")))
    assert config.targets["a"].sender.dscp == 46 and config.targets["b"].sender.dscp == 0
    assert b.sets & ONE_WAY and not b.sets & WINDOWS and b.rtt_buckets_s == MONITOR_RTT_BUCKETS_S
    assert b.labels == (("site", "fra"), ("tier", "edge"))


@pytest.mark.parametrize("old, new, error", [
    ('labels = { rack = "r1" }', 'labels = { rack = "r2" }', None),
    ('labels = { rack = "r1" }', 'labels = { target = "x" }', "label 'target' is one of the monitor's own"),
    ('labels = { rack = "r1" }', 'labels = { __name__ = "x" }', "label '__name__': a name is letters"),
    ('labels = { rack = "r1" }', 'labels = { "1x" = "x" }', "label '1x': a name is letters"),
    ('labels = { rack = "r1" }', 'labels = "r1"', "labels: expected a table"),
    ('labels = { rack = "r1" }', 'metrics = ["one-way"]',
     "metrics: 'one-way' is not a set of series (expected default, one_way, latest, path, windows or all)"),
    ('labels = { rack = "r1" }', 'rtt_buckets = ["5ms", "1ms"]', "rtt_buckets: the bounds must increase"),
    ('labels = { rack = "r1" }', 'rtt_buckets = ["5 parsecs"]', "rtt_buckets: '5 parsecs' is not a duration"),
    ('labels = { rack = "r1" }', 'rtt_buckets = [0]', "rtt_buckets: 0 is not a positive duration"),
    ('labels = { rack = "r1" }', 'rtt_buckets = [0.001, inf]', "rtt_buckets: inf is not a positive duration"),
    ('labels = { rack = "r1" }', 'labels = { rack = 12 }', "label 'rack': expected a string, such as \"12\""),
    ('group = "core"', 'group = "edge"', "group 'edge' is not a [groups.NAME] table (there are core)"),
])
def test_what_a_target_asks_of_its_series_is_checked_and_named(tmp_path, old, new, error):
    text = GROUPED.replace(old, new)
    if error is None:
        _load(tmp_path, text)
        return
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, text)
    assert f"target 'a': {error}" in str(exc.value) and "\n" not in str(exc.value)


def test_a_group_cannot_name_a_group_and_defaults_cannot_either(tmp_path):
    with pytest.raises(ConfigError, match=r"\[groups.core\]: 'group' is not a target setting"):
        _load(tmp_path, GROUPED.replace("dscp = 46", 'dscp = 46\ngroup = "core"'))
    with pytest.raises(ConfigError, match=r"\[defaults\]: 'group' is not a target setting"):
        _load(tmp_path, GROUPED.replace("send_delay = 100", 'send_delay = 100\ngroup = "core"'))


# The file_sd format as Prometheus documents it (prometheus.io, file_sd_config), in both forms.
FILE_SD_JSON = [{"targets": ["127.0.0.1:8620", "[::1]:8621"], "labels": {"site": "ams", "__meta_x": "dropped"}},
                {"targets": ["localhost"]}]
FILE_SD_YAML = """
- targets:
    - 127.0.0.2:9000
  labels:
    site: lon
    rack: 012
    on_call: yes
    job: inventory
"""


def test_file_sd_files_add_targets_with_their_labels_and_the_defaults(tmp_path):
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "a.json").write_text(json.dumps(FILE_SD_JSON))
    (tmp_path / "sd" / "b.yml").write_text(FILE_SD_YAML)
    config = _load(tmp_path, '[monitor]\nfile_sd = ["sd/*.json", "sd/*.yml", "none/*.json"]\n'
                             '[defaults]\nsend_delay = 250\nremote_port = 8620\n'
                             'labels = { tier = "edge", site = "x" }\n')
    assert sorted(config.targets) == ["127.0.0.1:8620", "127.0.0.2:9000", "[::1]:8621", "localhost"]
    assert config.discovered == dict.fromkeys(config.targets, "file_sd") and config.folder == str(tmp_path)
    v6 = config.targets["[::1]:8621"].sender
    assert (v6.remote_addr, v6.remote_port, v6.send_delay) == ("::1", 8621, 250)
    assert config.targets["localhost"].sender.remote_port == 8620  # no port: [defaults]'
    assert config.exposure["127.0.0.1:8620"].labels == (("site", "ams"), ("tier", "edge"))  # no __meta_x
    # YAML's values as written (strings, as Prometheus has them); job, ours, renamed as a scrape would
    assert config.exposure["127.0.0.2:9000"].labels == (("exported_job", "inventory"), ("on_call", "yes"),
                                                        ("rack", "012"), ("site", "lon"), ("tier", "edge"))
    assert config.unmatched == ("none/*.json",)
    assert config.exposure["localhost"].labels == (("site", "x"), ("tier", "edge"))


@pytest.mark.parametrize("content, error", [
    ("[{\"targets\": [\"127.0.0.1:8620\"]", "Expecting ',' delimiter"),
    ('{"targets": []}', "expected a list of groups"),
    ('[{"targets": "127.0.0.1"}]', 'group 1: expected {"targets": ["host:port", ...], "labels": {...}}'),
    ('[{"targets": ["127.0.0.1:99999"]}]', "group 1: '127.0.0.1:99999': the port must be 1..65535"),
    ('[{"targets": ["127.0.0.1"]}, {"targets": ["127.0.0.1"]}]',
     "two targets are named '127.0.0.1' (file_sd SD: group 1; file_sd SD: group 2)"),
    ('[{"targets": ["a"]}]', "two targets are named 'a' (target 'a'; file_sd SD: group 1)"),
    ('[{"targets": ["http://h:80"]}]', "group 1: 'http://h:80' is not host:port"),
    ('[{"targets": ["h x"]}]', "group 1: 'h x' is not host:port"),
    ('[{"targets": ["127.0.0.1"], "labels": {"rack": 12}}]', "label 'rack': expected a string"),
])
def test_a_broken_file_sd_file_is_one_line_naming_it(tmp_path, content, error):
    (tmp_path / "sd.json").write_text(content)
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, '[monitor]\nfile_sd = ["sd.json"]\n[[targets]]\nname = "a"\nremote_addr = "127.0.0.1"\n')
    assert error.replace("SD", str(tmp_path / "sd.json")) in str(exc.value) and "\n" not in str(exc.value)


def test_a_file_sd_file_ends_as_prometheus_wants(tmp_path):
    (tmp_path / "sd.txt").write_text('[{"targets": ["127.0.0.1"]}]')
    with pytest.raises(ConfigError, match=r"sd.txt: a file_sd file ends .json, .yml, .yaml"):
        _load(tmp_path, '[monitor]\nfile_sd = ["sd.*"]\n')


def test_file_sd_with_no_files_and_no_targets_is_refused_saying_so(tmp_path):
    with pytest.raises(ConfigError, match=r"no \[\[targets\]\] \(and none in its file_sd files now\)"):
        _load(tmp_path, '[monitor]\nfile_sd = ["nothing/*.json"]\n')


def test_flows_are_targets_of_their_own_with_the_targets_name_and_a_flow_label(tmp_path):
    config = _load(tmp_path, '[[targets]]\nname = "fra1"\nremote_addr = "127.0.0.1"\nlocal_port = 40000\nflows = 3\n'
                             '[[targets]]\nname = "ams1"\nremote_addr = "127.0.0.1"\nflows = 2\n')
    assert sorted(config.targets) == ["ams1#1", "ams1#2", "fra1#1", "fra1#2", "fra1#3"]
    assert [config.targets[f"fra1#{k}"].common.local_port for k in (1, 2, 3)] == [40000, 40001, 40002]
    assert config.targets["ams1#2"].common.local_port is None  # an ephemeral port each: a flow each
    assert config.exposure["fra1#2"].labels == (("flow", "2"),)
    assert config.labelled("fra1#2") == "fra1" and config.labelled("solo") == "solo"
    assert config.flow_of["ams1#1"] == ("ams1", 1)


@pytest.mark.parametrize("flows, error", [(0, "flows: expected a whole number 1..64"), (65, "1..64"),
                                          ('"4"', "1..64"), ("true", "1..64")])
def test_flows_is_a_small_whole_number(tmp_path, flows, error):
    with pytest.raises(ConfigError, match=error):
        _load(tmp_path, f'[[targets]]\nname = "a"\nremote_addr = "127.0.0.1"\nflows = {flows}\n')


def test_a_targets_flows_stay_on_one_shard(tmp_path):
    from stamp_suite.monitor.targets import shard
    config = _load(tmp_path, "".join(f'[[targets]]\nname = "t{i}"\nremote_addr = "127.0.0.1"\nflows = 4\n'
                                     for i in range(20)))
    shards = [set(shard(config, k, 3).targets) for k in (1, 2, 3)]
    assert set().union(*shards) == set(config.targets) and sum(map(len, shards)) == 80  # each flow once
    for mine in shards:
        assert mine and all(len([n for n in mine if n.startswith(f"{t}#")]) in (0, 4) for t in
                            (f"t{i}" for i in range(20)))  # all four flows of a target, or none


def test_http_sd_answers_are_checked_and_a_failure_keeps_the_last_good_one():
    from stamp_suite.monitor.http_sd import fetch
    from stamp_suite.monitor.polled import Polled
    endpoint = HttpSdEndpoint()
    try:
        endpoint.body = json.dumps([{"targets": ["127.0.0.1:8620"], "labels": {"site": "ams"}}]).encode()
        assert fetch(endpoint.url, 30) == ([{"targets": ["127.0.0.1:8620"], "labels": {"site": "ams"}}], 30)
        assert endpoint.headers[-1]["X-Prometheus-Refresh-Interval-Seconds"] == "30"
        sd = Polled(f"http_sd {endpoint.url}", lambda: fetch(endpoint.url, 30), 30)
        assert sd.ask_first() is None and sd.groups and sd.error is None
        endpoint.status = 500
        said = sd.ask_first()
        assert said == f"http_sd {endpoint.url}: HTTP 500 Internal Server Error; keeping the targets of its last " \
                       "good answer" and sd.groups  # kept
        assert sd.ask_first() is None and sd.failures == 2  # the same failure is said once, and counted
        endpoint.status, endpoint.body = 200, b'[{"targets": "127.0.0.1"}]'
        assert "group 1: expected" in sd.ask_first() and sd.groups  # a bad answer is refused whole
        endpoint.body = b'[{"targets": ["127.0.0.2:9000"]}]'
        assert sd.ask_first() == f"http_sd {endpoint.url} answers again"
        assert sd.groups[0]["targets"] == ["127.0.0.2:9000"]
        endpoint.body = b"[" * 100_000  # deeper than Python's stack
        assert "not JSON" in sd.ask_first()
    finally:
        endpoint.close()
    with pytest.raises(ConfigError, match="http_sd http://127.0.0.1:1/sd: .*refused"):
        fetch("http://127.0.0.1:1/sd", 60, timeout_s=2)
    with socket.socket() as other:  # another service on the port: not HTTP
        other.bind(("127.0.0.1", 0))
        other.listen()
        url = f"http://127.0.0.1:{other.getsockname()[1]}/sd"
        threading.Thread(target=lambda: other.accept()[0].sendall(b"SSH-2.0-OpenSSH\r\n"), daemon=True).start()
        with pytest.raises(ConfigError, match="not an HTTP answer"):
            fetch(url, 60, timeout_s=2)


def test_a_question_that_fails_in_any_way_is_counted_and_said_never_raised():
    from stamp_suite.monitor.polled import Polled

    def broken():
        raise RuntimeError("a bug in a fetch")
    sd = Polled("http_sd http://x/", broken, 30)
    assert sd.ask_first() == "http_sd http://x/: RuntimeError: a bug in a fetch; no targets from it until a good " \
                             "answer"
    assert sd.failures == 1 and sd.groups == []


def test_http_sd_settings_are_checked(tmp_path):
    for url in ("ftp://x", "http://"):
        with pytest.raises(ConfigError, match=rf"\[monitor\] http_sd: '{url}' is not an http:// or https:// URL with"):
            _load(tmp_path, f'[monitor]\nhttp_sd = "{url}"\n')
    with pytest.raises(ConfigError, match=r"\[monitor\] http_sd_refresh is set but http_sd is not"):
        _load(tmp_path, '[monitor]\nhttp_sd_refresh = "5s"\n')
    with pytest.raises(ConfigError, match=r"http_sd_refresh: expected 1s to 24h"):
        _load(tmp_path, '[monitor]\nhttp_sd = "http://127.0.0.1:1/"\nhttp_sd_refresh = "100ms"\n')
    (tmp_path / "targets.toml").write_text('[monitor]\nhttp_sd = "http://127.0.0.1:1/"\nhttp_sd_refresh = "2m"\n')
    config = load_config(str(tmp_path / "targets.toml"),
                         {"http_sd http://127.0.0.1:1/": [{"targets": ["127.0.0.1:8620"], "labels": {"a": "b"}}]})
    assert config.http_sd_refresh_s == 120 and config.discovered == {"127.0.0.1:8620": "http_sd"}
    assert config.exposure["127.0.0.1:8620"].labels == (("a", "b"),)
    assert load_config(str(tmp_path / "targets.toml")).targets == {}  # an endpoint with none yet: no error


def test_dns_sd_srv_records_are_targets_and_a_failure_keeps_the_last_good_ones():
    from stamp_suite.monitor import dns_sd
    server = SrvServer({"_stamp._udp.example.net.": [("r1.example.net.", 8620), ("r2.example.net.", 862)],
                        "_gone._udp.example.net.": [(".", 0)]}, ttl=7)
    try:
        r = dns_sd.resolver(server.address)
        groups, next_s = dns_sd.lookup("_stamp._udp.example.net", r)
        assert groups == [{"targets": ["r1.example.net:8620", "r2.example.net:862"]}] and next_s == 7  # the TTL
        assert dns_sd.lookup("_other._udp.example.net", r) == ([], dns_sd.EMPTY_S)  # NXDOMAIN: none
        assert dns_sd.lookup("_gone._udp.example.net", r) == ([], 7)  # "." (RFC 2782): not there
        server.records["_gone._udp.example.net."] = [(".", 0), ("r3.example.net.", 8620)]
        assert dns_sd.lookup("_gone._udp.example.net", r)[0] == [{"targets": ["r3.example.net:8620"]}]
        server.fail = True
        with pytest.raises(ConfigError, match="dns_sd _stamp._udp.example.net: .*SERVFAIL"):
            dns_sd.lookup("_stamp._udp.example.net", r)
    finally:
        server.close()


def test_dns_sd_targets_take_the_defaults(tmp_path):
    (tmp_path / "targets.toml").write_text('[monitor]\ndns_sd = ["_stamp._udp.example.net"]\n'
                                           'dns_sd_server = "127.0.0.1:5353"\n[defaults]\nsend_delay = 200\n')
    config = load_config(str(tmp_path / "targets.toml"),
                         {"dns_sd _stamp._udp.example.net": [{"targets": ["r1.example.net:8620"]}]})
    assert config.discovered == {"r1.example.net:8620": "dns_sd"} and config.dns_sd_server == "127.0.0.1:5353"
    assert config.targets["r1.example.net:8620"].sender.send_delay == 200
    with pytest.raises(ConfigError, match=r"dns_sd_server: 'a b:x'"):
        _load(tmp_path, '[monitor]\ndns_sd = ["_s._udp.x"]\ndns_sd_server = "a b:x"\n')


@pytest.mark.parametrize("text, error", [
    ('[[targets]]\nname = "a"\nremote_addr = "127.0.0.1"\nflows = 4\n[[targets]]\nname = "a#2"\n'
     'remote_addr = "127.0.0.1"\n', "target 'a#2': a name has no # (a target's flows are named NAME#1"),
    ('[[targets]]\nname = "a"\nremote_addr = "127.0.0.1"\nflows = 3\nlocal_port = 40300\n'
     '[[targets]]\nname = "b"\nremote_addr = "127.0.0.1"\nlocal_port = 40302\n',
     "targets 'a#3' and 'b' both send from local port 40302"),
    ('[[targets]]\nname = "a"\nremote_addr = "127.0.0.1"\nflows = 4\nlocal_port = 65534\n',
     "target 'a': flows: 4 flows from local_port 65534 go past port 65535"),
])
def test_flow_names_and_local_ports_cannot_collide(tmp_path, text, error):
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, text)
    assert error in str(exc.value) and "\n" not in str(exc.value)


def test_a_polled_answer_whose_name_is_taken_is_left_out_not_a_failed_reload(tmp_path):
    (tmp_path / "targets.toml").write_text('[monitor]\nhttp_sd = "http://127.0.0.1:1/"\n'
                                           '[[targets]]\nname = "127.0.0.1:8620"\nremote_addr = "127.0.0.1:8620"\n')
    config = load_config(str(tmp_path / "targets.toml"), {"http_sd http://127.0.0.1:1/": [
        {"targets": ["127.0.0.1:8620", "127.0.0.2:9"]}, {"targets": ["127.0.0.2:9"]}]})
    assert sorted(config.targets) == ["127.0.0.1:8620", "127.0.0.2:9"]
    assert config.discovered == {"127.0.0.2:9": "http_sd"}
    assert config.skipped == [
        "http_sd http://127.0.0.1:1/: group 1: target '127.0.0.1:8620': left out, the name is taken "
        "(target '127.0.0.1:8620')",
        "http_sd http://127.0.0.1:1/: group 2: target '127.0.0.2:9': left out, the name is taken "
        "(http_sd http://127.0.0.1:1/: group 1)"]
