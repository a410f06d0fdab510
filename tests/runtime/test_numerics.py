"""Numerics a user can trust: range-safe fixed-point formats, saturation and underflow
accounting, NaN/Inf refusal, calibration of static-batch models.

The models are in the shape of real networks' layers (tests/models/shapes.py). The
bound the lowering promises (backends/eie/README.md, "Numerics"): on data drawn like the
calibration data, the program's SQNR against the float model is within 1 dB of the
compressed IR's (the comp stage, run by the reference interpreter), and no layer
saturates more than spec/report.SATURATION_WARN_FRACTION of its results.
"""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from dlhwc.compiler.cli import main
from dlhwc.compiler.evaluate import _metrics
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.numerics import uncalibrated_risks
from dlhwc.compiler.pipeline import compile_for_target
from dlhwc.compiler.plugins import available_passes
from dlhwc.runtime.eie.sim import Simulator
from dlhwc.spec.container import Container
from dlhwc.spec.report import SATURATION_WARN_FRACTION
from tests.models.shapes import SHAPES

SQNR_BOUND_DB = 1.0


def _write_shape(tmp_path, name: str, calib_samples: int = 96, test_samples: int = 48):
    model, draw = SHAPES[name]()
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    rng = np.random.default_rng(7)
    calib, test = tmp_path / "calib.npz", tmp_path / "test.npz"
    np.savez(calib, x=draw(rng, calib_samples))
    x = draw(rng, test_samples)
    np.savez(test, x=x)
    return path, calib, x


def _compile(path, calib, stage="dlhw", hw=None, pipeline=None):
    from dlhwc.compiler.passes.quantize import with_calibration

    return compile_for_target(
        str(path), "eie", pipeline, available_passes(), stage, hw, None,
        lambda passes: with_calibration(passes, str(calib))[0] if calib else passes,
    )  # fmt: skip


def _reference(path, x) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(path)).run(None, {"x": x})[0]


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_program_within_bound_of_compressed_ir(tmp_path, name):
    path, calib, x = _write_shape(tmp_path, name)
    ref = _reference(path, x)
    comp_out = run_module(_compile(path, calib, "comp"), {"x": x})["y"]
    container = _compile(path, calib)
    outputs, stats = Simulator(Container.from_bytes(container.to_bytes())).run({"x": x})
    comp_m, prog_m = _metrics(ref, comp_out, None), _metrics(ref, outputs["y"], None)
    assert prog_m["sqnr_db"] >= comp_m["sqnr_db"] - SQNR_BOUND_DB, (comp_m, prog_m)
    assert prog_m["sqnr_db"] > 15.0
    for layer in stats.layers:
        num = layer["numerics"]
        assert num["saturated_fraction"] <= SATURATION_WARN_FRACTION, layer["name"]
        assert num["zero_vectors"] < num["vectors"], layer["name"]


def test_classifier_head_formats_fit_the_accumulator(tmp_path):
    """ResNet-18's fc: fw is lowered so that the accumulator covers the output range."""
    path, calib, x = _write_shape(tmp_path, "classifier_head")
    module = _compile(path, calib, "eie")
    (fc,) = [op for op in module.walk() if op.name == "eie.fc"]
    fa, fo, fw = fc.in_format.format, fc.out_format.format, fc.weight_format
    assert fa.frac + fw.frac - fo.frac <= 32 - 16
    # The static reach of the accumulator over any input in the input format exceeds
    # 32 bits: only the output bound makes the layer safe. The layer table records it.
    container = _compile(path, calib)
    (layer,) = container.header["layers"]
    assert layer["acc_reach_bits"] > 32


BIG_BIAS_HW = "acc_bits = 48\n"


def _big_bias_model(path):
    """y = W x + b with inputs near 3*10^4, small weights and a bias of ~10^6 that their
    sum cancels (a folded normalization with a large mean): the outputs are small, but
    the bias needs accumulator bits that 32 cannot give without leaving the weights
    fewer than 8 significant bits."""
    rng = np.random.default_rng(3)
    w = rng.uniform(-0.0105, -0.0095, (16, 4096)).astype(np.float32)
    b = (-(w.astype(np.float64).sum(axis=1)) * 30000.0).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1, name="fc_bias")],
        "big_bias",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4096])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])],
        [
            helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel()),
            helper.make_tensor("b", TensorProto.FLOAT, b.shape, b),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _big_bias_inputs(n: int) -> np.ndarray:
    return (30000.0 + np.random.default_rng(0).normal(0, 100, (n, 4096))).astype(np.float32)


