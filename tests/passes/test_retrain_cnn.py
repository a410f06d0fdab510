"""The retrain pass on convolutional networks: forward pass against the reference
interpreter, gradients against finite differences, accuracy recovery of a digits CNN
after pruning and weight sharing, kept structure, export, refusals."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from dlhwc.compiler.frontend.onnx_exporter import export_module
from dlhwc.compiler.frontend.onnx_importer import import_model
from dlhwc.compiler.functions import main_function
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.irio import module_to_string, parse_module
from dlhwc.compiler.passes.retrain import RetrainPass, _Graph, _trainable_sources
from dlhwc.compiler.passes.weights import find_weights
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
from dlhwc.compiler.plugins import available_passes
from dlhwc.dialects import comp
from dlhwc.spec.errors import DlhwcError
from tests.models.shapes import SHAPES

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "examples/data/digits_train.npz"
TEST = ROOT / "examples/data/digits_test.npz"


def make_model(nodes, inits: dict, x_shape: list, y_shape: list) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def residual_net() -> onnx.ModelProto:
    """Conv (asymmetric pads, strides) -> BatchNormalization -> Relu -> MaxPool (pads) = m;
    m -> depthwise Conv (dilated) -> Conv (SAME_UPPER, 3x2 kernel) -> Add m (a residual
    connection) -> Relu = r; Concat(AveragePool(r), GlobalAveragePool(r)) -> Dropout ->
    Gemm."""
    rng = np.random.default_rng(5)
    inits = {
        "w1": rng.normal(0, 0.4, (4, 2, 3, 3)), "b1": rng.normal(0, 0.3, 4),
        "scale": rng.uniform(0.5, 1.5, 4), "shift": rng.normal(0, 0.3, 4),
        "mean": rng.normal(0, 0.3, 4), "var": rng.uniform(0.5, 2, 4),
        "w2": rng.normal(0, 0.4, (4, 1, 3, 3)), "b2": rng.normal(0, 0.3, 4),
        "w3": rng.normal(0, 0.3, (4, 4, 3, 2)),
        "ratio": np.array(0.5), "w4": rng.normal(0, 0.3, (3, 28)), "b4": rng.normal(0, 0.3, 3),
    }  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 0, 2, 1],
                         strides=[2, 1]),  # [N, 4, 4, 5]
        helper.make_node("BatchNormalization", ["c1", "scale", "shift", "mean", "var"],
                         ["n1"], epsilon=1e-3),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["m"], kernel_shape=[2, 2], pads=[0, 1, 1, 0]),
        helper.make_node("Conv", ["m", "w2", "b2"], ["c2"], name="depthwise", group=4,
                         pads=[2, 1, 2, 1], dilations=[2, 1]),
        helper.make_node("Conv", ["c2", "w3"], ["c3"], name="conv3", auto_pad="SAME_UPPER"),
        helper.make_node("Add", ["c3", "m"], ["s"]),
        helper.make_node("Relu", ["s"], ["r"]),
        helper.make_node("AveragePool", ["r"], ["a"], kernel_shape=[2, 2], strides=[2, 2],
                         pads=[1, 1, 0, 0], count_include_pad=1),  # [N, 4, 2, 3]
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["a"], ["fa"]),
        helper.make_node("Flatten", ["g"], ["fg"]),
        helper.make_node("Concat", ["fa", "fg"], ["f"], axis=1),
        helper.make_node("Dropout", ["f", "ratio"], ["d"]),  # inference: the identity
        helper.make_node("Gemm", ["d", "w4", "b4"], ["y"], name="fc", transB=1),
    ]  # fmt: skip
    return make_model(nodes, inits, ["N", 2, 7, 6], ["N", 3])


def forward_logits(module, x: np.ndarray) -> np.ndarray:
    graph = _Graph(main_function(module), _trainable_sources(module))
    return graph.forward([x])[graph.logits]


@pytest.mark.parametrize("name", ["small_cnn", "residual"])
def test_forward_matches_the_reference_interpreter(name):
    if name == "small_cnn":
        model, draw = SHAPES["small_cnn"]()
        x = draw(np.random.default_rng(0), 5)
    else:
        model = residual_net()
        x = np.random.default_rng(0).normal(size=(5, 2, 7, 6)).astype(np.float32)
    module = import_model(model)
    expected = run_module(module, {"x": x})["y"]
    got = forward_logits(module, x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


W = np.random.default_rng(1).normal(size=(6, 3, 3, 2))
POOL = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 1]}


@pytest.mark.parametrize(
    "op, attrs, inits",
    [
        ("Conv", {"pads": [2, 1, 0, 2], "dilations": [2, 1], "strides": [1, 2]}, {"w": W}),
        ("Conv", {"auto_pad": "VALID", "strides": [2, 2]}, {"w": W, "b": W[:, 0, 0, 0]}),
        ("Conv", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, {"w": W}),
        ("Conv", {"auto_pad": "SAME_LOWER", "strides": [2, 1]}, {"w": W}),
        ("Conv", {"group": 3, "pads": [1, 0, 1, 2]}, {"w": W[:, :1], "b": W[:, 0, 0, 0]}),
        ("MaxPool", {**POOL, "ceil_mode": 0}, {}),
        ("MaxPool", {**POOL, "ceil_mode": 1}, {}),
        ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "dilations": [2, 1]}, {}),
        ("MaxPool", {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"}, {}),
        ("AveragePool", {**POOL, "count_include_pad": 0}, {}),
        ("AveragePool", {**POOL, "count_include_pad": 1}, {}),
        ("AveragePool", {**POOL, "count_include_pad": 1, "ceil_mode": 1}, {}),
        ("AveragePool", {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER",
                         "count_include_pad": 1}, {}),
        ("AveragePool", {"kernel_shape": [3, 2], "auto_pad": "VALID"}, {}),
        ("GlobalAveragePool", {}, {}),
    ],
)  # fmt: skip
def test_each_op_matches_the_reference_interpreter(op, attrs, inits):
    """Padding, strides, dilations, groups, auto_pad, ceil_mode and count_include_pad
    as onnxruntime computes them (the reference interpreter runs these ops in it)."""
    node = helper.make_node(op, ["x", *inits], ["y"], **attrs)
    module = import_model(make_model([node], inits, [2, 3, 8, 9], ["a", "b", "c", "d"]))
    x = np.random.default_rng(2).normal(size=(2, 3, 8, 9)).astype(np.float32)
    expected = run_module(module, {"x": x})["y"]
    got = forward_logits(module, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_gradients_match_finite_differences():
    """Every weight and bias of the residual net, in float64: the gradients through
    Conv (grouped, depthwise, padded, strided, dilated), BatchNormalization, MaxPool,
    AveragePool, GlobalAveragePool, Concat and a value with two users (the residual)."""
    module = import_model(residual_net())
    graph = _Graph(main_function(module), _trainable_sources(module))
    assert len(graph.params) == 7  # w1, b1, w2, b2, w3, w4, b4; not BatchNormalization's
    for param in graph.params.values():
        param.train = param.train.astype(np.float64)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 2, 7, 6))
    y = rng.integers(0, 3, 3)

    def loss() -> float:
        z = graph.forward([x])[graph.logits]
        z = z - z.max(1, keepdims=True)
        return float(-(z[np.arange(3), y] - np.log(np.exp(z).sum(1))).mean())

    env = graph.forward([x])
    assert env[graph.logits].dtype == np.float64
    p = np.exp(env[graph.logits] - env[graph.logits].max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(3), y] -= 1
    grads = graph.backward(env, p / 3)
    eps = 1e-6
    for value, param in graph.params.items():
        numeric = np.zeros_like(param.train)
        for i in np.ndindex(param.train.shape):
            keep = param.train[i]
            param.train[i] = keep + eps
            up = loss()
            param.train[i] = keep - eps
            down = loss()
            param.train[i] = keep
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[value], numeric, rtol=1e-5, atol=1e-8)


def digits_cnn() -> onnx.ModelProto:
    """Conv 3x3 (1->8) -> Relu -> MaxPool 2 -> Conv 3x3 (8->16) -> Relu -> MaxPool 2 ->
    Flatten -> Gemm (64->10), He-initialized, on [N, 1, 8, 8] digits."""
    rng = np.random.default_rng(0)

    def he(*shape: int) -> np.ndarray:
        return rng.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape)

    inits = {
        "w1": he(8, 1, 3, 3), "b1": np.zeros(8), "w2": he(16, 8, 3, 3), "b2": np.zeros(16),
        "w3": he(10, 64), "b3": np.zeros(10),
    }  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], name="fc", transB=1),
    ]  # fmt: skip
    return make_model(nodes, inits, ["N", 1, 8, 8], ["N", 10])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits split as images, and the CNN trained on it from random init (10 epochs
    of retrain on the dense model: ~95% test accuracy)."""
    with np.load(TRAIN) as train, np.load(TEST) as test:
        x, labels = train["input"].reshape(-1, 1, 8, 8), train["labels"]
        x_test, labels_test = test["input"].reshape(-1, 1, 8, 8), test["labels"]
    data = tmp_path_factory.mktemp("digits") / "train.npz"
    np.savez(data, x=x, labels=labels)
    module = import_model(digits_cnn())
    apply_passes(module, [RetrainPass(data=str(data), epochs=10, lr=1e-2)])

    def accuracy(m) -> float:
        return float((run_module(m, {"x": x_test})["y"].argmax(1) == labels_test).mean())

    return module_to_string(module), str(data), accuracy


