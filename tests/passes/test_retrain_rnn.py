"""The retrain pass on recurrent layers: the forward pass against the reference
interpreter, backpropagation through time against finite differences (every cell type,
direction and layout, sequence lengths, initial states, peepholes, clip, activations),
the glue ops PyTorch exports around them, kept masks and codebooks, accuracy recovery of
the digits LSTM after pruning, refusals."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dlhwc.compiler.frontend.onnx_importer import import_file, import_model
from dlhwc.compiler.functions import main_function
from dlhwc.compiler.interpreters.interpreter import (
    Interpreter,
    check_inputs,
    evaluate_op,
    run_module,
)
from dlhwc.compiler.irio import module_to_string
from dlhwc.compiler.passes.retrain import RetrainPass, _Graph, _trainable_sources
from dlhwc.compiler.passes.retrain_rnn import _ACTIVATIONS, Activation
from dlhwc.compiler.passes.weights import find_weights
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
from dlhwc.compiler.plugins import available_passes
from dlhwc.dialects import comp
from dlhwc.spec.errors import DlhwcError

ROOT = Path(__file__).resolve().parents[2]
EXPORTED = ROOT / "tests/models/exported"
LSTM = str(ROOT / "examples/models/digits_lstm.onnx")
TRAIN_SEQ = str(ROOT / "examples/data/digits_train_seq.npz")
TEST_SEQ = str(ROOT / "examples/data/digits_test_seq.npz")
CALIB_SEQ = str(ROOT / "examples/data/digits_calib_seq.npz")

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
STEPS, BATCH, INPUTS, HIDDEN, CLASSES = 4, 3, 2, 3, 3


def recurrent_model(
    kind: str,
    direction: str = "forward",
    layout: int = 0,
    outputs: tuple[str, ...] = ("Y",),
    lens: bool = False,
    initial: bool = False,
    peepholes: bool = False,
    seed: int = 0,
    **attrs,
) -> onnx.ModelProto:
    """x -> one recurrent op -> its used outputs made batch-first, flattened and
    concatenated -> Gemm -> logits. With `lens` the model takes sequence_lens as a second
    input; `initial` gives constant initial states shared by every sequence [D, 1, H]."""
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    rows = GATES[kind] * HIDDEN
    state = (dirs, 1, HIDDEN) if layout == 0 else (1, dirs, HIDDEN)
    inits = {
        "W": rng.normal(0, 0.6, (dirs, rows, INPUTS)),
        "R": rng.normal(0, 0.6, (dirs, rows, HIDDEN)),
        "B": rng.normal(0, 0.3, (dirs, 2 * rows)),
    }
    operands = ["x", "W", "R", "B", "lens" if lens else ""]
    if initial:
        inits["h0"] = rng.normal(0, 0.5, state)
        inits["c0"] = rng.normal(0, 0.5, state)
    operands.append("h0" if initial else "")
    if kind == "LSTM":
        operands.append("c0" if initial else "")
        if peepholes:
            inits["P"] = rng.normal(0, 0.5, (dirs, 3 * HIDDEN))
        operands.append("P" if peepholes else "")
    while not operands[-1]:
        operands.pop()
    results = ["Y", "Y_h", "Y_c"][: 3 if kind == "LSTM" else 2]
    nodes = [
        helper.make_node(kind, operands, results, name="rnn", direction=direction,
                         hidden_size=HIDDEN, layout=layout, **attrs)
    ]  # fmt: skip
    width = 0
    for out in outputs:
        perm = ([2, 0, 1, 3] if out == "Y" else [1, 0, 2]) if layout == 0 else None
        if perm is not None:
            nodes.append(helper.make_node("Transpose", [out], [f"{out}_t"], perm=perm))
        nodes.append(helper.make_node("Flatten", [f"{out}_t" if perm else out], [f"{out}_f"]))
        width += (STEPS if out == "Y" else 1) * dirs * HIDDEN
    nodes.append(helper.make_node("Concat", [f"{o}_f" for o in outputs], ["cat"], axis=1))
    nodes.append(helper.make_node("Gemm", ["cat", "fc", "fc_b"], ["logits"], transB=1))
    inits["fc"] = rng.normal(0, 0.5, (CLASSES, width))
    inits["fc_b"] = rng.normal(0, 0.3, CLASSES)
    x_shape = [STEPS, "N", INPUTS] if layout == 0 else ["N", STEPS, INPUTS]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)]
    if lens:
        inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, ["N"]))
    graph = helper.make_graph(
        nodes,
        "recurrent",
        inputs,
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def sample(layout: int, lens: bool, dtype=np.float32) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    shape = (STEPS, BATCH, INPUTS) if layout == 0 else (BATCH, STEPS, INPUTS)
    args = [rng.normal(0, 1, shape).astype(dtype)]
    if lens:
        args.append(np.array([STEPS, 0, 2], np.int32))  # a full, an empty, a short sequence
    return args


CASES = {
    "lstm-forward": dict(kind="LSTM"),
    "lstm-reverse-lens": dict(kind="LSTM", direction="reverse", lens=True, outputs=("Y", "Y_h")),
    "lstm-bidirectional-layout1-initial-peepholes": dict(
        kind="LSTM", direction="bidirectional", layout=1, lens=True, initial=True,
        peepholes=True, outputs=("Y", "Y_h", "Y_c")),
    "lstm-bidirectional-clip-input-forget": dict(
        kind="LSTM", direction="bidirectional", peepholes=True, clip=0.9, input_forget=1,
        outputs=("Y_c", "Y_h")),
    "lstm-activations": dict(
        kind="LSTM", outputs=("Y", "Y_c"), activations=["HardSigmoid", "Softsign", "ScaledTanh"],
        activation_alpha=[0.3, 0.8], activation_beta=[0.45, 1.3]),
    "gru-forward-linear-before-reset": dict(kind="GRU", linear_before_reset=1),
    "gru-reverse-lens-initial": dict(
        kind="GRU", direction="reverse", lens=True, initial=True, outputs=("Y_h",)),
    "gru-bidirectional-layout1-clip": dict(
        kind="GRU", direction="bidirectional", layout=1, linear_before_reset=1, clip=1.2,
        outputs=("Y", "Y_h")),
    "gru-bidirectional-activations": dict(
        kind="GRU", direction="bidirectional", activations=["Sigmoid", "Softplus", "Sigmoid", "Elu"],
        activation_alpha=[0.7]),
    "rnn-forward": dict(kind="RNN"),
    "rnn-reverse-layout1-lens-initial": dict(
        kind="RNN", direction="reverse", layout=1, lens=True, initial=True,
        outputs=("Y", "Y_h"), activations=["LeakyRelu"], activation_alpha=[0.2]),
    "rnn-bidirectional-activations": dict(
        kind="RNN", direction="bidirectional", activations=["ScaledTanh", "Affine"],
        activation_alpha=[0.9, 0.6], activation_beta=[1.1, 0.1], outputs=("Y", "Y_h")),
}  # fmt: skip


def graph_of(module) -> _Graph:
    return _Graph(main_function(module), _trainable_sources(module))


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_the_reference_interpreter(case):
    """Every result of the op (used or not) as the reference kernel computes it."""
    spec = CASES[case]
    module = import_model(recurrent_model(**spec))
    graph = graph_of(module)
    args = sample(spec.get("layout", 0), spec.get("lens", False))
    env = graph.forward(args)
    (op,) = [o for o in graph.ops if o.name == f"onnx.{spec['kind']}"]
    expected = evaluate_op(op, [env[v] for v in op.operands])
    assert len(expected) == len(op.results)
    for value, want in zip(op.results, expected, strict=True):
        assert env[value].dtype == np.float32
        np.testing.assert_allclose(env[value], want, rtol=1e-6, atol=1e-6)
    # The kernels' semantics: a constant initial state of batch 1 serves every sequence
    # (onnxruntime wants the state's batch to be the input's).
    fn = main_function(module)
    feeds = dict(zip(["x", "lens"], args, strict=False))
    (logits,) = Interpreter(fn, per_op=True).run(check_inputs(fn, feeds))
    np.testing.assert_allclose(env[graph.logits], logits, rtol=1e-6, atol=1e-6)


def loss_and_gradients(graph: _Graph, args: list, labels: np.ndarray):
    """The mean cross-entropy as a function of the parameters, and its gradients."""

    def loss() -> float:
        z = graph.forward(args)[graph.logits]
        z = z - z.max(1, keepdims=True)
        return float(-(z[np.arange(len(labels)), labels] - np.log(np.exp(z).sum(1))).mean())

    env = graph.forward(args)
    p = np.exp(env[graph.logits] - env[graph.logits].max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1
    return loss, graph.backward(env, p / len(labels))


def check_gradients(graph: _Graph, args: list, labels: np.ndarray, most: int = 1000) -> None:
    """Central differences in float64 on every element of every parameter, or on `most`
    elements drawn at random from a larger one."""
    for param in graph.params.values():
        param.train = param.train.astype(np.float64)
    loss, grads = loss_and_gradients(graph, args, labels)
    for value, param in graph.params.items():
        assert value in grads, f"no gradient for {value.name_hint}"
        picked = np.arange(param.train.size)
        if picked.size > most:
            picked = np.sort(np.random.default_rng(0).choice(picked, most, replace=False))
        numeric = np.zeros(picked.size)
        for k, flat in enumerate(picked):
            i = np.unravel_index(flat, param.train.shape)
            keep = param.train[i]
            param.train[i] = keep + 1e-6
            up = loss()
            param.train[i] = keep - 1e-6
            down = loss()
            param.train[i] = keep
            numeric[k] = (up - down) / 2e-6
        got = grads[value].reshape(-1)[picked]
        np.testing.assert_allclose(got, numeric, rtol=1e-4, atol=1e-9, err_msg=value.name_hint)


@pytest.mark.parametrize("case", CASES)
def test_gradients_match_finite_differences(case):
    """Backpropagation through time for W, R, B, the initial states and the peepholes."""
    spec = CASES[case]
    module = import_model(recurrent_model(**spec))
    graph = graph_of(module)
    expected = {"W", "R", "B", "fc", "fc_b"}
    if spec.get("initial"):
        expected |= {"h0", "c0"} if spec["kind"] == "LSTM" else {"h0"}
    if spec.get("peepholes"):
        expected.add("P")
    assert {p.op.node_name for p in graph.params.values()} == expected
    args = sample(spec.get("layout", 0), spec.get("lens", False), np.float64)
    labels = np.array([0, 2, 1])
    check_gradients(graph, args, labels)


@pytest.mark.parametrize("name", sorted(_ACTIVATIONS))
def test_activation_derivatives(name):
    """Each activation's derivative against central differences, away from its kinks,
    and its values against the reference interpreter's (an RNN with that activation)."""
    act = Activation(name, _ACTIVATIONS[name][2], _ACTIVATIONS[name][3])
    if act.alpha is not None:
        act = Activation(name, 0.7, act.beta)
    x = np.linspace(-3, 3, 61) + 0.013
    numeric = (act(x + 1e-6) - act(x - 1e-6)) / 2e-6
    np.testing.assert_allclose(act.grad(x, act(x)), numeric, rtol=1e-6, atol=1e-8)
    model = recurrent_model("RNN", activations=[name], activation_alpha=[0.7])
    if act.alpha is None:
        model = recurrent_model("RNN", activations=[name])
    graph = graph_of(import_model(model))
    env = graph.forward(sample(0, False))
    (op,) = [o for o in graph.ops if o.name == "onnx.RNN"]
    np.testing.assert_allclose(
        env[op.results[0]], evaluate_op(op, [env[v] for v in op.operands])[0], rtol=1e-6, atol=1e-7
    )


