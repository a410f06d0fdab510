"""Layers beyond [batch, in] x [in, out] on EIE: token-wise MatMul, Gemm's alpha, beta and
transA, bias forms, 2-D convolutions (patch vectors) and 1x1 convolutions, the placement
summary. Each program must equal its golden model bit for bit, and the golden model must
track the compressed IR (the comp stage) within the numerics bound."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from dlhwc.compiler.cli import main
from dlhwc.compiler.evaluate import _metrics
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.passes.quantize import with_calibration
from dlhwc.compiler.pipeline import compile_for_target
from dlhwc.compiler.plugins import available_passes
from dlhwc.runtime.eie.sim import Simulator
from dlhwc.spec.container import Container
from tests.models.shapes import SHAPES


def _save(path, nodes, inits, x_shape, y_shape):
    graph = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        [onnx.numpy_helper.from_array(a, n) for n, a in inits],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _check(path, x, pipeline=None):
    """Compile with calibration on x; the simulator equals the golden model bit for bit,
    and the program tracks the compressed IR. Returns (container, stats)."""
    calib = path.with_suffix(".calib.npz")
    np.savez(calib, x=x)

    def configure(passes):
        return with_calibration(passes, str(calib))[0]

    args = (str(path), "eie", pipeline, available_passes())
    golden = compile_for_target(*args, "eie", None, None, configure)
    comp = compile_for_target(*args, "comp", None, None, configure)
    container = compile_for_target(*args, "dlhw", None, None, configure)
    sim = Simulator(Container.from_bytes(container.to_bytes()))
    outputs, stats = sim.run({"x": x})
    want = run_module(golden, {"x": x})["y"]
    assert np.array_equal(outputs["y"], want)
    import onnxruntime as ort

    ref = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    comp_y = run_module(comp, {"x": x})["y"]
    assert _metrics(ref, want, None)["sqnr_db"] >= _metrics(ref, comp_y, None)["sqnr_db"] - 1
    return container, stats


def _layers_on_eie(container) -> list[str]:
    return [p["name"] for p in container.header["placement"] if p["where"] == "eie"]


def test_token_wise_matmul(tmp_path):
    model, draw = SHAPES["token_linear"]()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    x = draw(np.random.default_rng(0), 12)
    container, stats = _check(path, x)
    assert _layers_on_eie(container) == ["fc1", "fc2"]
    # 6 tokens per input row: 6 vectors per layer per row.
    assert stats.layers[0]["numerics"]["vectors"] == 12 * 6


def test_token_wise_with_a_dynamic_token_axis(tmp_path):
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.2, (16, 8)).astype(np.float32)
    path = _save(tmp_path / "m.onnx", [helper.make_node("MatMul", ["x", "W"], ["y"], name="proj")],
                 [("W", w)], ["N", "T", 16], ["N", "T", 8])  # fmt: skip
    container, _ = _check(path, rng.normal(size=(3, 5, 16)).astype(np.float32))
    assert _layers_on_eie(container) == ["proj"]
    sim = Simulator(Container.from_bytes(container.to_bytes()))
    out, _ = sim.run({"x": rng.normal(size=(2, 9, 16)).astype(np.float32)})  # other T
    assert out["y"].shape == (2, 9, 8)


def test_activation_times_activation_stays_on_the_host(tmp_path, capsys):
    path = _save(
        tmp_path / "m.onnx",
        [
            helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1], name="t"),
            helper.make_node("MatMul", ["x", "xt"], ["y"], name="scores"),
        ],
        [],
        ["N", 4, 8],
        ["N", 4, 4],
    )
    assert main(["compile", str(path), "--target", "eie", "-o", str(tmp_path / "p.dlhw")]) == 0
    err = capsys.readouterr().err
    assert "both operands are activations" in err
    assert "warning: nothing runs on eie" in err


@pytest.mark.parametrize(
    ("attrs", "bias"),
    [
        ({"alpha": 0.5, "beta": 2.0}, np.float32(0.3) * np.ones(6, np.float32)),
        ({"transA": 1}, np.arange(6, dtype=np.float32) / 10),
        ({}, np.array([0.25], np.float32)),  # a scalar bias, broadcast
        ({}, (np.arange(6, dtype=np.float32) / 10).reshape(1, 6)),
    ],
)
def test_gemm_forms(tmp_path, attrs, bias):
    rng = np.random.default_rng(2)
    w = rng.normal(0, 0.3, (6, 10)).astype(np.float32)
    trans_a = attrs.get("transA", 0)
    x_shape = [10, "N"] if trans_a else ["N", 10]  # transA: the batch is the second axis
    path = _save(
        tmp_path / "m.onnx",
        [helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1, name="fc", **attrs)],
        [("W", w), ("b", bias)],
        x_shape,
        ["N", 6],
    )
    x = rng.normal(size=(10, 7) if trans_a else (7, 10)).astype(np.float32)
    container, _ = _check(path, x)
    assert _layers_on_eie(container) == ["fc"]


def test_convolutions(tmp_path):
    model, draw = SHAPES["small_cnn"]()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    x = draw(np.random.default_rng(3), 6)
    container, stats = _check(path, x)
    assert _layers_on_eie(container) == ["conv1", "conv2", "conv3", "fc"]
    names = [p["name"] for p in container.header["placement"]]
    # conv3 is 1x1: no patches; conv2 reads conv1 through the host (MaxPool), conv3
    # reads conv2 on chip (the transposes between them cancel).
    assert "conv1.patches" in names and "conv2.patches" in names
    assert "conv3.patches" not in names and "conv2.nchw" not in names
    by_name = {e["name"]: e for e in stats.layers}
    assert by_name["conv1"]["cols"] == 3 * 9 and by_name["conv1"]["rows"] == 16
    # conv1's 16x16 output pixels are its vectors; the patches cross from the host.
    assert by_name["conv1"]["numerics"]["vectors"] == 6 * 16 * 16
    summary = container.header["summary"]
    assert summary["weights_host"] == 0 and summary["macs_host"] == 0
    assert summary["macs_accel"] == 16 * 27 * 256 + 32 * 144 * 9 + 24 * 32 * 9 + 10 * 24


def test_convolution_options(tmp_path):
    """Asymmetric pads, dilation, SAME padding, a grouped convolution (host)."""
    rng = np.random.default_rng(4)
    w = rng.normal(0, 0.3, (4, 2, 3, 3)).astype(np.float32)
    wg = rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32)
    path = _save(
        tmp_path / "m.onnx",
        [
            helper.make_node(
                "Conv",
                ["x", "W"],
                ["a"],
                name="dilated",
                kernel_shape=[3, 3],
                pads=[2, 1, 0, 2],
                dilations=[2, 1],
                strides=[1, 2],
            ),
            helper.make_node(
                "Conv",
                ["a", "W2"],
                ["b"],
                name="same",
                kernel_shape=[3, 3],
                auto_pad="SAME_UPPER",
                strides=[2, 2],
            ),
            helper.make_node(
                "Conv",
                ["b", "Wg"],
                ["y"],
                name="grouped",
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                group=4,
            ),
        ],  # fmt: skip
        [("W", w), ("W2", rng.normal(0, 0.3, (4, 4, 3, 3)).astype(np.float32)), ("Wg", wg)],
        ["N", 2, 11, 12],
        ["N", 4, 5, 4],
    )
    container, _ = _check(path, rng.normal(size=(4, 2, 11, 12)).astype(np.float32))
    assert _layers_on_eie(container) == ["dilated", "same"]
    (grouped,) = [p for p in container.header["placement"] if p["name"] == "grouped"]
    assert grouped["where"] == "host" and "grouped convolution" in grouped["reason"]


def test_placement_summary_line(tmp_path, capsys):
    model, draw = SHAPES["small_cnn"]()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    assert main(["compile", str(path), "--target", "eie", "-o", str(tmp_path / "p.dlhw")]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("dlhwc: on eie:"))
    assert "weights 6,048 of 6,048 (100.0%)" in line and "ops on the host" in line


def test_conv_weights_are_compressed(tmp_path, capsys):
    model, _ = SHAPES["small_cnn"]()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    report = tmp_path / "ledger.json"
    out = tmp_path / "c.mlir"
    pipeline = "prune{sparsity=0.6},share-weights{bits=4},quantize,huffman"
    assert main(["compile", str(path), "-p", pipeline, "-o", str(out),
                 "--report-json", str(report)]) == 0  # fmt: skip
    layers = {e["layer"]: e for e in json.loads(report.read_text())["rows"]}
    assert layers["conv2"]["weights"] == 32 * 16 * 9
    assert abs(layers["conv2"]["density"] - 0.4) < 0.01
    exported = tmp_path / "c.onnx"
    assert main(["export", str(out), "-o", str(exported), "--quantize-as", "float"]) == 0
    onnx.checker.check_model(onnx.load(exported))


def test_sequence_first_tokens_and_flattened_rows(tmp_path):
    """A Transformer's layouts: [N, T, D] transposed to [T, N, D] (the batch is not the
    first axis), and [T*N, D] rows for a Gemm. The program moves whole tensors, so
    the batch axis of an accelerator's operand does not matter."""
    rng = np.random.default_rng(6)
    w1 = rng.normal(0, 0.25, (16, 32)).astype(np.float32)
    w2 = rng.normal(0, 0.2, (8, 32)).astype(np.float32)
    path = _save(
        tmp_path / "m.onnx",
        [
            helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2], name="to_seq_first"),
            helper.make_node("MatMul", ["xt", "W1"], ["h"], name="proj"),
            helper.make_node("Relu", ["h"], ["hr"], name="relu"),
            helper.make_node("Reshape", ["hr", "flat"], ["rows"], name="flatten_tokens"),
            helper.make_node("Gemm", ["rows", "W2"], ["o"], transB=1, name="out_proj"),
            helper.make_node("Reshape", ["o", "unflat"], ["ot"], name="unflatten"),
            helper.make_node("Transpose", ["ot"], ["y"], perm=[1, 0, 2], name="to_batch_first"),
        ],
        [("W1", w1), ("W2", w2), ("flat", np.array([-1, 32], np.int64)),
         ("unflat", np.array([5, -1, 8], np.int64))],
        ["N", 5, 16],
        ["N", 5, 8],
    )  # fmt: skip
    container, stats = _check(path, rng.normal(size=(7, 5, 16)).astype(np.float32))
    assert _layers_on_eie(container) == ["proj", "out_proj"]
    assert [e["numerics"]["vectors"] for e in stats.layers] == [35, 35]
