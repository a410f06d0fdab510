"""The retrain pass: accuracy recovery, kept structure, gradients, determinism, errors."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dlhwc.compiler.frontend.onnx_importer import import_file, import_model
from dlhwc.compiler.functions import main_function
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.irio import module_to_string, parse_module
from dlhwc.compiler.passes.retrain import RetrainPass, _Graph, _trainable_sources
from dlhwc.compiler.passes.weights import find_weights
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
from dlhwc.compiler.plugins import available_passes
from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d
from dlhwc.spec.errors import DlhwcError

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "examples/models/digits_mlp.onnx")
TRAIN = str(ROOT / "examples/data/digits_train.npz")
TEST = str(ROOT / "examples/data/digits_test.npz")
TEST_SEQ = str(ROOT / "examples/data/digits_test_seq.npz")

PRUNE = "prune{sparsity=0.9}"
SHARE = "share-weights{bits=4 zero-code=true}"
# 20 epochs take about 0.3 s on the digits MLP and reach ~96% after pruning at 0.9.
RETRAIN = f"retrain{{data={TRAIN},epochs=20}}"


def compiled(spec: str, model: str = MLP):
    return apply_passes(import_file(model), parse_pipeline(spec, available_passes()))


def accuracy(module) -> float:
    with np.load(TEST) as data:
        x, labels = data["input"], data["labels"]
    probs = run_module(module, {"input": x})["probabilities"]
    return float((probs.argmax(axis=1) == labels).mean())


def weights(module) -> dict[str, comp.WeightOp]:
    return {s.layer: s.source for s in find_weights(module, "matrix")}


def test_training_split_matches_the_other_data_files():
    with np.load(TRAIN) as train, np.load(ROOT / "examples/data/digits_calib.npz") as calib:
        assert train["input"].shape == (1347, 64) and train["input"].dtype == np.float32
        assert train["labels"].shape == (1347,) and train["labels"].dtype == np.int64
        # The calibration set is the first 200 training images of the same split.
        assert np.array_equal(train["input"][:200], calib["input"])


def test_masked_retraining_recovers_accuracy_and_keeps_zeros():
    pruned = compiled(PRUNE)
    retrained = compiled(f"{PRUNE},{RETRAIN}")
    assert accuracy(pruned) < 0.5
    assert accuracy(retrained) >= 0.95
    before, after = weights(pruned), weights(retrained)
    for layer, w in after.items():
        assert isinstance(w, comp.WeightOp) and not w.is_shared
        assert np.array_equal(w.mask_array(), before[layer].mask_array())
        assert w.density() == pytest.approx(0.1, abs=1e-3)
        values = w.values_array()
        assert np.all(values[~w.mask_array()] == 0)  # exactly zero, not just masked
        assert not np.array_equal(values, before[layer].values_array())
    # Biases (plain constants) are trained densely.
    old_bias = find_weights(pruned, "bias")[0].value()
    new_bias = find_weights(retrained, "bias")[0]
    assert isinstance(new_bias.source, onnx_d.ConstantOp)
    assert not np.array_equal(new_bias.value(), old_bias)


def test_trained_quantization_keeps_codebook_structure():
    shared = compiled(f"{PRUNE},{SHARE}")
    retrained = compiled(f"{PRUNE},{SHARE},retrain{{data={TRAIN},epochs=10}}")
    before, after = weights(shared), weights(retrained)
    for layer, w in after.items():
        old = before[layer]
        assert w.is_shared and w.index_bits.value.data == 4
        assert np.array_equal(w.indices_array(), old.indices_array())
        assert np.array_equal(w.mask_array(), old.mask_array())
        codebook = w.codebook_array()
        assert codebook.size == old.codebook_array().size <= 16
        assert codebook[0] == 0.0  # the zero code stays exactly zero
        assert not np.array_equal(codebook[1:], old.codebook_array()[1:])
        assert np.unique(w.dense()).size <= 16
    assert accuracy(retrained) > accuracy(shared) + 0.3


def test_plain_constants_train_densely_and_stay_accurate():
    module = compiled(f"retrain{{data={TRAIN},epochs=2}}")
    assert all(isinstance(w, onnx_d.ConstantOp) for w in weights(module).values())
    assert accuracy(module) >= 0.95


def test_deterministic_and_round_trips():
    spec = f"{PRUNE},{SHARE},retrain{{data={TRAIN},epochs=2,seed=3}}"
    first, second = module_to_string(compiled(spec)), module_to_string(compiled(spec))
    assert first == second
    assert module_to_string(parse_module(first)) == first
    other = module_to_string(compiled(f"{PRUNE},{SHARE},retrain{{data={TRAIN},epochs=2}}"))
    assert other != first  # the seed matters


def test_gradients_match_hand_written_mlp_backprop():
    module = compiled(PRUNE)
    fn = main_function(module)
    graph = _Graph(fn, _trainable_sources(module))
    with np.load(TRAIN) as data:
        x, y = data["input"][:32], data["labels"][:32]
    env = graph.forward([x])
    p = np.exp(env[graph.logits] - env[graph.logits].max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = p.copy()
    dz[np.arange(32), y] -= 1
    dz /= 32
    grads = graph.backward(env, dz.astype(np.float32))
    slots = find_weights(module)
    w = [s.value() for s in slots if s.role == "matrix"]  # [out, in] (transB=1)
    b = [s.value() for s in slots if s.role == "bias"]
    h1 = np.maximum(x @ w[0].T + b[0], 0)
    h2 = np.maximum(h1 @ w[1].T + b[1], 0)
    d2 = (dz @ w[2]) * (h2 > 0)
    d1 = (d2 @ w[1]) * (h1 > 0)
    expected = [d1.T @ x, d1.sum(0), d2.T @ h1, d2.sum(0), dz.T @ h2, dz.sum(0)]
    got = [grads[s.consumer.operands[s.operand]] for s in slots]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


def small_model() -> onnx.ModelProto:
    """MatMul + Add bias, Sigmoid, Reshape, Gemm transB=0, Tanh, Flatten, Gemm, LogSoftmax."""
    rng = np.random.default_rng(1)
    inits = {
        "w1": rng.normal(0, 0.5, (6, 8)),
        "b1": rng.normal(0, 0.5, (8,)),
        "shape": np.array([-1, 2, 4], dtype=np.int64),
        "w2": rng.normal(0, 0.5, (8, 5)),
        "w3": rng.normal(0, 0.5, (3, 5)),
        "b3": rng.normal(0, 0.5, (1, 3)),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["a1"]),
        helper.make_node("Sigmoid", ["a1"], ["s1"]),
        helper.make_node("Reshape", ["s1", "shape"], ["r1"]),
        helper.make_node("Flatten", ["r1"], ["f1"]),
        helper.make_node("Gemm", ["f1", "w2"], ["g2"]),
        helper.make_node("Tanh", ["g2"], ["t2"]),
        helper.make_node("Identity", ["t2"], ["i2"]),
        helper.make_node("Gemm", ["i2", "w3", "b3"], ["logits"], transB=1),
        helper.make_node("LogSoftmax", ["logits"], ["out"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])],
        [
            numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k)
            for k, v in inits.items()
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_gradients_match_finite_differences():
    module = import_model(small_model())
    graph = _Graph(main_function(module), _trainable_sources(module))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(7, 6)).astype(np.float32)
    y = rng.integers(0, 3, 7)

    def loss() -> float:
        z = graph.forward([x])[graph.logits].astype(np.float64)
        z -= z.max(1, keepdims=True)
        return float(-(z[np.arange(7), y] - np.log(np.exp(z).sum(1))).mean())

    env = graph.forward([x])
    z = env[graph.logits]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(7), y] -= 1
    grads = graph.backward(env, (p / 7).astype(np.float32))
    assert len(graph.params) == 5  # w1, b1 (an Add's constant), w2, w3, b3
    for value, param in graph.params.items():
        for flat in range(0, param.train.size, 3):
            i = np.unravel_index(flat, param.train.shape)
            keep = param.train[i]
            param.train[i] = keep + 1e-2
            up = loss()
            param.train[i] = keep - 1e-2
            down = loss()
            param.train[i] = keep
            assert grads[value][i] == pytest.approx((up - down) / 2e-2, rel=2e-2, abs=2e-4)


def test_gemm_forms_match_finite_differences():
    """transA (the batch on the second axis of A), transB, alpha and beta, in float64."""
    rng = np.random.default_rng(4)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, s).astype(np.float32), name)
        for name, s in (("w1", (6, 5)), ("b1", (5,)), ("w2", (3, 5)), ("b2", (1, 3)))
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transA=1, alpha=0.5, beta=2.0),
        helper.make_node("Tanh", ["h"], ["t"]),
        helper.make_node("Gemm", ["t", "w2", "b2"], ["y"], transB=1, alpha=1.5, beta=0.25),
    ]
    graph = helper.make_graph(
        nodes,
        "gemms",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, "N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        inits,
    )
    module = import_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    graph = _Graph(main_function(module), _trainable_sources(module))
    assert len(graph.params) == 4
    for param in graph.params.values():
        param.train = param.train.astype(np.float64)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 4)

    def loss() -> float:
        z = graph.forward([x])[graph.logits]
        z = z - z.max(1, keepdims=True)
        return float(-(z[np.arange(4), y] - np.log(np.exp(z).sum(1))).mean())

    env = graph.forward([x])
    p = np.exp(env[graph.logits] - env[graph.logits].max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(4), y] -= 1
    grads = graph.backward(env, p / 4)
    for value, param in graph.params.items():
        numeric = np.zeros_like(param.train)
        for i in np.ndindex(param.train.shape):
            keep = param.train[i]
            param.train[i] = keep + 1e-6
            up = loss()
            param.train[i] = keep - 1e-6
            down = loss()
            param.train[i] = keep
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(grads[value], numeric, rtol=1e-5, atol=1e-8)


def test_small_model_trains(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    np.savez(tmp_path / "d.npz", x=x, labels=y)
    module = import_model(small_model())

    def acc(m) -> float:
        return float((run_module(m, {"x": x})["out"].argmax(1) == y).mean())

    before = acc(module)
    apply_passes(module, [RetrainPass(data=str(tmp_path / "d.npz"), epochs=30, lr=1e-2)])
    assert acc(module) > before + 0.2


@pytest.mark.parametrize(
    "model, spec, message",
    [
        (MLP, f"prune,quantize,retrain{{data={TRAIN}}}", "already quantized .* run retrain before quantize"),
        (MLP, "retrain{data=/no/such/file.npz}", "file.npz: retrain: no such input file"),
        (MLP, f"retrain{{data={TRAIN},labels=y}}", r"retrain: no labels 'y' \(keys: input, labels\)"),
        (MLP, f"retrain{{data={TEST_SEQ}}}", "retrain: input 'input' has shape \\[450, 8, 8\\]"),
        (MLP, "retrain", "pass .retrain.: retrain requires argument \"data\""),
        (MLP, f"retrain{{data={TRAIN},batch=0}}", "retrain: option batch=0 must be"),
    ],
)  # fmt: skip
def test_refusals(model, spec, message):
    with pytest.raises(DlhwcError, match=message) as e:
        compiled(spec, model)
    assert "\n" not in e.value.message


def test_refuses_unsupported_op_in_the_middle(tmp_path):
    model = small_model()
    model.graph.node[2].op_type = "Softplus"  # instead of Sigmoid
    with pytest.raises(DlhwcError, match="retrain: onnx.Softplus is not supported"):
        apply_passes(import_model(model), [RetrainPass(data=TRAIN)])


def test_bad_labels_leave_the_ir_unchanged(tmp_path):
    with np.load(TRAIN) as data:
        np.savez(tmp_path / "d.npz", input=data["input"], labels=data["labels"] + 5)
    module = compiled(PRUNE)
    text = module_to_string(module)
    with pytest.raises(DlhwcError, match=r"labels 'labels' must lie in 0..9 \(found 5..14\)"):
        apply_passes(module, [RetrainPass(data=str(tmp_path / "d.npz"))])
    assert module_to_string(module) == text
