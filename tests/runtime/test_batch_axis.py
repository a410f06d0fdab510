"""Host tensors whose batch is not on axis 0 (sequence-first inputs) on the EIE target."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dlhwc.compiler.cli import main


def _seq_first_model(path):
    """x [T, N, 4] -> LSTM -> Y_h [1, N, 6] -> Squeeze -> Gemm -> y [N, 3]."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.3, (1, 24, 4)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(0, 0.3, (1, 24, 6)).astype(np.float32), "R"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axes"),
        numpy_helper.from_array(rng.normal(0, 0.5, (3, 6)).astype(np.float32), "fc.w"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("LSTM", ["x", "W", "R"], ["", "h"], hidden_size=6, name="lstm"),
            helper.make_node("Squeeze", ["h", "axes"], ["h2"], name="squeeze"),
            helper.make_node("Gemm", ["h2", "fc.w"], ["y"], transB=1, name="fc"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, "N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_sequence_first_input_runs_on_eie(tmp_path):
    model = _seq_first_model(tmp_path / "m.onnx")
    x = np.random.default_rng(1).normal(size=(5, 3, 4)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    ir, prog = tmp_path / "m.eie.mlir", tmp_path / "m.dlhw"
    common = ["--target", "eie", "--calibration", str(tmp_path / "x.npz")]
    assert main(["compile", str(model), *common, "--emit", "eie", "-o", str(ir)]) == 0
    assert main(["compile", str(model), *common, "-o", str(prog)]) == 0
    golden, simulated = tmp_path / "golden.npz", tmp_path / "sim.npz"
    assert main(["run", str(ir), "--input", str(tmp_path / "x.npz"), "--output", str(golden)]) == 0
    assert (
        main(["run", str(prog), "--input", str(tmp_path / "x.npz"), "--output", str(simulated)])
        == 0
    )
    np.testing.assert_array_equal(np.load(golden)["y"], np.load(simulated)["y"])