EXPORTS = ["torch_lstm1_ts14", "torch_lstm1_dynamo", "torch_lstm2_ts14", "torch_lstm2_dynamo",
           "torch_gru1_ts14", "torch_gru1_dynamo", "torch_gru2_ts14", "torch_gru2_dynamo",
           "torch_bilstm1_ts14"]  # fmt: skip


@pytest.mark.parametrize("name", EXPORTS)
def test_pytorch_exports(name):
    """The models as both exporters wrote them, not folded: the zero initial states made
    from Shape(x) run forward only; Transpose, Squeeze, Slice, Reshape, Gather and the
    recurrent ops carry the gradients (checked on 24 elements of each weight, in
    float64)."""
    module = import_file(str(EXPORTED / f"{name}.onnx"))
    graph = graph_of(module)
    with np.load(EXPORTED / f"{name}.npz") as data:
        x = data["x"]
    np.testing.assert_allclose(
        graph.forward([x])[graph.logits], run_module(module, {"x": x})["y"], rtol=1e-6, atol=1e-6
    )
    assert len(graph.params) == (8 if "2" in name else 5)  # W, R, B per layer, fc, fc bias
    check_gradients(graph, [x.astype(np.float64)], np.array([0, 3, 1]), most=24)


def test_glue_ops():
    """Squeeze, Slice (negative step), Gather (negative and repeated indices), Transpose,
    Unsqueeze, Expand (a repeated value: its gradients are summed), Reshape, Flatten."""
    rng = np.random.default_rng(3)
    inits = {
        "W": rng.normal(0, 0.6, (1, 4 * HIDDEN, INPUTS)),
        "R": rng.normal(0, 0.6, (1, 4 * HIDDEN, HIDDEN)),
        "one": np.array([1]), "starts": np.array([-1]), "ends": np.array([-100]),
        "axes0": np.array([0]), "minus2": np.array([-2]), "picks": np.array([0, -1, 0]),
        "expand": np.array([1, 2, 1]), "shape": np.array([0, -1]),
        "fc": rng.normal(0, 0.5, (CLASSES, 6 * HIDDEN)),
    }  # fmt: skip
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["xt", "W", "R"], ["Y"], hidden_size=HIDDEN),
        helper.make_node("Squeeze", ["Y", "one"], ["s"]),  # [T, N, H]
        helper.make_node("Slice", ["s", "starts", "ends", "axes0", "minus2"], ["sl"]),
        helper.make_node("Gather", ["sl", "picks"], ["g"], axis=0),  # [3, N, H]
        helper.make_node("Transpose", ["g"], ["gt"], perm=[1, 2, 0]),  # [N, H, 3]
        helper.make_node("Reshape", ["gt", "shape"], ["r"]),  # [N, 3H]
        helper.make_node("Unsqueeze", ["r", "one"], ["u"]),  # [N, 1, 3H]
        helper.make_node("Expand", ["u", "expand"], ["e"]),  # [N, 2, 3H]
        helper.make_node("Flatten", ["e"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "glue",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", STEPS, INPUTS])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
        [numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k)
         for k, v in inits.items()],
    )  # fmt: skip
    module = import_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    graph = graph_of(module)
    x = np.random.default_rng(4).normal(size=(BATCH, STEPS, INPUTS))
    np.testing.assert_allclose(
        graph.forward([x.astype(np.float32)])[graph.logits],
        run_module(module, {"x": x.astype(np.float32)})["logits"],
        rtol=1e-6,
        atol=1e-6,
    )
    check_gradients(graph, [x], np.array([1, 0, 2]))


