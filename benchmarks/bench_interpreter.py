"""`dlhwc run` against onnxruntime: time and peak memory on the same models and batches,
and large batches streaming through the interpreter and the EIE simulator.

    .venv/bin/python benchmarks/bench_interpreter.py [--repeat 5] [--rows 1000000]
        [--skip-stream] [--strict]

Each measurement runs in a child process of its own (so peak memory is that run's):

1. Time and memory, same model, same input batch, in the same way for both engines:
   - onnxruntime: `InferenceSession(model)` and `run` (the baseline);
   - dlhwc: `import_file(model)` (ONNX checker, shape inference, opset upgrade, IR),
     `Interpreter(@main)` and `run`: what `dlhwc run model.onnx` does.
   "first" is loading plus the first run; "run" is the best of --repeat later runs of
   the loaded model; "peak" is the child's peak RSS (VmHWM) and "extra" the peak less
   the RSS after the libraries were imported, i.e. the memory the model and its run
   take. Models: onnx's bundled light ResNet-50 and DenseNet-121 (ResNet-50- and
   DenseNet-121-shaped graphs), the digits MLP on the test split and the digits LSTM on
   the sequence test split. Targets: run and peak <= 1.5x onnxruntime's.
2. Streaming: the digits MLP on --rows random rows (1,000,000 by default) through
   `run_module` (the interpreter, in chunks of `batching.CHUNK_ROWS` rows) and through
   the EIE simulator (a program compiled with 4-bit weight sharing; chunks of
   `eie.sim.CHUNK_VECTORS` vectors), each at --rows and at a tenth of it. Memory is
   bounded when the peak beyond the input and output arrays does not grow with the
   rows: the table prints that overhead for both sizes and their ratio (target <= 1.5).

Exit status 0 unless --strict is given and a target is missed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
EX = ROOT / "examples"

CHILD = r"""
import json, sys, time
import numpy as np

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0

engine, model, data, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if engine == "ort":
    import onnxruntime as ort
else:
    sys.path.insert(0, sys.argv[5])
    import onnxruntime as ort
    from dlhwc.compiler.frontend.onnx_importer import import_file
    import dlhwc.compiler.frontend.onnx_exporter
    from dlhwc.compiler.functions import main_function
    from dlhwc.compiler.interpreters.interpreter import Interpreter, check_inputs, functions
    functions()
arrays = dict(np.load(data))
base = rss("VmRSS")
start = time.perf_counter()
if engine == "ort":
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = {n: arrays[n] for n in names}
    run = lambda: session.run(None, feeds)
else:
    module = import_file(model)
    fn = main_function(module)
    interpreter = Interpreter(fn)
    args = check_inputs(fn, arrays)
    run = lambda: interpreter.run(args)
run()
first = time.perf_counter() - start
best = float("inf")
for _ in range(repeat):
    t = time.perf_counter()
    run()
    best = min(best, time.perf_counter() - t)
print(json.dumps({"first": first, "run": best, "peak": rss("VmHWM"), "extra": rss("VmHWM") - base}))
"""

STREAM = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[4])
what, rows, program = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

x = np.random.default_rng(0).standard_normal((rows, 64), dtype=np.float32)
if what == "interpreter":
    from dlhwc.compiler.frontend.onnx_importer import import_file
    from dlhwc.compiler.interpreters.interpreter import run_module
    module = import_file(program)
else:
    from dlhwc.runtime.eie.sim import Simulator
    sim = Simulator.from_file(program)
base = rss("VmRSS")
start = time.perf_counter()
if what == "interpreter":
    out = run_module(module, {"input": x})
else:
    out, stats = sim.run({"input": x})
seconds = time.perf_counter() - start
size = sum(v.nbytes for v in out.values())
print(json.dumps({"seconds": seconds, "extra": rss("VmHWM") - base - size, "out": size}))
"""


