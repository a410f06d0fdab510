"""Large batches stream in chunks: the same outputs, stats and layer records as one piece."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import dlhwc.compiler.interpreters.batching as batching
from dlhwc.compiler.frontend.onnx_importer import import_file, import_model
from dlhwc.compiler.functions import main_function
from dlhwc.compiler.interpreters.batching import rowwise
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.runtime.eie.sim import Simulator
from tests.runtime.test_eie_sim import CALIB, MLP, TEST, _compile


def test_simulator_chunks_give_the_whole_batch_results():
    _, container = _compile(MLP, calib=CALIB)
    x = np.load(TEST)["input"][:300]
    whole_sim, chunked_sim = Simulator(container), Simulator(container)
    whole, whole_stats = whole_sim.run({"input": x})
    chunked, chunked_stats = chunked_sim.run({"input": x}, chunk=64)
    for name in whole:
        np.testing.assert_array_equal(chunked[name], whole[name])
    assert chunked_stats.dumps() == whole_stats.dumps()
    for name, value in whole_sim.last_layer_outputs.items():
        np.testing.assert_array_equal(chunked_sim.last_layer_outputs[name], value)
        np.testing.assert_array_equal(
            chunked_sim.last_layer_inputs[name], whole_sim.last_layer_inputs[name]
        )


def test_interpreter_streams_a_rowwise_model(monkeypatch):
    module = import_file(str(MLP))
    assert rowwise(main_function(module))
    x = np.load(TEST)["input"][:300]
    whole = run_module(module, {"input": x})
    monkeypatch.setattr(batching, "CHUNK_ROWS", 64)
    chunked = run_module(module, {"input": x})
    for name in whole:
        np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-6, atol=1e-7)


def _model(nodes, batch="N", out=(TensorProto.FLOAT, [None, 4])) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", *out)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    "nodes, batch, out",
    [
        ([helper.make_node("Softmax", ["x"], ["y"], axis=0)], "N", None),  # mixes rows
        ([helper.make_node("ReduceMean", ["x"], ["y"])], "N", [1, 1]),  # over the batch
        ([helper.make_node("Shape", ["x"], ["y"])], "N", "shape"),  # reads the batch size
        ([helper.make_node("Relu", ["x"], ["y"])], 8, [8, 4]),  # a static batch
    ],
)
def test_batch_mixing_models_run_whole(nodes, batch, out):
    typ = (TensorProto.INT64, [2]) if out == "shape" else (TensorProto.FLOAT, out or [None, 4])
    assert not rowwise(main_function(import_model(_model(nodes, batch, typ))))


def test_rowwise_softmax_over_features():
    nodes = [helper.make_node("Softmax", ["x"], ["y"], axis=1)]
    assert rowwise(main_function(import_model(_model(nodes))))
