"""xDSL's cse, dce and canonicalize on dlhwc IR: what they remove, what they keep, and
that the result computes the same outputs in the reference interpreter."""

from pathlib import Path

import numpy as np

from dlhwc.compiler.frontend.onnx_importer import import_file
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.irio import context, module_to_string, parse_module
from dlhwc.compiler.plugins import available_passes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _mlp_with_redundancy():
    """The digits MLP with a duplicate Relu read by fc2, an unused Sigmoid and an
    Identity read by fc3."""
    text = module_to_string(import_file(EXAMPLES / "models" / "digits_mlp.onnx"))
    relu1 = next(line for line in text.splitlines() if line.strip().startswith("%relu1 ="))
    relu2 = next(line for line in text.splitlines() if line.strip().startswith("%relu2 ="))
    extra = relu1.replace("%relu1 =", "%relu1b =") + (
        "\n    %dead = onnx.Sigmoid(%fc1) : (tensor<?x300xf32>) -> tensor<?x300xf32>"
    )
    text = text.replace(relu1, relu1 + "\n" + extra).replace("Gemm(%relu1,", "Gemm(%relu1b,")
    ident = "    %id = onnx.Identity(%relu2) : (tensor<?x100xf32>) -> tensor<?x100xf32>"
    text = text.replace(relu2, relu2 + "\n" + ident).replace("Gemm(%relu2,", "Gemm(%id,")
    return parse_module(text)


def _run(names: str, module):
    passes = available_passes()
    for name in names.split(","):
        passes[name]()().apply(context(), module)
    module.verify()
    return module


def _ops(module) -> list[str]:
    return [op.name for op in module.walk() if op.name.startswith("onnx.")]


def _outputs(module) -> np.ndarray:
    x = np.load(EXAMPLES / "data" / "digits_test.npz")["input"][:64]
    return run_module(module, {"input": x})["probabilities"]


def test_cse_dce_canonicalize_keep_the_outputs():
    reference = _outputs(import_file(EXAMPLES / "models" / "digits_mlp.onnx"))
    before = _ops(_mlp_with_redundancy())
    assert before.count("onnx.Relu") == 3 and "onnx.Sigmoid" in before

    cse = _run("cse", _mlp_with_redundancy())
    assert _ops(cse).count("onnx.Relu") == 2
    dce = _run("dce", _mlp_with_redundancy())
    # The Sigmoid and the first Relu (fc2 reads its duplicate) are unused.
    assert "onnx.Sigmoid" not in _ops(dce) and _ops(dce).count("onnx.Relu") == 2
    assert "onnx.Identity" in _ops(dce)
    canon = _run("canonicalize", _mlp_with_redundancy())
    assert "onnx.Identity" not in _ops(canon)
    everything = _run("canonicalize,cse,dce", _mlp_with_redundancy())
    assert _ops(everything) == _ops(import_file(EXAMPLES / "models" / "digits_mlp.onnx"))

    for module in (cse, dce, canon, everything):
        np.testing.assert_array_equal(_outputs(module), reference)


def test_generic_onnx_nodes_are_neither_merged_nor_removed():
    """An onnx.Node may be any operator (RandomNormal draws anew each time): no traits."""
    node = (
        '    %r{i} = onnx.Node() {{op_type = "RandomNormal", domain = "", opset = 17 : i64, '
        "attrs = {{shape = array<i64: 2>}}}} : () -> tensor<2xf32>\n"
    )
    text = (
        "builtin.module {\n  func.func @main() -> tensor<2xf32> {\n"
        + node.format(i=0)
        + node.format(i=1)
        + node.format(i=2)
        + "    %s = onnx.Add(%r0, %r1) : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>\n"
        + "    func.return %s : tensor<2xf32>\n  }\n}\n"
    )
    module = _run("canonicalize,cse,dce", parse_module(text))
    assert _ops(module).count("onnx.Node") == 3


def test_cse_merges_duplicate_constants_with_their_payload():
    text = (
        "builtin.module {\n  func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {\n"
        '    %a = onnx.Constant dense<[1.0, 2.0]> : tensor<2xf32> loc("a")\n'
        '    %b = onnx.Constant dense<[1.0, 2.0]> : tensor<2xf32> loc("b")\n'
        '    %c = onnx.Constant dense<[1.0, 3.0]> : tensor<2xf32> loc("c")\n'
        "    %s = onnx.Add(%x, %a) : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>\n"
        "    %t = onnx.Add(%s, %b) : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>\n"
        "    %u = onnx.Add(%t, %c) : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>\n"
        "    func.return %u : tensor<2xf32>\n  }\n}\n"
    )
    module = _run("cse", parse_module(text))
    assert _ops(module).count("onnx.Constant") == 2
    x = np.array([0.5, -1.0], np.float32)
    np.testing.assert_array_equal(
        next(iter(run_module(module, {"arg0": x}).values())), x + np.float32([3, 7])
    )
