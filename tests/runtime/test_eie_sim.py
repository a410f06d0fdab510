"""The EIE simulator (runtime/eie/sim.py): bit-exact against the golden model, and a sane
cycle and energy model.

Functional tests compile models twice with `compile_for_target`: to the `eie` IR, which
the reference interpreter runs with the golden model (backends/eie/golden.py), and
to the container, which the simulator runs. The accelerator's results must be equal bit
for bit; host results (Softmax) agree to float rounding.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import dlhwc.runtime.eie.sim as sim_module
from dlhwc.compiler.cli import main
from dlhwc.compiler.frontend.onnx_importer import import_file
from dlhwc.compiler.functions import input_names, main_function
from dlhwc.compiler.interpreters.interpreter import run_function, run_module
from dlhwc.compiler.pipeline import compile_for_target
from dlhwc.compiler.plugins import available_passes
from dlhwc.runtime.core import fifo_recurrence as _fifo_recurrence
from dlhwc.runtime.eie.sim import Simulator, Stats, static_report
from dlhwc.spec.container import Container
from dlhwc.spec.eie.config import EIEConfig
from dlhwc.spec.eie.isa import EIE_ISA
from dlhwc.spec.encoding import encode_sparse
from dlhwc.spec.errors import DlhwcError

ROOT = Path(__file__).resolve().parents[2]
MLP = ROOT / "examples" / "models" / "digits_mlp.onnx"
CALIB = ROOT / "examples" / "data" / "digits_calib.npz"
TEST = ROOT / "examples" / "data" / "digits_test.npz"

TINY_HW = """
num_pes = 4
spmat_sram_bytes = 64
ptr_sram_bytes = 16
"""


# -- helpers ---------------------------------------------------------------------------


def _compile(model: Path, pipeline: str | None = None, hw: Path | None = None, calib=None):
    """(eie-level module, container read back from its bytes) of one model."""
    available = available_passes()

    def configure(passes):
        if calib is None:
            return passes
        from dlhwc.compiler.passes.quantize import with_calibration

        return with_calibration(passes, str(calib))[0]

    hw_path = None if hw is None else str(hw)
    args = (str(model), "eie", pipeline, available)
    module = compile_for_target(*args, "eie", hw_path, None, configure)
    container = compile_for_target(*args, "dlhw", hw_path, None, configure)
    return module, Container.from_bytes(container.to_bytes(), "test.dlhw")


def _golden(module, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every named value of the golden model's run, by name hint and output name."""
    fn = main_function(module)
    values: dict[str, np.ndarray] = {}

    def observe(value, array):
        if value.name_hint:
            values[value.name_hint] = array

    results = run_function(fn, [inputs[n] for n in input_names(fn)], observe)
    outputs = run_module(module, inputs)
    assert all(np.array_equal(a, b) for a, b in zip(results, outputs.values(), strict=True))
    values.update(outputs)
    return values


def _check_against_golden(module, container, inputs) -> tuple[Simulator, Stats]:
    """Accelerator values exactly, host values to float rounding."""
    sim = Simulator(container)
    outputs, stats = sim.run(inputs)
    golden = _golden(module, inputs)
    memory = sim.last_host_memory
    for sym in sim.symbols:
        if sym.kind == "input":
            continue
        got, want = memory[sym.name], golden[sym.name]
        assert got.shape == want.shape and got.dtype == want.dtype == np.float32, sym.name
        if sym.format is not None:  # produced by the accelerator (dma.out)
            assert np.array_equal(got, want), f"{sym.name}: not bit-exact"
        else:  # produced on the host
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=sym.name)
        if sym.kind == "output":
            assert outputs[sym.name] is got
    return sim, stats


