"""Real models end to end: older opsets, onnx's bundled models, pre-quantized (QDQ) models,
weights built by constant subgraphs, and input signatures beyond one batched tensor."""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from compiler.cli import main
from tests.test_cli import assert_user_error

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _program_agrees_with_golden(tmp_path, model, inputs: dict, target="eie", extra=()):
    """Compile ``model`` to the target IR and to a program; both run on ``inputs`` and give
    the same outputs bit for bit. Returns the outputs."""
    data = tmp_path / "inputs.npz"
    np.savez(data, **inputs)
    ir, prog = tmp_path / "m.ir.mlir", tmp_path / "m.dlhw"
    common = ["--target", target, *extra]
    assert main(["compile", str(model), *common, "--emit", target, "-o", str(ir)]) == 0
    assert main(["compile", str(model), *common, "-o", str(prog)]) == 0
    golden, simulated = tmp_path / "golden.npz", tmp_path / "sim.npz"
    assert main(["run", str(ir), "--input", str(data), "--output", str(golden)]) == 0
    assert main(["run", str(prog), "--input", str(data), "--output", str(simulated)]) == 0
    golden, simulated = np.load(golden), np.load(simulated)
    assert sorted(golden.files) == sorted(simulated.files)
    for name in golden.files:
        np.testing.assert_array_equal(golden[name], simulated[name], err_msg=name)
    return dict(simulated)


# -- older opsets ------------------------------------------------------------------------


def test_bundled_opset9_model_compiles_and_runs_on_eie(tmp_path, capsys):
    """onnx's bundled Inception v1 (opset 9): upgraded at import, its classifier on EIE."""
    model = LIGHT / "light_inception_v1.onnx"
    x = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)
    outputs = _program_agrees_with_golden(tmp_path, model, {"data_0": x})
    err = capsys.readouterr().err
    assert "upgraded from ai.onnx opset 9 to 11" in err
    assert "eie.fc" in err  # the placement lists the classifier on the accelerator
    assert outputs["prob_1"].shape == (1, 1000)


def test_model_the_converter_cannot_upgrade(capsys, tmp_path):
    """onnx's version converter has no adapter for opset 6's Less: one error line."""
    graph = helper.make_graph(
        [helper.make_node("Less", ["x", "y"], ["z"])],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in "xy"],
        [helper.make_tensor_value_info("z", TensorProto.BOOL, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)])
    model.ir_version = 3
    path = tmp_path / "less6.onnx"
    onnx.save(model, path)
    assert_user_error(
        capsys,
        ["compile", str(path), "--target", "eie", "-o", str(tmp_path / "p.dlhw")],
        "less6.onnx",
        "cannot upgrade ai.onnx opset 6 to 11",
        "failed: No Adapter From Version $6 for Less",
        output=tmp_path / "p.dlhw",
    )
