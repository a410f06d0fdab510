"""Importer behaviour not covered by the differential tests."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dlhwc.compiler.frontend.onnx_importer import import_model
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.dialects import onnx as onnx_d


def _gemm_model(rows: int, cols: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((rows, cols), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cols])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", rows])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_large_initializers_import_from_any_directory(tmp_path, monkeypatch):
    # Large weights take the checker's fast path; it must not depend on the cwd.
    monkeypatch.chdir(tmp_path)
    model = _gemm_model(300, 300)
    before = model.SerializeToString()
    module = import_model(model)
    assert model.SerializeToString() == before  # the caller's model is untouched
    consts = [op for op in module.walk() if isinstance(op, onnx_d.ConstantOp)]
    assert consts[0].to_array().shape == (300, 300)
    x = np.ones((2, 300), dtype=np.float32)
    w = numpy_helper.to_array(model.graph.initializer[0])
    np.testing.assert_allclose(run_module(module, {"x": x})["y"], x @ w.T, rtol=1e-5, atol=1e-4)


def test_symbolic_batch_is_kept():
    module = import_model(_gemm_model(4, 3))
    text = str(module)
    assert "tensor<?x3xf32>" in text
    assert 'onnx.dim_params = ["N", ""]' in text


def test_large_constants_round_trip_through_the_lifted_parse(tmp_path):
    from dlhwc.compiler.irio import _lift_blobs, module_to_string, parse_module

    text = module_to_string(import_model(_gemm_model(300, 300)))
    lifted, blobs = _lift_blobs(text)
    assert len(blobs) == 1 and len(lifted) < 10_000  # the weight's hex left the text
    assert module_to_string(parse_module(text)) == text


def test_errors_after_a_large_constant_keep_their_position():
    from dlhwc.compiler.irio import module_to_string, parse_module
    from dlhwc.spec.errors import DlhwcError

    text = module_to_string(import_model(_gemm_model(300, 300)))
    lines = text.splitlines()
    bad = next(i for i, line in enumerate(lines) if "onnx.Gemm" in line)
    lines[bad] = lines[bad].replace("onnx.Gemm", "onnx.Gemmm")
    try:
        parse_module("\n".join(lines), "m.mlir")
    except DlhwcError as e:
        assert e.message.startswith(f"m.mlir:{bad + 1}:")
    else:
        raise AssertionError("the misspelled op parsed")
