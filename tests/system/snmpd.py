"""A private net-snmp snmpd as AgentX master, for the system tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).parents[2]
BASE_MIBS = Path(os.environ.get("STAMP_BASE_MIBS", ROOT / "build" / "base-mibs"))
OUR_MIBS = ROOT / "mibs"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Snmpd:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.socket = str(workdir / "agentx.sock")
        self.port = free_udp_port()
        self.conf = workdir / "snmpd.conf"
        self.conf.write_text(
            "master agentx\n"
            f"agentXSocket {self.socket}\n"
            "agentXPerms 0777 0777\n"
            "rocommunity public 127.0.0.1\n"
            f"agentAddress udp:127.0.0.1:{self.port}\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "MIBS": ""}
        self.proc = subprocess.Popen(["snmpd", "-f", "-Lo", "-C", "-c", str(self.conf),
                                      "-p", str(self.dir / "snmpd.pid")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("snmpd did not create its AgentX socket")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
        if os.path.exists(self.socket):
            os.unlink(self.socket)

    def snmp(self, tool: str, *args: str, mib: bool = False) -> subprocess.CompletedProcess:
        mib_args = (["-M", f"{BASE_MIBS}:{OUR_MIBS}", "-m", "STAMP-SUITE-MIB"] if mib else ["-m", ""])
        return subprocess.run([tool, "-v2c", "-c", "public", "-t", "1", "-r", "1", *mib_args,
                               f"127.0.0.1:{self.port}", *args], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "MIBS": ""})

    def get(self, oid: str) -> str | None:
        """The value of one OID as snmpget prints it (-Oqv), or None if there is no such object."""
        res = self.snmp("snmpget", "-Oqv", oid)
        out = res.stdout.strip()
        if res.returncode or not out or "No Such" in out:
            return None
        return out

    def walk(self, oid: str) -> dict[str, str]:
        res = self.snmp("snmpwalk", "-On", "-Oq", oid)
        rows = {}
        for line in res.stdout.splitlines():
            if line.startswith("."):
                key, _, value = line.partition(" ")
                rows[key] = value.strip().strip('"')
        return rows


def have_snmpd() -> bool:
    return all(shutil.which(t) for t in ("snmpd", "snmpget", "snmpwalk"))
