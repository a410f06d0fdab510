"""Differential test: three executors of every EIE program agree bit for bit.

- the oracle (tests/oracle/eie_exec.py): decodes the container from the ISA table and
  the hardware guide alone (imports only dlhwc.spec and numpy);
- the simulator (runtime/eie/sim.py), which `dlhwc run` uses;
- the golden model (backends/eie/golden.py) in the reference interpreter, on the IR the
  container was built from.

The programs vary what the encoding and the arithmetic depend on: the bundled digits MLP
under several pipelines and machines (PE counts, index and run widths, SRAMs small
enough to split layers into column blocks and to make the weights non-resident), small
hand-built models with random sparse weights of odd sizes, host segments between
layers, batches of 1 to a few hundred vectors, and inputs far outside the calibrated
range so that accumulators and outputs saturate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.passes.quantize import with_calibration
from dlhwc.compiler.pipeline import compile_for_target
from dlhwc.compiler.plugins import available_passes
from dlhwc.runtime.eie.sim import Simulator
from dlhwc.spec.container import Container
from tests.oracle import eie_exec

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "models" / "digits_mlp.onnx"
DIGITS_DATA = ROOT / "examples" / "data" / "digits_test.npz"


def _compile(path: Path, pipeline: str | None, hw: dict | None, calib: np.ndarray | None, tmp):
    """(eie-level module, container read back from its bytes)."""
    hw_path = None
    if hw:
        hw_path = tmp / "hw.toml"
        hw_path.write_text("".join(f"{k} = {v}\n" for k, v in hw.items()))
        hw_path = str(hw_path)

    def configure(passes):
        if calib is None:
            return passes
        name = _input_name(path)
        calib_path = tmp / "calib.npz"
        np.savez(calib_path, **{name: calib})
        return with_calibration(passes, str(calib_path))[0]

    args = (str(path), "eie", pipeline, available_passes())
    module = compile_for_target(*args, "eie", hw_path, None, configure)
    container = compile_for_target(*args, "dlhw", hw_path, None, configure)
    return module, Container.from_bytes(container.to_bytes())


def _input_name(path: Path) -> str:
    return onnx.load(str(path)).graph.input[0].name


def _agree(path: Path, x: np.ndarray, tmp, pipeline=None, hw=None, calib=None) -> Container:
    """Compile, run the three executors on ``x``, require equal outputs; the container."""
    module, container = _compile(path, pipeline, hw, calib, tmp)
    name = _input_name(path)
    feeds = {name: x}
    sim_out, _ = Simulator(container).run(feeds)
    oracle_out = eie_exec.run(container, feeds)
    golden_out = run_module(module, feeds)
    assert sorted(sim_out) == sorted(oracle_out)
    for key, value in sim_out.items():
        assert value.dtype == oracle_out[key].dtype, key
        np.testing.assert_array_equal(oracle_out[key], value, err_msg=f"oracle vs sim, {key}")
        np.testing.assert_array_equal(golden_out[key], value, err_msg=f"golden vs sim, {key}")
    return container


def _digits(n: int) -> np.ndarray:
    return np.load(DIGITS_DATA)["input"][:n]


# -- the bundled digits MLP ------------------------------------------------------------------

DIGITS_CASES = {
    "default": (None, None),
    "pruned": ("prune{sparsity=0.9},share-weights{bits=4 zero-code=true},quantize", None),
    "pes7_run2": (
        None,
        {"num_pes": 7, "run_bits": 2, "spmat_entry_bits": 6, "spmat_read_bits": 48},
    ),  # fmt: skip
    "pes1": (None, {"num_pes": 1}),
    "index3": (
        "prune{sparsity=0.7},share-weights{bits=3 zero-code=true},quantize",
        {"index_bits": 3, "run_bits": 5},
    ),
    "index5": ("share-weights{bits=5 zero-code=true},quantize", {"index_bits": 5, "run_bits": 3}),
    "blocks": (None, {"num_pes": 4, "spmat_sram_bytes": 1024, "ptr_sram_bytes": 128}),
    "acc24": (
        "share-weights{bits=4 zero-code=true},quantize{weight-bits=12 act-bits=12}",
        {"acc_bits": 24, "act_bits": 12, "weight_bits": 12},
    ),
}


@pytest.mark.parametrize("case", sorted(DIGITS_CASES))
def test_digits_mlp(case, tmp_path):
    pipeline, hw = DIGITS_CASES[case]
    container = _agree(DIGITS, _digits(37), tmp_path, pipeline, hw)
    if case == "blocks":
        blocks = [len(layer["blocks"]) for layer in container.header["layers"]]
        assert max(blocks) > 1 and not container.header["resident"]


@pytest.mark.parametrize("batch", [1, 3, 450])
def test_digits_mlp_batches_and_saturation(batch, tmp_path):
    x = _digits(batch)
    _agree(DIGITS, x, tmp_path, calib=_digits(64))
    # Thirty times the calibrated range: inputs, sums and outputs saturate.
    _agree(DIGITS, 30 * x, tmp_path, calib=_digits(64))


# -- small hand-built models -----------------------------------------------------------------


def _sparse(rng, rows: int, cols: int, density: float) -> np.ndarray:
    w = rng.normal(0, 1 / np.sqrt(cols), (rows, cols)).astype(np.float32)
    return w * (rng.random((rows, cols)) < density)


def _mlp(path: Path, sizes: list[int], rng, host_between: str | None = None, bias=True):
    """Gemm layers of random sparse weights (ReLU between), optionally a host op
    (e.g. Sigmoid) after the first layer; the layers are Gemm with transB = 1."""
    nodes, inits, prev = [], [], "x"
    for i, (cols, rows) in enumerate(zip(sizes, sizes[1:], strict=False)):
        w = _sparse(rng, rows, cols, rng.uniform(0.05, 0.6))
        inits.append(onnx.numpy_helper.from_array(w, f"w{i}"))
        inputs = [prev, f"w{i}"]
        if bias:
            inits.append(
                onnx.numpy_helper.from_array(rng.normal(0, 0.5, rows).astype(np.float32), f"b{i}")
            )
            inputs.append(f"b{i}")
        nodes.append(helper.make_node("Gemm", inputs, [f"g{i}"], transB=1, name=f"fc{i}"))
        prev = f"g{i}"
        last = i == len(sizes) - 2
        if i == 0 and host_between:
            nodes.append(helper.make_node(host_between, [prev], [f"h{i}"], name=f"host{i}"))
            prev = f"h{i}"
        elif not last:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"], name=f"relu{i}"))
            prev = f"r{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", sizes[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


SMALL_CASES = {
    "odd": ([37, 129, 5], None, None),
    "deep": ([9, 17, 33, 65, 3], None, {"num_pes": 5}),
    "host_sigmoid": ([23, 70, 11], "Sigmoid", {"num_pes": 16}),
    "no_bias_tall": ([3, 300, 2], None, {"num_pes": 3}),
    "blocks_wide": (
        [200, 40, 7],
        None,
        {"num_pes": 2, "spmat_sram_bytes": 512, "ptr_sram_bytes": 64},
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(SMALL_CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_random_sparse_models(case, seed, tmp_path):
    sizes, host, hw = SMALL_CASES[case]
    rng = np.random.default_rng(seed)
    path = _mlp(tmp_path / "m.onnx", sizes, rng, host, bias=case != "no_bias_tall")
    x = rng.normal(0, 1, (13, sizes[0])).astype(np.float32)
    pipeline = "prune{sparsity=0.5},share-weights{bits=4 zero-code=true},quantize"
    _agree(path, x, tmp_path, pipeline, hw, calib=x)
    # Uncalibrated (Q8.8) on large inputs: saturation everywhere.
    _agree(path, 50 * x, tmp_path, pipeline, hw)


@pytest.mark.parametrize("name", ["eie_exec.py", "ese_exec.py", "host.py"])
def test_the_oracle_reads_only_the_ground_layer(name):
    """The oracles import dlhwc.spec, numpy, onnxruntime and each other: nothing that
    could share a bug with the simulator, the back end or the compiler."""
    source = (ROOT / "tests" / "oracle" / name).read_text()
    imports = [
        line.split()[1]
        for line in source.splitlines()
        if line.strip().startswith(("import ", "from "))
    ]
    for module in imports:
        assert module in ("__future__", "numpy", "onnxruntime") or module.startswith(
            ("dlhwc.spec", "tests.oracle.")
        ), module


def _with_spmv(container: Container, **fields) -> Container:
    """The container with every `spmv`'s operands changed to ``fields``."""
    from dlhwc.spec.eie.isa import EIE_ISA

    words = []
    for word in container.sections["text"].tolist():
        instr, ops = EIE_ISA.decode(int(word))
        if instr.mnemonic == "spmv":
            word = instr.encode(**{**ops, **fields})
        words.append(word)
    container.sections["text"] = np.array(words, dtype=np.uint64)
    return Container.from_bytes(container.to_bytes())


