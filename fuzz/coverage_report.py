"""Branch coverage of the sender's reading of replies under fuzzing: every ``read`` of a TLV
(src/stamp_suite/tlvs/) and the sender engine, measured with coverage.py.

Replays the seeds, any corpus directories given (what an atheris run kept: ``python
fuzz/targets.py sender fuzz/corpus ...`` adds to fuzz/corpus), and N fresh mutations of the
seeds, each as it is and made to match an outstanding packet (checks.SenderTarget):

    python fuzz/coverage_report.py fuzz/corpus --mutations 200000

Prints, per function, the branches taken of those there are, and the lines never run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import coverage

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


READING = {"SessionSender.receive", "SessionSender._read_tlvs"}  # the engine's part of reading a reply
NOT_READING = {"reflect", "to_value", "to_tlv", "request", "label_stack", "__post_init__", "validate_for_sending",
               "_allowed", "_impose_srv6", "_with_sub_tlv_flags",
               "__init_subclass__", "_answer", "decode"}  # the other direction


def mutate(rng: random.Random, seed: bytes) -> bytes:
    """The mutations of the hypothesis run (tests/fuzz): flips, cuts, extensions, hostile
    TLV lengths, or noise."""
    data = bytearray(seed)
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(600))
    if kind == 1:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 2:
        data = data[:rng.randrange(len(data) + 1)]
    elif kind == 3:
        data += rng.randbytes(rng.randrange(200))
    else:
        i = rng.randint(44, max(44, len(data) - 2))
        data[i:i + 2] = rng.randrange(0x10000).to_bytes(2, "big")
    return bytes(data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", nargs="*", help="directories of inputs to replay (e.g. fuzz/corpus)")
    ap.add_argument("--mutations", type=int, default=100_000, help="fresh mutations of the seeds (default 100000)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    cov = coverage.Coverage(branch=True, include=["*/stamp_suite/tlvs/*", "*/stamp_suite/sender/engine.py"])
    cov.start()
    import checks  # measured from its first import on
    from make_corpus import seeds
    targets = checks.make_senders()
    inputs = list(seeds().values())
    for d in args.corpus:
        inputs += [p.read_bytes() for p in sorted(Path(d).iterdir()) if p.is_file()]
    rng = random.Random(args.seed)
    base = list(inputs)
    inputs += [mutate(rng, rng.choice(base)) for _ in range(args.mutations)]
    for data in inputs:
        checks.check_sender(targets, data)
    cov.stop()

    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cov.json_report(outfile=f.name)
        report = json.load(f)
    print(f"{len(inputs):,} inputs (seeds, {len(inputs) - len(base) and args.mutations:,} mutations"
          f"{', corpus ' + ', '.join(args.corpus) if args.corpus else ''})\n")
    print(f"{'function':58} {'branches':>9}  lines never run")
    rows = 0
    for path, file in sorted(report["files"].items()):
        short = path.split("stamp_suite/")[-1]
        for name, fn in file.get("functions", {}).items():
            if not (name in READING or (short.startswith("tlvs/") and name
                                         and name.rsplit(".", 1)[-1] not in NOT_READING)):
                continue
            s = fn["summary"]
            if not s["num_statements"]:
                continue
            rows += 1
            missing = ",".join(map(str, fn["missing_lines"])) or "-"
            print(f"{short + ':' + name:58} {s['covered_branches']:>4}/{s['num_branches']:<4}  {missing}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
