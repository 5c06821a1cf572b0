"""The rest of the kit, as a user meets it: completion for every shell with the monitor in it,
and the example settings files running the program (issue 29, item 8)."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from ci import have_tool
from helpers import CMD, ENV, ReflectorProcess, run

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize("shell", ["bash", "zsh", "tcsh", "fish"])
def test_every_completion_knows_the_monitor(shell):
    res = run("--print-completion", shell)
    assert res.returncode == 0 and "monitor" in res.stdout and "max-runtime" in res.stdout  # tcsh: no "--"
    assert "shard" in res.stdout  # the monitor's own options


def test_bash_completes_monitor_as_the_first_word():
    script = run("--print-completion", "bash").stdout
    words = {"stamp-suite mon": "monitor", "stamp-suite monitor --sh": "--shard", "stamp-suite --output-f":
             "--output-format"}
    for line, expected in words.items():
        probe = (f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(line.split()) - 1}; _shtab_stamp_suite; "
                 'echo "${COMPREPLY[@]}"')
        assert subprocess.run(["bash", "-c", probe], capture_output=True, text=True).stdout.split() == [expected]


def test_fish_completes_options_choices_files_and_the_monitor(tmp_path):
    res = run("--print-completion", "fish")
    assert res.returncode == 0 and res.stdout.count("complete -c stamp-suite") > 80
    if not have_tool("fish"):
        return
    script = tmp_path / "stamp-suite.fish"
    script.write_text(res.stdout)
    (tmp_path / "run.jsonl").write_text("")

    def complete(line: str) -> list[str]:
        out = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C {line!r}"],
                             capture_output=True, text=True, cwd=tmp_path, check=True).stdout
        return [row.split("\t")[0] for row in out.splitlines()]
    assert complete("stamp-suite --output-format ") == ["text", "json", "csv"]
    assert complete("stamp-suite mon") == ["monitor"]
    assert "--shard" in complete("stamp-suite monitor --")
    assert complete("stamp-suite --plot ru") == ["run.jsonl"]  # a FILE value offers paths
    assert "fish" in complete("stamp-suite --print-completion ")


def test_the_example_files_run(tmp_path):
    """The sender's and reflector's examples drive a measurement on loopback (flags win over
    the files: another port, a shorter run); the monitor's starts and stops cleanly."""
    with ReflectorProcess("--config", str(EXAMPLES / "reflector.toml")) as refl:
        res = run("--config", str(EXAMPLES / "sender.toml"), "-r", f"127.0.0.1:{refl.port}", "-c", "2", "-d", "5")
    assert res.returncode == 0 and "Packets received: 2" in res.stdout, res.stderr
    proc = subprocess.Popen([*CMD, "monitor", "--config", str(EXAMPLES / "monitor.toml")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        first = proc.stderr.readline()
        assert "2 targets" in first, first
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_shells_read_the_completion_scripts():
    for shell, flag in (("bash", "-n"), ("zsh", "-n"), ("fish", "--no-execute")):
        if shutil.which(shell):
            script = run("--print-completion", shell).stdout
            assert subprocess.run([shell, flag], input=script, text=True).returncode == 0, shell