@pytest.mark.parametrize("shift", [-32, -7, -1, 0, 1, 31])
def test_every_shift_and_a_wide_accumulator(shift, tmp_path):
    """Shifts the compiler rarely emits (left shifts, the field's ends) on a 62-bit
    accumulator holding sums near its bounds: the simulator equals the oracle."""
    rng = np.random.default_rng(5)
    path = _mlp(tmp_path / "m.onnx", [6, 10], rng)
    _, container = _compile(path, None, {"acc_bits": 62}, None, tmp_path)
    container = _with_spmv(container, shift=shift)
    bias = container.sections["L0.bias"].astype(np.int64)
    steps = np.array([1, -1, 3, -3, 1 << 20, -(1 << 20), 1 << 40, -(1 << 40), 1 << 60,
                      -(1 << 60)], dtype=np.int64)  # fmt: skip
    container.sections["L0.bias"] = bias + steps
    container = Container.from_bytes(container.to_bytes())
    x = rng.normal(0, 2, (9, 6)).astype(np.float32)
    sim_out, _ = Simulator(container).run({"x": x})
    np.testing.assert_array_equal(eie_exec.run(container, {"x": x})["y"], sim_out["y"])


# -- ESE ---------------------------------------------------------------------------------------


def _ese_agree(model: Path, feeds: dict, pipeline=None, hw=None) -> Container:
    from dlhwc.runtime.ese.sim import Simulator as EseSimulator
    from tests.oracle import ese_exec
    from tests.runtime.test_ese_sim import _compile as compile_ese

    module, container = compile_ese(model, feeds, pipeline, hw)
    sim_out, _ = EseSimulator(container).run(feeds)
    oracle_out = ese_exec.run(container, feeds)
    golden_out = run_module(module, feeds)
    assert sorted(sim_out) == sorted(oracle_out)
    for key, value in sim_out.items():
        np.testing.assert_array_equal(oracle_out[key], value, err_msg=f"oracle vs sim, {key}")
        np.testing.assert_array_equal(golden_out[key], value, err_msg=f"golden vs sim, {key}")
    return container


