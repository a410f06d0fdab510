"""The long malformed-input run: a seeded corpus of every category against every command.

    .venv/bin/python benchmarks/fuzz_malformed.py [--per-category N] [--seed S]
                                                  [--category NAME ...] [--workdir DIR]

The corpus and the oracle are tests/fuzzing.py's (the default test run draws 60 cases
per category through hypothesis; this script draws N, default 1000, from a seed). For
each category it prints how many cases ended in exit 0 and in one clean error line, the
slowest case, and every violation of the oracle's rules (hang, internal error,
traceback, exit 0 on certainly invalid input, output or temporary file left behind);
the last line is PASS when there were none. Exit status 1 on any violation.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import fuzzing  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--category", action="append", choices=sorted(fuzzing.CATEGORIES))
    parser.add_argument("--workdir", help="where the cases run (default: a temporary dir)")
    args = parser.parse_args(argv)
    os.environ.pop("DLHWC_TRACEBACK", None)

    root = Path(args.workdir or tempfile.mkdtemp(prefix="dlhwc-fuzz-"))
    root.mkdir(parents=True, exist_ok=True)
    seeds = fuzzing.seeds(root / "seeds")
    categories = args.category or list(fuzzing.CATEGORIES)
    rng = random.Random(args.seed)
    print(f"{'category':<10} {'cases':>6} {'exit 0':>7} {'error':>7} {'slowest':>9} {'cases/s':>8}")
    violations: list[str] = []
    total = 0
    for name in categories:
        make = fuzzing.CATEGORIES[name]
        counts: collections.Counter = collections.Counter()
        slowest, started = 0.0, time.perf_counter()
        for i in range(args.per_category):
            case = make(random.Random(rng.getrandbits(64)), seeds)
            workdir = root / f"{name}-{i}"
            workdir.mkdir()
            outcome = fuzzing.run_case(case, workdir)
            slowest = max(slowest, outcome.seconds)
            counts[outcome.status] += 1
            try:
                fuzzing.check(case, outcome, workdir)
            except AssertionError as e:
                violations.append(str(e).splitlines()[0] + "\n    " + outcome.stderr.strip())
            shutil.rmtree(workdir, ignore_errors=True)
        seconds = time.perf_counter() - started
        total += args.per_category
        print(
            f"{name:<10} {args.per_category:>6} {counts[0]:>7} {counts[1]:>7} "
            f"{slowest:>8.2f}s {args.per_category / seconds:>8.1f}"
        )
    for v in violations[:20]:
        print("VIOLATION", v)
    verdict = "PASS" if not violations else f"MISS ({len(violations)} violations)"
    print(f"{total} cases, oracle: {verdict}")
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if not violations else 1


if __name__ == "__main__":
    sys.exit(main())