def _mlp_model(
    path: Path,
    dims: list[int],
    *,
    seed: int = 0,
    form: str = "gemm",
    bias: bool = True,
    relu: bool = True,
    softmax: bool = False,
    zero_fraction: float = 0.0,
) -> Path:
    """A random MLP in ONNX: Gemm(transB=1) or MatMul+Add layers, ReLU between them."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = "x"
    for i, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        w = rng.normal(0, 1 / math.sqrt(n_in), (n_out, n_in)).astype(np.float32)
        w[rng.random(w.shape) < zero_fraction] = 0.0
        b = rng.normal(0, 0.1, n_out).astype(np.float32)
        out = f"h{i}"
        if form == "gemm":
            inits.append(helper.make_tensor(f"W{i}", TensorProto.FLOAT, w.shape, w.ravel()))
            ins = [x, f"W{i}"]
            if bias:
                inits.append(helper.make_tensor(f"b{i}", TensorProto.FLOAT, b.shape, b))
                ins.append(f"b{i}")
            nodes.append(helper.make_node("Gemm", ins, [out], transB=1, name=f"fc{i}"))
        else:
            wt = np.ascontiguousarray(w.T)
            inits.append(helper.make_tensor(f"W{i}", TensorProto.FLOAT, wt.shape, wt.ravel()))
            mm = f"mm{i}" if bias else out
            nodes.append(helper.make_node("MatMul", [x, f"W{i}"], [mm], name=f"fc{i}"))
            if bias:
                inits.append(helper.make_tensor(f"b{i}", TensorProto.FLOAT, b.shape, b))
                nodes.append(helper.make_node("Add", [mm, f"b{i}"], [out], name=f"add{i}"))
        x = out
        if relu and i < len(dims) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"], name=f"relu{i}"))
            x = f"r{i}"
    if softmax:
        nodes.append(helper.make_node("Softmax", [x], ["y"], axis=-1, name="softmax"))
    else:
        nodes.append(helper.make_node("Identity", [x], ["y"], name="out"))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", dims[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", dims[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _sparse_inputs(rng, batch: int, n: int, zeros: float = 0.6) -> np.ndarray:
    x = rng.normal(0, 1, (batch, n)).astype(np.float32)
    x[rng.random(x.shape) < zeros] = 0.0
    return x


def _hand_container(
    mask: np.ndarray,
    index: np.ndarray,
    codebook: list[int],
    cfg: EIEConfig,
    *,
    relu: bool = False,
    shift: int = 8,
) -> Container:
    """A one-layer program built by hand from a [rows, cols] mask and codebook indices:
    dma.in x, load, spmv, dma.out y, end. Formats: activations fixed<16, 8>, weights
    fixed<16, 8>, output fixed<16, 8> (shift 8)."""
    rows, cols = mask.shape
    enc = encode_sparse(mask, index, cfg.num_pes, cfg.run_bits)
    c = Container("eie")
    book = np.zeros(cfg.codebook_entries, np.int16)
    book[: len(codebook)] = codebook
    c.add("L0.codebook", book)
    c.add("L0.B0.ptr", enc.pointers.astype(np.uint32))
    c.add("L0.B0.spmat", (enc.v | (enc.z << cfg.index_bits)).astype(np.uint8))
    words = [
        EIE_ISA.encode("dma.in", sym=0, buf=0),
        EIE_ISA.encode("load", layer=0, block=0),
        EIE_ISA.encode(
            "spmv",
            layer=0,
            block=0,
            src=0,
            dst=1,
            first=1,
            last=1,
            bias=0,
            relu=int(relu),
            shift=shift,
        ),  # fmt: skip
        EIE_ISA.encode("dma.out", sym=1, buf=1),
        EIE_ISA.encode("end"),
    ]
    c.add("text", np.array(words, np.uint64))
    c.header = {
        "hw": cfg.to_dict(),
        "symbols": [
            {"name": "x", "kind": "input", "shape": [cols], "format": [16, 8]},
            {"name": "y", "kind": "output", "shape": [rows], "format": [16, 8]},
        ],
        "layers": [
            {
                "name": "fc",
                "rows": rows,
                "cols": cols,
                "in_format": [16, 8],
                "weight_format": [16, 8],
                "out_format": [16, 8],
                "shift": shift,
                "relu": relu,
                "bias": False,
                "nonzeros": enc.nonzeros,
                "blocks": [
                    {
                        "col_start": 0,
                        "col_end": cols,
                        "entries": enc.entries_per_pe.tolist(),
                        "fillers": enc.fillers_per_pe.tolist(),
                    }
                ],
            }  # fmt: skip
        ],
        "host_segments": [],
        "resident": True,
        "placement": [],
    }
    return Container.from_bytes(c.to_bytes(), "hand.dlhw")


@pytest.fixture(scope="module")
def mlp():
    """The digits MLP compiled with calibration (as the README's example)."""
    return _compile(MLP, calib=CALIB)


@pytest.fixture(scope="module")
def digits():
    data = np.load(TEST)
    return data["input"], data["labels"]


# -- bit-exactness ---------------------------------------------------------------------


def test_digits_mlp_matches_golden_model(mlp, digits):
    module, container = mlp
    x, _ = digits
    sim, stats = _check_against_golden(module, container, {"input": x})
    assert [s.name for s in sim.symbols if s.kind == "transfer"] == ["fc3_q"]
    assert stats.total["vectors"] == len(x)


def test_digits_mlp_accuracy_within_one_percent_of_float(mlp, digits):
    _, container = mlp
    x, labels = digits
    outputs, _ = Simulator(container).run({"input": x})
    float_out = run_module(import_file(str(MLP)), {"input": x})
    acc_sim = np.mean(outputs["probabilities"].argmax(axis=1) == labels)
    acc_float = np.mean(float_out["probabilities"].argmax(axis=1) == labels)
    assert abs(acc_sim - acc_float) <= 0.01, (acc_sim, acc_float)


def test_digits_mlp_without_softmax_is_bit_exact(tmp_path, digits):
    model = onnx.load(MLP)
    graph = model.graph
    (softmax,) = [n for n in graph.node if n.op_type == "Softmax"]
    logits = softmax.input[0]
    graph.node.remove(softmax)
    graph.output[0].name = logits
    path = tmp_path / "mlp_logits.onnx"
    onnx.save(model, path)
    module, container = _compile(path, "prune{sparsity=0.8 balance-pes=64}", calib=CALIB)
    x, _ = digits
    sim, _ = _check_against_golden(module, container, {"input": x[:64]})
    assert not sim.segments  # all on the accelerator: every output compared exactly


@pytest.mark.parametrize(
    "case",
    [
        # dims, form, bias, relu, softmax, prune pipeline, zero fraction of weights
        ([12, 9, 5], "gemm", True, True, False, "prune{sparsity=0.5}", 0.0),
        ([10, 7, 3], "matmul", True, True, True, "prune{sparsity=0.7 balance-pes=4}", 0.0),
        ([13, 6], "gemm", False, False, False, None, 0.3),
        ([9, 11, 6], "matmul", False, True, False, "prune{sparsity=0.9}", 0.0),
        # 80 rows over 4 PEs, 20 local rows: z-runs past 15 need fillers; the 8-pointer
        # SRAM splits the 40 columns into blocks of 7
        ([40, 80, 3], "gemm", True, True, True, "prune{sparsity=0.95}", 0.0),
    ],
    ids=["gemm", "matmul-softmax", "no-bias-no-relu", "matmul-no-bias", "fillers-blocks"],
)
def test_random_models_match_golden_model(tmp_path, case):
    dims, form, bias, relu, softmax, pipeline, zeros = case
    hw = tmp_path / "tiny.toml"
    hw.write_text(TINY_HW)
    rng = np.random.default_rng(len(dims) * 100 + dims[0])
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=_sparse_inputs(rng, 32, dims[0], 0.3))
    model = _mlp_model(
        tmp_path / "m.onnx", dims, seed=dims[0], form=form, bias=bias, relu=relu,
        softmax=softmax, zero_fraction=zeros,
    )  # fmt: skip
    module, container = _compile(model, pipeline, hw, calib)
    x = _sparse_inputs(rng, 17, dims[0])
    x[3] = 0.0  # a vector of zeros only
    sim, stats = _check_against_golden(module, container, {"x": x})
    layers = container.header["layers"]
    assert stats.total["vectors"] == 17
    if dims[0] == 40:
        assert len(layers[0]["blocks"]) > 1, "the tiny pointer SRAM splits 40 columns"
        assert sum(sum(b["fillers"]) for b in layers[0]["blocks"]) > 0
        assert not container.header["resident"]
        # Not resident: every vector reloads every block.
        per_vector = sum(
            -(-sim.block(i, b).load_words // sim.config.dma_words_per_cycle)
            for i, layer in enumerate(layers)
            for b in range(len(layer["blocks"]))
        )
        assert stats.total["cycles_breakdown"]["load"] == 17 * per_vector


def _graph_model(path: Path, kind: str, rng) -> tuple[Path, dict[str, int]]:
    """Programs with host segments in several places; returns the model and its inputs."""

    def tensor(name, shape):
        value = rng.normal(0, 0.5, shape).astype(np.float32)
        return helper.make_tensor(name, TensorProto.FLOAT, value.shape, value.ravel())

    def gemm(x, out, i, bias=True):
        inits.append(tensor(f"W{i}", (6, 8)))
        ins = [x, f"W{i}"]
        if bias:
            inits.append(tensor(f"b{i}", (6,)))
            ins.append(f"b{i}")
        return helper.make_node("Gemm", ins, [out], transB=1, name=f"fc{i}")

    nodes, inits, outputs = [], [], []
    inputs = {"x": 8}
    if kind == "heads":  # five layers whose results only the host reads
        for h in range(5):
            nodes += [
                gemm("x", f"g{h}", h),
                helper.make_node("Softmax", [f"g{h}"], [f"y{h}"], axis=-1, name=f"sm{h}"),
            ]
            outputs.append((f"y{h}", 6))
    elif kind == "returned-and-hosted":  # a layer's result is an output and a host input
        nodes += [
            gemm("x", "g", 0),
            helper.make_node("Softmax", ["g"], ["p"], axis=-1, name="sm"),
        ]
        outputs += [("g", 6), ("p", 6)]
    else:  # two inputs; the host adds two layers' results and reads an input
        inputs["x2"] = 8
        nodes += [
            gemm("x", "g1", 1),
            gemm("x2", "g2", 2, bias=False),
            helper.make_node("Add", ["g1", "g2"], ["s"], name="add"),
            helper.make_node("Relu", ["x2"], ["r"], name="relu"),
        ]
        outputs += [("s", 6), ("r", 8)]
    graph = helper.make_graph(
        nodes,
        kind,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", d]) for n, d in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", d]) for n, d in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path, inputs


