"""The program's entry point: stop signals first, everything else after.

SIGINT and SIGTERM are taken over before anything else is even imported, with the builtin
``_signal`` module (no import work of its own), so a signal that arrives while the program
imports ends it with one line, instead of a traceback from an import, or a KeyboardInterrupt
raised inside an import's clean-up, where the interpreter drops it.  (A signal before this
module runs, while Python itself starts, is Python's to handle.)  Only the program imports
this module.
"""

import _signal

_early: list[int] = []


def _remember(signum, frame) -> None:
    _early.append(signum)


for _sig in (_signal.SIGINT, _signal.SIGTERM):
    _signal.signal(_sig, _remember)

import faulthandler  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402


def main() -> int:
    from .net.signals import STOP, STOP_SIGNALS, stopped_while_starting
    if _early:
        stopped_while_starting(_early[0])
    STOP.starting = True  # until a command has started (StopRequest.started)
    STOP.install()
    if hasattr(signal, "SIGUSR1"):  # kill -USR1: every thread's stack on stderr, for a stuck process
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    from .cli import main as cli_main
    status = cli_main()
    # Done: a late signal must not turn a clean exit into "killed by signal" while Python
    # finalises (it puts the default action back for signals with a Python handler, and any
    # thread still alive may take the signal).  Ignoring them holds for every thread, and
    # finalisation leaves an ignored signal ignored.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    return status


if __name__ == "__main__":
    sys.exit(main())
