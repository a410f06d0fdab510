"""The demo: the bundled digits MLP from ONNX to a simulated EIE accelerator, with the CLI.

Run with `make demo` (or `.venv/bin/python examples/demo.py`). Each step prints the
command it runs, so the same can be typed by hand:

1. the float model in the reference interpreter (the golden model): its accuracy;
2. Deep Compression as the paper does it: prune 90% of every matrix, retrain the
   survivors, share weights at EIE's 4-bit indices (index 0 kept for zero), retrain the
   centroids, 16-bit fixed point calibrated on training images, Huffman coding: the
   compression ledger, and what compression cost (`dlhwc eval`);
3. the same pipeline compiled for EIE, pruned so that every PE keeps the same number of
   weights (balance-pes=64): which op runs where;
4. the program run in the simulator on the test split: accuracy next to the float
   model's, and the cycle/energy table;
5. the digits LSTM pruned as ESE does it (load-balance-aware over its 32 PEs, to 90% in
   three steps, retraining after each), compiled for ESE (12-bit weights, 16-bit
   activations, sigmoid/tanh tables) and simulated: accuracy next to float, cycles and
   energy per time step.
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
CALIB = HERE / "data" / "digits_calib.npz"
TRAIN = HERE / "data" / "digits_train.npz"
LSTM = HERE / "models" / "digits_lstm.onnx"
SEQ_DATA = HERE / "data" / "digits_test_seq.npz"
SEQ_CALIB = HERE / "data" / "digits_calib_seq.npz"
SEQ_TRAIN = HERE / "data" / "digits_train_seq.npz"


def lstm_compression() -> str:
    """Gradual load-balance-aware pruning of the digits LSTM to 90%, with retraining:
    97.8% on the ESE simulator, as the float model (pruned at once without retraining:
    14.7%)."""
    steps = []
    for sparsity, epochs in ((0.5, 20), (0.75, 20), (0.9, 40)):
        steps.append(f"prune{{sparsity={sparsity} balance-pes=32}}")
        steps.append(f"retrain{{data={SEQ_TRAIN} epochs={epochs} lr=0.01 batch=32}}")
    steps.append(f"retrain{{data={SEQ_TRAIN} epochs=20 lr=0.001 batch=32}}")
    return ",".join(steps)


def dlhwc(*args: object) -> None:
    """Run one dlhwc command, echoing it first."""
    shown = " ".join(shlex.quote(str(a)) for a in args)
    print(f"\n$ dlhwc {shown}", flush=True)
    subprocess.run([sys.executable, "-m", "dlhwc.compiler.cli", *map(str, args)], check=True)


def accuracy(outputs: Path, data: Path = DATA) -> float:
    labels = np.load(data)["labels"]
    probs = np.load(outputs)["probabilities"]
    return float(np.mean(probs.argmax(axis=1) == labels))


def main() -> None:
    def compression(prune: str) -> str:
        return (
            f"prune{{{prune}}},retrain{{data={TRAIN}}},share-weights{{bits=4 zero-code=true}},"
            f"retrain{{data={TRAIN} epochs=10}},quantize{{calibration={CALIB}}}"
        )

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("== 1. The float model in the reference interpreter")
        float_out = tmp / "float.npz"
        dlhwc("run", MODEL, "--input", DATA, "--output", float_out)
        float_acc = accuracy(float_out)
        print(f"float accuracy on {len(np.load(DATA)['labels'])} test digits: {float_acc:.2%}")

        print("\n== 2. Deep Compression: the ledger, and what it cost")
        comp = tmp / "digits_mlp.comp.mlir"
        pipeline = f"fold-constants,{compression('sparsity=0.9')},huffman"
        dlhwc("compile", MODEL, "-p", pipeline, "--report", "-o", comp)
        dlhwc("eval", MODEL, "--compressed", comp, "--data", DATA, "--labels", "labels")

        print("\n== 3. Compile for EIE (64 PEs, 800 MHz)")
        program = tmp / "digits_mlp.dlhw"
        balanced = compression("sparsity=0.9 balance-pes=64")
        dlhwc("compile", MODEL, "--target", "eie", "-p", balanced, "-o", program)

        print("\n== 4. Run the program in the simulator on the test split")
        sim_out, stats = tmp / "eie.npz", tmp / "stats.json"
        dlhwc("run", program, "--input", DATA, "--output", sim_out, "--stats", stats, "--report")
        eie_acc = accuracy(sim_out)
        print(f"\naccuracy: float {float_acc:.2%}, EIE simulator {eie_acc:.2%}")

        print("\n== 5. The digits LSTM, pruned to 90% and retrained, on ESE (200 MHz, 32 PEs)")
        lstm_float = tmp / "lstm_float.npz"
        dlhwc("run", LSTM, "--input", SEQ_DATA, "--output", lstm_float)
        lstm_prog, lstm_out = tmp / "digits_lstm.dlhw", tmp / "ese.npz"
        dlhwc("compile", LSTM, "--target", "ese", "-p", lstm_compression(), "--calibration",
              SEQ_CALIB, "-o", lstm_prog)  # fmt: skip
        dlhwc("run", lstm_prog, "--input", SEQ_DATA, "--output", lstm_out, "--report")
        print(
            f"\naccuracy: float {accuracy(lstm_float, SEQ_DATA):.2%}, "
            f"ESE simulator {accuracy(lstm_out, SEQ_DATA):.2%}"
        )


if __name__ == "__main__":
    main()