@pytest.mark.parametrize("kind", ["heads", "returned-and-hosted", "two-inputs"])
def test_host_segments_between_layers(tmp_path, kind):
    rng = np.random.default_rng(11)
    model, dims = _graph_model(tmp_path / "m.onnx", kind, rng)
    calib = tmp_path / "calib.npz"
    np.savez(calib, **{n: rng.normal(size=(16, d)).astype(np.float32) for n, d in dims.items()})
    module, container = _compile(model, None, None, calib)
    inputs = {n: _sparse_inputs(rng, 7, d, 0.3) for n, d in dims.items()}
    sim, stats = _check_against_golden(module, container, inputs)
    words = [int(w) for w in container.sections["text"]]
    dma_out = [
        EIE_ISA.decode(w)[1]["sym"] for w in words if EIE_ISA.decode(w)[0].mnemonic == "dma.out"
    ]
    assert len(dma_out) == len(set(dma_out)), "a result crosses to the host once"
    assert stats.total["cycles"] == sum(e["cycles"] for e in stats.layers)


def test_sparse_product_path_is_exact(monkeypatch, tmp_path):
    """Blocks too large for a dense copy sum entry by entry, with the same results."""
    monkeypatch.setattr(sim_module, "DENSE_LIMIT", 0)
    monkeypatch.setattr(sim_module, "DENSE_LIMIT_FILLED", 0)
    hw = tmp_path / "tiny.toml"
    hw.write_text(TINY_HW)
    model = _mlp_model(tmp_path / "m.onnx", [20, 18, 4], seed=5)
    rng = np.random.default_rng(1)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=_sparse_inputs(rng, 32, 20, 0.3))
    module, container = _compile(model, "prune{sparsity=0.6}", hw, calib)
    sim, _ = _check_against_golden(module, container, {"x": _sparse_inputs(rng, 300, 20)})
    assert all(b.dense is None for b in sim._blocks.values())


