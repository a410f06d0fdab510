"""The EIE paper's nine benchmark layers, compiled and simulated.

Each layer (inputs x outputs, weight density, activation density, from Table III of Han
et al., ISCA 2016) is built as a single-layer ONNX model (one Gemm, weights with
uniformly random sparsity at the layer's density, values N(0, 0.01)), compiled for EIE
through the real pipeline (share-weights at 4 bits with the zero code, 16-bit fixed
point, calibrated on the inputs) and run in the simulator on input vectors with the
layer's activation density (random positions, ReLU-like positive values). Printed:

1. per layer at 64 PEs and FIFO depth 8: modeled cycles and time per vector at the
   configured clock, load efficiency, padding overhead (filler entries / entries);
2. a FIFO-depth sweep (1..256) and a PE-count sweep (1..256) of load efficiency and
   time, per layer (the PE sweep re-encodes the layer for each PE count; the FIFO sweep
   changes only the timing parameter of the same program);
3. simulation speed: the simulator's wall time per vector against a scipy.sparse float
   CSR matrix x vector on the same matrix, measured in the same run (goal: at most 10x
   on the largest layer, VGG-6).

Usage:

    .venv/bin/python benchmarks/bench_eie.py                  # everything (~minutes)
    .venv/bin/python benchmarks/bench_eie.py --layers Alex-7,NT-We --vectors 4
    .venv/bin/python benchmarks/bench_eie.py --scale 0.25     # smaller layers
    .venv/bin/python benchmarks/bench_eie.py --no-sweeps
"""

from __future__ import annotations

import argparse
import copy
import io
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# name, inputs, outputs, weight density, activation density (EIE paper, Table III)
LAYERS = [
    ("Alex-6", 9216, 4096, 0.09, 0.351),
    ("Alex-7", 4096, 4096, 0.09, 0.353),
    ("Alex-8", 4096, 1000, 0.25, 0.375),
    ("VGG-6", 25088, 4096, 0.04, 0.183),
    ("VGG-7", 4096, 4096, 0.04, 0.375),
    ("VGG-8", 4096, 1000, 0.23, 0.411),
    ("NT-We", 4096, 600, 0.10, 1.0),
    ("NT-Wd", 600, 8791, 0.11, 1.0),
    ("NT-LSTM", 1201, 2400, 0.10, 1.0),
]
FIFO_DEPTHS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
PE_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def build_model(path: Path, cols: int, rows: int, density: float, seed: int) -> None:
    """One Gemm y = x W^T with W [rows, cols] uniformly sparse at ``density``."""
    rng = np.random.default_rng(seed)
    weights = np.zeros((rows, cols), dtype=np.float32)
    flat = weights.reshape(-1)
    keep = rng.choice(flat.size, size=int(round(density * flat.size)), replace=False)
    flat[keep] = rng.normal(0.0, 0.01, size=keep.size).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")],
        "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cols])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", rows])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def make_inputs(cols: int, density: float, vectors: int, seed: int) -> np.ndarray:
    """Input vectors with ``density`` non-zeros at random positions (ReLU outputs)."""
    rng = np.random.default_rng(seed + 1)
    x = rng.exponential(1.0, size=(vectors, cols)).astype(np.float32)
    x[rng.random((vectors, cols)) >= density] = 0.0
    return x


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, array in arrays.items():
            entry = io.BytesIO()
            np.lib.format.write_array(entry, array)
            zf.writestr(f"{name}.npy", entry.getvalue())
    path.write_bytes(buf.getvalue())


def compile_layer(model: Path, calib: Path):
    """The layer's IR at the eie stage (compression and lowering done)."""
    from dlhwc.compiler.pipeline import compile_for_target
    from dlhwc.compiler.plugins import available_passes

    pipeline = f"share-weights{{bits=4 zero-code=true}},quantize{{calibration={calib}}}"
    return compile_for_target(str(model), "eie", pipeline, available_passes(), emit="eie")


def program(module, **hw):
    from dlhwc.backends.eie.program import build_program
    from dlhwc.spec.eie.config import EIEConfig

    return build_program(module, EIEConfig(**hw))


def simulate(container, x: np.ndarray):
    from dlhwc.runtime.eie.sim import Simulator

    sim = Simulator(container)
    sim.run({"x": x[:1]})  # decodes the SRAM images once, as a load does
    start = time.perf_counter()
    _, stats = sim.run({"x": x})
    wall = time.perf_counter() - start
    data = stats.to_json()
    layer = dict(data["layers"][0], resident=data["total"]["resident"])
    return layer, wall, sim


