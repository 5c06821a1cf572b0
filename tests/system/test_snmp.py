"""SNMP: our AgentX sub-agent under a real net-snmp snmpd, read back with snmpget/snmpwalk."""

import subprocess
import time

import pytest
from ci import require, require_tool
from helpers import CMD, ENV, ReflectorProcess, send, wait_for
from snmpd import BASE_MIBS, OUR_MIBS, Snmpd, have_snmpd

pytestmark = pytest.mark.system

ENT = ".1.3.6.1.4.1.65134"
REFL = ENT + ".1.1"
SEND = ENT + ".1.2"


@pytest.fixture
def snmpd(tmp_path):
    require(have_snmpd(), "net-snmp snmpd/snmpget not installed (.ci/run installs them)")
    d = Snmpd(tmp_path)
    d.start()
    yield d
    d.stop()


def test_reflector_and_sender_values_live_and_across_restart(snmpd):
    with ReflectorProcess("--snmp", "--snmp-socket", snmpd.socket, "--stateful-reflector") as refl:
        assert wait_for(lambda: snmpd.get(REFL + ".1.1.0") == "1", 10), "reflector did not register"
        assert snmpd.get(REFL + ".1.3.0") == str(refl.port)
        assert snmpd.get(REFL + ".1.4.0") == "1"  # open
        assert snmpd.get(REFL + ".1.6.0") == "1"  # stateful: TruthValue true

        # a sender with --snmp, read while it runs
        sender = subprocess.Popen([*CMD, "-r", refl.host, "-p", str(refl.port), "-c", "40", "-d", "50",
                                   "--snmp", "--snmp-socket", snmpd.socket, "--output-format", "json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        assert wait_for(lambda: (snmpd.get(SEND + ".2.1.0") or "0") != "0", 10), "sender did not register"
        first = int(snmpd.get(SEND + ".2.1.0"))
        time.sleep(0.5)
        second = int(snmpd.get(SEND + ".2.1.0"))
        assert second > first  # live values, read at query time
        assert snmpd.get(SEND + ".1.2.0") == str(refl.port) and snmpd.get(SEND + ".1.5.0") == "50000"
        sender.communicate(timeout=30)

        received = int(snmpd.get(REFL + ".2.1.0"))
        assert received == 40 and int(snmpd.get(REFL + ".2.2.0")) == 40
        table = snmpd.walk(REFL + ".3")
        addresses = {k: v for k, v in table.items() if k.startswith(REFL + ".3.1.2.")}
        assert list(addresses.values()) == ["127.0.0.1"]
        index = next(iter(addresses)).rsplit(".", 1)[1]
        assert table[f"{REFL}.3.1.4.{index}"] == "40" and table[f"{REFL}.3.1.5.{index}"] == "40"
        assert table[f"{REFL}.3.1.6.{index}"] == "39"  # last sequence

        # snmpd restarts: the sub-agent reconnects and serves again
        snmpd.stop()
        snmpd.start()
        assert wait_for(lambda: snmpd.get(REFL + ".2.1.0") == "40", 20), "no re-registration after restart"
        code, out, err = refl.stop()
        assert code == 0 and "Packets received: 40" in out


def test_getbulk_and_getnext_walk_in_order(snmpd):
    with ReflectorProcess("--snmp", "--snmp-socket", snmpd.socket) as refl:
        assert wait_for(lambda: snmpd.get(REFL + ".1.1.0") == "1", 10)
        send(refl, count=3)
        res = snmpd.snmp("snmpbulkwalk", "-On", "-Oq", "-Cr5", REFL)
        oids = [line.split()[0] for line in res.stdout.splitlines() if line.startswith(".")]
        assert oids[:2] == [REFL + ".1.1.0", REFL + ".1.2.0"]
        assert len(oids) == 7 + 7 + 7  # 7 config, 7 stats, one session row of 7 columns
        assert oids == sorted(oids, key=lambda o: tuple(map(int, o.strip(".").split("."))))


def test_reflector_without_snmpd_warns_once_and_reflects(tmp_path):
    with ReflectorProcess("--snmp", "--snmp-socket", str(tmp_path / "absent.sock")) as refl:
        res = send(refl, count=3)
        assert res.returncode == 0
        code, out, err = refl.stop()
    assert code == 0 and err.count("AgentX master") == 1


def test_mib_passes_smilint_and_loads_in_snmptranslate(snmpd):
    require((BASE_MIBS / "SNMPv2-SMI.txt").exists(), "base MIBs not fetched (.ci/run does)")
    require_tool("smilint", "snmptranslate")
    res = subprocess.run(["smilint", "-l", "3", str(OUR_MIBS / "STAMP-SUITE-MIB.mib")], capture_output=True,
                         text=True, env={**ENV, "SMIPATH": str(BASE_MIBS)})
    assert res.returncode == 0 and res.stdout + res.stderr == ""
    res = subprocess.run(["snmptranslate", "-M", f"{BASE_MIBS}:{OUR_MIBS}", "-m", "STAMP-SUITE-MIB", "-On",
                          "STAMP-SUITE-MIB::stampReflectorSessionPacketsReceived"], capture_output=True, text=True,
                         env={**ENV, "MIBS": ""})
    assert res.stdout.strip() == REFL + ".3.1.4"
    with ReflectorProcess("--snmp", "--snmp-socket", snmpd.socket):
        assert wait_for(lambda: snmpd.get(REFL + ".1.1.0") == "1", 10)
        res = snmpd.snmp("snmpget", "STAMP-SUITE-MIB::stampReflectorAuthMode.0", mib=True)
        assert "open(1)" in res.stdout


def test_monitor_targets_are_rows_of_the_sender_session_table(snmpd, tmp_path):
    from stamp_suite.api import start_reflector
    with start_reflector() as r1, start_reflector() as r2:
        cfg = tmp_path / "targets.toml"
        cfg.write_text(f'[monitor]\nwindows = [5]\nsnmp = true\nsnmp_socket = "{snmpd.socket}"\n'
                       f'[defaults]\nsend_delay = 50\n'
                       f'[[targets]]\nname = "east"\nremote_addr = "127.0.0.1"\nremote_port = {r1.address[1]}\n'
                       f'[[targets]]\nname = "west"\nremote_addr = "127.0.0.1"\nremote_port = {r2.address[1]}\n')
        mon = subprocess.Popen([*CMD, "monitor", "--config", str(cfg)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            def names():
                rows = snmpd.walk(SEND + ".3.1.2")
                return sorted(rows.values())
            assert wait_for(lambda: names() == ["east", "west"], 15), names()
            sent = lambda: snmpd.walk(SEND + ".3.1.5")  # noqa: E731
            assert wait_for(lambda: len(sent()) == 2 and all(int(v) > 0 for v in sent().values()), 10), sent()
            ports = sorted(int(v) for v in snmpd.walk(SEND + ".3.1.4").values())
            assert ports == sorted([r1.address[1], r2.address[1]])
        finally:
            mon.terminate()
            mon.communicate(timeout=10)


@pytest.mark.alone  # answers within a second while flooded: a figure of timing
def test_snmp_answers_within_a_second_while_the_reflector_is_flooded(snmpd):
    """issue 34: the reflector's loop under a flood of test packets must leave the AgentX
    thread time to answer snmpd: each walk of the counters within 1 s, the counters moving."""
    import socket
    import threading
    with ReflectorProcess("--snmp", "--snmp-socket", snmpd.socket) as refl:
        assert wait_for(lambda: snmpd.get(REFL + ".1.1.0") == "1", 10), "reflector did not register"
        stop = threading.Event()

        def flood() -> None:
            packet = bytes.fromhex("00000001e93c7f00800000000001") + bytes(30)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # replies nobody reads
                while not stop.is_set():
                    for _ in range(200):
                        s.sendto(packet, (refl.host, refl.port))
        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        try:
            time.sleep(0.5)
            seen, times = [], []
            for _ in range(5):
                t0 = time.monotonic()
                table = snmpd.walk(REFL + ".2")
                times.append(time.monotonic() - t0)
                seen.append(int(table[REFL + ".2.1.0"]))
                time.sleep(0.2)
        finally:
            stop.set()
            flooder.join(2)
    assert max(times) < 1.0, times
    assert seen == sorted(seen) and seen[-1] > seen[0] > 0  # live counters, read under the flood