def test_digits_cnn_recovers_accuracy_after_pruning_and_sharing(digits):
    """Deep Compression's order, prune -> retrain -> share -> retrain, against prune ->
    share: retraining recovers the accuracy and keeps every layer's structure."""
    text, data, accuracy = digits
    retrain = f"retrain{{data={data},epochs=3,lr=0.01}}"

    def run(spec: str, module):
        return apply_passes(module, parse_pipeline(spec, available_passes()))

    def copy(module):
        return parse_module(module_to_string(module))

    pruned = run("prune{sparsity=0.7}", parse_module(text))
    compressed = run("share-weights{bits=4}", copy(pruned))
    shared = run(f"{retrain},share-weights{{bits=4}}", copy(pruned))
    retrained = run(retrain, copy(shared))
    assert accuracy(parse_module(text)) >= 0.93
    assert accuracy(compressed) < 0.75
    assert accuracy(retrained) >= 0.92
    masks = {s.layer: s.source.mask_array() for s in find_weights(pruned, "matrix")}
    before = {s.layer: s.source for s in find_weights(shared, "matrix")}
    after = {s.layer: s.source for s in find_weights(retrained, "matrix")}
    assert sorted(after) == ["conv1", "conv2", "fc"]
    for layer, w in after.items():
        # The mask of prune, the indices of share-weights; only the centroids moved.
        assert isinstance(w, comp.WeightOp) and w.is_shared and w.codebook_array().size <= 16
        assert np.array_equal(w.mask_array(), masks[layer])
        assert np.all(w.dense()[~masks[layer]] == 0)
        assert np.array_equal(w.indices_array(), before[layer].indices_array())
        assert not np.array_equal(w.codebook_array(), before[layer].codebook_array())