def scipy_time(module, x: np.ndarray, repeat: int = 5) -> float:
    """Best-of-``repeat`` seconds per vector of a float CSR matrix x vector."""
    import scipy.sparse as sp

    from dlhwc.dialects import comp

    weight = next(op for op in module.walk() if isinstance(op, comp.WeightOp)).dense()
    csr = sp.csr_matrix(weight)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for v in x:
            csr @ v
        best = min(best, (time.perf_counter() - start) / len(x))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", help="comma-separated subset of layer names")
    parser.add_argument("--vectors", type=int, default=8, help="input vectors per layer")
    parser.add_argument("--scale", type=float, default=1.0, help="scale rows and cols")
    parser.add_argument("--no-sweeps", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    chosen = set(args.layers.split(",")) if args.layers else None
    layers = [spec for spec in LAYERS if chosen is None or spec[0] in chosen]

    rows_out, sweeps, speed = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, (name, cols, rows, wd, ad) in enumerate(layers):
            cols, rows = max(1, int(cols * args.scale)), max(1, int(rows * args.scale))
            model, calib = tmp / f"{name}.onnx", tmp / f"{name}.npz"
            build_model(model, cols, rows, wd, args.seed + i)
            x = make_inputs(cols, ad, args.vectors, args.seed + i)
            save_npz(calib, x=x)
            t0 = time.perf_counter()
            module = compile_layer(model, calib)
            container = program(module, num_pes=64, fifo_depth=8)
            compile_s = time.perf_counter() - t0
            layer, wall, _ = simulate(container, x)
            rows_out.append((name, rows, cols, wd, ad, layer, compile_s))
            sp_time = scipy_time(module, x)
            speed.append((name, wall / len(x), sp_time))
            if not args.no_sweeps:
                sweeps.append((name, _sweep(module, container, x)))
            model.unlink()

    print("EIE benchmark layers at 64 PEs, FIFO depth 8, 800 MHz, per input vector.")
    print("compute = the spmv work (LNZD broadcast, PE streams, pipeline fill/drain);")
    print("I/O = host transfers of the vectors; load = the weight load, once when the")
    print("weights stay resident (*), else per vector.")
    header = (
        f"{'layer':<8} {'in x out':>13} {'w.dens':>6} {'a.dens':>6} {'cycles':>8} "
        f"{'compute us':>10} {'I/O us':>7} {'load us':>8} {'load eff':>8} {'padding':>8} "
        f"{'dense us':>9} {'compile s':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, rows, cols, wd, ad, layer, compile_s in rows_out:
        n = layer["cycles"] / layer["cycles_per_vector"]
        kinds = layer["cycles_breakdown"]
        us = 1.0 / 800.0
        compute = kinds["compute"] / n
        dense = layer["dense"]["compute_cycles"] / n * us
        mark = "*" if layer["resident"] else " "
        print(
            f"{name:<8}{mark}{f'{cols}x{rows}':>13} {wd:>6.0%} {ad:>6.1%} {compute:>8.0f} "
            f"{compute * us:>10.2f} {kinds['transfer'] / n * us:>7.2f} "
            f"{kinds['load'] / (1 if layer['resident'] else n) * us:>8.1f} "
            f"{layer['load_efficiency']:>8.1%} "
            f"{layer['padding_overhead']:>8.1%} {dense:>9.2f} {compile_s:>9.1f}"
        )

    for name, table in sweeps:
        print(f"\n{name}: load efficiency / compute time per vector (us)")
        print("  FIFO depth: " + "  ".join(f"{d}:{e:.0%}/{t:.1f}" for d, e, t in table["fifo"]))
        print("  PEs:        " + "  ".join(f"{p}:{e:.0%}/{t:.1f}" for p, e, t in table["pes"]))

    print("\nSimulation speed (wall time per vector, same run)")
    print(f"{'layer':<8} {'simulator ms':>13} {'scipy.sparse ms':>16} {'ratio':>8}")
    for name, sim_s, sp_s in speed:
        print(f"{name:<8} {sim_s * 1e3:>13.3f} {sp_s * 1e3:>16.3f} {sim_s / sp_s:>7.1f}x")
    largest = max(speed, key=lambda s: next(r[1] * r[2] for r in rows_out if r[0] == s[0]))
    ratio = largest[1] / largest[2]
    verdict = "PASS" if ratio <= 10 else "MISS"
    print(f"largest layer ({largest[0]}): {ratio:.1f}x scipy.sparse (goal <= 10x): {verdict}")


def _compute_us(layer: dict) -> float:
    """Compute time per vector (no weight load, no host transfers), at 800 MHz."""
    n = layer["cycles"] / layer["cycles_per_vector"]
    return layer["cycles_breakdown"]["compute"] / n / 800.0


def _sweep(module, container, x: np.ndarray) -> dict:
    fifo = []
    for depth in FIFO_DEPTHS:
        variant = copy.copy(container)
        variant.header = copy.deepcopy(container.header)
        variant.header["hw"]["fifo_depth"] = depth  # a timing parameter: same images
        layer, _, _ = simulate(variant, x)
        fifo.append((depth, layer["load_efficiency"], _compute_us(layer)))
    from dlhwc.spec.errors import DlhwcError

    pes = []
    for count in PE_COUNTS:
        try:
            variant = program(module, num_pes=count, fifo_depth=8)
        except DlhwcError:
            continue  # too few PEs to hold the layer's vectors
        layer, _, _ = simulate(variant, x)
        pes.append((count, layer["load_efficiency"], _compute_us(layer)))
    return {"fifo": fifo, "pes": pes}


if __name__ == "__main__":
    main()