def test_register_file_batches(tmp_path):
    """Vectors longer than the register files: bit-exact, refills and act-SRAM accesses."""
    hw = tmp_path / "rf.toml"
    hw.write_text("num_pes = 2\nregfile_entries = 4\n")  # 8 elements in register files
    model = _mlp_model(tmp_path / "m.onnx", [20, 12, 3], seed=7)
    rng = np.random.default_rng(2)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=_sparse_inputs(rng, 32, 20, 0.3))
    module, container = _compile(model, None, hw, calib)
    _, stats = _check_against_golden(module, container, {"x": _sparse_inputs(rng, 5, 20)})
    fc0 = stats.layers[0]
    assert fc0["events"]["act_sram"] > 0
    # 20 columns in batches of 8: two refills of 4 cycles each, per vector
    assert Simulator(container).block(0, 0).refills == 2


# -- the cycle model -------------------------------------------------------------------


def _reference_recurrence(items: list[int], work_t: np.ndarray, depth: int) -> int:
    """The FIFO equations, scalar, one item at a time."""
    pes = work_t.shape[1]
    b_prev, e = -1, [0] * pes
    starts: list[list[int]] = []
    for t, j in enumerate(items):
        b = b_prev + 1
        if t >= depth:
            b = max(b, max(starts[t - depth]))
        s = [max(b + 1, e[k]) for k in range(pes)]
        e = [s[k] + int(work_t[j, k]) for k in range(pes)]
        starts.append(s)
        b_prev = b
    return max(e)