def test_time_major_input_with_lengths_trains(tmp_path):
    """A GRU reading its input as ONNX lays it out, [T, N, I], with sequence_lens as a
    second input: mini-batches are taken along N (the output's batch symbol), and
    training on a task it can learn (the sign of the sum of the valid steps' first
    feature) raises its accuracy."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS, 300, INPUTS)).astype(np.float32)
    lens = rng.integers(1, STEPS + 1, 300).astype(np.int32)
    valid = np.arange(STEPS)[:, None] < lens
    labels = ((x[..., 0] * valid).sum(0) > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, lens=lens, labels=labels)
    module = import_model(recurrent_model("GRU", lens=True, outputs=("Y_h",)))

    def acc() -> float:
        return float(
            (run_module(module, {"x": x, "lens": lens})["logits"].argmax(1) == labels).mean()
        )

    before = acc()
    apply_passes(module, [RetrainPass(data=str(tmp_path / "d.npz"), epochs=30, lr=0.03, batch=32)])
    assert acc() > max(before, 0.5) + 0.3


# -- compression structure and accuracy on the digits LSTM -------------------------------

PRUNE = "prune{sparsity=0.9 balance-pes=32}"


def compiled(spec: str, model: str = LSTM):
    return apply_passes(import_file(model), parse_pipeline(spec, available_passes()))


def accuracy(module) -> float:
    with np.load(TEST_SEQ) as data:
        x, labels = data["input"], data["labels"]
    return float((run_module(module, {"input": x})["probabilities"].argmax(1) == labels).mean())


def matrices(module) -> dict[str, comp.WeightOp]:
    return {s.name: s.source for s in find_weights(module, "matrix")}


def test_training_split_as_sequences():
    with np.load(TRAIN_SEQ) as seq, np.load(ROOT / "examples/data/digits_train.npz") as flat:
        assert seq["input"].shape == (1347, 8, 8) and seq["input"].dtype == np.float32
        assert np.array_equal(seq["input"].reshape(-1, 64), flat["input"])
        assert np.array_equal(seq["labels"], flat["labels"])


def test_pruned_lstm_recovers_and_keeps_its_zeros():
    """The digits LSTM (97.8%) pruned to 90% over ESE's 32 PEs falls to 14%; 30 epochs
    of masked retraining (about 4 s) bring it back above 93%."""
    pruned = compiled(PRUNE)
    retrained = compiled(f"{PRUNE},retrain{{data={TRAIN_SEQ} epochs=30 lr=0.03}}")
    assert accuracy(pruned) < 0.2
    assert accuracy(retrained) > 0.93
    before, after = matrices(pruned), matrices(retrained)
    assert set(after) == {"lstm.W", "lstm.R", "fc.weight"}
    for name, w in after.items():
        assert not w.is_shared
        assert np.array_equal(w.mask_array(), before[name].mask_array())
        assert np.all(w.values_array()[~w.mask_array()] == 0)
        assert not np.array_equal(w.values_array(), before[name].values_array())
    bias = {s.name: s.value() for s in find_weights(retrained, "bias")}
    old_bias = {s.name: s.value() for s in find_weights(pruned, "bias")}
    assert not np.array_equal(bias["lstm.B"], old_bias["lstm.B"])


def test_shared_lstm_keeps_its_codebook_structure():
    shared = compiled(f"{PRUNE},share-weights{{bits=4 zero-code=true}}")
    retrained = compiled(
        f"{PRUNE},share-weights{{bits=4 zero-code=true}},retrain{{data={TRAIN_SEQ} epochs=3}}"
    )
    before, after = matrices(shared), matrices(retrained)
    for name, w in after.items():
        old = before[name]
        assert w.is_shared and w.index_bits.value.data == 4
        assert np.array_equal(w.indices_array(), old.indices_array())
        assert np.array_equal(w.mask_array(), old.mask_array())
        assert w.codebook_array()[0] == 0.0
        assert not np.array_equal(w.codebook_array()[1:], old.codebook_array()[1:])
        assert np.unique(w.dense()).size <= 16
    assert accuracy(retrained) > accuracy(shared)


def test_deterministic(tmp_path):
    """The same pipeline gives the same IR, and the same ESE program byte for byte."""
    from dlhwc.compiler.cli import main

    spec = f"{PRUNE},retrain{{data={TRAIN_SEQ} epochs=1 seed=5}}"
    assert module_to_string(compiled(spec)) == module_to_string(compiled(spec))
    programs = [tmp_path / "a.dlhw", tmp_path / "b.dlhw"]
    for out in programs:
        argv = ["compile", LSTM, "--target", "ese", "-p", spec, "--calibration", CALIB_SEQ,
                "-o", str(out)]  # fmt: skip
        assert main(argv) == 0
    assert programs[0].read_bytes() == programs[1].read_bytes()


def gradual_pruning(train: str) -> str:
    """The README's pipeline for the digits LSTM on ESE: load-balance-aware pruning over
    its 32 PEs to 50, 75 and 90%, retraining after each step, then at a tenth of the
    learning rate."""
    steps = []
    for sparsity, epochs in ((0.5, 20), (0.75, 20), (0.9, 40)):
        steps.append(f"prune{{sparsity={sparsity} balance-pes=32}}")
        steps.append(f"retrain{{data={train} epochs={epochs} lr=0.01 batch=32}}")
    steps.append(f"retrain{{data={train} epochs=20 lr=0.001 batch=32}}")
    return ",".join(steps)


@pytest.mark.slow
def test_digits_lstm_on_ese_within_two_points_of_float(tmp_path):
    """Pruned to 90% with retraining, compiled for ESE (12-bit weights) and simulated on
    the test split: 97.8%, as the float model (about 15 s)."""
    from dlhwc.compiler.cli import main

    out = tmp_path / "eval.json"
    argv = ["eval", LSTM, "--data", TEST_SEQ, "--labels", "labels", "--target", "ese",
            "--calibration", CALIB_SEQ, "-p", gradual_pruning(TRAIN_SEQ), "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())["program"]["probabilities"]
    assert result["float_accuracy"] == pytest.approx(0.9778, abs=1e-4)
    assert result["compressed_accuracy"] >= result["float_accuracy"] - 0.02


# -- refusals ----------------------------------------------------------------------------


def retrain_on(model: onnx.ModelProto, tmp_path, **arrays) -> None:
    np.savez(tmp_path / "d.npz", **arrays)
    apply_passes(import_model(model), [RetrainPass(data=str(tmp_path / "d.npz"), epochs=1)])


def test_refuses_a_constant_initial_state_per_sequence(tmp_path):
    model = recurrent_model("GRU", initial=True)
    h0 = model.graph.initializer[3]
    assert h0.name == "h0"
    h0.CopyFrom(numpy_helper.from_array(np.zeros((1, BATCH, HIDDEN), np.float32), "h0"))
    x, _ = sample(0, True)
    with pytest.raises(
        DlhwcError,
        match=r"retrain: onnx.GRU 'rnn': the constant initial_h \[1, 3, 3\] must hold one "
        r"state for every sequence \(batch dimension 1\)",
    ) as e:
        retrain_on(model, tmp_path, x=x, labels=np.zeros(BATCH, np.int64))
    assert "\n" not in e.value.message


@pytest.mark.parametrize(
    "attrs, message",
    [
        (dict(activations=["Sigmoid", "Swish", "Tanh"]),
         "retrain: onnx.LSTM 'rnn' has an unknown activation 'Swish'"),
        (dict(activations=["Sigmoid", "Tanh"]),
         r"retrain: onnx.LSTM 'rnn' lists 2 activations; LSTM takes 3 per direction for 1 "
         r"direction\(s\)"),
    ],
)  # fmt: skip
def test_refuses_bad_activations(tmp_path, attrs, message):
    (x,) = sample(0, False)
    with pytest.raises(DlhwcError, match=message):
        retrain_on(recurrent_model("LSTM", **attrs), tmp_path, x=x, labels=np.zeros(BATCH, int))


def test_refuses_bad_sequence_lengths(tmp_path):
    with pytest.raises(
        DlhwcError,
        match=r"retrain: onnx.RNN 'rnn': ValueError: sequence_lens must be 3 values in \[0, 4\]",
    ):
        retrain_on(
            recurrent_model("RNN", lens=True),
            tmp_path,
            x=np.zeros((STEPS, BATCH, INPUTS), np.float32),
            lens=np.array([1, 5, 2], np.int32),
            labels=np.zeros(BATCH, int),
        )


def test_refuses_an_unsupported_op_after_the_recurrence(tmp_path):
    model = recurrent_model("GRU")
    model.graph.node.insert(1, helper.make_node("Softplus", ["Y"], ["Ys"], name="soft"))
    model.graph.node[2].input[0] = "Ys"
    (x,) = sample(0, False)
    with pytest.raises(DlhwcError, match="retrain: onnx.Softplus 'soft' is not supported"):
        retrain_on(model, tmp_path, x=x, labels=np.zeros(BATCH, int))
