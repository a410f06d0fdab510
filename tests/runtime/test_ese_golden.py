"""The ESE golden model (backends/ese/golden.py on runtime/ese/arith.py) against float.

Every model here is compressed as the ESE target does it -- weights in 12-bit linear
quantization, activations in 16-bit formats calibrated on the model's own inputs -- then
lowered by convert-onnx-to-ese, and run in the reference interpreter: the `ese.rnn` ops
run the fixed-point golden model, everything else stays float on the host.

The error bound (backends/ese/README.md, "Accuracy"): a hidden-state output after T steps
differs from float by at most

    E(T) = T * eps,   eps = 2 * e_tanh

with e_tanh the tanh table's worst error (arith.lut_error: 1.51e-3 at the default 128
segments over [-8, 8)). One step adds at most one table error of tanh plus the smaller
terms (sigmoid table, 12-bit weights, pre-activation and state roundings), which stay
below another e_tanh at these value ranges; errors add up at most linearly when the
recurrence does not expand them. A layer reading that output multiplies the bound by
its weights' largest row sum |W| (the max norm).

A second, tighter check isolates the fixed-point arithmetic from quantization: each
ese.rnn against the float kernel on the very same (quantized) operands, within

    A(T) = T * (e_tanh + e_sigmoid + 4 * 2^-(fl+1))

(the tables, and four roundings at the pre-activation precision per step).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from dlhwc.compiler.frontend.onnx_importer import import_file, import_model
from dlhwc.compiler.functions import main_function
from dlhwc.compiler.interpreters.interpreter import (
    check_inputs,
    evaluate_op,
    run_function,
    run_module,
)
from dlhwc.compiler.interpreters.onnx_rnn import GRU, LSTM, RNN
from dlhwc.compiler.irio import module_to_string
from dlhwc.compiler.passes.quantize import with_calibration
from dlhwc.compiler.pipeline import apply_passes, compile_for_target, parse_pipeline
from dlhwc.compiler.plugins import available_passes
from dlhwc.dialects import ese
from dlhwc.dialects import onnx as onnx_d
from dlhwc.runtime.ese import arith
from dlhwc.spec.ese.config import ESEConfig
from dlhwc.spec.ese.lut import LUT_FUNCTIONS, build_lut
from tests.interpreters.test_onnx_rnn import BACKEND_CASES

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "models" / "digits_lstm.onnx"
DIGITS_TEST = ROOT / "examples" / "data" / "digits_test_seq.npz"
DIGITS_CALIB = ROOT / "examples" / "data" / "digits_calib.npz"
EXPORTED = ROOT / "tests" / "models" / "exported"

KERNEL = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
INPUT_NAMES = {
    "LSTM": ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"],
    "GRU": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
    "RNN": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
}
OUTPUT_NAMES = {"LSTM": ["Y", "Y_h", "Y_c"], "GRU": ["Y", "Y_h"], "RNN": ["Y", "Y_h"]}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
# ESE preloads weights: W, R, B and P are initializers, the rest run-time inputs.
CONSTANT_INPUTS = {1, 2, 3, 7}
CONFIG = ESEConfig()


# -- the bounds ---------------------------------------------------------------------------


def table_error(function: str, config: ESEConfig = CONFIG) -> float:
    """A table's worst error, including inputs beyond its range (clamped to the edge)."""
    lut = build_lut(function, config.lut_in_frac, config.lut_segments)
    edge = 2.0 ** (15 - config.lut_in_frac)
    beyond = 1.0 - float(LUT_FUNCTIONS[function](np.array(edge)))
    return max(arith.lut_error(lut), beyond)


def bound(steps: int, config: ESEConfig = CONFIG) -> float:
    """E(T): the bound on a hidden-state output against float (module docstring)."""
    return steps * 2 * table_error("Tanh", config)


def arithmetic_bound(steps: int, config: ESEConfig = CONFIG) -> float:
    """A(T): the bound on ese.rnn against float on the same quantized operands."""
    roundings = 4 * 2.0 ** -(config.lut_in_frac + 1)
    return steps * (table_error("Tanh", config) + table_error("Sigmoid", config) + roundings)


# -- building and lowering one-node models ----------------------------------------------------


