"""atheris fuzz targets: the packet parsers, the TLV list parser, the reflector engine, the sender.

Run one (after ``pip install 'stamp-suite[fuzz]'`` and ``python fuzz/make_corpus.py``):

    python fuzz/targets.py reflector fuzz/corpus -atheris_runs=1000000

A target fails on any exception that escapes, on a reflector reply larger than its
request, and on a drop not counted under a reason (fuzz/checks.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).parent))
with atheris.instrument_imports():
    import checks

REFLECTORS = checks.make_reflectors()
SENDERS = checks.make_senders()
TARGETS = {
    "packet": checks.check_packet,
    "tlv": checks.check_tlv,
    "reflector": lambda data: checks.check_reflector(REFLECTORS, data),
    "sender": lambda data: checks.check_sender(SENDERS, data),
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(TARGETS)}}} [corpus-dir] [libFuzzer options]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
