"""ESE's speech LSTM layer, pruned with and without load balancing, compiled and simulated.

The layer is the LSTM of ESE's speech model (Han et al., FPGA 2017): 153 input features
(filterbank frames) and 1024 memory cells. ESE's LSTM also has a 512-unit projection
(LSTMP), which ONNX's LSTM has no attribute for; it is left out, so R is 4096 x 1024
(the paper's is 4096 x 512). The weights (N(0, 1/fan_in)) are pruned to 10% density by
the real pipeline, either plainly (`prune{sparsity=0.9}`) or load-balance-aware
(`prune{sparsity=0.9 balance-pes=<num_pes>}`: every PE keeps the same number of weights
of each matrix), then quantized to ESE's 12-bit weights and 16-bit activations
(calibrated on the inputs), lowered to `ese.rnn` and built into a container. The inputs
are random N(0, 1) frames. Printed:

1. per pruning: modeled cycles and time per time step at 200 MHz (the scheduled step:
   products and the element-wise phase, with W x_{t+1} overlapping cell(t)), load
   efficiency of the PE array, padding (filler entries / entries), energy per step,
   the cycles the overlap saves, and the same layer dense on the same machine;
2. whether the simulator's outputs equal the golden model's bit for bit;
3. simulation speed: the simulator's wall time per time step (per sequence) against a
   float implementation of the same step with scipy.sparse on the same matrices
   (W x + R h + b, the gate nonlinearities and state updates), measured in the same run.

Usage:

    .venv/bin/python benchmarks/bench_ese.py                 # the full layer (~a minute)
    .venv/bin/python benchmarks/bench_ese.py --hidden 256 --input 40 --steps 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build_model(path: Path, inputs: int, hidden: int, seed: int) -> None:
    """One ONNX LSTM (forward, default activations) with dense random weights."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1 / np.sqrt(inputs), (1, 4 * hidden, inputs)).astype(np.float32)
    r = rng.normal(0, 1 / np.sqrt(hidden), (1, 4 * hidden, hidden)).astype(np.float32)
    b = rng.normal(0, 0.1, (1, 8 * hidden)).astype(np.float32)
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=hidden)
    graph = helper.make_graph(
        [node],
        "speech_lstm",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", inputs])],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", 1, "N", hidden]),
            helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, "N", hidden]),
        ],
        [numpy_helper.from_array(a, n) for a, n in ((w, "W"), (r, "R"), (b, "B"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, path)


def compile_layer(model: Path, pipeline: str, calib: Path, pes: int):
    """(ese-level module, container, compile seconds) of the layer."""
    from dlhwc.backends.ese.program import build_program
    from dlhwc.compiler.passes.quantize import with_calibration
    from dlhwc.compiler.pipeline import compile_for_target
    from dlhwc.compiler.plugins import available_passes
    from dlhwc.spec.ese.config import ESEConfig

    hw = model.with_suffix(".hw.toml")
    hw.write_text(f"num_pes = {pes}\n")
    start = time.perf_counter()
    module = compile_for_target(
        str(model), "ese", pipeline, available_passes(), "ese", str(hw), None,
        lambda passes: with_calibration(passes, str(calib))[0],
    )  # fmt: skip
    container = build_program(module, ESEConfig.load(hw))
    return module, container, time.perf_counter() - start


def simulate(container, x: np.ndarray):
    """(outputs, stats JSON, wall seconds of one run after a warm-up that decodes)."""
    from dlhwc.runtime.ese.sim import Simulator

    sim = Simulator(container)
    sim.run({"X": x[:, :1]})  # decodes the SRAM images once, as the first load does
    start = time.perf_counter()
    outputs, stats = sim.run({"X": x})
    return outputs, stats.to_json(), time.perf_counter() - start


def golden_equal(module, x: np.ndarray, outputs: dict) -> bool:
    """Whether the simulator's outputs equal the golden model's, bit for bit."""
    from dlhwc.compiler.interpreters.interpreter import run_module

    golden = run_module(module, {"X": x})
    return all(np.array_equal(outputs[k], golden[k]) for k in golden)


def scipy_step_time(module, x: np.ndarray, repeat: int = 3) -> float:
    """Best-of-``repeat`` seconds per time step (per sequence) of the float LSTM step on
    scipy.sparse CSR matrices: gates = W x_t + R h + b; i, o, f, c; c' = f c + i g;
    h' = o tanh(c'), on the same pruned and quantized weights, batch-vectorized."""
    import scipy.sparse as sp

    from dlhwc.dialects import comp, ese

    op = next(o for o in module.walk() if isinstance(o, ese.RNNOp))
    w = sp.csr_matrix(op.operand(1).owner.dense()[0])
    r = sp.csr_matrix(op.operand(2).owner.dense()[0])
    b_op = op.operand(3).owner
    bias = (b_op.dense() if isinstance(b_op, comp.WeightOp) else b_op.to_array())[0]
    hidden = r.shape[1]
    b = (bias[: 4 * hidden] + bias[4 * hidden :])[:, None]
    steps, batch = x.shape[0], x.shape[1]

    def sigmoid(v):
        return 0.5 * (1.0 + np.tanh(0.5 * v))

    best = float("inf")
    for _ in range(repeat):
        h = np.zeros((hidden, batch), np.float32)
        c = np.zeros((hidden, batch), np.float32)
        start = time.perf_counter()
        for t in range(steps):
            g = w @ x[t].T + r @ h + b
            i, o, f, cc = np.split(g, 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(cc)
            h = sigmoid(o) * np.tanh(c)
        best = min(best, (time.perf_counter() - start) / (steps * batch))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=int, default=153, help="input features")
    parser.add_argument("--hidden", type=int, default=1024, help="LSTM memory cells")
    parser.add_argument("--steps", type=int, default=32, help="time steps per sequence")
    parser.add_argument("--sequences", type=int, default=4, help="sequences (batch)")
    parser.add_argument("--pes", type=int, default=32, help="PEs (ESEConfig.num_pes)")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed + 1)
    x = rng.standard_normal((args.steps, args.sequences, args.input)).astype(np.float32)
    pipelines = {
        f"balance-aware ({args.pes} PEs)":
            f"prune{{sparsity={args.sparsity} balance-pes={args.pes}}}",
        "plain": f"prune{{sparsity={args.sparsity}}}",
    }  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, calib = tmp / "lstm.onnx", tmp / "calib.npz"
        build_model(model, args.input, args.hidden, args.seed)
        np.savez(calib, X=x)
        for label, pipeline in pipelines.items():
            module, container, compile_s = compile_layer(model, pipeline, calib, args.pes)
            outputs, stats, wall = simulate(container, x)
            exact = golden_equal(module, x, outputs)
            results.append((label, module, stats, wall, compile_s, exact))

    h, n = args.hidden, args.input
    print(
        f"ESE speech LSTM: {n} inputs -> {h} cells (W {4 * h}x{n}, R {4 * h}x{h}; no "
        f"projection), {1 - args.sparsity:.0%} weight density, {args.pes} PEs at 200 MHz, "
        f"{args.sequences} sequences x {args.steps} steps."
    )
    print("Per time step: the scheduled products and element-wise phase (W x_{t+1} overlaps")
    print("cell(t)). nJ/step: all energy (the sequences' host transfers and the one weight")
    print("load included); core: the PE array and element-wise units only. dense: the same")
    print("layer uncompressed on the same machine (its weights do not fit: reloaded per step).")
    head = (
        f"{'pruning':<22} {'cycles':>7} {'µs/step':>8} {'load eff':>8} {'padding':>8} "
        f"{'nJ/step':>8} {'core nJ':>8} {'overlap':>8} {'dense µs':>9} {'speedup':>8} "
        f"{'exact':>6} {'compile s':>9}"
    )
    print(head)
    print("-" * len(head))
    for label, _, stats, _, compile_s, exact in results:
        lay = stats["layers"][0]
        dense = lay["dense"]
        parts = lay["energy_breakdown_pj"]
        core = sum(v for k, v in parts.items() if k not in ("dram_word", "host_word"))
        print(
            f"{label:<22} {lay['cycles_per_step']:>7.0f} {lay['time_us_per_step']:>8.2f} "
            f"{lay['load_efficiency']:>8.1%} {lay['padding_overhead']:>8.1%} "
            f"{lay['energy_pj_per_step'] / 1000:>8.1f} {core / lay['steps'] / 1000:>8.1f} "
            f"{lay['overlap_saving']:>8.1%} {dense['time_us_per_step']:>9.2f} "
            f"{lay['speedup']:>7.2f}× {'yes' if exact else 'NO':>6} {compile_s:>9.1f}"
        )
    print()
    label, module, stats, wall, _, _ = results[0]
    per_step = wall / (args.steps * args.sequences)
    scipy_s = scipy_step_time(module, x)
    print(
        f"simulation speed ({label}): simulator {per_step * 1e3:.2f} ms per step per "
        f"sequence (functional + cycle model), scipy.sparse float step "
        f"{scipy_s * 1e3:.3f} ms: {per_step / scipy_s:.1f}× slower"
    )
    if not all(r[5] for r in results):
        raise SystemExit("the simulator differs from the golden model")


if __name__ == "__main__":
    main()