def one_node_model(node: onnx.NodeProto, inputs: list, outputs: list) -> onnx.ModelProto:
    """A model of ``node`` with W/R/B/P as initializers; ``inputs``/``outputs`` are aligned
    with node.input/node.output (None: omitted, or an output not kept as a graph output)."""
    initializers, graph_inputs = [], []
    for index, (name, value) in enumerate(zip(node.input, inputs, strict=False)):
        if not name:
            continue
        if index in CONSTANT_INPUTS:
            initializers.append(numpy_helper.from_array(value, name))
        else:
            dtype = helper.np_dtype_to_tensor_dtype(value.dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, dtype, value.shape))
    graph_outputs = [
        helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, value.shape)
        for name, value in zip(node.output, outputs, strict=False)
        if name and value is not None
    ]
    graph = helper.make_graph([node], node.op_type, graph_inputs, graph_outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def run_time_inputs(node: onnx.NodeProto, inputs: list) -> dict[str, np.ndarray]:
    return {
        name: value
        for index, (name, value) in enumerate(zip(node.input, inputs, strict=False))
        if name and index not in CONSTANT_INPUTS
    }


def lower(model: onnx.ModelProto, feeds: dict, tmp_path: Path, hw: str | None = None):
    """The model quantized (activations calibrated on ``feeds``) and lowered to ESE."""
    calibration = tmp_path / "calibration.npz"
    np.savez(calibration, **feeds)
    lowering = "convert-onnx-to-ese" + (f"{{hw={hw}}}" if hw else "")
    spec = (
        f"fold-constants,quantize{{weight-bits={CONFIG.weight_bits} act-bits=16 "
        f"calibration={calibration}}},{lowering}"
    )
    return apply_passes(import_model(model), parse_pipeline(spec, available_passes()))


def ese_ops(module) -> list[ese.RNNOp]:
    return [op for op in module.walk() if isinstance(op, ese.RNNOp)]


def host_rnn_ops(module) -> list:
    return [
        op for op in module.walk() if isinstance(op, onnx_d.LSTMOp | onnx_d.GRUOp | onnx_d.RNNOp)
    ]


def float_attributes(op: ese.RNNOp) -> dict:
    """The ONNX attributes an ese.rnn stands for, as the float kernels take them."""
    attrs = {
        "direction": op.direction.data,
        "hidden_size": op.hidden_size.value.data,
        "layout": op.layout.value.data,
        "activations": op.activation_names,
    }
    if op.clip is not None:
        attrs["clip"] = op.clip.value.data
    if op.kind.data == "LSTM":
        attrs["input_forget"] = op.input_forget.value.data
    if op.kind.data == "GRU":
        attrs["linear_before_reset"] = op.linear_before_reset.value.data
    return attrs


def arithmetic_errors(module, feeds: dict) -> list[tuple[int, float]]:
    """For each ese.rnn: (steps, max |golden - float kernel|) on the operand values it
    reads when the module runs on ``feeds``."""
    fn = main_function(module)
    env = {}
    run_function(fn, check_inputs(fn, feeds), observe=lambda v, a: env.__setitem__(v, a))
    found = []
    for op in ese_ops(module):
        args = [None if op.operand(i) is None else env[v] for i, v in enumerate(op.inputs)]
        golden = evaluate_op(op, args)
        expected = KERNEL[op.kind.data](*args, **float_attributes(op))
        steps = args[0].shape[op.layout.value.data]
        err = max(
            float(np.max(np.abs(g - e), initial=0.0))
            for g, e in zip(golden, expected, strict=False)
        )
        found.append((steps, err))
    return found


# -- the tables -----------------------------------------------------------------------------


def test_table_errors_of_the_default_machine():
    # The figures config.py and the README quote.
    assert arith.lut_error(build_lut("Sigmoid", 12, 128)) == pytest.approx(2.2e-4, rel=0.05)
    assert arith.lut_error(build_lut("Tanh", 12, 128)) == pytest.approx(1.51e-3, rel=0.01)
    assert bound(1) == pytest.approx(3.02e-3, rel=0.01)


def test_tables_converge_with_more_segments():
    errors = [arith.lut_error(build_lut("Tanh", 12, s)) for s in (32, 64, 128, 256)]
    # A chord's error falls with the square of the segment width.
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert 3.5 < coarse / fine < 4.5


# -- the ONNX backend node test cases ------------------------------------------------------


def _steps(node: onnx.NodeProto, x: np.ndarray) -> int:
    layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
    return x.shape[1 if layout else 0]


@pytest.mark.parametrize("name", sorted(BACKEND_CASES))
def test_backend_case(name, tmp_path):
    case = BACKEND_CASES[name]
    ((inputs, expected),) = case.data_sets
    model = one_node_model(case.node, inputs, expected)
    feeds = run_time_inputs(case.node, inputs)
    module = lower(model, feeds, tmp_path)
    assert len(ese_ops(module)) == 1 and not host_rnn_ops(module)
    outputs = run_module(module, feeds)
    tolerance = bound(_steps(case.node, inputs[0]))
    for output, want in zip(case.node.output, expected, strict=False):
        if output and want is not None:
            got = outputs[output]
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=0, atol=tolerance, err_msg=output)
    ((steps, err),) = arithmetic_errors(module, feeds)
    assert err <= arithmetic_bound(steps)


