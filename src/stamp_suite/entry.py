"""The program's entry point: stop signals first, everything else after.

SIGINT and SIGTERM are taken over before the rest of the program is even imported, so a
signal that arrives while it starts is remembered (and honoured once it runs) instead of
killing it half-way or printing a traceback from an import.
"""

import faulthandler
import signal
import sys


def main() -> int:
    from .net.signals import STOP, STOP_SIGNALS
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