def _ese_cases():
    from tests.runtime.test_ese_sim import CASES

    return sorted(CASES)


@pytest.mark.parametrize("case", _ese_cases())
def test_ese_random_models(case, tmp_path):
    from tests.runtime.test_ese_sim import CASES, _rnn_model

    model, feeds = _rnn_model(tmp_path / "m.onnx", seed=len(case), **CASES[case])
    _ese_agree(model, feeds)


@pytest.mark.parametrize("op,lbr", [("LSTM", 0), ("GRU", 0), ("GRU", 1), ("RNN", 0)])
def test_ese_column_blocks_and_saturation(op, lbr, tmp_path):
    from tests.runtime.test_ese_sim import TINY_HW, _rnn_model

    model, feeds = _rnn_model(
        tmp_path / "m.onnx", op, "bidirectional", hidden=11, inp=9, lens=[7, 3, 0, 5],
        lbr=lbr, peepholes=op == "LSTM", scale=1.5,
    )  # fmt: skip
    container = _ese_agree(model, feeds, "prune{sparsity=0.6}", TINY_HW)
    assert not container.header["resident"]
    # Calibrated on the inputs, run on ten times them: states saturate.
    module_feeds = {k: (10 * v if v.dtype.kind == "f" else v) for k, v in feeds.items()}
    from dlhwc.runtime.ese.sim import Simulator as EseSimulator
    from tests.oracle import ese_exec

    sim_out, _ = EseSimulator(container).run(module_feeds)
    oracle_out = ese_exec.run(container, module_feeds)
    for key, value in sim_out.items():
        np.testing.assert_array_equal(oracle_out[key], value, err_msg=key)


def test_ese_digits_lstm(tmp_path):
    from tests.runtime.test_ese_sim import DIGITS, LSTM

    model = tmp_path / "digits_lstm.onnx"
    model.write_bytes(LSTM.read_bytes())
    _ese_agree(model, {"input": np.load(DIGITS)["input"][:20]})
