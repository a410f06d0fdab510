"""The ESE simulator (runtime/ese/sim.py): bit-exact against the golden model, and a sane
cycle and energy model.

Functional tests compile each model once to the `ese` IR with `compile_for_target`; the
reference interpreter runs that IR with the golden model (backends/ese/golden.py)
and the back end (backends/ese/program.py) turns the same IR into the container the
simulator runs. Every value the accelerator hands to the host must be equal bit for
bit; host results (Softmax) agree to float rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dlhwc.runtime.ese.sim as sim_module
from dlhwc.backends.docs import readme_path, updated
from dlhwc.backends.ese.target import TARGET as ese_target
from dlhwc.compiler.cli import main
from dlhwc.compiler.interpreters.interpreter import main_function, run_function
from dlhwc.compiler.pipeline import compile_for_target
from dlhwc.compiler.plugins import available_passes
from dlhwc.runtime.ese.sim import Simulator, Stats, _CostModel, static_report
from dlhwc.spec.container import Container
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.ese.config import ESEConfig
from dlhwc.spec.ese.isa import ESE_ISA

ROOT = Path(__file__).resolve().parents[2]
LSTM = ROOT / "examples" / "models" / "digits_lstm.onnx"
DIGITS = ROOT / "examples" / "data" / "digits_test_seq.npz"

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}

# 4 PEs; 96-byte sparse-matrix SRAMs (48 entries), 16 pointers: every matrix of the
# small models below needs several column blocks, and nothing is resident.
TINY_HW = """
num_pes = 4
spmat_sram_bytes = 96
ptr_sram_bytes = 32
"""


# -- helpers ---------------------------------------------------------------------------


def _rnn_model(
    path: Path,
    op: str = "LSTM",
    direction: str = "forward",
    *,
    hidden: int = 6,
    inp: int = 5,
    seq: int = 7,
    batch: int = 4,
    layout: int = 0,
    lens: list[int] | None = None,
    states: bool = False,
    constants: bool = False,
    peepholes: bool = False,
    clip: float | None = None,
    lbr: int = 0,
    acts: list[str] | None = None,
    input_forget: int = 0,
    seed: int = 0,
    scale: float = 0.5,
) -> tuple[Path, dict[str, np.ndarray]]:
    """A one-node ONNX LSTM/GRU/RNN with every output, and inputs for it.

    ``constants``: sequence_lens and the initial states are initializers, not inputs.
    """
    rng = np.random.default_rng(seed)
    d, g = (2 if direction == "bidirectional" else 1), GATES[op]

    def normal(*shape, s=1.0):
        return (s * rng.standard_normal(shape)).astype(np.float32)

    x_shape = [seq, batch, inp] if layout == 0 else [batch, seq, inp]
    state_shape = [d, batch, hidden] if layout == 0 else [batch, d, hidden]
    feeds = {"X": normal(*x_shape)}
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    inits = [
        numpy_helper.from_array(normal(d, g * hidden, inp, s=scale), "W"),
        numpy_helper.from_array(normal(d, g * hidden, hidden, s=scale), "R"),
        numpy_helper.from_array(normal(d, 2 * g * hidden, s=scale), "B"),
    ]
    names = ["X", "W", "R", "B", "", "", "", ""]
    if lens is not None:
        if constants:
            inits.append(numpy_helper.from_array(np.array(lens, np.int32), "sequence_lens"))
        else:
            feeds["sequence_lens"] = np.array(lens, np.int32)
            graph_inputs.append(
                helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [batch])
            )
        names[4] = "sequence_lens"
    state_names = ["initial_h", "initial_c"] if op == "LSTM" else ["initial_h"]
    if states:
        for i, name in enumerate(state_names):
            value = normal(*state_shape, s=0.5)
            if constants:
                inits.append(numpy_helper.from_array(value, name))
            else:
                feeds[name] = value
                graph_inputs.append(
                    helper.make_tensor_value_info(name, TensorProto.FLOAT, state_shape)
                )
            names[5 + i] = name
    if peepholes:
        inits.append(numpy_helper.from_array(normal(d, 3 * hidden, s=scale), "P"))
        names[7] = "P"
    limit = 8 if op == "LSTM" else 6
    names = names[:limit]
    while names and names[-1] == "":
        names.pop()
    outs = ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]
    attrs = {"hidden_size": hidden, "direction": direction}
    if layout:
        attrs["layout"] = 1
    if clip is not None:
        attrs["clip"] = clip
    if acts is not None:
        attrs["activations"] = acts
    if op == "GRU":
        attrs["linear_before_reset"] = lbr
    if op == "LSTM" and input_forget:
        attrs["input_forget"] = 1
    node = helper.make_node(op, names, outs, name="rnn", **attrs)
    graph_outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs]
    graph = helper.make_graph([node], "rnn", graph_inputs, graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    onnx.save(model, path)
    return path, feeds


def _compile(model: Path, feeds, pipeline: str | None = None, hw: str | None = None):
    """(ese-level module, container read back from its bytes), calibrated on ``feeds``."""
    calib = model.with_suffix(".calib.npz")
    np.savez(calib, **feeds)
    hw_path = None
    if hw is not None:
        hw_path = model.with_suffix(".hw.toml")
        hw_path.write_text(hw)
        hw_path = str(hw_path)

    def configure(passes):
        from dlhwc.compiler.passes.quantize import with_calibration

        return with_calibration(passes, str(calib))[0]

    module = compile_for_target(
        str(model), "ese", pipeline, available_passes(), "ese", hw_path, None, configure
    )
    container = ese_target.build(module, ese_target.load_config(hw_path))
    return module, Container.from_bytes(container.to_bytes(), "test.dlhw")


def _golden(module, inputs: dict[str, np.ndarray]):
    """The golden model's run: (values by name hint, outputs by output name)."""
    from dlhwc.compiler.interpreters.interpreter import input_names, output_names

    fn = main_function(module)
    values: dict[str, np.ndarray] = {}

    def observe(value, array):
        if value.name_hint:
            values.setdefault(value.name_hint, array)

    results = run_function(fn, [inputs[n] for n in input_names(fn)], observe)
    return values, dict(zip(output_names(fn), results, strict=True))


