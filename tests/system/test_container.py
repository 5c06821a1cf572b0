"""The container image (issue 33), built and run as docs/deploy.md says, with what this machine
has (../shared/PLATFORM-NOTES.md: no registry, so the base image is made of Debian packages
with mmdebstrap; podman with runc): the reflector container on the host network holds port
862 as a user that is not root with one capability and answers 20 of 20 from the host; its
health check passes; the monitor container measures it and serves its /metrics."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from ci import require_tool

pytestmark = pytest.mark.system

ROOT = Path(__file__).parents[2]
BASE = "localhost/stamp-base:bookworm"  # kept between runs: made once (about 30 s)
CAP_NET_BIND_SERVICE = 1 << 10
# What deploy/kubernetes/ gives both containers: one capability, no privilege escalation
# (no_new_privs), a read-only root with a writable /tmp.
RESTRICTED = ("--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "--security-opt", "no-new-privileges",
              "--read-only", "--tmpfs", "/tmp")


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    require_tool("podman", "runc", "mmdebstrap")
    work = tmp_path_factory.mktemp("container")
    conf = work / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")  # crun's rlimits fail in this sandbox
    env = {"CONTAINERS_CONF": str(conf), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    def run(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run(["podman", "--runtime", "runc", *args], capture_output=True, text=True,
                             timeout=timeout, env=env)
        assert not check or res.returncode == 0, f"podman {' '.join(args)}: {res.stderr[-2000:]}"
        return res
    if run("image", "exists", BASE, check=False).returncode != 0:
        tar = work / "base.tar"
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase",
                        "--include=python3,python3-venv,python3-pip,ca-certificates", "bookworm", str(tar)],
                       check=True, capture_output=True, timeout=600)
        run("import", str(tar), BASE)
        tar.unlink()
    return run, work


@pytest.fixture(scope="module")
def image(podman):
    run, work = podman
    context = work / "context"
    wheels = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", str(ROOT), "-w", str(context / "wheels")],
                            capture_output=True, text=True, timeout=600)
    assert wheels.returncode == 0, wheels.stderr[-2000:]
    tag = f"localhost/stamp-suite:test-{uuid.uuid4().hex[:8]}"
    run("build", "--format", "docker", "--network", "host", "-f", str(ROOT / "Containerfile"),
        "--build-arg", f"BASE={BASE}", "--build-arg", "WHEELS=wheels", "-t", tag, str(context))
    yield run, tag
    run("rmi", "-f", tag, check=False)


def test_the_reflector_container_holds_port_862_as_a_user_that_is_not_root(image, tmp_path):
    run, tag = image
    name = f"stamp-reflector-{uuid.uuid4().hex[:8]}"
    # the image's default command (-i), on 127.0.0.1 only: the host's loopback, port 862
    run("run", "-d", "--name", name, "--network", "host", "--health-interval", "disable", *RESTRICTED, tag,
        "-i", "-S", "127.0.0.1", "--workers", "1")
    try:
        deadline = time.monotonic() + 20
        while "listening on 127.0.0.1:862" not in run("logs", name).stdout:
            assert time.monotonic() < deadline, run("logs", name).stderr
            time.sleep(0.2)
        res = subprocess.run([sys.executable, "-m", "stamp_suite", "127.0.0.1:862", "-c", "20", "-d", "10ms", "-q"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "20 packets transmitted, 20 received" in res.stdout, res.stdout + res.stderr
        assert run("exec", name, "id", "-u").stdout.strip() == "10862"
        status = dict(line.split(":\t") for line in run("exec", name, "cat", "/proc/1/status").stdout.splitlines()
                      if line.startswith("Cap"))
        assert int(status["CapEff"], 16) == CAP_NET_BIND_SERVICE, status  # that one, and no other
        assert run("healthcheck", "run", name, check=False).returncode == 0  # a STAMP packet to itself

        config = tmp_path / "targets.toml"
        mport = _free_port()
        config.write_text(f'[monitor]\nwindows = [1]\nmetrics_addr = "127.0.0.1:{mport}"\n'
                          '[defaults]\nsend_delay = "100ms"\ntimeout = "1s"\n'
                          '[[targets]]\nname = "host"\nremote_addr = "127.0.0.1"\n')
        config.chmod(0o644)
        tmp_path.chmod(0o755)  # read by the image's user
        monitor = f"stamp-monitor-{uuid.uuid4().hex[:8]}"
        run("run", "-d", "--name", monitor, "--network", "host", "-v", f"{tmp_path}:/etc/stamp:ro", *RESTRICTED,
            tag, "monitor", "--config", "/etc/stamp/targets.toml", "--watch")
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
                except OSError:
                    text = ""
                if 'stamp_monitor_target_up{monitor=' in text and 'target="host"} 1' in text:
                    break
                assert time.monotonic() < deadline, run("logs", monitor).stderr[-2000:]
                time.sleep(0.3)
        finally:
            run("rm", "-f", monitor, check=False)
    finally:
        run("rm", "-f", name, check=False)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