def test_fifo_recurrence_matches_scalar_equations():
    rng = np.random.default_rng(0)
    work_t = rng.integers(1, 6, (25, 5))
    nz = rng.random((9, 25)) < 0.5
    nz[2] = False
    for depth in (1, 2, 8):
        got = _fifo_recurrence(nz, nz.sum(axis=1), work_t, depth)
        want = [_reference_recurrence(list(np.flatnonzero(r)), work_t, depth) for r in nz]
        assert got.tolist() == want


def _random_layer(rng, rows, cols, density, pes_balance=None):
    mask = rng.random((rows, cols)) < density
    index = rng.integers(1, 16, (rows, cols)).astype(np.uint8)
    return mask, index


def test_deeper_fifos_never_cost_cycles():
    rng = np.random.default_rng(3)
    mask, index = _random_layer(rng, 64, 48, 0.3)
    x = _sparse_inputs(rng, 16, 48, 0.5)
    cycles = []
    for depth in (1, 2, 4, 8, 16):
        cfg = EIEConfig(num_pes=8, fifo_depth=depth)
        sim = Simulator(_hand_container(mask, index, list(range(16)), cfg))
        outputs, stats = sim.run({"x": x})
        cycles.append(stats.layers[0]["cycles_breakdown"]["compute"])
    assert cycles == sorted(cycles, reverse=True)
    assert cycles[0] > cycles[-1]  # unbalanced rows: depth 1 stalls


def test_balanced_dense_layer_is_efficient():
    cfg = EIEConfig(num_pes=8)
    mask = np.ones((32, 64), bool)  # every PE: 4 entries in every column
    index = np.ones((32, 64), np.uint8)
    sim = Simulator(_hand_container(mask, index, [0, 256], cfg))
    x = np.ones((3, 64), np.float32)
    _, stats = sim.run({"x": x})
    layer = stats.layers[0]
    assert layer["load_efficiency"] > 0.97
    # 64 columns x 4 cycles, +1 for the first broadcast, + the pipeline's 4 stages
    assert layer["cycles_breakdown"]["compute"] == 3 * (64 * 4 + 1 + cfg.pipeline_stages)
    assert layer["activation_density"] == 1.0