def _check_against_golden(module, container, inputs, exact_host: bool = True):
    """Accelerator values bit for bit; host values exactly (or to float rounding).

    Transfers are found by their symbol's name: the value's name hint, with a ".<index>"
    suffix when an output took the name.
    """
    sim = Simulator(container)
    outputs, stats = sim.run(inputs)
    values, golden_outputs = _golden(module, inputs)
    memory = sim.last_host_memory
    for sym in sim.symbols:
        if sym.kind in ("input", "constant"):
            continue
        got = memory[sym.name]
        if sym.kind == "output":
            want = golden_outputs[sym.name]
            assert outputs[sym.name] is got
        else:
            want = values[sym.name.rsplit(".", 1)[0] if sym.name not in values else sym.name]
        assert got.shape == want.shape and got.dtype == want.dtype, sym.name
        if sym.format is not None or exact_host:  # dma.out, or exact host rounding
            assert np.array_equal(got, want), f"{sym.name}: not bit-exact"
        else:
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=sym.name)
    assert any(s.format is not None and s.kind != "input" for s in sim.symbols)
    return sim, stats


# -- bit-exact against the golden model --------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    data = np.load(DIGITS)
    return data["input"], data["labels"]


@pytest.fixture(scope="module")
def digits_lstm(tmp_path_factory, digits):
    model = tmp_path_factory.mktemp("digits") / "digits_lstm.onnx"
    model.write_bytes(LSTM.read_bytes())
    return _compile(model, {"input": digits[0][:200]})