def test_layer_the_accumulator_cannot_hold_names_the_bits(tmp_path, capsys):
    path = _big_bias_model(tmp_path / "big_bias.onnx")
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=_big_bias_inputs(16))
    out = tmp_path / "p.dlhw"
    rc = main(["compile", str(path), "--target", "eie", "--calibration", str(calib),
               "-o", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists()
    assert "layer 'fc_bias'" in err and "-bit accumulator" in err and "acc_bits" in err
    needed = int(err.split("needs a ")[1].split("-bit")[0])
    assert 32 < needed <= 48


def test_wider_accumulator_from_hw(tmp_path):
    """acc_bits = 48 compiles the layer the default machine cannot hold; the simulator
    equals the golden model bit for bit and tracks the float model."""
    path = _big_bias_model(tmp_path / "big_bias.onnx")
    hw = tmp_path / "hw.toml"
    hw.write_text(BIG_BIAS_HW)
    x = _big_bias_inputs(16)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=x)
    module = _compile(path, calib, "eie", hw=str(hw))
    container = _compile(path, calib, hw=str(hw))
    outputs, _ = Simulator(Container.from_bytes(container.to_bytes())).run({"x": x})
    golden = run_module(module, {"x": x})["y"]
    assert np.array_equal(outputs["y"], golden)
    comp_out = run_module(_compile(path, calib, "comp", hw=str(hw)), {"x": x})["y"]
    ref = _reference(path, x)
    assert _metrics(ref, outputs["y"], None)["sqnr_db"] >= (
        _metrics(ref, comp_out, None)["sqnr_db"] - SQNR_BOUND_DB
    )


def test_acc_bits_beyond_int64_refused(tmp_path, capsys):
    hw = tmp_path / "hw.toml"
    hw.write_text("acc_bits = 80\n")
    path, calib, _ = _write_shape(tmp_path, "transformer_ffn", 8, 4)
    rc = main(["compile", str(path), "--target", "eie", "--hw", str(hw), "-o",
               str(tmp_path / "p.dlhw")])  # fmt: skip
    assert rc == 1 and "acc_bits" in capsys.readouterr().err


# -- saturation and underflow accounting ----------------------------------------------


@pytest.fixture
def ffn_program(tmp_path):
    path, calib, x = _write_shape(tmp_path, "transformer_ffn")
    program = tmp_path / "ffn.dlhw"
    assert main(["compile", str(path), "--target", "eie", "--calibration", str(calib), "-o",
                 str(program)]) == 0  # fmt: skip
    return tmp_path, program, x


def test_saturation_is_counted_and_warned(ffn_program, capsys):
    tmp_path, program, x = ffn_program
    loud = tmp_path / "loud.npz"
    np.savez(loud, x=(x * 40.0).astype(np.float32))
    stats = tmp_path / "stats.json"
    capsys.readouterr()
    assert main(["run", str(program), "--input", str(loud), "--stats", str(stats),
                 "--output", str(tmp_path / "y.npz")]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "warning: layer 'ffn.0' saturated" in err
    assert "saturated results" in err  # the summary line
    data = json.loads(stats.read_text())
    first = data["layers"][0]["numerics"]
    assert first["saturated"] > 0 and first["saturated_fraction"] > SATURATION_WARN_FRACTION
    assert data["total"]["numerics"]["saturated"] >= first["saturated"]
    assert main(["report", str(program), "--stats", str(stats)]) == 0
    assert "numerics: ffn.0" in capsys.readouterr().out


def test_calibrated_data_runs_silently(ffn_program, capsys):
    tmp_path, program, x = ffn_program
    data = tmp_path / "x.npz"
    np.savez(data, x=x)
    capsys.readouterr()
    assert main(["run", str(program), "--input", str(data), "--output",
                 str(tmp_path / "y.npz")]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err


def test_all_zero_layer_is_warned(tmp_path, capsys):
    path = _scaled_mlp(tmp_path / "m.onnx", 1.0)
    rng = np.random.default_rng(2)
    calib, quiet = tmp_path / "calib.npz", tmp_path / "quiet.npz"
    np.savez(calib, x=rng.normal(size=(32, 48)).astype(np.float32))
    np.savez(quiet, x=rng.normal(scale=1e-6, size=(8, 48)).astype(np.float32))
    program = tmp_path / "m.dlhw"
    assert main(["compile", str(path), "--target", "eie", "--calibration", str(calib), "-o",
                 str(program)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["run", str(program), "--input", str(quiet), "--report"]) == 0
    captured = capsys.readouterr()
    assert "warning: layer 'fc_scaled': every output vector is all zero" in captured.err
    assert "fc_scaled 8/8 all-zero vectors" in captured.out


def test_saturation_count_is_exact():
    """finish_counted flags exactly the results saturation changed; ReLU'd negatives are
    not counted."""
    from dlhwc.runtime.eie.arith import finish_counted

    acc = np.array([[100, -100, 1 << 20, -(1 << 20), 1 << 40]], dtype=np.int64)
    y, sat = finish_counted(acc, None, 4, False, 16, 32)
    assert y.tolist() == [[6, -6, 32767, -32768, 32767]]
    assert sat.tolist() == [[False, False, True, True, True]]
    y, sat = finish_counted(acc, None, 4, True, 16, 32)
    assert sat.tolist() == [[False, False, True, False, True]]


# -- no calibration --------------------------------------------------------------------


def _scaled_mlp(path, scale: float):
    rng = np.random.default_rng(5)
    w = (rng.uniform(-1, 1, (24, 48)) * scale / math.sqrt(48)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W"], ["y"], transB=1, name="fc_scaled")],
        "scaled",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 48])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 24])],
        [helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(("scale", "risk"), [(1e-3, "may underflow"), (200.0, "may saturate")])
def test_no_calibration_names_layers_at_risk(tmp_path, capsys, scale, risk):
    path = _scaled_mlp(tmp_path / "m.onnx", scale)
    assert main(["compile", str(path), "--target", "eie", "-o", str(tmp_path / "p.dlhw")]) == 0
    err = capsys.readouterr().err
    assert "warning: no --calibration: activation formats are guesses" in err
    assert f"fc_scaled: {risk}" in err


def test_no_risk_at_unit_gain(tmp_path):
    path = _scaled_mlp(tmp_path / "m.onnx", 1.7)
    module = compile_for_target(str(path), "eie", None, available_passes(), "comp")
    assert uncalibrated_risks(module) == []


def test_calibrated_compile_has_no_guess_warning(ffn_program, capsys):
    tmp_path, _, _ = ffn_program
    path, calib = tmp_path / "transformer_ffn.onnx", tmp_path / "calib.npz"
    assert main(["compile", str(path), "--target", "eie", "--calibration", str(calib), "-o",
                 str(tmp_path / "again.dlhw")]) == 0  # fmt: skip
    assert "guesses" not in capsys.readouterr().err


def test_static_batch_calibrates_in_chunks(tmp_path):
    """A model exported with batch 1 takes any number of calibration samples, and chooses
    the formats the same data gives its dynamic-batch twin."""
    model, draw = SHAPES["transformer_ffn"]()
    dynamic = tmp_path / "dynamic.onnx"
    onnx.save(model, dynamic)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 1
    static = tmp_path / "static.onnx"
    onnx.save(model, static)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=draw(np.random.default_rng(1), 37))

    def formats(path):
        module = _compile(path, calib, "comp")
        return [str(op.format.format) for op in module.walk() if op.name == "comp.quantize"]

    assert formats(static) == formats(dynamic)


