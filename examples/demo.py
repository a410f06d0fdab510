"""The demo: the bundled digits MLP through dlhwc, step by step, with the CLI.

Run with `make demo` (or `.venv/bin/python examples/demo.py`). Each step prints the
command it runs, so the same can be typed by hand.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL = HERE / "models" / "digits_mlp.onnx"
DATA = HERE / "data" / "digits_test.npz"


def dlhwc(*args: str) -> None:
    """Run one dlhwc command, echoing it first."""
    shown = " ".join(shlex.quote(str(a)) for a in args)
    print(f"\n$ dlhwc {shown}", flush=True)
    subprocess.run([sys.executable, "-m", "compiler.cli", *map(str, args)], check=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("== 1. Import the ONNX model and look at it as IR (weights elided)")
        dlhwc("compile", MODEL, "-p", "fold-constants")

        print("\n== 2. Save the IR with its weights; it parses back byte for byte")
        saved = tmp / "digits_mlp.mlir"
        dlhwc("compile", MODEL, "-o", saved)
        again = tmp / "again.mlir"
        dlhwc("opt", saved, "-o", again)
        same = saved.read_bytes() == again.read_bytes()
        print(f"print -> parse -> print identical: {same}")

        print("\n== 3. Run the test split in the reference interpreter")
        out = tmp / "out.npz"
        dlhwc("run", saved, "--input", DATA, "--output", out)
        labels = np.load(DATA)["labels"]
        probs = np.load(out)["probabilities"]
        accuracy = float(np.mean(probs.argmax(axis=1) == labels))
        print(f"\nreference interpreter accuracy on {len(labels)} test digits: {accuracy:.2%}")


if __name__ == "__main__":
    main()
