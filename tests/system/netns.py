"""Network namespaces that a test makes and removes itself: hosts with their own addresses,
joined by veth pairs, for tests that need more than loopback.  Needs root and iproute2.

Every address used lives inside these namespaces, so nothing a test sends can leave them.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ci import require


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


class Namespaces:
    """Namespaces named ``<prefix><name>``, all removed by :meth:`close`."""

    def __init__(self, prefix: str | None = None) -> None:
        require(os.geteuid() == 0, "network namespaces need root")
        self.prefix = prefix or f"stt{os.getpid()}"
        self.names: list[str] = []
        try:
            self.add("probe")
            self.run_in("probe", ["true"])
        except (OSError, subprocess.CalledProcessError) as exc:
            self.close()
            require(False, f"cannot make network namespaces here: {exc}")
        self.names.remove(self.ns("probe"))
        _ip("netns", "del", self.ns("probe"))

    def ns(self, name: str) -> str:
        return self.prefix + name

    def add(self, name: str, ipv6: bool = False) -> str:
        """A namespace; without ``ipv6`` it has none (no router solicitations or ND in the
        counts), with it no duplicate address detection and no router solicitations."""
        full = self.ns(name)
        _ip("netns", "add", full)
        self.names.append(full)
        self.ip(name, "link", "set", "lo", "up")
        knobs = (("accept_dad=0", "router_solicitations=0") if ipv6 else ("disable_ipv6=1",))
        for knob in knobs:
            for scope in ("all", "default"):
                self.run_in(name, ["sysctl", "-qw", f"net.ipv6.conf.{scope}.{knob}"], check=True)
        return full

    def sysctl(self, name: str, *settings: str) -> None:
        for setting in settings:
            self.run_in(name, ["sysctl", "-qw", setting], check=True)

    def ip(self, name: str, *args: str) -> None:
        _ip("-n", self.ns(name), *args)

    def link(self, a: str, addr_a: str, b: str, addr_b: str | None = None) -> tuple[str, str]:
        """A veth pair between namespaces ``a`` and ``b`` (addresses with prefix length)."""
        ifa, ifb = f"v{a}{b}"[:15], f"v{b}{a}"[:15]
        _ip("link", "add", ifa, "netns", self.ns(a), "type", "veth", "peer", "name", ifb, "netns", self.ns(b))
        nodad = ("nodad",) if ":" in addr_a else ()  # usable at once, no DAD probes in the counts
        self.ip(a, "addr", "add", addr_a, "dev", ifa, *nodad)
        self.ip(a, "link", "set", ifa, "up")
        if addr_b:
            self.ip(b, "addr", "add", addr_b, "dev", ifb, *nodad)
        self.ip(b, "link", "set", ifb, "up")
        return ifa, ifb

    def run_in(self, name: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 30)
        return subprocess.run(["ip", "netns", "exec", self.ns(name), *argv], **kw)

    def popen(self, name: str, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.ns(name), *argv], **kw)

    def stamp(self, name: str, *args: str) -> subprocess.Popen:
        """``stamp-suite ARGS`` inside namespace ``name``; its first stdout line is read by the caller."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return self.popen(name, [sys.executable, "-m", "stamp_suite", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)

    def counter(self, name: str, ifname: str, which: str = "tx_packets") -> int:
        out = self.run_in(name, ["cat", f"/sys/class/net/{ifname}/statistics/{which}"], check=True).stdout
        return int(out)

    def close(self) -> None:
        for full in reversed(self.names):
            subprocess.run(["ip", "netns", "del", full], capture_output=True, timeout=10)
        self.names.clear()

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