# -- random configurations against the float kernels -----------------------------------------

SEQ, BATCH, INPUT, HIDDEN = 5, 3, 4, 6
# (op, attributes, optional inputs given); each runs with three seeds.
CONFIGS = [
    ("LSTM", {"direction": "forward"}, {"B"}),
    ("LSTM", {"direction": "reverse", "layout": 1}, {"B", "sequence_lens", "initial_h"}),
    ("LSTM", {"direction": "bidirectional", "clip": 1.5}, {"B", "P", "sequence_lens",
                                                            "initial_h", "initial_c"}),
    ("LSTM", {"direction": "forward", "layout": 1, "input_forget": 1}, {"P", "initial_c"}),
    ("GRU", {"direction": "forward", "linear_before_reset": 0}, {"B", "initial_h"}),
    ("GRU", {"direction": "reverse", "layout": 1, "linear_before_reset": 1},
     {"B", "sequence_lens"}),
    ("GRU", {"direction": "bidirectional", "linear_before_reset": 1, "clip": 2.0},
     {"B", "sequence_lens", "initial_h"}),
    ("GRU", {"direction": "bidirectional", "layout": 1, "linear_before_reset": 0},
     {"sequence_lens", "initial_h"}),
    ("RNN", {"direction": "forward"}, {"B"}),
    ("RNN", {"direction": "reverse", "layout": 1, "activations": ["Relu"]},
     {"B", "sequence_lens", "initial_h"}),
    ("RNN", {"direction": "bidirectional", "activations": ["Relu", "Tanh"], "clip": 1.0},
     {"sequence_lens", "initial_h"}),
    ("RNN", {"direction": "bidirectional", "layout": 1}, {"B", "sequence_lens"}),
]  # fmt: skip
SEEDS = (0, 1, 2)


def random_case(op: str, attrs: dict, present: set, seed: int):
    """(node, inputs aligned with node.input, float outputs) of one configuration."""
    rng = np.random.default_rng(zlib.crc32(f"{op}/{sorted(attrs.items())}/{seed}".encode()))
    dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    layout, gates = attrs.get("layout", 0), GATES[op]
    # Relu does not bound the state: smaller weights keep it inside the 16-bit range.
    scale = 0.25 if "Relu" in attrs.get("activations", []) else 0.5

    def normal(*shape, s=1.0):
        return (s * rng.standard_normal(shape)).astype(np.float32)

    state = (dirs, BATCH, HIDDEN) if layout == 0 else (BATCH, dirs, HIDDEN)
    # Varying lengths: a full one, an empty one, one in between.
    lengths = np.array([SEQ, 0, int(rng.integers(1, SEQ))], np.int32)
    optional = {
        "B": lambda: normal(dirs, 2 * gates * HIDDEN, s=0.5),
        "sequence_lens": lambda: lengths,
        "initial_h": lambda: normal(*state, s=0.5),
        "initial_c": lambda: normal(*state),
        "P": lambda: normal(dirs, 3 * HIDDEN, s=0.5),
    }
    values = {
        "X": normal(*((SEQ, BATCH, INPUT) if layout == 0 else (BATCH, SEQ, INPUT))),
        "W": normal(dirs, gates * HIDDEN, INPUT, s=scale),
        "R": normal(dirs, gates * HIDDEN, HIDDEN, s=scale),
    }
    for name in INPUT_NAMES[op][3:]:
        values[name] = optional[name]() if name in present else None
    names = [n if values[n] is not None else "" for n in INPUT_NAMES[op]]
    while not names[-1]:
        names.pop()
    attrs = {"hidden_size": HIDDEN, **attrs}
    node = helper.make_node(op, names, OUTPUT_NAMES[op], **attrs)
    inputs = [values[n] if n else None for n in names]
    expected = KERNEL[op](*(values[n] for n in INPUT_NAMES[op]), **attrs)
    return node, inputs, list(expected)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "op, attrs, present", CONFIGS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONFIGS)]
)
def test_random_configuration(op, attrs, present, seed, tmp_path):
    node, inputs, expected = random_case(op, attrs, present, seed)
    feeds = run_time_inputs(node, inputs)
    module = lower(one_node_model(node, inputs, expected), feeds, tmp_path)
    assert len(ese_ops(module)) == 1 and not host_rnn_ops(module)
    outputs = run_module(module, feeds)
    for name, want in zip(node.output, expected, strict=True):
        np.testing.assert_allclose(outputs[name], want, rtol=0, atol=bound(SEQ), err_msg=name)
    if "sequence_lens" in present:
        # The empty sequence: all outputs zero, as onnxruntime gives.
        for name in node.output:
            batch_axis = 2 if name == "Y" and attrs.get("layout", 0) == 0 else (
                0 if attrs.get("layout", 0) else 1)  # fmt: skip
            assert not np.take(outputs[name], 1, axis=batch_axis).any(), name
    ((steps, err),) = arithmetic_errors(module, feeds)
    assert err <= arithmetic_bound(steps)