def child(script: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT
    )
    if proc.returncode != 0:
        sys.exit(f"bench_interpreter: {' '.join(args[:2])} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def light_input(name: str, work: Path) -> tuple[str, str]:
    import numpy as np

    path = LIGHT / f"light_{name}.onnx"
    model = onnx.load(path)
    inits = {t.name for t in model.graph.initializer}
    inp = next(i for i in model.graph.input if i.name not in inits)
    shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
    data = work / f"{name}.npz"
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.savez(data, **{inp.name: x})
    return str(path), str(data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--skip-stream", action="store_true")
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_interpreter_"))
    cases = {
        "ResNet-50 (light)": light_input("resnet50", work),
        "DenseNet-121 (light)": light_input("densenet121", work),
        "digits MLP, 450 rows": (str(EX / "models/digits_mlp.onnx"),
                                 str(EX / "data/digits_test.npz")),
        "digits LSTM, 450 seqs": (str(EX / "models/digits_lstm.onnx"),
                                  str(EX / "data/digits_test_seq.npz")),
    }  # fmt: skip
    missed = False
    print(f"{'model':22} {'engine':11} {'first s':>8} {'run ms':>8} {'peak MB':>8} "
          f"{'extra MB':>8}")  # fmt: skip
    ratios = []
    for label, (model, data) in cases.items():
        got = {}
        for engine in ("ort", "dlhwc"):
            got[engine] = child(CHILD, engine, model, data, str(args.repeat), str(ROOT))
            g = got[engine]
            print(f"{label:22} {'onnxruntime' if engine == 'ort' else 'dlhwc':11} "
                  f"{g['first']:8.3f} {1000 * g['run']:8.2f} {g['peak'] / 2**20:8.1f} "
                  f"{g['extra'] / 2**20:8.1f}")  # fmt: skip
        o, d = got["ort"], got["dlhwc"]
        r = (d["first"] / o["first"], d["run"] / o["run"], d["peak"] / o["peak"],
             d["extra"] / max(o["extra"], 1))  # fmt: skip
        ratios.append((label, r))
    print(f"\n{'ratio dlhwc / onnxruntime':27} {'first':>7} {'run':>7} {'peak':>7} {'extra':>7}"
          "  target (run, peak <= 1.5)")  # fmt: skip
    for label, r in ratios:
        ok = r[1] <= 1.5 and r[2] <= 1.5
        missed |= not ok
        print(f"{label:27} {r[0]:7.2f} {r[1]:7.2f} {r[2]:7.2f} {r[3]:7.2f}  "
              f"{'PASS' if ok else 'MISS'}")  # fmt: skip

    if not args.skip_stream:
        from dlhwc.compiler.cli import main as dlhwc

        program = work / "mlp.dlhw"
        code = dlhwc(["compile", str(EX / "models/digits_mlp.onnx"), "--target", "eie",
                      "-p", "share-weights{bits=4 zero-code=true},quantize", "--calibration",
                      str(EX / "data/digits_calib.npz"), "-o", str(program)])  # fmt: skip
        if code:
            sys.exit("bench_interpreter: compiling the digits MLP failed")
        print(f"\nstreaming the digits MLP ({args.rows:,} and {args.rows // 10:,} random rows)")
        print(f"{'engine':12} {'rows':>10} {'seconds':>8} {'out MB':>7} {'extra MB':>9}")
        for what, target in (("interpreter", str(EX / "models/digits_mlp.onnx")),
                             ("simulator", str(program))):  # fmt: skip
            small = child(STREAM, what, str(args.rows // 10), target, str(ROOT))
            big = child(STREAM, what, str(args.rows), target, str(ROOT))
            for rows, g in ((args.rows // 10, small), (args.rows, big)):
                print(f"{what:12} {rows:10,} {g['seconds']:8.1f} {g['out'] / 2**20:7.1f} "
                      f"{g['extra'] / 2**20:9.1f}")  # fmt: skip
            growth = big["extra"] / max(small["extra"], 1)
            ok = growth <= 1.5
            missed |= not ok
            print(f"{'':12} overhead growth x{growth:.2f} for 10x the rows: "
                  f"{'PASS' if ok else 'MISS'} (bounded: <= 1.5)")  # fmt: skip
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
