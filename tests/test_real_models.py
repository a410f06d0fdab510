"""Real models end to end: older opsets, onnx's bundled models, pre-quantized (QDQ) models,
weights built by constant subgraphs, and input signatures beyond one batched tensor."""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from dlhwc.compiler.cli import main
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


# -- weights built by constant subgraphs -----------------------------------------------------


def _constant_subgraph_mlp(path):
    """fc1's weight is a ConstantOfShape [16, 8] (as in onnx's bundled models), fc2's a
    Transpose of an initializer; a ConstantOfShape [4, 16] that is not a weight is added."""
    rng = np.random.default_rng(0)
    w2 = rng.normal(0, 0.3, (16, 4)).astype(np.float32)
    inits = [
        onnx.numpy_helper.from_array(np.array([16, 8], dtype=np.int64), "w1_shape"),
        onnx.numpy_helper.from_array(w2, "w2_t"),
        onnx.numpy_helper.from_array(np.array([4, 16], dtype=np.int64), "pad_shape"),
    ]
    fill = onnx.numpy_helper.from_array(np.array([0.05], dtype=np.float32))
    nodes = [
        helper.make_node("ConstantOfShape", ["w1_shape"], ["w1"], value=fill, name="w1_fill"),
        helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Transpose", ["w2_t"], ["w2"], perm=[1, 0], name="w2_transpose"),
        helper.make_node("Gemm", ["r", "w2"], ["y"], transB=1, name="fc2"),
        helper.make_node("ConstantOfShape", ["pad_shape"], ["pad"], value=fill, name="pad"),
        helper.make_node("Add", ["y", "pad"], ["z"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [4, 4])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_weights_fold_whatever_their_size(tmp_path):
    """Above max-elements, a constant that feeds a weight folds; one that does not stays."""
    from dlhwc.compiler.frontend.onnx_importer import import_file
    from dlhwc.compiler.passes import BUILTIN_PASSES
    from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
    from dlhwc.dialects import onnx as onnx_d

    module = import_file(_constant_subgraph_mlp(tmp_path / "m.onnx"))
    apply_passes(module, parse_pipeline("fold-constants{max-elements=16}", BUILTIN_PASSES))
    kinds = [op.name for op in module.walk() if isinstance(op, onnx_d.OnnxOp)]
    assert "onnx.Transpose" not in kinds  # fc2's weight: 64 elements, folded
    assert kinds.count("onnx.ConstantOfShape") == 1  # only the Add's operand stays


def test_ledger_counts_the_same_weights_with_and_without_fold_constants(tmp_path):
    from dlhwc.compiler.compression.ledger import ledger
    from dlhwc.compiler.frontend.onnx_importer import import_file
    from dlhwc.compiler.passes import BUILTIN_PASSES
    from dlhwc.compiler.pipeline import apply_passes, parse_pipeline

    path = _constant_subgraph_mlp(tmp_path / "m.onnx")
    imported = import_file(path)
    folded = apply_passes(import_file(path), parse_pipeline("fold-constants", BUILTIN_PASSES))
    rows = [(r.layer, r.weights, r.stage) for r in ledger(imported).rows]
    assert rows == [(r.layer, r.weights, r.stage) for r in ledger(folded).rows]
    assert rows == [("fc1", 128, "raw"), ("fc2", 64, "raw")]


def test_weight_computed_at_run_time_names_that_reason(tmp_path, capsys):
    """A Gemm whose weight is a graph input stays on the host, and the placement says why."""
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 8]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(["compile", str(path), "--target", "eie", "-o", str(tmp_path / "p.dlhw")]) == 0
    assert "its weight is computed at run time" in capsys.readouterr().err


# -- pre-quantized (QDQ) models ---------------------------------------------------------------


def _qdq_model(act=np.int8, opset=13) -> onnx.ModelProto:
    """An MLP as onnxruntime's quantization tool writes it, with every kind of Q/DQ:

    x -> Q/DQ ``act`` (int8, or int16 from opset 21) 2^-4 (an exact fixed-point rounding)
      -> MatMul w1: int8, scale 2^-6           -> + b1: int32, scale 2^-10 -> Relu
      -> Q/DQ uint8 0.05 zero point 3 (not a signed fixed-point format)
      -> Gemm w2: int8, scale 0.0123 (not a power of two), transB
      -> MatMul w3: int8, per-channel scales -> y
    """
    rng = np.random.default_rng(0)

    def i8(*shape):
        return rng.integers(-127, 128, shape).astype(np.int8)

    def const(name, array):
        return onnx.numpy_helper.from_array(np.asarray(array), name)

    inits = [
        const("x_s", np.float32(2**-4)), const("x_z", act(0)),
        const("w1_q", i8(8, 16)), const("w1_s", np.float32(2**-6)), const("w1_z", np.int8(0)),
        const("b1_q", rng.integers(-2000, 2000, 16).astype(np.int32)),
        const("b1_s", np.float32(2**-10)),
        const("h_s", np.float32(0.05)), const("h_z", np.uint8(3)),
        const("w2_q", i8(6, 16)), const("w2_s", np.float32(0.0123)), const("w2_z", np.int8(0)),
        const("w3_q", i8(6, 4)), const("w3_s", np.array([0.01, 0.02, 0.03, 0.04], np.float32)),
        const("w3_z", np.zeros(4, np.int8)),
    ]  # fmt: skip
    n = helper.make_node
    nodes = [
        n("QuantizeLinear", ["x", "x_s", "x_z"], ["x_q"], name="x_quant"),
        n("DequantizeLinear", ["x_q", "x_s", "x_z"], ["x_dq"], name="x_dequant"),
        n("DequantizeLinear", ["w1_q", "w1_s", "w1_z"], ["w1"], name="w1_dequant"),
        n("DequantizeLinear", ["b1_q", "b1_s"], ["b1"], name="b1_dequant"),
        n("MatMul", ["x_dq", "w1"], ["h0"], name="fc1"),
        n("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
        n("Relu", ["h1"], ["h"], name="relu"),
        n("QuantizeLinear", ["h", "h_s", "h_z"], ["h_q"], name="h_quant"),
        n("DequantizeLinear", ["h_q", "h_s", "h_z"], ["h_dq"], name="h_dequant"),
        n("DequantizeLinear", ["w2_q", "w2_s", "w2_z"], ["w2"], name="w2_dequant"),
        n("Gemm", ["h_dq", "w2"], ["g"], transB=1, name="fc2"),
        n("DequantizeLinear", ["w3_q", "w3_s", "w3_z"], ["w3"], axis=1, name="w3_dequant"),
        n("MatMul", ["g", "w3"], ["y"], name="fc3"),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ort_plain(model: onnx.ModelProto, feeds: dict) -> dict:
    """onnxruntime with the model's ONNX semantics (no QDQ fusion into integer kernels)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(model.SerializeToString(), options)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


def test_qdq_model_imports_quantized_weights_and_activation_formats():
    from dlhwc.compiler.frontend.onnx_importer import import_model
    from dlhwc.compiler.interpreters.interpreter import run_module
    from dlhwc.dialects import comp
    from dlhwc.dialects import onnx as onnx_d
    from dlhwc.spec.fixedpoint import FixedFormat

    model = _qdq_model()
    module = import_model(model)
    weights = {op.node_name: op for op in module.walk() if isinstance(op, comp.WeightOp)}
    assert weights["w1_dequant"].fixed_format == FixedFormat(8, 6)  # int8 at 2^-6: exact
    assert weights["b1_dequant"].fixed_format == FixedFormat(32, 10)
    assert weights["w2_dequant"].is_shared  # scale 0.0123: a codebook of its levels
    assert len(weights["w2_dequant"].codebook_array()) <= 255
    constants = {op.node_name for op in module.walk() if isinstance(op, onnx_d.ConstantOp)}
    assert "w3_dequant" in constants  # per-channel: dequantized floats
    (quant,) = [op for op in module.walk() if isinstance(op, comp.QuantizeOp)]
    assert quant.format.format == FixedFormat(8, 4)
    generic = [op.onnx_type for op in module.walk() if isinstance(op, onnx_d.NodeOp)]
    assert generic == ["QuantizeLinear", "DequantizeLinear"]  # the uint8 pair, on the host
    x = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32) * 3
    expected = _ort_plain(model, {"x": x})["y"]
    np.testing.assert_allclose(run_module(module, {"x": x})["y"], expected, rtol=1e-5, atol=1e-5)


def test_qdq_model_compiles_for_eie_and_matches_golden(tmp_path):
    """With int16 activations (EIE computes on 16 bits), the program runs as its golden model."""
    model = tmp_path / "qdq.onnx"
    onnx.save(_qdq_model(np.int16, opset=21), model)
    x = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    _program_agrees_with_golden(
        tmp_path, model, {"x": x}, extra=["--calibration", str(tmp_path / "inputs.npz")]
    )


# -- input signatures ------------------------------------------------------------------------


def _weights_as_inputs_model(path):
    """x [N, 8] -> fc1 (EIE) -> Relu -> Gemm with the weight input w [4, 16] -> times the
    scalar input s -> y [N, 4]: only x carries the batch."""
    rng = np.random.default_rng(0)
    w1 = onnx.numpy_helper.from_array(rng.normal(0, 0.3, (16, 8)).astype(np.float32), "w1")
    nodes = [
        helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w"], ["g"], transB=1, name="fc2"),
        helper.make_node("Mul", ["g", "s"], ["y"], name="scale"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 16]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [w1],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_inputs_without_the_batch_pass_as_they_are(tmp_path):
    from dlhwc.spec.container import Container

    model = _weights_as_inputs_model(tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    inputs = {
        "x": rng.normal(size=(3, 8)).astype(np.float32),
        "w": rng.normal(size=(4, 16)).astype(np.float32),
        "s": np.float32(0.5),
    }
    outputs = _program_agrees_with_golden(tmp_path, model, inputs)
    assert outputs["y"].shape == (3, 4)
    symbols = {s["name"]: s for s in Container.read(tmp_path / "m.dlhw").header["symbols"]}
    assert symbols["w"]["batch_axis"] is None and symbols["w"]["shape"] == [4, 16]
    assert symbols["s"]["batch_axis"] is None and symbols["s"]["shape"] == []
    assert symbols["x"].get("batch_axis", 0) == 0


def test_input_without_the_batch_has_its_shape_checked(tmp_path, capsys):
    model = _weights_as_inputs_model(tmp_path / "m.onnx")
    prog = tmp_path / "m.dlhw"
    assert main(["compile", str(model), "--target", "eie", "-o", str(prog)]) == 0
    np.savez(
        tmp_path / "bad.npz",
        x=np.zeros((3, 8), np.float32),
        w=np.zeros((3, 4, 16), np.float32),
        s=np.float32(1),
    )
    capsys.readouterr()
    assert_user_error(
        capsys,
        ["run", str(prog), "--input", str(tmp_path / "bad.npz")],
        "input 'w' has shape [3, 4, 16] float32, expected [4, 16] float32",
    )


def _sequence_first_gru(path):
    """x [T, N, 8] (both symbolic) -> MatMul, bias Add, Relu on the host -> GRU (ESE),
    layout 0 -> Y [T, 1, N, 16]: the batch is axis 1 of the only input."""
    rng = np.random.default_rng(0)
    inits = [
        onnx.numpy_helper.from_array(rng.normal(0, 0.3, (8, 8)).astype(np.float32), "pre_w"),
        onnx.numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "pre_b"),
        onnx.numpy_helper.from_array(rng.normal(0, 0.3, (1, 48, 8)).astype(np.float32), "W"),
        onnx.numpy_helper.from_array(rng.normal(0, 0.3, (1, 48, 16)).astype(np.float32), "R"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "pre_w"], ["m"], name="pre"),
        helper.make_node("Add", ["pre_b", "m"], ["a"], name="pre_bias"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("GRU", ["r", "W", "R"], ["y"], hidden_size=16, name="gru"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", 1, "N", 16])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_ese_takes_a_dynamic_batch_in_sequence_first_layout(tmp_path):
    model = _sequence_first_gru(tmp_path / "gru.onnx")
    x = np.random.default_rng(1).normal(size=(6, 5, 8)).astype(np.float32)
    calibration = ["--calibration", str(tmp_path / "inputs.npz")]
    outputs = _program_agrees_with_golden(tmp_path, model, {"x": x}, "ese", calibration)
    assert outputs["y"].shape == (6, 1, 5, 16)


def test_onnxruntime_quantize_static_model_runs_on_eie(tmp_path, capsys):
    """The digits MLP quantized by onnxruntime's quantize_static (QDQ, int8, scales that are
    not powers of two): its weights import as 8-bit codebooks, its layers run on EIE."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    from dlhwc.compiler.frontend.onnx_importer import import_file
    from dlhwc.dialects import comp

    root = Path(__file__).resolve().parent.parent
    samples = np.load(root / "examples/data/digits_calib.npz")["input"][:16]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.rows = iter([{"input": samples[i : i + 1]} for i in range(len(samples))])

        def get_next(self):
            return next(self.rows, None)

    model = tmp_path / "digits_qdq.onnx"
    quantize_static(
        str(root / "examples/models/digits_mlp.onnx"), str(model), Reader(),
        quant_format=QuantFormat.QDQ,
    )  # fmt: skip
    weights = [op for op in import_file(model).walk() if isinstance(op, comp.WeightOp)]
    assert len(weights) == 3 and all(w.is_shared for w in weights)
    capsys.readouterr()
    calibration = ["--calibration", str(tmp_path / "inputs.npz")]
    _program_agrees_with_golden(tmp_path, model, {"input": samples}, extra=calibration)
    assert capsys.readouterr().err.count("eie.fc") == 3