def test_zero_activations_cost_no_pe_cycles():
    rng = np.random.default_rng(4)
    mask, index = _random_layer(rng, 16, 20, 0.5)
    cfg = EIEConfig(num_pes=4)
    sim = Simulator(_hand_container(mask, index, list(range(16)), cfg))
    outputs, stats = sim.run({"x": np.zeros((5, 20), np.float32)})
    layer = stats.layers[0]
    assert layer["busy_pe_cycles"] == 0
    assert layer["broadcasts"] == 0 and layer["entries_processed"] == 0
    assert layer["cycles_breakdown"]["compute"] == 5 * cfg.pipeline_stages
    assert layer["events"]["mac"] == layer["events"]["spmat_read"] == 0
    assert not outputs["y"].any()


def test_forty_zeros_before_an_entry_cost_three_entries():
    """A gap of 40 rows with 4-bit z: two fillers (16 rows each), then z = 8."""
    cfg = EIEConfig(num_pes=1)
    mask = np.zeros((41, 2), bool)
    mask[40, 0] = True
    index = np.zeros((41, 2), np.uint8)
    index[40, 0] = 1
    container = _hand_container(mask, index, [0, 512], cfg)  # codebook[1] = 2.0
    assert container.header["layers"][0]["blocks"][0]["fillers"] == [2]
    sim = Simulator(container)
    x = np.array([[1.5, 0.0]], np.float32)
    outputs, stats = sim.run({"x": x})
    layer = stats.layers[0]
    assert layer["entries"] == 3 and layer["fillers"] == 2 and layer["nonzeros"] == 1
    assert layer["entries_processed"] == 3 and layer["fillers_processed"] == 2
    assert layer["busy_pe_cycles"] == 3
    assert layer["filler_cycle_fraction"] == pytest.approx(2 / 3)
    assert layer["padding_overhead"] == pytest.approx(2 / 3)
    expected = np.zeros(41, np.float32)
    expected[40] = 3.0
    assert np.array_equal(outputs["y"][0], expected)


def test_energy_and_cycle_totals_are_sums_of_layers(mlp, digits):
    _, container = mlp
    _, stats = Simulator(container).run({"input": digits[0][:50]})
    total = stats.total
    assert total["cycles"] == sum(e["cycles"] for e in stats.layers)
    assert total["energy_pj"] == pytest.approx(sum(e["energy_pj"] for e in stats.layers))
    for layer in [*stats.layers, total]:
        assert layer["energy_pj"] == pytest.approx(sum(layer["energy_breakdown_pj"].values()))
        assert layer["cycles"] == sum(layer["cycles_breakdown"].values())
        assert 0 < layer["load_efficiency"] <= 1
    assert total["cycles_per_vector"] == pytest.approx(total["cycles"] / 50)


def test_resident_weights_load_once(mlp, digits):
    _, container = mlp
    assert container.header["resident"]
    sim = Simulator(container)
    _, one = sim.run({"input": digits[0][:1]})
    _, many = sim.run({"input": digits[0][:40]})
    assert one.total["cycles_breakdown"]["load"] == many.total["cycles_breakdown"]["load"] > 0
    assert one.total["events"]["dram_word"] == many.total["events"]["dram_word"]


def test_stats_are_deterministic(mlp, digits):
    _, container = mlp
    x = digits[0][:30]
    first = Simulator(container).run({"input": x})[1].dumps()
    sim = Simulator(container)
    sim.run({"input": x})
    assert sim.run({"input": x})[1].dumps() == first


def test_stats_json_schema_and_table(mlp, digits):
    _, container = mlp
    _, stats = Simulator(container).run({"input": digits[0][:20]})
    data = json.loads(stats.dumps())
    for layer in data["layers"]:
        for key in (
            "name", "kind", "cycles", "time_us", "load_efficiency", "energy_pj",
            "padding_overhead", "nonzeros", "entries", "fillers", "activation_density",
            "dense", "events",
        ):  # fmt: skip
            assert key in layer, key
        assert set(layer["dense"]) >= {"cycles", "time_us", "energy_pj"}
        assert layer["kind"] == "fc"
    assert data["host"][0]["name"] == "host0" and data["host"][0]["transfer_words"] == 20 * 5
    assert set(data["total"]) >= {"cycles", "time_us", "energy_pj", "vectors", "load_efficiency"}
    table = Stats.from_json(data).format_table()
    assert table == stats.format_table()
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("layer"))
    for name in ("fc1", "fc2", "fc3", "total"):
        row = next(line for line in lines if line.startswith(name))
        assert len(row) == len(header)  # aligned columns
    assert "host0" in static_report(Simulator(container))


