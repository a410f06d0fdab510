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
  128 -> 512 -> ReLU -> 128, the residual Add and LayerNormalization on the host.
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


SHAPES = {
    "classifier_head": classifier_head,
    "small_activations": small_activations,
    "large_fan_in": large_fan_in,
    "transformer_ffn": transformer_ffn,
}
