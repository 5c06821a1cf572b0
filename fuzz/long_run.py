"""The long fuzz run whose figures the README gives: every atheris target for N inputs (each
with a corpus directory of its own, seeded by make_corpus.py), its rate, then the branch
coverage of the sender's reading of replies over what the sender run kept.

    python fuzz/long_run.py --runs 3000000
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
TARGETS = ("packet", "tlv", "reflector", "sender")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3_000_000, help="inputs per target (default 3000000)")
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    args = ap.parse_args()
    subprocess.run([sys.executable, str(HERE / "make_corpus.py")], check=True, stdout=subprocess.DEVNULL)
    total = 0
    for target in args.targets:
        corpus = HERE / "corpus" / target
        corpus.mkdir(parents=True, exist_ok=True)
        for seed in (HERE / "corpus").iterdir():
            if seed.is_file():
                shutil.copy(seed, corpus / seed.name)
        res = subprocess.run([sys.executable, str(HERE / "targets.py"), target, str(corpus),
                              f"-atheris_runs={args.runs}", "-print_final_stats=1"], capture_output=True, text=True)
        done = re.search(r"Done (\d+) (?:runs )?in (\d+) second", res.stderr)
        if res.returncode != 0 or not done:
            print(f"{target}: FAILED (exit {res.returncode})\n{res.stderr[-3000:]}")
            return 1
        runs, seconds = int(done.group(1)), max(1, int(done.group(2)))
        total += runs
        print(f"{target:10} {runs:>12,} inputs in {seconds:>5} s  {runs / seconds:>10,.0f}/s  no failure", flush=True)
    print(f"{'all':10} {total:>12,} inputs\n")
    if "sender" in args.targets:
        return subprocess.run([sys.executable, str(HERE / "coverage_report.py"), str(HERE / "corpus" / "sender"),
                               "--mutations", "0"]).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