def test_digits_lstm_matches_golden_model(digits_lstm, digits):
    module, container = digits_lstm
    sim, stats = _check_against_golden(module, container, {"input": digits[0]}, False)
    assert [lay.kind for lay in sim.layers] == ["LSTM"]
    total = stats.total
    assert total["steps"] == 8 * len(digits[0])
    assert 0.5 < total["load_efficiency"] <= 1
    assert 0 < total["overlap_saving"] < 1


def test_digits_lstm_accuracy_close_to_float(digits_lstm, digits):
    from dlhwc.compiler.frontend.onnx_importer import import_file
    from dlhwc.compiler.interpreters.interpreter import run_module

    _, container = digits_lstm
    x, labels = digits
    outputs, _ = Simulator(container).run({"input": x})
    float_out = run_module(import_file(str(LSTM)), {"input": x})
    accel = float(np.mean(outputs["probabilities"].argmax(1) == labels))
    ref = float(np.mean(float_out["probabilities"].argmax(1) == labels))
    assert accel >= ref - 0.01, (accel, ref)


CASES = {
    "lstm-fwd-lens-states-peep-clip": dict(
        op="LSTM", lens=[7, 0, 3, 7], states=True, peepholes=True, clip=1.5
    ),
    "lstm-rev-layout1": dict(op="LSTM", direction="reverse", layout=1, lens=[2, 7, 0, 5]),
    "lstm-bidi-states-input-forget": dict(
        op="LSTM", direction="bidirectional", states=True, input_forget=1, lens=[7, 1, 4, 7]
    ),
    "lstm-bidi-layout1-states": dict(op="LSTM", direction="bidirectional", layout=1, states=True),
    "gru-lbr0-bidi-lens": dict(op="GRU", direction="bidirectional", lens=[3, 7, 0, 6], lbr=0),
    "gru-lbr1-rev-states": dict(op="GRU", direction="reverse", states=True, lbr=1),
    "gru-lbr0-layout1-states-clip": dict(op="GRU", layout=1, states=True, clip=2.0, lbr=0),
    "gru-lbr1-bidi-lens": dict(op="GRU", direction="bidirectional", lbr=1, lens=[7, 2, 7, 0]),
    "rnn-relu-lens": dict(op="RNN", acts=["Relu"], lens=[7, 4, 0, 1], scale=0.3),
    "rnn-tanh-bidi-states": dict(op="RNN", direction="bidirectional", states=True),
    "gru-lbr0-relu-gates": dict(op="GRU", acts=["Relu", "Tanh"], lbr=0, scale=0.3),
    "lstm-relu-cell-tanh-gates": dict(
        op="LSTM", acts=["Tanh", "Relu", "Tanh"], input_forget=1, scale=0.3, lens=[2, 7, 5, 0]
    ),
    "lstm-constant-lens-and-states": dict(
        op="LSTM", direction="bidirectional", lens=[7, 0, 2, 5], states=True, constants=True
    ),
    "gru-constant-states-layout1": dict(op="GRU", layout=1, states=True, constants=True),
    "rnn-sigmoid-relu-bidi": dict(
        op="RNN", direction="bidirectional", acts=["Sigmoid", "Relu"], scale=0.3
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_random_models_match_golden_model(tmp_path, case):
    model, feeds = _rnn_model(tmp_path / "m.onnx", seed=len(case), **CASES[case])
    module, container = _compile(model, feeds)
    sim, stats = _check_against_golden(module, container, feeds)
    assert container.header["resident"]
    lens = np.array(CASES[case].get("lens", [7] * 4))
    dirs = sim.layers[0].dirs
    assert stats.total["steps"] == dirs * int(lens.sum())


@pytest.mark.parametrize("pipeline", ["prune{sparsity=0.9 balance-pes=32}", "prune{sparsity=0.9}"])
@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_pruned_models_match_golden_model(tmp_path, op, pipeline):
    model, feeds = _rnn_model(
        tmp_path / "m.onnx", op, "bidirectional", hidden=40, inp=24, lens=[7, 3, 0, 5]
    )
    module, container = _compile(model, feeds, pipeline=pipeline)
    _, stats = _check_against_golden(module, container, feeds)
    layer = stats.layers[0]
    assert layer["density"] < 0.15
    assert 0 < layer["load_efficiency"] <= 1


@pytest.mark.parametrize("op,lbr", [("LSTM", 0), ("GRU", 0), ("GRU", 1), ("RNN", 0)])
def test_column_blocks_and_reloads_match_golden_model(tmp_path, op, lbr):
    hidden = 24 if op == "RNN" else 12
    model, feeds = _rnn_model(
        tmp_path / "m.onnx", op, "bidirectional", hidden=hidden, inp=10, lens=[7, 3, 0, 5],
        lbr=lbr,
    )  # fmt: skip
    module, container = _compile(model, feeds, hw=TINY_HW)
    layer = container.header["layers"][0]
    assert all(len(m["blocks"]) > 1 for m in layer["matrices"] if m["name"] != "Rh")
    assert not container.header["resident"]
    sim, stats = _check_against_golden(module, container, feeds)
    # Every active step reloads the blocks of every matrix it multiplies with.
    loads_in_loops = stats.total["instructions"]["load"]
    blocks = sum(len(m["blocks"]) for m in layer["matrices"] if m["dir"] == 0)
    assert loads_in_loops == blocks * int(feeds["sequence_lens"].sum()) * 2
    assert stats.total["cycles_breakdown"]["load"] > 0


EXPORTED = ROOT / "tests" / "models" / "exported"


@pytest.mark.parametrize(
    "name", ["torch_bilstm1_ts14", "torch_gru2_dynamo", "torch_lstm2_dynamo", "torch_gru1_ts14"]
)
def test_pytorch_exports_match_golden_model(tmp_path, name):
    """Stacked layers with host Squeeze/Transpose/Reshape between them, dynamic dims."""
    model = tmp_path / f"{name}.onnx"
    model.write_bytes((EXPORTED / f"{name}.onnx").read_bytes())
    feeds = dict(np.load(EXPORTED / f"{name}.npz"))
    module, container = _compile(model, feeds)
    sim, _ = _check_against_golden(module, container, feeds, exact_host=False)
    assert all(p["where"] == "ese" for p in container.header["placement"] if "rnn" in p["op"])
    assert len(sim.layers) == (2 if name[-6] == "2" or "2_" in name else 1)


def test_sparse_product_path_is_exact(monkeypatch, tmp_path):
    monkeypatch.setattr(sim_module, "DENSE_LIMIT", 0)
    model, feeds = _rnn_model(tmp_path / "m.onnx", "GRU", "bidirectional", lens=[7, 2, 0, 4])
    module, container = _compile(model, feeds)
    sim, _ = _check_against_golden(module, container, feeds)
    assert sim.block(0, 0, 0, 0).dense is None


def test_empty_sequences(tmp_path):
    model, feeds = _rnn_model(tmp_path / "m.onnx", "LSTM", seq=3, lens=[0, 0, 0, 0])
    module, container = _compile(model, feeds)
    _, stats = _check_against_golden(module, container, feeds)
    assert stats.total["steps"] == 0 and stats.total["cycles_breakdown"]["compute"] == 0


def test_cli_compile_for_ese(tmp_path, capsys, digits):
    calib = tmp_path / "calib.npz"
    np.savez(calib, input=digits[0][:50])
    program = tmp_path / "lstm.dlhw"
    argv = ["compile", str(LSTM), "--target", "ese", "--calibration", str(calib)]
    assert main([*argv, "-o", str(program)]) == 0
    assert "ese.rnn" in capsys.readouterr().err
    assert Container.read(program).target == "ese"
    assert main([*argv, "--emit", "asm"]) == 0
    assert "cell      layer=0, dir=0" in capsys.readouterr().out


# -- the container ---------------------------------------------------------------------


def test_entries_pack_weight_and_index_in_16_bits(tmp_path):
    model, feeds = _rnn_model(tmp_path / "m.onnx", "RNN", hidden=8, inp=6)
    module, container = _compile(model, feeds)
    from dlhwc.backends.ese.golden import layer_constants

    op = next(o for o in main_function(module).body.block.ops if o.name == "ese.rnn")
    codes = layer_constants(op)["W"][0]
    sim = Simulator(container)
    spmat = container.sections["L0.D0.W.B0.spmat"]
    assert spmat.dtype == np.uint16
    blk = sim.block(0, 0, 0, 0)
    dense = np.zeros_like(codes)
    dense[blk.rows, blk.cols] = blk.codes
    assert np.array_equal(dense, codes)
    layer = container.header["layers"][0]
    assert layer["kind"] == "RNN" and layer["hidden"] == 8 and layer["input"] == 6
    assert layer["activations"] == [["Tanh"]]
    assert set(layer["formats"]) == {"fx", "fh", "fw", "fr", "fl", "fc", "fp"}
    symbols = {s["name"]: s for s in container.header["symbols"]}
    assert symbols["X"]["shape"] == [7, 6] and symbols["X"]["batch_axis"] == 1


def test_sequence_lengths_cross_as_int32(tmp_path):
    model, feeds = _rnn_model(tmp_path / "m.onnx", "GRU", lens=[1, 2, 3, 4])
    _, container = _compile(model, feeds)
    sym = next(s for s in container.header["symbols"] if s["name"] == "sequence_lens")
    assert sym["dtype"] == "int32" and sym["format"] == [32, 0] and sym["shape"] == []
    sim = Simulator(container)
    with pytest.raises(DlhwcError, match="sequence_lens"):
        sim.run({**feeds, "sequence_lens": feeds["sequence_lens"].astype(np.float32)})
    with pytest.raises(DlhwcError, match="sequence length 9 outside 0..7"):
        sim.run({**feeds, "sequence_lens": np.array([9, 1, 1, 1], np.int32)})


# -- the cycle model -------------------------------------------------------------------


def _stats(tmp_path, pipeline=None, hw=None, **kw):
    model, feeds = _rnn_model(tmp_path / "m.onnx", **kw)
    _, container = _compile(model, feeds, pipeline=pipeline, hw=hw)
    return Simulator(container).run(feeds)[1]


def test_balance_aware_pruning_improves_load_efficiency(tmp_path):
    kw = dict(op="LSTM", hidden=64, inp=32, batch=2, seq=4, seed=3)
    hw = "num_pes = 16\n"
    plain = _stats(tmp_path, "prune{sparsity=0.9}", hw, **kw)
    balanced = _stats(tmp_path, "prune{sparsity=0.9 balance-pes=16}", hw, **kw)
    assert balanced.total["load_efficiency"] > plain.total["load_efficiency"]
    assert balanced.total["cycles_per_step"] < plain.total["cycles_per_step"]


def test_overlap_never_makes_a_step_slower():
    rng = np.random.default_rng(0)
    for lbr0 in (False, True):
        phases = {p: rng.integers(0, 50, (9, 5)) for p in ("W", "R", "G", "Rh", "C")}
        if not lbr0:
            phases["G"][:] = phases["Rh"][:] = 0
        active = np.arange(9)[:, None] < np.array([9, 3, 0, 1, 7])[None, :]
        step, serial = _CostModel.schedule(phases, active)
        assert np.all(step <= serial) and np.all(step[~active] == 0)
        # A step waits for nothing but its own phases and the previous cell:
        w, r, c = phases["W"], phases["R"], phases["C"]
        g, rh = phases["G"], phases["Rh"]
        expected = np.maximum(w[1:], c[:-1]) + r[1:] + g[1:] + rh[1:] + c[1:] - c[:-1]
        both = active[1:] & active[:-1]
        assert np.array_equal(step[1:][both], expected[both])


def test_overlap_saving_is_reported(tmp_path):
    stats = _stats(tmp_path, op="GRU", hidden=32, inp=16, batch=2, lbr=0)
    layer = stats.layers[0]
    assert layer["cycles_breakdown"]["compute"] <= layer["cycles_without_overlap"]
    assert layer["overlap_saving_cycles"] == (
        layer["cycles_without_overlap"] - layer["cycles_breakdown"]["compute"]
    )
    assert len(layer["step_cycles"]) == 7
    assert layer["cycles_per_step"] == pytest.approx(
        layer["cycles_breakdown"]["compute"] / layer["steps"]
    )


def test_more_pes_are_never_slower(tmp_path):
    kw = dict(op="LSTM", hidden=48, inp=20, batch=2, seq=5, seed=1)
    cycles = [
        _stats(tmp_path, "prune{sparsity=0.8}", f"num_pes = {n}\n", **kw).total["cycles_per_step"]
        for n in (2, 4, 8, 16, 32)
    ]
    assert cycles == sorted(cycles, reverse=True), cycles


def test_stats_totals_schema_and_table(digits_lstm, digits):
    _, container = digits_lstm
    sim = Simulator(container)
    _, stats = sim.run({"input": digits[0][:20]})
    data = json.loads(stats.dumps())
    assert data["target"] == "ese"
    for layer in data["layers"]:
        for key in (
            "name", "kind", "cycles", "time_us", "load_efficiency", "energy_pj",
            "padding_overhead", "nonzeros", "entries", "fillers", "activation_density",
            "dense", "events", "cycles_per_step", "time_us_per_step", "energy_pj_per_step",
            "overlap_saving", "overlap_saving_cycles", "step_cycles",
        ):  # fmt: skip
            assert key in layer, key
        assert layer["kind"] == "lstm"
        assert layer["energy_pj"] == pytest.approx(sum(layer["energy_breakdown_pj"].values()))
        assert layer["cycles"] == sum(layer["cycles_breakdown"].values())
        assert len(layer["pe_busy_cycles"]) == sim.config.num_pes
        assert sum(layer["pe_busy_cycles"]) == layer["busy_pe_cycles"] > 0
    total = data["total"]
    assert total["cycles"] == sum(e["cycles"] for e in data["layers"])
    assert set(total) >= {"cycles", "time_us", "energy_pj", "vectors", "steps", "speedup"}
    assert sim.run({"input": digits[0][:20]})[1].dumps() == stats.dumps()  # deterministic
    table = Stats.from_json(data).format_table()
    assert table == stats.format_table()
    assert "lstm" in static_report(sim) and "resident: yes" in static_report(sim)


def test_resident_weights_load_once(digits_lstm, digits):
    _, container = digits_lstm
    sim = Simulator(container)
    _, one = sim.run({"input": digits[0][:1]})
    _, many = sim.run({"input": digits[0][:30]})
    assert one.total["cycles_breakdown"]["load"] == many.total["cycles_breakdown"]["load"] > 0


def test_handlers_repeat_the_isa_pseudo_code():
    machine = sim_module._Machine
    for instr in ESE_ISA.instructions:
        doc = getattr(machine, "exec_" + instr.mnemonic.replace(".", "_")).__doc__
        normalized = " ".join(doc.split())
        for line in instr.doc.splitlines():
            assert " ".join(line.split()) in normalized, (instr.mnemonic, line)


def test_isa_reference_in_the_readme_is_current():
    text = readme_path("ese").read_text(encoding="utf-8")
    assert updated("ese", text) == text, "run python -m dlhwc.backends.docs"


# -- errors ----------------------------------------------------------------------------


def _one_line_error(fn, *fragments) -> str:
    with pytest.raises(DlhwcError) as info:
        fn()
    message = info.value.message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def _rebuilt(container: Container, header=None, **sections) -> Container:
    new = Container(container.target, dict(header or container.header))
    for name, array in container.sections.items():
        new.add(name, sections.get(name, array))
    return Container.from_bytes(new.to_bytes(), "bad.dlhw")


def test_broken_containers_are_one_line_errors(digits_lstm):
    _, container = digits_lstm
    data = container.to_bytes()
    corrupted = bytearray(data)
    corrupted[len(data) // 2] ^= 0xFF
    _one_line_error(lambda: Container.from_bytes(bytes(corrupted)), "checksum")
    eie = Container("eie", container.header, container.sections)
    _one_line_error(lambda: Simulator(eie), "targets 'eie', not ese")
    text = container.sections["text"].copy()
    text[2] = np.uint64(0x3F << 56)
    _one_line_error(lambda: Simulator(_rebuilt(container, text=text)), "instruction 2", "0x3f")
    spmv = [i for i, w in enumerate(container.sections["text"]) if int(w) >> 56 == 7][0]
    text = container.sections["text"].copy()
    text[spmv - 1] = np.uint64(0x01 << 56)  # the seq becomes a barrier
    _one_line_error(lambda: Simulator(_rebuilt(container, text=text)), "outside a seq loop")
    ptr = container.sections["L0.D0.R.B0.ptr"][:, :-1].copy()
    bad = {"L0.D0.R.B0.ptr": ptr}
    _one_line_error(lambda: Simulator(_rebuilt(container, **bad)), "L0.D0.R.B0.ptr")
    header = json.loads(json.dumps(container.header))
    header["layers"][0]["kind"] = "XYZ"
    _one_line_error(lambda: Simulator(_rebuilt(container, header)), "malformed layer table")


def test_bad_inputs_are_one_line_errors(digits_lstm):
    _, container = digits_lstm
    sim = Simulator(container, "lstm.dlhw")
    x = np.zeros((2, 8, 8), np.float32)
    _one_line_error(lambda: sim.run({}), "missing input 'input'")
    _one_line_error(lambda: sim.run({"input": x[:, :, :5]}), "input 'input'", "[2, 8, 5]")
    _one_line_error(lambda: sim.run({"input": x.astype(np.float64)}), "float64", "float32")
    _one_line_error(lambda: sim.run({"input": x, "y": x}), "unknown input 'y'")


# -- the command line ------------------------------------------------------------------


def test_cli_run_report_disasm_asm(tmp_path, capsys, digits_lstm, digits):
    _, container = digits_lstm
    program = tmp_path / "lstm.dlhw"
    container.write(program)
    data = tmp_path / "x.npz"
    np.savez(data, input=digits[0][:10], labels=digits[1][:10])
    out, stats = tmp_path / "y.npz", tmp_path / "s.json"
    assert main(["run", str(program), "--input", str(data), "--output", str(out),
                 "--stats", str(stats)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "ese: 10 sequences" in err and "cycles/step" in err
    assert json.loads(stats.read_text())["target"] == "ese"
    assert main(["report", str(program)]) == 0
    assert "ESE program" in capsys.readouterr().out
    assert main(["report", str(program), "--stats", str(stats)]) == 0
    assert "ESE simulation" in capsys.readouterr().out
    text = tmp_path / "lstm.s"
    assert main(["disasm", str(program), "-o", str(text)]) == 0
    assert "seq       layer=0" in text.read_text()
    again = tmp_path / "again.dlhw"
    assert main(["asm", str(text), "-o", str(again)]) == 0
    assert again.read_bytes() == program.read_bytes()
    capsys.readouterr()
    assert main(["run", str(program), "--input", str(tmp_path / "missing.npz")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_ese_config_fields_are_recorded(digits_lstm):
    _, container = digits_lstm
    assert ESEConfig.from_dict(container.header["hw"]) == ESEConfig()


@pytest.mark.slow
def test_bench_ese_runs_at_tiny_size():
    import subprocess
    import sys

    bench = ROOT / "benchmarks" / "bench_ese.py"
    args = ["--hidden", "64", "--input", "20", "--steps", "4", "--sequences", "2", "--pes", "8"]
    proc = subprocess.run(
        [sys.executable, str(bench), *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "balance-aware (8 PEs)" in proc.stdout and "slower" in proc.stdout
    assert proc.stdout.count(" yes ") == 2