# -- NaN and Inf -------------------------------------------------------------------------


def _with_nan(path, out, name: str):
    from onnx import numpy_helper

    model = onnx.load(path)
    for init in model.graph.initializer:
        if init.name == name:
            a = numpy_helper.to_array(init).copy()
            a.reshape(-1)[3] = np.nan
            init.CopyFrom(numpy_helper.from_array(a, name))
    onnx.save(model, out)
    return out


@pytest.mark.parametrize("tensor", ["ffn.0.weight", "ffn.2.bias"])
def test_nan_weights_refused(tmp_path, capsys, tensor):
    path, calib, _ = _write_shape(tmp_path, "transformer_ffn", 8, 4)
    bad = _with_nan(path, tmp_path / "bad.onnx", tensor)
    out = tmp_path / "p.dlhw"
    assert main(["compile", str(bad), "--target", "eie", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{tensor}' has NaN or infinite values" in err
    assert not out.exists()


def test_nan_inputs_refused_by_programs_not_by_the_interpreter(ffn_program, capsys):
    tmp_path, program, x = ffn_program
    x = x.copy()
    x[2, 5] = np.inf
    data = tmp_path / "inf.npz"
    np.savez(data, x=x)
    capsys.readouterr()
    assert main(["run", str(program), "--input", str(data)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "input 'x' has a NaN or infinite value at [2, 5]" in err
    out = tmp_path / "y.npz"
    model = tmp_path / "transformer_ffn.onnx"
    assert main(["run", str(model), "--input", str(data), "--output", str(out)]) == 0
    assert capsys.readouterr().err == ""
    y = np.load(out)["y"]
    assert not np.isfinite(y[2]).all() and np.isfinite(np.delete(y, 2, axis=0)).all()
