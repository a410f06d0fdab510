"""ONNX models in the shape of real networks' layers, built from numpy (no torch).

Each builder returns (model, draw): the ONNX model and `draw(rng, n)`, which samples n
input rows the way the model's real inputs are distributed, so that calibration data
and test data come from the same distribution. Weights are drawn like a freshly
initialized PyTorch layer (uniform in +-1/sqrt(fan_in)), scaled where the named network
has that range.

- `classifier_head`: ResNet-18's global-average-pool -> fc 512 -> 1000 (inputs up to ~8
  after ReLU and pooling, logits up to ~6: a wide output range);
- `small_activations`: AlexNet-like fully connected layers after normalization
  (activations around 1e-2, outputs around 1e-3);
- `large_fan_in`: VGG-6-like 25088 -> 64 (sums over many small products);
- `transformer_ffn`: a Transformer encoder's feed-forward block on [tokens, 128],
  128 -> 512 -> ReLU -> 128, the residual Add and LayerNormalization on the host;
- `token_linear`: the same block on [batch, tokens, 64] (PyTorch's Linear on 3-D
  tensors: MatMul + Add), as in Transformer and BERT projections;
- `small_cnn`: a VGG-like CNN on [N, 3, 16, 16]: 3x3 conv (pad 1) -> ReLU -> MaxPool ->
  3x3 conv (stride 2) -> ReLU -> 1x1 conv -> ReLU -> GlobalAveragePool -> Flatten ->
  Gemm 10.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper

Draw = Callable[[np.random.Generator, int], np.ndarray]


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return helper.make_tensor(name, TensorProto.FLOAT, array.shape, array.ravel())


def _linear(rng, n_in: int, n_out: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    bound = scale / math.sqrt(n_in)
    w = rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32)
    b = rng.uniform(-bound, bound, n_out).astype(np.float32)
    return w, b


def _model(nodes, inits, n_in: int, n_out: int, name: str) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _mlp(rng, dims: list[int], scale: float, name: str) -> onnx.ModelProto:
    nodes, inits, x = [], [], "x"
    for i, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        w, b = _linear(rng, n_in, n_out, scale)
        inits += [_init(f"fc{i}.weight", w), _init(f"fc{i}.bias", b)]
        out = "y" if i == len(dims) - 2 else f"h{i}"
        nodes.append(
            helper.make_node(
                "Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [out], transB=1, name=f"fc{i}"
            )  # fmt: skip
        )
        x = out
        if i < len(dims) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"], name=f"relu{i}"))
            x = f"r{i}"
    return _model(nodes, inits, dims[0], dims[-1], name)


def classifier_head(seed: int = 0) -> tuple[onnx.ModelProto, Draw]:
    rng = np.random.default_rng(seed)
    # fc weights of a trained ResNet reach ~0.2; pooled features reach ~8.
    model = _mlp(rng, [512, 1000], 4.0, "classifier_head")

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return np.maximum(rng.gamma(1.2, 0.9, (n, 512)) - 0.3, 0).astype(np.float32)

    return model, draw


def small_activations(seed: int = 0) -> tuple[onnx.ModelProto, Draw]:
    rng = np.random.default_rng(seed)
    model = _mlp(rng, [1024, 512, 256, 100], 0.5, "small_activations")

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return np.maximum(rng.normal(0, 0.02, (n, 1024)), 0).astype(np.float32)

    return model, draw


def large_fan_in(seed: int = 0) -> tuple[onnx.ModelProto, Draw]:
    rng = np.random.default_rng(seed)
    model = _mlp(rng, [25088, 64, 10], 1.0, "large_fan_in")

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return np.maximum(rng.normal(0, 1.0, (n, 25088)), 0).astype(np.float32)

    return model, draw


def transformer_ffn(seed: int = 0) -> tuple[onnx.ModelProto, Draw]:
    rng = np.random.default_rng(seed)
    d, hidden = 128, 512
    w1, b1 = _linear(rng, d, hidden)
    w2, b2 = _linear(rng, hidden, d)
    inits = [
        _init("ffn.0.weight", w1),
        _init("ffn.0.bias", b1),
        _init("ffn.2.weight", w2),
        _init("ffn.2.bias", b2),
        _init("norm.weight", np.ones(d, np.float32)),
        _init("norm.bias", np.zeros(d, np.float32)),
    ]
    nodes = [
        helper.make_node(
            "Gemm", ["x", "ffn.0.weight", "ffn.0.bias"], ["h"], transB=1, name="ffn.0"
        ),  # fmt: skip
        helper.make_node("Relu", ["h"], ["hr"], name="ffn.1"),
        helper.make_node(
            "Gemm", ["hr", "ffn.2.weight", "ffn.2.bias"], ["f"], transB=1, name="ffn.2"
        ),  # fmt: skip
        helper.make_node("Add", ["x", "f"], ["res"], name="residual"),
        helper.make_node(
            "LayerNormalization",
            ["res", "norm.weight", "norm.bias"],
            ["y"],
            axis=-1,
            epsilon=1e-5,
            name="norm",
        ),  # fmt: skip
    ]
    model = _model(nodes, inits, d, d, "transformer_ffn")

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.normal(0, 1.0, (n, d)).astype(np.float32)  # after a LayerNorm

    return model, draw


def token_linear(seed: int = 0) -> tuple[onnx.ModelProto, Draw]:
    rng = np.random.default_rng(seed)
    d, hidden, tokens = 64, 128, 6
    w1, b1 = _linear(rng, d, hidden)
    w2, b2 = _linear(rng, hidden, d)
    inits = [
        _init("fc1.weight_t", np.ascontiguousarray(w1.T)),
        _init("fc1.bias", b1),
        _init("fc2.weight_t", np.ascontiguousarray(w2.T)),
        _init("fc2.bias", b2),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "fc1.weight_t"], ["m1"], name="fc1"),
        helper.make_node("Add", ["m1", "fc1.bias"], ["a1"], name="fc1.add"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "fc2.weight_t"], ["m2"], name="fc2"),
        helper.make_node("Add", ["m2", "fc2.bias"], ["y"], name="fc2.add"),
    ]
    graph = helper.make_graph(
        nodes,
        "token_linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", tokens, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", tokens, d])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.normal(0, 1.0, (n, tokens, d)).astype(np.float32)

    return model, draw


def _conv(rng, c_in: int, c_out: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    bound = 1.0 / math.sqrt(c_in * k * k)
    w = rng.uniform(-bound, bound, (c_out, c_in, k, k)).astype(np.float32)
    b = rng.uniform(-bound, bound, c_out).astype(np.float32)
    return w, b


def small_cnn(seed: int = 0) -> tuple[onnx.ModelProto, Draw]:
    rng = np.random.default_rng(seed)
    w1, b1 = _conv(rng, 3, 16, 3)
    w2, b2 = _conv(rng, 16, 32, 3)
    w3, b3 = _conv(rng, 32, 24, 1)
    w4, b4 = _linear(rng, 24, 10)
    inits = [
        _init("conv1.weight", w1), _init("conv1.bias", b1),
        _init("conv2.weight", w2), _init("conv2.bias", b2),
        _init("conv3.weight", w3), _init("conv3.bias", b3),
        _init("fc.weight", w4), _init("fc.bias", b4),
    ]  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2",
                         kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "conv3.weight", "conv3.bias"], ["c3"], name="conv3",
                         kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1, name="fc"),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.normal(0, 1.0, (n, 3, 16, 16)).astype(np.float32)

    return model, draw


SHAPES = {
    "classifier_head": classifier_head,
    "small_activations": small_activations,
    "large_fan_in": large_fan_in,
    "transformer_ffn": transformer_ffn,
    "token_linear": token_linear,
    "small_cnn": small_cnn,
}