EXACT_TABLES = "lut_segments = 65536\n"  # one segment per input code: table error ~2^-16


@pytest.mark.parametrize(
    "op, attrs, present", CONFIGS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONFIGS)]
)
def test_arithmetic_with_exact_tables(op, attrs, present, tmp_path):
    # Without the tables' error only roundings remain: a tight check of the cell
    # equations (gate order, peepholes, biases, reset gate, directions, lengths).
    hw = tmp_path / "exact.toml"
    hw.write_text(EXACT_TABLES)
    config = ESEConfig.load(hw)
    node, inputs, expected = random_case(op, attrs, present, 0)
    feeds = run_time_inputs(node, inputs)
    module = lower(one_node_model(node, inputs, expected), feeds, tmp_path, hw=str(hw))
    ((steps, err),) = arithmetic_errors(module, feeds)
    assert table_error("Tanh", config) < 1e-4
    assert err <= arithmetic_bound(steps, config)


# -- cell arithmetic details -------------------------------------------------------------------


def _formats(fl=12) -> arith.CellFormats:
    return arith.CellFormats(fx=12, fh=15, fw=10, fr=10, fl=fl, fc=12, fp=15)


def test_input_forget_is_exactly_one_minus_i():
    f = _formats()
    luts = {n: build_lut(n, f.fl, 128) for n in LUT_FUNCTIONS}
    hidden = 4
    # Zero products and biases: every gate sees p = 0; c_prev = 1.0.
    zeros = np.zeros((1, 4 * hidden), np.int64)
    c_prev = np.full((1, hidden), 1 << f.fc, np.int64)
    acts = ["Sigmoid", "Tanh", "Tanh"]
    args = (zeros, zeros, zeros[0], c_prev, None, acts, luts, f, None)
    _, c = arith.lstm_step(*args, input_forget=1)
    i = arith.activation("Sigmoid", np.zeros(1, np.int64), luts, f.fl)[0]
    # g = tanh(0) = 0, so c' = (1 - i) * c_prev exactly, rounded once to fc.
    expected = arith.mul(np.array([(1 << 15) - i]), 15, c_prev[0, :1], f.fc, f.fc)[0]
    assert (c == expected).all()


def test_relu_gates_are_not_bounded_by_one():
    # A Relu gate of 2.0 must act as 2.0: held at the pre-activation frac, not at 15.
    f = _formats()
    luts = {n: build_lut(n, f.fl, 128) for n in LUT_FUNCTIONS}
    hidden = 2
    two = 2 << f.fl
    bias = np.array([two] * 4 * hidden, np.int64)  # i, o, f, c pre-activations all 2.0
    zeros = np.zeros((1, 4 * hidden), np.int64)
    c_prev = np.zeros((1, hidden), np.int64)
    h, c = arith.lstm_step(
        zeros, zeros, bias, c_prev, None, ["Relu", "Relu", "Relu"], luts, f, None, 0
    )
    # c' = i * g = 4, h = o * relu(c') = 8 -> saturates fh=15 to just under 1.0.
    assert (c == 4 << f.fc).all()
    assert (h == (1 << 15) - 1).all()


# -- the example LSTM ---------------------------------------------------------------------------


def _digits_calibration(tmp_path: Path) -> str:
    # The calibration images of examples/data as sequences of rows, like the test set.
    path = tmp_path / "digits_calib_seq.npz"
    images = np.load(DIGITS_CALIB)["input"]
    np.savez(path, input=images.reshape(-1, 8, 8))
    return str(path)


