"""`dlhwc verify` and `dlhwc eval --target` (compiler/verify.py, compiler/evaluate.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import dlhwc.backends.eie.lowering as lowering
import dlhwc.runtime.eie.sim as eie_sim
from dlhwc.compiler.cli import EXIT_VERIFY_FAILED, main
from tests.models.shapes import SHAPES

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples" / "models" / "digits_mlp.onnx"
LSTM = ROOT / "examples" / "models" / "digits_lstm.onnx"
DATA = ROOT / "examples" / "data"

PERTURB_PLUGIN = '''
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.passes import ModulePass

from dlhwc.dialects.onnx import ConstantOp, dense_from_array


@dataclass(frozen=True)
class PerturbPass(ModulePass):
    """Scale the weight named ffn.2.weight by 1.5 (a pass that breaks numerics)."""

    name: ClassVar[str] = "perturb"

    def apply(self, ctx, op) -> None:
        for c in op.walk():
            if isinstance(c, ConstantOp) and c.node_name == "ffn.2.weight":
                c.properties["value"] = dense_from_array(np.asarray(c.to_array()) * 1.5)
'''


@pytest.fixture
def ffn(tmp_path):
    model, draw = SHAPES["transformer_ffn"]()
    path = tmp_path / "ffn.onnx"
    onnx.save(model, path)
    rng = np.random.default_rng(11)
    calib, data = tmp_path / "calib.npz", tmp_path / "data.npz"
    np.savez(calib, x=draw(rng, 64))
    np.savez(data, x=draw(rng, 24))
    return tmp_path, path, calib, data


def _verify(path, data, calib, *extra) -> list[str]:
    args = ["verify", str(path), "--target", "eie", "--input", str(data)]
    if calib is not None:
        args += ["--calibration", str(calib)]
    return args + list(extra)


def test_verify_passes_and_tabulates_every_stage(ffn, capsys):
    tmp_path, path, calib, data = ffn
    report = tmp_path / "verify.json"
    assert main(_verify(path, data, calib, "--json", str(report))) == 0
    out = capsys.readouterr().out
    stages = ["import", "fold-constants", "share-weights", "quantize", "convert-onnx-to-eie",
              "simulator"]  # fmt: skip
    for stage in stages:
        for layer in ("ffn.0", "ffn.2", "y (output)"):
            assert any(
                line.startswith(stage + " ") and layer in line for line in out.splitlines()
            ), (stage, layer)
    assert "verify: no stage jumps" in out
    data_json = json.loads(report.read_text())
    assert [s["name"] for s in data_json["stages"]] == ["onnxruntime", *stages]
    assert data_json["jump"] is None
    sim = data_json["stages"][-1]["metrics"]["y"]
    lowered = data_json["stages"][-2]["metrics"]["y"]
    assert sim == lowered  # the simulator is the golden model, bit for bit
    imported = data_json["stages"][1]["metrics"]["ffn.0"]
    assert imported["sqnr_db"] == "inf" or imported["sqnr_db"] > 100


def test_verify_names_a_pass_that_breaks_numerics(ffn, capsys):
    tmp_path, path, calib, data = ffn
    plugin = tmp_path / "perturb.py"
    plugin.write_text(PERTURB_PLUGIN)
    pipeline = "perturb,share-weights{bits=4 zero-code=true},quantize"
    rc = main(_verify(path, data, calib, "--load-pass-plugin", str(plugin), "-p", pipeline))
    out = capsys.readouterr().out
    assert rc == EXIT_VERIFY_FAILED
    assert "the error jumps at stage 'perturb', layer 'ffn.2'" in out


def test_verify_names_the_lowering_when_it_loses_range(ffn, capsys, monkeypatch):
    """The accumulator bug of old: weights at their own format saturate the accumulator."""
    tmp_path, path, calib, data = ffn
    monkeypatch.setattr(
        lowering, "range_safe_weight_format", lambda name, cb, fmt, *rest: fmt.__class__(
            fmt.bits, fmt.frac + 12)
    )  # fmt: skip
    rc = main(_verify(path, data, calib))
    out = capsys.readouterr().out
    assert rc == EXIT_VERIFY_FAILED
    assert "the error jumps at stage 'convert-onnx-to-eie', layer 'ffn.0'" in out


def test_verify_names_a_simulator_that_disagrees_with_the_golden_model(ffn, capsys, monkeypatch):
    tmp_path, path, calib, data = ffn
    real = eie_sim.finish_counted

    def off_by_one(*args):
        y, sat = real(*args)
        return y + 1, sat

    monkeypatch.setattr(eie_sim, "finish_counted", off_by_one)
    rc = main(_verify(path, data, calib))
    out = capsys.readouterr().out
    assert rc == EXIT_VERIFY_FAILED
    assert "the error jumps at stage 'simulator', layer 'ffn.0'" in out
    assert "bit for bit" in out


def test_verify_ese(capsys):
    rc = main(["verify", str(LSTM), "--target", "ese", "--input", str(DATA / "digits_test_seq.npz"),
               "--calibration", str(DATA / "digits_calib_seq.npz")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert any(line.startswith("simulator") and "lstm:Y_h" in line for line in out.splitlines())


def test_verify_judges_compression_on_request(capsys):
    args = ["verify", str(MLP), "--target", "eie", "--input", str(DATA / "digits_test.npz"),
            "--calibration", str(DATA / "digits_calib.npz"), "-p", "prune{sparsity=0.9}"]  # fmt: skip
    assert main(args) == 0
    assert main([*args, "--lossy-tolerance-db", "3"]) == EXIT_VERIFY_FAILED
    assert "the error jumps at stage 'prune'" in capsys.readouterr().out


def test_verify_without_calibration_warns(ffn, capsys):
    _, path, _, data = ffn
    main(_verify(path, data, None))
    assert "activation formats are guesses" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tolerance-db", "-1"], "--tolerance-db must be a finite number >= 0"),
        (["--lossy-tolerance-db", "nan"], "--lossy-tolerance-db must be a finite number"),
    ],
)
def test_verify_option_errors(ffn, capsys, extra, message):
    _, path, calib, data = ffn
    assert main(_verify(path, data, calib, *extra)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_verify_unknown_target(ffn, capsys):
    _, path, calib, data = ffn
    args = ["verify", str(path), "--target", "tpu", "--input", str(data)]
    assert main(args) == 1
    assert "tpu" in capsys.readouterr().err


def test_eval_with_target_reports_the_program(capsys, tmp_path):
    report = tmp_path / "eval.json"
    rc = main(["eval", str(MLP), "--target", "eie", "--data", str(DATA / "digits_test.npz"),
               "--labels", "labels", "--calibration", str(DATA / "digits_calib.npz"),
               "--json", str(report)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "probabilities [program]" in out and "EIE simulator" in out
    data = json.loads(report.read_text())
    program = data["program"]["probabilities"]
    compressed = data["outputs"]["probabilities"]
    assert program["float_accuracy"] == compressed["float_accuracy"] > 0.9
    assert abs(program["compressed_accuracy"] - compressed["compressed_accuracy"]) < 0.01
    assert program["sqnr_db"] >= compressed["sqnr_db"] - 1.0


def test_eval_target_refuses_compressed(capsys, tmp_path):
    rc = main(["eval", str(MLP), "--target", "eie", "--data", str(DATA / "digits_test.npz"),
               "--compressed", str(tmp_path / "c.mlir")])  # fmt: skip
    assert rc == 1
    assert "--compressed cannot be compiled for a target" in capsys.readouterr().err


def test_eval_hw_needs_target(capsys, tmp_path):
    rc = main(["eval", str(MLP), "--data", str(DATA / "digits_test.npz"), "-p", "quantize",
               "--hw", str(tmp_path / "hw.toml")])  # fmt: skip
    assert rc == 1
    assert "--hw needs --target" in capsys.readouterr().err
