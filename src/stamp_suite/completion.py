"""Shell completion scripts (``--print-completion SHELL``), made by shtab from the parsers
themselves, so they never disagree with --help: the main flags, and ``monitor`` with its own.

shtab writes fish as well as bash, zsh and tcsh (since 1.9), so no completion is hand-written.
The monitor is not an argparse subcommand (cli.py sends ``monitor ...`` to its own parser before
the main one parses), so it is attached here, to a copy of the main parser made for completion
only, as a subcommand that takes the monitor's parser as its parent."""

from __future__ import annotations

import argparse

import shtab

from .args import build_parser
from .commands import monitor

SHELLS = ("bash", "zsh", "tcsh", "fish")
# Values that name a file (or a directory): the shell offers paths for them, nothing else.
_FILE_METAVARS = {"FILE", "PNG", "HTML", "JSONL"}
_FILE_DESTS = {"config", "hmac_key_file", "snmp_socket"}
_DIR_DESTS = {"hmac_key_dir"}


def script(shell: str) -> str:
    return shtab.complete(completion_parser(), shell=shell)


def completion_parser() -> argparse.ArgumentParser:
    """The main parser with ``monitor`` as a first word, and paths marked for completion."""
    parser = build_parser()
    # The HOST arguments have nothing to offer (host names are the shell's own business) and
    # would take the first word from ``monitor``.
    for action in [a for a in parser._actions if a.dest == "targets"]:
        parser._remove_action(action)
        parser._positionals._group_actions.remove(action)
    mon = monitor.build_parser()
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    # add_help=False: the monitor's parser brings its own -h, --help as a parent
    commands.add_parser("monitor", parents=[mon], add_help=False, help=mon.description, description=mon.description)
    _mark_paths(parser)
    return parser


def _mark_paths(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_paths(sub)
        elif action.dest in _DIR_DESTS:
            action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
        elif action.metavar in _FILE_METAVARS or action.dest in _FILE_DESTS:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
