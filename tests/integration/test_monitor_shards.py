"""Monitor shards: N processes share one targets file, each takes a stable subset by a hash of
the target names; every metric and window line says which monitor (vantage point) measured."""

from __future__ import annotations

import signal
import subprocess

from helpers import CMD, ENV, free_tcp_port, scrape, wait_for

from stamp_suite.api import start_reflector
from stamp_suite.monitor.targets import shard_of


def test_shards_are_stable_and_move_few_targets_when_added_to():
    names = [f"site{i:04d}" for i in range(2000)]
    four = {n: shard_of(n, 4) for n in names}
    assert sorted(set(four.values())) == [1, 2, 3, 4]
    assert all(350 < list(four.values()).count(k) < 650 for k in (1, 2, 3, 4))  # about a quarter each
    assert four == {n: shard_of(n, 4) for n in names}  # a function of the name alone (no hash seed)
    five = {n: shard_of(n, 5) for n in names}
    moved = sum(four[n] != five[n] for n in names)
    assert moved == sum(v == 5 for v in five.values()) and moved < 0.3 * len(names)  # only to the new shard


def _write(path, port, names, mport):
    lines = ["[monitor]", "windows = [1]", f'metrics_addr = "127.0.0.1:{mport}"', "[defaults]", "send_delay = 200",
             "timeout = 0.5"]
    for n in names:
        lines += ["[[targets]]", f'name = "{n}"', 'remote_addr = "127.0.0.1"', f"remote_port = {port}"]
    path.write_text("\n".join(lines) + "\n")


def _targets(mport, monitors):
    try:
        m = scrape(mport, monitors)
    except OSError:
        return set()
    return {dict(k[1])["target"] for k in m if k[0] == "stamp_sender_packets_sent_total"}


def test_two_shards_cover_every_target_once_before_and_after_a_reload(tmp_path):
    cfg = tmp_path / "targets.toml"
    names = [f"t{i:02d}" for i in range(12)]
    ports = [free_tcp_port(), free_tcp_port()]
    with start_reflector() as refl:
        _write(cfg, refl.address[1], names, 9)  # the port in the file is replaced per shard below
        procs = [subprocess.Popen([*CMD, "monitor", "--config", str(cfg), "--shard", f"{k}/2", "--name", f"vp{k}",
                                   "--metrics-addr", f"127.0.0.1:{ports[k - 1]}"], stderr=subprocess.PIPE, text=True,
                                  env=ENV) for k in (1, 2)]
        try:
            monitors = [set(), set()]
            expected = [{n for n in names if shard_of(n, 2) == k} for k in (1, 2)]
            assert wait_for(lambda: [_targets(p, m) for p, m in zip(ports, monitors)] == expected, 10)
            assert monitors == [{"vp1"}, {"vp2"}] and not expected[0] & expected[1]
            assert expected[0] | expected[1] == set(names)
            more = names + [f"new{i}" for i in range(6)]
            _write(cfg, refl.address[1], more, 9)
            for p in procs:
                p.send_signal(signal.SIGHUP)
            after = [{n for n in more if shard_of(n, 2) == k} for k in (1, 2)]
            assert wait_for(lambda: [_targets(p, set()) for p in ports] == after, 10)
            assert after[0] >= expected[0] and after[1] >= expected[1]  # nobody moved: only the new were placed
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.communicate(timeout=10)
    assert all(p.returncode == 0 for p in procs)


def test_a_bad_shard_is_one_line():
    res = subprocess.run([*CMD, "monitor", "--config", "x.toml", "--shard", "3/2"], capture_output=True, text=True,
                         env=ENV)
    assert res.returncode == 2 and "is not K/N with 1 <= K <= N" in res.stderr and res.stderr.count("\n") == 1
