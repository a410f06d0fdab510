"""Generic ops with subgraphs that read values of the enclosing graph (If, Loop)."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from dlhwc.compiler.frontend.onnx_exporter import export_module
from dlhwc.compiler.frontend.onnx_importer import import_model
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.irio import context, module_to_string, parse_module
from dlhwc.compiler.passes.fold_constants import FoldConstantsPass
from dlhwc.dialects import onnx as onnx_d


def _if_model() -> onnx.ModelProto:
    """y = cond ? relu(x) * scale : x - scale, both branches reading x and scale outside."""
    out = helper.make_tensor_value_info("branch_out", TensorProto.FLOAT, ["N", 3])
    then = helper.make_graph(
        [
            helper.make_node("Relu", ["x.in"], ["r"]),
            helper.make_node("Mul", ["r", "scale"], ["branch_out"]),
        ],
        "then", [], [out],
    )  # fmt: skip
    other = helper.make_graph(
        [helper.make_node("Sub", ["x.in", "scale"], ["branch_out"])], "else", [], [out]
    )
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["x.in"]),
            helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor("scale", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_if_branches_read_the_enclosing_graph():
    model = _if_model()
    module = import_model(model)
    # fold-constants bypasses the Identity: the branches then read x under its old name.
    FoldConstantsPass().apply(context(), module)
    (node,) = [op for op in module.walk() if isinstance(op, onnx_d.NodeOp)]
    assert node.capture_names == ["x.in", "scale"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]], dtype=np.float32)
    for cond in (True, False):
        feeds = {"x": x, "cond": np.array(cond)}
        expected = session.run(None, feeds)[0]
        np.testing.assert_allclose(run_module(module, feeds)["y"], expected, rtol=1e-6)
        reparsed = parse_module(module_to_string(module))
        np.testing.assert_allclose(run_module(reparsed, feeds)["y"], expected, rtol=1e-6)
        exported = export_module(module).SerializeToString()
        again = ort.InferenceSession(exported, providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(again.run(None, feeds)[0], expected, rtol=1e-6)