def _accuracy(module) -> float:
    data = np.load(DIGITS_TEST)
    probabilities = run_module(module, {"input": data["input"]})["probabilities"]
    return float(np.mean(probabilities.argmax(axis=1) == data["labels"]))


def _digits_ese(tmp_path: Path, pipeline: str | None):
    calibration = _digits_calibration(tmp_path)
    return compile_for_target(
        str(DIGITS),
        "ese",
        pipeline,
        available_passes(),
        emit="ese",
        configure=lambda passes: with_calibration(passes, calibration)[0],
    )


def test_digits_lstm_accuracy(tmp_path):
    module = _digits_ese(tmp_path, None)
    assert len(ese_ops(module)) == 1 and not host_rnn_ops(module)
    reference = _accuracy(import_file(DIGITS))
    accuracy = _accuracy(module)
    print(f"digits LSTM: float {reference:.2%}, ESE {accuracy:.2%}")
    assert reference > 0.95
    assert abs(accuracy - reference) <= 0.02


def test_digits_lstm_pruned(tmp_path):
    # Reported, not bounded: pruning 90% of the weights without retraining.
    module = _digits_ese(tmp_path, "prune{sparsity=0.9}")
    (op,) = ese_ops(module)
    assert op.operand(1).owner.density() == pytest.approx(0.1, abs=0.01)
    print(f"digits LSTM, 90% pruned, on ESE: {_accuracy(module):.2%}")


# -- PyTorch exports against onnxruntime --------------------------------------------------------

# model -> (recurrent layers, steps)
EXPORTS = {
    "torch_lstm1_ts14": (1, 8),
    "torch_lstm1_dynamo": (1, 8),
    "torch_lstm2_ts14": (2, 8),
    "torch_lstm2_dynamo": (2, 8),
    "torch_gru1_ts14": (1, 8),
    "torch_gru1_dynamo": (1, 8),
    "torch_gru2_ts14": (2, 8),
    "torch_gru2_dynamo": (2, 8),
    "torch_bilstm1_ts14": (1, 8),
}


def _head_norm(model: onnx.ModelProto) -> float:
    """The max row sum |W| of the final fully connected layer."""
    (weight,) = [t for t in model.graph.initializer if t.name == "fc.weight"]
    return float(np.abs(numpy_helper.to_array(weight)).sum(axis=1).max())


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_torch_export(name):
    path = EXPORTED / f"{name}.onnx"
    calibration = EXPORTED / f"{name}.npz"
    feeds = dict(np.load(calibration))
    module = compile_for_target(
        str(path),
        "ese",
        None,
        available_passes(),
        emit="ese",
        configure=lambda passes: with_calibration(passes, str(calibration))[0],
    )
    layers, steps = EXPORTS[name]
    assert len(ese_ops(module)) == layers and not host_rnn_ops(module)
    got = run_module(module, feeds)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, feeds)
    # Each layer adds its own E(T) to the state the head reads; the head's 12-bit weights
    # and 16-bit output add rounding far below that.
    tolerance = _head_norm(onnx.load(path)) * layers * bound(steps)
    (value,) = got.values()
    np.testing.assert_allclose(value, want, rtol=0, atol=tolerance)


# -- the golden model's constants --------------------------------------------------------------


def test_layer_constants_hold_the_weight_codes(tmp_path):
    node, inputs, expected = random_case("LSTM", {"direction": "bidirectional"}, {"B", "P"}, 0)
    feeds = run_time_inputs(node, inputs)
    module = lower(one_node_model(node, inputs, expected), feeds, tmp_path)
    (op,) = ese_ops(module)
    from dlhwc.backends.ese.program import layer_constants

    k = layer_constants(op)
    w = op.operand(1).owner
    fmt = w.fixed_format
    assert k["W"].shape == (2, 4 * HIDDEN, INPUT)
    np.testing.assert_array_equal(k["W"] * fmt.scale, w.dense())
    assert np.abs(k["W"]).max() <= (1 << (fmt.bits - 1)) - 1
    # Both ONNX biases (12-bit, like the weights) added in one vector at the
    # pre-activation frac: exact, as the bias format has fewer fraction bits.
    b = op.operand(3).owner
    assert b.fixed_format.frac <= CONFIG.lut_in_frac
    dense = b.dense().astype(np.float64)
    combined = dense[:, : 4 * HIDDEN] + dense[:, 4 * HIDDEN :]
    np.testing.assert_array_equal(k["bias"], combined * 2.0**CONFIG.lut_in_frac)
    assert k["peep"].shape == (2, 3 * HIDDEN)
    assert "ese.rnn" in module_to_string(module)
