"""Command line: ``stamp-suite`` sends, ``stamp-suite -i`` reflects, ``stamp-suite monitor``
watches many reflectors.  This is the top floor: it parses and hands over to one module per
command (:mod:`stamp_suite.commands`); nothing imports it.

Every error is one line on stderr: exit 2 for bad settings, 1 for a runtime failure
(port in use, no replies), 0 for success.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .args import PROG, build_parser
from .config import ConfigError, OutputFormat, Settings, build_settings
from .keys import hide_keys
from .net import signals, srv6
from .net.clock import read_clock_state
from .net.udp import SocketSetupError, batched_io, detect_capabilities
from .sender.plot import PlotError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["monitor"]:
        from .commands import monitor
        return _guarded(lambda: monitor.main(argv[1:], signals.STOP))
    try:
        ns = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a parse error already printed
        return int(exc.code or 0)
    flags: dict[str, Any] = vars(ns)
    if "print_completion" in flags or flags.get("print_man_page"):
        return _printed(lambda: _print_docs(flags.get("print_completion")))
    if flags.get("wireshark_dissector"):  # installed with the package (docs/wireshark.md)
        return _printed(lambda: print(Path(__file__).parent / "data" / "stamp.lua"))
    show_version = flags.pop("show_version", False)
    config_path = flags.pop("config", None)
    if show_version:
        return _printed(lambda: _version(flags.get("verbose", False)))

    # The reflectors to measure: -r's and the HOST arguments, one session each.
    hosts = [*([flags.pop("remote_addr")] if "remote_addr" in flags else []), *flags.pop("targets", [])]

    def run() -> int:
        if hosts and flags.get("is_reflector"):
            raise ConfigError(f"{hosts[0]}: a reflector (-i) measures no HOST (to listen on an address: -S ADDR)")
        twice = next((h for i, h in enumerate(hosts) if h in hosts[:i]), None)
        if twice is not None:
            raise ConfigError(f"{twice} is given twice")
        targets = [build_settings({**flags, "remote_addr": host}, config_path) for host in hosts] or \
                  [build_settings(flags, config_path)]
        settings = targets[0]
        if len(targets) > 1:
            _check_several(settings)
            from .commands import send
            return send.run_all(targets, signals.STOP)
        if settings.output.plot:
            from .commands import plot
            return plot.run_saved(settings)
        if settings.self_test:
            from .commands import selftest
            return selftest.run(settings, signals.STOP)
        if settings.is_reflector:
            from .commands import reflect
            return reflect.run(settings, signals.STOP, reread=lambda: build_settings(flags, config_path))
        from .commands import send
        return send.run(settings, signals.STOP)
    return _guarded(run)


def _check_several(s: Settings) -> None:
    """What cannot be shared by several targets' sessions, refused before any is opened."""
    for given, what in ((s.common.local_port, "--local-port (each session needs a port of its own)"),
                        (s.export.snmp, "--snmp (the sender's MIB describes one session)"),
                        (s.output.plot_output or s.output.plot_html, "--plot-output (a plot shows one session)"),
                        (s.output.output_format is OutputFormat.CSV, "--output-format csv (use json: a 'target' each)"),
                        (s.self_test, "--self-test")):
        if given:
            raise ConfigError(f"several reflectors cannot be measured with {what}")


def _guarded(run) -> int:
    """Run a command; every failure is one line on stderr and an exit status, never a traceback."""
    try:
        return run()
    except ConfigError as exc:  # it may quote what was typed: never a key
        print(f"{PROG}: error: {hide_keys(str(exc))}", file=sys.stderr)
        return 2
    except SocketSetupError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except PlotError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _quiet_stdout()
        print(f"{PROG}: output closed (broken pipe); stopped", file=sys.stderr)
        return 1
    except OSError as exc:  # a full disk, an I/O error on the output: one line, never a traceback
        _quiet_stdout()
        print(f"{PROG}: error: {exc.strerror or exc}"
              + (f" ({exc.filename})" if getattr(exc, "filename", None) else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _printed(write) -> int:
    """Print a text (a completion script, the man page, the version): a reader that stops
    early (| head) is no error."""
    try:
        write()
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    return 0


def _quiet_stdout() -> None:
    """stdout was closed under us (a pipe reader went away): stop writing to it silently."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _print_docs(shell: str | None) -> None:
    """A shell completion script (shtab) or the manual page (argparse-manpage), both made
    from the parsers themselves, so they never disagree with --help."""
    if shell:
        from .completion import script
        print(script(shell))
        return
    from .manpage import page
    print(page(), end="")


def _version(verbose: bool) -> None:
    print(f"{PROG} {__version__} (Python {sys.version.split()[0]}, {sys.platform})")
    if verbose:
        for fam, name in ((socket.AF_INET, "IPv4"), (socket.AF_INET6, "IPv6")):
            try:
                caps = detect_capabilities(fam)
            except OSError:
                print(f"{name}: not available")
                continue
            print(f"{name} {caps.describe()}")
            if caps.missing():
                print(f"{name} missing: {', '.join(caps.missing())}")
        print(batched_io())
        for line in srv6.return_path_support():
            print(line)
        print(read_clock_state().how)
