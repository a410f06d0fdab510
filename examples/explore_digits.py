"""Search the digits MLP's compression for EIE with `dlhwc explore`, and show the best point.

    .venv/bin/python examples/explore_digits.py [--out DIR] [--trials N] [--search-hw]

Runs the README's command (40 trials, at most 1 point below float accuracy on the test
split; about a minute on 2 cores), then prints the point of the Pareto front with the
highest P+Q+H compression rate and the command that rebuilds its program. The study stays
in DIR (default digits-explore): running the script again continues it, so a second run
with the same options computes nothing and prints the same point.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="digits-explore", help="the study's directory")
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--search-hw", action="store_true", help="also search PEs and FIFO depth")
    args = p.parse_args()
    command = [
        "explore", HERE / "models" / "digits_mlp.onnx", "--target", "eie",
        "--train", HERE / "data" / "digits_train.npz",
        "--data", HERE / "data" / "digits_test.npz",
        "--max-drop", "1", "--trials", str(args.trials), "--out", args.out,
        *(["--search-hw"] if args.search_hw else []),
    ]  # fmt: skip
    print("$ dlhwc " + " ".join(shlex.quote(str(a)) for a in command), flush=True)
    subprocess.run([sys.executable, "-m", "dlhwc.compiler.cli", *map(str, command)], check=True)

    report = json.loads((Path(args.out) / "pareto.json").read_text())
    if not report["points"]:
        print("no point within 1 point of float accuracy: give more --trials")
        return 1
    best = max(report["points"], key=lambda point: point["rate"])
    layers = ", ".join(
        f"{name} {100 * s['sparsity']:.0f}% sparse, {s['bits']} bits"
        for name, s in best["layers"].items()
    )
    print(
        f"\nbest: trial {best['trial']}, {best['rate']:.1f}x P+Q+H ({best['bytes']:,} bytes), "
        f"accuracy {100 * best['accuracy']:.2f}% ({-best['drop']:+.2f} points against float "
        f"{100 * report['float_accuracy']:.2f}%), {best['cycles']:,.0f} cycles and "
        f"{best['energy_pj'] / 1000:,.1f} nJ per digit on {best['machine']['num_pes']} PEs\n"
        f"layers: {layers}\nrecipe: {Path(args.out) / best['recipe']}\n"
        f"rebuild: {best['command']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