def test_retrained_cnn_exports_to_onnx(digits):
    """The retrained conv weights, materialized by `export`, run in onnxruntime as in the
    reference interpreter."""
    text, data, _ = digits
    spec = f"prune{{sparsity=0.7}},share-weights{{bits=4}},retrain{{data={data},epochs=1}}"
    module = apply_passes(parse_module(text), parse_pipeline(spec, available_passes()))
    x = np.random.default_rng(4).uniform(0, 1, (6, 1, 8, 8)).astype(np.float32)
    session = ort.InferenceSession(
        export_module(module).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    np.testing.assert_allclose(
        session.run(None, {"x": x})[0], run_module(module, {"x": x})["y"], rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "nodes, message",
    [
        ([helper.make_node("Conv", ["x", "w1"], ["y"], name="c", kernel_shape=[3])],
         "retrain: onnx.Conv 'c' must be 2-D"),
        ([helper.make_node("BatchNormalization", ["x", "s", "s", "s", "s"], ["y"], name="bn",
                           training_mode=1)],
         "retrain: onnx.BatchNormalization 'bn' must be in inference mode"),
        ([helper.make_node("MaxPool", ["x"], ["m", "i"], name="mp", kernel_shape=[2]),
          helper.make_node("Cast", ["i"], ["f"], to=TensorProto.FLOAT),
          helper.make_node("Add", ["m", "f"], ["y"])],
         "retrain: onnx.MaxPool 'mp' must have only its first result used"),
        ([helper.make_node("Dropout", ["x", "", "t"], ["y"], name="drop")],
         "retrain: onnx.Dropout 'drop' must be in inference mode"),
        ([helper.make_node("LpPool", ["x"], ["y"], name="lp", kernel_shape=[2])],
         r"retrain: onnx.LpPool 'lp' is not supported \(retrain handles Gemm, MatMul, Conv, "),
    ],
)  # fmt: skip
def test_refusals(tmp_path, nodes, message):
    """Ops outside retrain's scope are refused in one line, naming the node."""
    inits = {"w1": np.ones((3, 2, 3)), "s": np.ones(2)}
    model = make_model(nodes, inits, ["N", 2, 5], ["N", "a", "b"])
    model.graph.initializer.append(numpy_helper.from_array(np.array(True), "t"))
    np.savez(tmp_path / "d.npz", x=np.zeros((1, 2, 5), np.float32), labels=np.zeros(1, int))
    with pytest.raises(DlhwcError, match=message) as e:
        apply_passes(import_model(model), [RetrainPass(data=str(tmp_path / "d.npz"))])
    assert "\n" not in e.value.message
