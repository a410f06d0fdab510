"""Checks on the committed example models and data written by ``examples/train_digits.py``.

These only load the committed files; nothing is retrained here.
"""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODELS = EXAMPLES / "models"
DATA = EXAMPLES / "data"

# (model file, test-split file, expected input shape after the batch dim)
CASES = {
    "mlp": ("digits_mlp.onnx", "digits_test.npz", (64,)),
    "lstm": ("digits_lstm.onnx", "digits_test_seq.npz", (8, 8)),
}
MIN_ACCURACY = 0.94


def _load(name: str) -> onnx.ModelProto:
    return onnx.load(str(MODELS / name))


@pytest.mark.parametrize("kind", sorted(CASES))
def test_model_passes_checker(kind):
    model = _load(CASES[kind][0])
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert {(o.domain, o.version) for o in model.opset_import} == {("", 17)}
    assert model.producer_name == "dlhwc-examples"


@pytest.mark.parametrize("kind", sorted(CASES))
def test_accuracy_in_onnxruntime(kind):
    model_file, data_file, feature_shape = CASES[kind]
    with np.load(DATA / data_file) as data:
        x, labels = data["input"], data["labels"]
    assert x.dtype == np.float32 and x.shape[1:] == feature_shape
    assert labels.dtype == np.int64 and labels.shape == (x.shape[0],)
    sess = ort.InferenceSession(str(MODELS / model_file), providers=["CPUExecutionProvider"])
    (probs,) = sess.run(["probabilities"], {"input": x})
    assert probs.shape == (x.shape[0], 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == labels).mean() >= MIN_ACCURACY


def test_mlp_has_symbolic_batch_dim():
    graph = _load("digits_mlp.onnx").graph
    in_dims = graph.input[0].type.tensor_type.shape.dim
    out_dims = graph.output[0].type.tensor_type.shape.dim
    assert in_dims[0].dim_param == "N" and not in_dims[0].HasField("dim_value")
    assert out_dims[0].dim_param == "N"
    assert [d.dim_value for d in in_dims[1:]] == [64]


def test_mlp_graph_layout():
    graph = _load("digits_mlp.onnx").graph
    assert [(n.name, n.op_type) for n in graph.node] == [
        ("fc1", "Gemm"),
        ("relu1", "Relu"),
        ("fc2", "Gemm"),
        ("relu2", "Relu"),
        ("fc3", "Gemm"),
        ("softmax", "Softmax"),
    ]
    shapes = {i.name: tuple(i.dims) for i in graph.initializer}
    # Weights are stored [out, in] and consumed with transB=1.
    assert shapes["fc1.weight"] == (300, 64)
    assert shapes["fc2.weight"] == (100, 300)
    assert shapes["fc3.weight"] == (10, 100)


def test_lstm_graph_layout():
    graph = _load("digits_lstm.onnx").graph
    assert [n.name for n in graph.node] == ["transpose", "lstm", "squeeze", "fc", "softmax"]
    shapes = {i.name: tuple(i.dims) for i in graph.initializer}
    assert shapes["lstm.W"] == (1, 256, 8)
    assert shapes["lstm.R"] == (1, 256, 64)
    assert shapes["lstm.B"] == (1, 512)


def test_calibration_set():
    with np.load(DATA / "digits_calib.npz") as data:
        x = data["input"]
    assert x.dtype == np.float32 and x.shape == (200, 64)
    assert 0.0 <= x.min() and x.max() <= 1.0
