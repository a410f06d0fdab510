"""Non-tensor outputs (ONNX-ML ZipMap's sequence of maps) through run and the simulator."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dlhwc.compiler.cli import main


def _classifier(path):
    """Gemm -> Softmax -> ZipMap, as skl2onnx writes a classifier by default."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "w")
    seq_of_maps = helper.make_sequence_type_proto(
        helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(1, []))
    )
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w"], ["logits"], transB=1, name="fc"),
            helper.make_node("Softmax", ["logits"], ["probs"], name="softmax"),
            helper.make_node(
                "ZipMap", ["probs"], ["scores"], classlabels_int64s=[7, 8, 9],
                domain="ai.onnx.ml", name="zipmap",
            ),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_value_info("scores", seq_of_maps)],
        [w],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    onnx.save(model, path)
    return path


def test_sequence_of_maps_is_written_as_a_table(tmp_path):
    model = _classifier(tmp_path / "clf.onnx")
    x = np.abs(np.random.default_rng(1).standard_normal((5, 4))).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    assert main(["run", str(model), "--input", str(tmp_path / "x.npy"), "--output", str(out)]) == 0
    saved = np.load(out)
    assert saved["scores"].shape == (5, 3)
    np.testing.assert_array_equal(saved["scores.keys"], [7, 8, 9])
    np.testing.assert_allclose(saved["scores"].sum(axis=1), 1.0, rtol=1e-6)

    program, sim_out = tmp_path / "clf.dlhw", tmp_path / "sim.npz"
    assert main(["compile", str(model), "--target", "eie", "-o", str(program)]) == 0
    argv = ["run", str(program), "--input", str(tmp_path / "x.npy"), "--output", str(sim_out)]
    assert main(argv) == 0
    simulated = np.load(sim_out)
    np.testing.assert_array_equal(simulated["scores.keys"], [7, 8, 9])
    np.testing.assert_allclose(simulated["scores"], saved["scores"], atol=0.05)
