"""VGG-16 at full weight count on EIE: `dlhwc compile --target eie`, then 16 vectors in the
simulator, each in a child process whose time and peak RSS are measured.

    .venv/bin/python benchmarks/bench_vgg.py [--size 32] [--vectors 16] [--scale 1.0]
        [--workdir DIR] [--strict]

The model has VGG-16's 13 3x3 convolutions (64..512 channels, pad 1, ReLU, five 2x2
max-pools) and its three fully connected layers (25088 -> 4096 -> 4096 -> 1000): 138.3M
float32 weights, 553 MB. To keep the convolutions' host work small the input is
[N, 3, size, size] (32 by default) and the last feature map is tiled to 7x7 before FC6,
so that every weight of VGG-16 is there while a vector costs 0.44 GMACs instead of
15.5. Weights are drawn He-normal (convolutions) and N(0, 0.01) (FC) with
`np.random.default_rng(0)`; calibration is 4 samples and the test 16, N(0, 1).

Measured (targets from the project's issue "Real models end to end"):

| measurement | target |
|---|---|
| compile time (import, fold-constants, share-weights 4 bits, quantize, lowering, encoding, container) | <= 30 s |
| compile peak RSS | <= 2.5 x the float weights |
| simulation peak RSS, 16 vectors | <= 2 x the float weights |
| MACs on EIE (the placement summary) | reported |

The baseline in the same run is `onnx.load` of the model in a child process, timed and
measured the same way: the ratio says how far compiling is from merely loading the
model. `--scale` multiplies every layer's width (0.25 runs in seconds, for the smoke
test); the targets are for the full size and the table marks them "scaled" otherwise.
Exit status 0 unless --strict is given and a target is missed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def build_vgg16(path: Path, size: int, scale: float) -> int:
    """Write the model; returns its float32 weight count."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    x, c_in, i, count = "x", 3, 0, 0
    for v in CFG:
        if v == "M":
            nodes.append(helper.make_node("MaxPool", [x], [f"p{i}"], kernel_shape=[2, 2],
                                          strides=[2, 2], name=f"pool{i}"))  # fmt: skip
            x = f"p{i}"
            continue
        v = max(int(v * scale), 4)
        w = rng.normal(0, np.sqrt(2 / (c_in * 9)), (v, c_in, 3, 3)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"conv{i}.weight"),
                  numpy_helper.from_array(np.zeros(v, np.float32), f"conv{i}.bias")]  # fmt: skip
        nodes.append(helper.make_node("Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [f"c{i}"],
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1], name=f"conv{i}"))  # fmt: skip
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        x, c_in, i, count = f"r{i}", v, i + 1, count + w.size
    side = size // 32
    reps = np.array([1, 1, max(7 // side, 1), max(7 // side, 1)], np.int64)
    inits.append(numpy_helper.from_array(reps, "reps"))
    nodes += [helper.make_node("Tile", [x, "reps"], ["t"], name="tile"),
              helper.make_node("Flatten", ["t"], ["f"], name="flatten")]  # fmt: skip
    x = "f"
    widths = [c_in * 49, max(int(4096 * scale), 4), max(int(4096 * scale), 4), 1000]
    for j in range(3):
        w = rng.normal(0, 0.01, (widths[j + 1], widths[j])).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"fc{j}.weight"),
                  numpy_helper.from_array(np.zeros(widths[j + 1], np.float32), f"fc{j}.bias")]  # fmt: skip
        out = "y" if j == 2 else f"h{j}"
        nodes.append(helper.make_node("Gemm", [x, f"fc{j}.weight", f"fc{j}.bias"], [out],
                                      transB=1, name=f"fc{j}"))  # fmt: skip
        x, count = out, count + w.size
        if j < 2:
            nodes.append(helper.make_node("Relu", [x], [f"fr{j}"], name=f"frelu{j}"))
            x = f"fr{j}"
    graph = helper.make_graph(
        nodes, "vgg16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1000])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return count


def child(cmd: list[str]) -> tuple[float, int, str]:
    """(seconds, peak RSS in bytes, stderr) of ``cmd``, a Python module (or .py file) with
    its arguments run in a fresh interpreter that reports its own peak RSS; fails loudly."""
    wrapper = (
        "import resource, runpy, sys\n"
        "sys.argv = sys.argv[1:]\n"
        "code = 0\n"
        "try:\n"
        "    if sys.argv[0].endswith('.py'):\n"
        "        runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "    else:\n"
        "        runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
        "except SystemExit as e:\n"
        "    code = e.code or 0\n"
        "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "print('PEAK', hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,\n"
        "      file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, cwd=ROOT
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench_vgg: {' '.join(cmd)} failed:\n{proc.stderr}")
    peak = next(line.split()[1] for line in proc.stderr.splitlines() if line.startswith("PEAK"))
    # VmHWM (kB), the process's own high-water mark: ru_maxrss would keep the parent's
    # from before the exec.
    return seconds, int(peak) * 1024, proc.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32, help="input height and width (x32)")
    ap.add_argument("--vectors", type=int, default=16)
    ap.add_argument("--scale", type=float, default=1.0, help="layer width factor")
    ap.add_argument("--workdir", help="keep the model, data and program here")
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args()
    scaled = args.scale != 1.0 or args.size != 32
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_vgg_"))
    work.mkdir(parents=True, exist_ok=True)
    model = work / "vgg16.onnx"
    weights = build_vgg16(model, args.size, args.scale)
    float_bytes = weights * 4
    rng = np.random.default_rng(1)
    shape = (3, args.size, args.size)
    np.savez(work / "calib.npz", x=rng.normal(size=(4, *shape)).astype(np.float32))
    np.savez(work / "test.npz", x=rng.normal(size=(args.vectors, *shape)).astype(np.float32))

    base_s, base_rss, _ = child([__file__, "--load-only", str(model)])
    comp_s, comp_rss, comp_err = child(
        [
            "dlhwc.compiler.cli",
            "compile",
            str(model),
            "--target",
            "eie",
            "--calibration",
            str(work / "calib.npz"),
            "-o",
            str(work / "vgg16.dlhw"),
        ]  # fmt: skip
    )
    sim_s, sim_rss, _ = child(
        [
            "dlhwc.compiler.cli",
            "run",
            str(work / "vgg16.dlhw"),
            "--input",
            str(work / "test.npz"),
            "--output",
            str(work / "out.npz"),
            "--stats",
            str(work / "stats.json"),
        ]  # fmt: skip
    )
    summary = next((x for x in comp_err.splitlines() if x.startswith("dlhwc: on eie:")), "")
    stats = json.loads((work / "stats.json").read_text())

    def mb(b: int) -> str:
        return f"{b / 2**20:,.0f} MB"

    rows = [
        ("float weights", f"{weights:,} ({mb(float_bytes)})", "", ""),
        ("onnx.load (baseline)", f"{base_s:.1f} s, peak {mb(base_rss)}", "", ""),
        ("compile --target eie", f"{comp_s:.1f} s ({comp_s / base_s:.1f}x load)",
         "<= 30 s", comp_s <= 30),
        ("compile peak RSS", f"{mb(comp_rss)} ({comp_rss / float_bytes:.2f}x weights)",
         "<= 2.5x", comp_rss <= 2.5 * float_bytes),
        (f"simulate {args.vectors} vectors", f"{sim_s:.1f} s", "", ""),
        ("simulation peak RSS", f"{mb(sim_rss)} ({sim_rss / float_bytes:.2f}x weights)",
         "<= 2x", sim_rss <= 2 * float_bytes),
        ("placement", summary.removeprefix("dlhwc: "), "", ""),
        ("cycles per vector", f"{stats['total']['cycles_per_vector']:,.0f}", "", ""),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    missed = False
    print(f"VGG-16-shaped model, input {args.size}x{args.size}, scale {args.scale} ({work})")
    for name, value, target, ok in rows:
        verdict = ""
        if target:
            verdict = ("PASS" if ok else "MISS") + (" (scaled)" if scaled else "")
            missed |= not ok
        print(
            f"  {name.ljust(width)}  {value}" + (f"   target {target}: {verdict}" if target else "")
        )
    return 1 if args.strict and missed and not scaled else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--load-only":  # the baseline's child
        onnx.load(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
