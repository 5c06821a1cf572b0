"""The files in deploy/ work as written: the units pass systemd-analyze, their command lines
parse with the program's own parsers, and units, targets example, Prometheus example and
README name the same addresses, directories and credentials."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from ci import require, require_tool

from stamp_suite.args import build_parser
from stamp_suite.commands import monitor as monitor_command
from stamp_suite.config import build_settings
from stamp_suite.monitor import load_config

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
UNITS = ["stamp-reflector.service", "stamp-monitor.service", "stamp-monitor@.service"]


def directives(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (DEPLOY / unit).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def exec_args(unit: str) -> list[str]:
    (command,) = directives(unit)["ExecStart"]
    program, *args = shlex.split(command)
    assert program == "/usr/local/bin/stamp-suite"
    return args


@pytest.mark.parametrize("unit", UNITS)
def test_units_pass_systemd_analyze_verify(unit, tmp_path):
    require_tool("systemd-analyze")
    installed = Path(sys.executable).parent / "stamp-suite"  # the console script pip made
    require(installed.exists(), f"{installed} (pip install the project)")
    name = unit.replace("@.", "@1-2.")  # a template is verified as one of its instances
    (tmp_path / name).write_text((DEPLOY / unit).read_text().replace("/usr/local/bin/stamp-suite", str(installed)))
    res = subprocess.run(["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == "", res.stderr


def test_reflector_unit_command_line_parses():
    args = exec_args("stamp-reflector.service")
    flags = vars(build_parser().parse_args(args))  # a renamed or removed flag fails here
    flags.pop("show_version", None), flags.pop("config", None)
    s = build_settings(flags)
    assert s.is_reflector and s.export.metrics and s.export.metrics_addr == "127.0.0.1:9862"
    # systemctl reload is SIGHUP, which the reflector takes as a reload (tests/integration/test_reload.py)
    assert directives("stamp-reflector.service")["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


def test_monitor_unit_command_line_parses_and_the_example_fits_it():
    ns = monitor_command.build_parser().parse_args(exec_args("stamp-monitor.service")[1:])
    assert exec_args("stamp-monitor.service")[0] == "monitor" and ns.config == "/etc/stamp/targets.toml"
    cfg = load_config(str(DEPLOY / "targets.example.toml"))
    unit = directives("stamp-monitor.service")
    # JSON lines go where LogsDirectory= makes a writable directory
    assert unit["LogsDirectory"] == ["stamp"] and cfg.jsonl.startswith("/var/log/stamp/")
    # every key file a target names is a credential the unit loads
    credentials = {c.split(":")[0] for c in unit.get("LoadCredential", [])}
    for target in cfg.targets.values():
        if target.common.hmac_key_file:
            name = re.fullmatch(r"\$CREDENTIALS_DIRECTORY/(.+)", target.common.hmac_key_file)
            assert name and name.group(1) in credentials, target.common.hmac_key_file


def test_one_set_of_addresses_across_units_examples_and_readme():
    prometheus = (DEPLOY / "prometheus.example.yml").read_text()
    scraped = set(re.findall(r'"(127\.0\.0\.1:\d+)"', prometheus))
    reflector = build_parser().parse_args(exec_args("stamp-reflector.service")).metrics_addr
    monitor = tomllib.loads((DEPLOY / "targets.example.toml").read_text())["monitor"]["metrics_addr"]
    assert scraped == {reflector, monitor} and reflector != monitor
    readme = (ROOT / "README.md").read_text()
    assert f'"{reflector}"' in readme and f'"{monitor}"' in readme
    assert ":9090" not in "".join(scraped)  # Prometheus's own port


def test_the_sharded_template_command_line_parses():
    specifiers = {"%I": "1/2", "%i": "1-2", "%H": "host", "${METRICS_ADDR}": "127.0.0.1:9871"}
    args = exec_args("stamp-monitor@.service")
    for specifier, value in specifiers.items():
        args = [a.replace(specifier, value) for a in args]
    ns = monitor_command.build_parser().parse_args(args[1:])
    assert args[0] == "monitor" and ns.shard == (1, 2) and ns.name == "host-1-2"
    assert ns.jsonl.startswith("/var/log/stamp/") and directives("stamp-monitor@.service")["LogsDirectory"] == ["stamp"]