def test_handlers_repeat_the_isa_pseudo_code():
    machine = sim_module._Machine
    for instr in EIE_ISA.instructions:
        doc = getattr(machine, "exec_" + instr.mnemonic.replace(".", "_")).__doc__
        normalized = " ".join(doc.split())
        for line in instr.doc.splitlines():
            assert " ".join(line.split()) in normalized, (instr.mnemonic, line)


# -- errors ----------------------------------------------------------------------------


def _one_line_error(fn, *fragments) -> str:
    with pytest.raises(DlhwcError) as info:
        fn()
    message = info.value.message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_broken_containers_are_one_line_errors(mlp):
    _, container = mlp
    data = container.to_bytes()
    _one_line_error(lambda: Container.from_bytes(data[:20]), "truncated")
    _one_line_error(lambda: Container.from_bytes(data[:100]), "truncated")
    # Cut inside the sections, the container reads as corrupted (see the report).
    message = _one_line_error(lambda: Container.from_bytes(data[: len(data) // 2]))
    assert "truncated" in message or "corrupted" in message
    corrupted = bytearray(data)
    corrupted[len(data) // 2] ^= 0xFF
    _one_line_error(lambda: Container.from_bytes(bytes(corrupted)), "checksum")
    versioned = bytearray(data)
    versioned[4] = 99
    _one_line_error(lambda: Container.from_bytes(bytes(versioned)), "version 99")


def _rebuilt(container: Container, **sections) -> Container:
    """The container with some sections replaced, through bytes (a valid checksum)."""
    new = Container(container.target, dict(container.header))
    for name, array in container.sections.items():
        new.add(name, sections.get(name, array))
    return Container.from_bytes(new.to_bytes(), "bad.dlhw")


def test_unknown_opcode_names_the_word(mlp):
    _, container = mlp
    text = container.sections["text"].copy()
    text[3] = np.uint64(0x3F << 56)
    bad = _rebuilt(container, text=text)
    _one_line_error(lambda: Simulator(bad, "bad.dlhw"), "bad.dlhw", "instruction 3", "0x3f")


def test_malformed_sections_are_one_line_errors(mlp):
    _, container = mlp
    ptr = container.sections["L1.B0.ptr"][:, :-1].copy()
    _one_line_error(lambda: Simulator(_rebuilt(container, **{"L1.B0.ptr": ptr})), "L1.B0.ptr")
    other = Container("ese", container.header, container.sections)
    _one_line_error(lambda: Simulator(other), "not eie")


def test_residency_comes_from_the_images(mlp):
    """The simulator derives residency from the images and the config; a header whose
    `resident` disagrees is a corrupted container, and a header without it is fine."""
    _, container = mlp
    assert Simulator(container).resident and container.header["resident"]
    header = dict(container.header, resident=False)
    bad = Container(container.target, header, container.sections)
    _one_line_error(
        lambda: Simulator(bad, "bad.dlhw"), "bad.dlhw", "corrupted container", "resident=false"
    )
    header.pop("resident")
    assert Simulator(Container(container.target, header, container.sections)).resident


def test_an_image_beyond_the_sram_is_refused(mlp):
    _, container = mlp
    hw = dict(container.header["hw"], spmat_sram_bytes=8)  # 8 entries per PE
    header = dict(container.header, hw=hw)
    small = Container(container.target, header, container.sections)
    _one_line_error(
        lambda: Simulator(small, "small.dlhw"),
        "small.dlhw",
        "layer 'fc1'",
        "its sparse-matrix SRAM addresses 8",
    )


def test_bad_inputs_are_one_line_errors(mlp):
    _, container = mlp
    sim = Simulator(container, "mlp.dlhw")
    x = np.zeros((2, 64), np.float32)
    _one_line_error(lambda: sim.run({}), "missing input 'input'")
    _one_line_error(lambda: sim.run({"input": x[:, :10]}), "input 'input'", "[2, 10]", "64")
    _one_line_error(lambda: sim.run({"input": x.astype(np.float64)}), "float64", "float32")
    _one_line_error(lambda: sim.run({"input": x, "other": x}), "unknown input 'other'")


# -- the command line ------------------------------------------------------------------


def test_cli_run_and_report(tmp_path, capsys, mlp):
    _, container = mlp
    prog = tmp_path / "mlp.dlhw"
    container.write(prog)
    x = np.load(TEST)["input"][:25]
    np.save(tmp_path / "x.npy", x)
    argv = ["run", prog, "--input", tmp_path / "x.npy", "--output", tmp_path / "out.npz"]
    assert main([str(a) for a in [*argv, "--stats", tmp_path / "s.json"]]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "cycles/vector" in err and len(err.splitlines()) == 1
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["total"]["vectors"] == 25
    assert np.load(tmp_path / "out.npz")["probabilities"].shape == (25, 10)
    assert main([str(a) for a in [*argv, "--report"]]) == 0
    table = capsys.readouterr().out
    assert main(["report", str(prog), "--stats", str(tmp_path / "s.json")]) == 0
    assert capsys.readouterr().out == table
    assert main(["report", str(prog), "--input", str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().out == table
    assert main(["report", str(prog)]) == 0
    static = capsys.readouterr().out
    assert "resident" in static and "fc2" in static and "Softmax" in static


@pytest.mark.parametrize("defect", ["truncated", "shape"])
def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch, mlp, defect):
    monkeypatch.delenv("DLHWC_TRACEBACK", raising=False)
    _, container = mlp
    prog = tmp_path / "mlp.dlhw"
    data = container.to_bytes()
    prog.write_bytes(data[:100] if defect == "truncated" else data)
    np.save(tmp_path / "x.npy", np.zeros((2, 63), np.float32))
    code = main(["run", str(prog), "--input", str(tmp_path / "x.npy")])
    _, err = capsys.readouterr()
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith("dlhwc: error: ")
    assert "Traceback" not in err
    assert ("truncated" if defect == "truncated" else "expected [batch, 64]") in err


def test_simulator_reads_only_the_container(tmp_path, mlp, digits):
    """Running a container (host segment included) loads no compiler IR modules."""
    import subprocess
    import sys

    _, container = mlp
    container.write(tmp_path / "mlp.dlhw")
    np.save(tmp_path / "x.npy", digits[0][:3])
    code = (
        "import sys, numpy as np\n"
        "from dlhwc.runtime.eie.sim import Simulator\n"
        f"sim = Simulator.from_file({str(tmp_path / 'mlp.dlhw')!r})\n"
        f"sim.run({{'input': np.load({str(tmp_path / 'x.npy')!r})}})\n"
        "prefixes = ('xdsl', 'dialects', 'dlhwc.compiler.passes', 'dlhwc.compiler.frontend',\n"
        "            'dlhwc.compiler.pipeline', 'dlhwc.compiler.interpreters', 'dlhwc.backends.eie.program')\n"
        "print(sorted(m for m in sys.modules if m.startswith(prefixes)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


def test_per_pe_busy_cycles_are_each_pes_work():
    """PE k's busy cycles: max(1, its entries of column j) for every non-zero input j."""
    rng = np.random.default_rng(11)
    cfg = EIEConfig(num_pes=4)
    mask, index = _random_layer(rng, 16, 20, 0.4)
    container = _hand_container(mask, index, list(range(16)), cfg)
    x = _sparse_inputs(rng, 6, 20, 0.5)
    _, stats = Simulator(container).run({"x": x})
    layer = stats.layers[0]
    entries = np.zeros((4, 20), np.int64)  # [pe, column], fillers included
    enc = encode_sparse(mask, index, 4, cfg.run_bits)
    entries[:] = np.diff(enc.pointers, axis=1)
    expected = (np.maximum(entries, 1) @ (x != 0).sum(axis=0)).tolist()
    assert layer["pe_busy_cycles"] == expected
    assert sum(layer["pe_busy_cycles"]) == layer["busy_pe_cycles"]
    assert stats.total["pe_busy_cycles"] == expected
