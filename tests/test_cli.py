"""The `dlhwc` command line: one clean line per user error, and byte-stable outputs.

Most tests call `compiler.cli.main` in-process (fast); a few run the installed console
script to prove it behaves the same from a shell.
"""

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from dlhwc.compiler.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXPORTED = ROOT / "tests" / "models" / "exported"
EXAMPLES = ROOT / "examples"
MLP = EXPORTED / "torch_mlp_ts13.onnx"  # input 'x': f32[batch, 64]
MLP_INPUT = EXPORTED / "torch_mlp_ts13.npz"
DLHWC = Path(sys.executable).with_name("dlhwc")

ALL_MODELS = sorted([*EXAMPLES.glob("models/*.onnx"), *EXPORTED.glob("*.onnx")])
# model -> a sample input (`.npz` keyed by input name)
SAMPLES = {m: m.with_suffix(".npz") for m in EXPORTED.glob("*.onnx")}
SAMPLES[EXAMPLES / "models" / "digits_mlp.onnx"] = EXAMPLES / "data" / "digits_test.npz"
SAMPLES[EXAMPLES / "models" / "digits_lstm.onnx"] = EXAMPLES / "data" / "digits_test_seq.npz"


@pytest.fixture(autouse=True)
def _no_tracebacks(monkeypatch):
    monkeypatch.delenv("DLHWC_TRACEBACK", raising=False)


def dlhwc(capsys, *argv) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(capsys, argv, *fragments, output=None) -> str:
    """Exit status 1, one `dlhwc: error:` line holding every fragment, no traceback, and
    no ``output`` file. Returns the line."""
    code, _, err = dlhwc(capsys, *argv)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    (line,) = lines
    assert line.startswith("dlhwc: error: "), line
    for fragment in fragments:
        assert str(fragment) in line, f"{fragment!r} not in {line!r}"
    assert code == 1, f"exit status {code}: {line}"
    if output is not None:
        output = Path(output)
        assert not output.exists(), f"{output} was created"
        assert not list(output.parent.glob(f".{output.name}.*")), "a temporary file was left"
    return line


def save_unchecked(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def tensor(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


@pytest.fixture(scope="module")
def two_input_model(tmp_path_factory) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"], name="add")],
        "two_inputs",
        [tensor("a", [2, 3]), tensor("b", [2, 3])],
        [tensor("y", [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return save_unchecked(model, tmp_path_factory.mktemp("models") / "two_inputs.onnx")


# ---------------------------------------------------------------------------------------
# Models that are not models


def test_truncated_model(capsys, tmp_path):
    data = MLP.read_bytes()
    model = tmp_path / "truncated.onnx"
    model.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mlir"
    argv = ["compile", model, "-o", out]
    assert_user_error(capsys, argv, model, "not a valid ONNX model", output=out)


@pytest.mark.parametrize(
    "content",
    [b"this is a text file, not an ONNX model\n", np.random.default_rng(0).bytes(2000)],
    ids=["text", "random-bytes"],
)
def test_not_an_onnx_file(capsys, tmp_path, content):
    model = tmp_path / "model.onnx"
    model.write_bytes(content)
    out = tmp_path / "out.mlir"
    argv = ["compile", model, "-o", out]
    assert_user_error(capsys, argv, model, "not a valid ONNX model", output=out)


def test_empty_model_file(capsys, tmp_path):
    model = tmp_path / "empty.onnx"
    model.write_bytes(b"")
    out = tmp_path / "out.mlir"
    argv = ["compile", model, "-o", out]
    assert_user_error(capsys, argv, model, "not a valid ONNX model", output=out)


def test_checker_rejects_undefined_input(capsys, tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["ghost"], ["y"], name="relu")],
        "g",
        [tensor("x", [2])],
        [tensor("y", [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = save_unchecked(model, tmp_path / "undefined_input.onnx")
    out = tmp_path / "out.mlir"
    argv = ["compile", path, "-o", out]
    assert_user_error(capsys, argv, path, "rejected by the ONNX checker", "'ghost'", output=out)


def test_checker_rejects_bad_opset(capsys, tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "g",
        [tensor("x", [2])],
        [tensor("y", [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 0)])
    path = save_unchecked(model, tmp_path / "bad_opset.onnx")
    out = tmp_path / "out.mlir"
    argv = ["compile", path, "-o", out]
    assert_user_error(capsys, argv, path, "rejected by the ONNX checker", output=out)


@pytest.mark.parametrize("command", ["compile", "run"])
def test_missing_model_file(capsys, tmp_path, command):
    model = tmp_path / "nowhere.onnx"
    argv = [command, model] + (["--input", MLP_INPUT] if command == "run" else [])
    assert_user_error(capsys, argv, model, "no such file")


# ---------------------------------------------------------------------------------------
# Inputs for `run`


def test_missing_input_file(capsys, tmp_path):
    data = tmp_path / "nowhere.npz"
    out = tmp_path / "out.npz"
    argv = ["run", MLP, "--input", data, "--output", out]
    assert_user_error(capsys, argv, data, "no such input file", output=out)


def test_input_npz_without_the_input_key(capsys, tmp_path):
    data = tmp_path / "wrong_key.npz"
    np.savez(data, features=np.zeros((3, 64), np.float32))
    out = tmp_path / "out.npz"
    argv = ["run", MLP, "--input", data, "--output", out]
    assert_user_error(capsys, argv, data, "missing input", "'x'", output=out)


def test_input_of_wrong_shape(capsys, tmp_path):
    data = tmp_path / "wrong_shape.npz"
    np.savez(data, x=np.zeros((3, 65), np.float32))
    out = tmp_path / "out.npz"
    argv = ["run", MLP, "--input", data, "--output", out]
    assert_user_error(capsys, argv, data, "'x'", "[3, 65]", "[batch, 64]", output=out)


def test_input_of_wrong_dtype(capsys, tmp_path):
    data = tmp_path / "wrong_dtype.npz"
    np.savez(data, x=np.zeros((3, 64), np.float64))
    out = tmp_path / "out.npz"
    argv = ["run", MLP, "--input", data, "--output", out]
    assert_user_error(capsys, argv, data, "'x'", "float64", "float32", output=out)


def test_npy_input_for_a_multi_input_model(capsys, tmp_path, two_input_model):
    data = tmp_path / "a.npy"
    np.save(data, np.zeros((2, 3), np.float32))
    out = tmp_path / "out.npz"
    argv = ["run", two_input_model, "--input", data, "--output", out]
    assert_user_error(capsys, argv, data, ".npz", output=out)


# ---------------------------------------------------------------------------------------
# Pass pipelines


@pytest.mark.parametrize(
    ("pipeline", "fragments"),
    [
        ("fold-constants{", ["bad pass pipeline", "fold-constants{"]),
        ("no-such-pass", ["unknown pass 'no-such-pass'", "fold-constants"]),
        ("fold-constants{bogus=1}", ["fold-constants", "bogus"]),
        ("fold-constants{max-elements=abc}", ["fold-constants", "abc"]),
    ],
    ids=["syntax", "unknown-pass", "unknown-option", "bad-option-value"],
)
def test_bad_pipeline(capsys, tmp_path, pipeline, fragments):
    out = tmp_path / "out.mlir"
    argv = ["compile", MLP, "-p", pipeline, "-o", out]
    assert_user_error(capsys, argv, *fragments, output=out)


# ---------------------------------------------------------------------------------------
# .mlir input

FUNC_WITH = """builtin.module {{
  func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {{
    {op}
    func.return %y : tensor<2xf32>
  }}
}}
"""


def test_mlir_syntax_error(capsys, tmp_path):
    path = tmp_path / "syntax.mlir"
    path.write_text(FUNC_WITH.format(op="%y = onnx.Relu(%x : (tensor<2xf32>) -> tensor<2xf32>"))
    out = tmp_path / "out.mlir"
    assert_user_error(capsys, ["opt", path, "-o", out], f"{path}:3:23: ", "')'", output=out)


def test_mlir_undefined_value(capsys, tmp_path):
    path = tmp_path / "undefined.mlir"
    path.write_text(FUNC_WITH.format(op="%y = onnx.Relu(%z) : (tensor<2xf32>) -> tensor<2xf32>"))
    out = tmp_path / "out.mlir"
    line = assert_user_error(capsys, ["opt", path, "-o", out], "%z", output=out)
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: ", line), line


def test_elided_dump_cannot_be_read_back(capsys, tmp_path):
    _, dump, _ = dlhwc(capsys, "compile", MLP)
    assert "__elided__" in dump
    path = tmp_path / "dump.mlir"
    path.write_text(dump)
    out = tmp_path / "out.mlir"
    line = assert_user_error(capsys, ["opt", path, "-o", out], "elided", "read back", output=out)
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: ", line), line


def test_run_mlir_with_untyped_input(capsys, tmp_path):
    # A value the importer could not type reaches onnxruntime with the dtype and rank
    # of the data it holds.
    path = tmp_path / "untyped.mlir"
    path.write_text(
        FUNC_WITH.format(
            op='%y = onnx.Relu(%x) : (!onnx.opaque<"unknown">) -> tensor<2xf32>'
        ).replace("%x: tensor<2xf32>", '%x: !onnx.opaque<"unknown">')
    )
    x = tmp_path / "x.npy"
    np.save(x, np.array([-1.5, 2.0], dtype=np.float32))
    out = tmp_path / "y.npz"
    code, _, err = dlhwc(capsys, "run", path, "--input", x, "--output", out)
    assert code == 0, err
    (y,) = np.load(out).values()
    np.testing.assert_array_equal(y, np.array([0.0, 2.0], dtype=np.float32))


# ---------------------------------------------------------------------------------------
# Options and outputs


def test_unknown_emit_stage(capsys, tmp_path):
    out = tmp_path / "out.mlir"
    argv = ["compile", MLP, "--emit", "llvm", "-o", out]
    assert_user_error(capsys, argv, "'llvm'", "--emit", output=out)


def test_output_into_missing_directory(capsys, tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "out.mlir"
    argv = ["compile", MLP, "-o", out]
    assert_user_error(capsys, argv, out, "does not exist", output=out)
    assert not (tmp_path / "no").exists()


# ---------------------------------------------------------------------------------------
# Pass plugins


@pytest.mark.parametrize(
    ("source", "fragments"),
    [
        ("import os\n\nraise RuntimeError('broken plugin')\n", [":3:", "broken plugin"]),
        ("def apply(:\n    pass\n", [":1:", "SyntaxError"]),
        ("X = 1\n", ["defines no ModulePass"]),
    ],
    ids=["raises", "syntax-error", "no-pass"],
)
def test_bad_plugin(capsys, tmp_path, source, fragments):
    plugin = tmp_path / "plugin.py"
    plugin.write_text(source)
    out = tmp_path / "out.mlir"
    argv = ["compile", MLP, "--load-pass-plugin", plugin, "-o", out]
    assert_user_error(capsys, argv, plugin, *fragments, output=out)


def test_plugin_error_line_with_relative_path(capsys, tmp_path, monkeypatch):
    (tmp_path / "plugin.py").write_text("import os\n\nraise RuntimeError('broken plugin')\n")
    monkeypatch.chdir(tmp_path)
    assert_user_error(capsys, ["passes", "--load-pass-plugin", "plugin.py"], "plugin.py:3:")


# ---------------------------------------------------------------------------------------
# The console script


def run_script(*argv, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DLHWC_TRACEBACK"}
    return subprocess.run(
        [str(DLHWC), *map(str, argv)], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_console_script_reports_an_error_in_one_line(tmp_path):
    model = tmp_path / "truncated.onnx"
    model.write_bytes(MLP.read_bytes()[:100])
    result = run_script("compile", model)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("dlhwc: error: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_console_script_compiles(tmp_path):
    out = tmp_path / "mlp.mlir"
    result = run_script("compile", MLP, "-o", out)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert out.read_text().startswith("builtin.module")


# ---------------------------------------------------------------------------------------
# Success paths: stable bytes


def model_id(path: Path) -> str:
    return path.stem


@pytest.mark.parametrize("model", ALL_MODELS, ids=model_id)
def test_saved_ir_reads_back_byte_identical(capsys, tmp_path, model):
    x, y = tmp_path / "x.mlir", tmp_path / "y.mlir"
    assert dlhwc(capsys, "compile", model, "--emit", "onnx", "-o", x)[0] == 0
    assert dlhwc(capsys, "opt", x, "-o", y)[0] == 0
    assert y.read_bytes() == x.read_bytes()


@pytest.mark.parametrize("model", ALL_MODELS, ids=model_id)
def test_fold_constants_is_deterministic(capsys, tmp_path, model):
    x, first, second = tmp_path / "x.mlir", tmp_path / "first.mlir", tmp_path / "second.mlir"
    assert dlhwc(capsys, "compile", model, "-o", x)[0] == 0
    for out in (first, second):
        code, _, err = dlhwc(capsys, "opt", x, "-p", "fold-constants", "-o", out)
        assert code == 0, err
    assert first.read_bytes() == second.read_bytes()


def test_fold_constants_does_not_depend_on_hash_seed(tmp_path):
    model = EXPORTED / "torch_lstm2_dynamo.onnx"
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}.mlir"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        argv = [DLHWC, "compile", model, "-p", "fold-constants", "-o", out]
        subprocess.run([str(a) for a in argv], check=True, env=env)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("model", sorted(SAMPLES), ids=model_id)
def test_run_gives_the_same_outputs_on_onnx_and_saved_ir(capsys, tmp_path, model):
    ir = tmp_path / "model.mlir"
    assert dlhwc(capsys, "compile", model, "-o", ir)[0] == 0
    from_onnx, from_ir = tmp_path / "onnx.npz", tmp_path / "ir.npz"
    for program, out in ((model, from_onnx), (ir, from_ir)):
        code, _, err = dlhwc(capsys, "run", program, "--input", SAMPLES[model], "--output", out)
        assert code == 0, err
    assert from_ir.read_bytes() == from_onnx.read_bytes()


@pytest.mark.parametrize(
    "model", [EXPORTED / "torch_lstm1_ts14.onnx", EXPORTED / "skl_mlp.onnx"], ids=model_id
)
def test_run_output_file_is_byte_identical_across_runs(capsys, tmp_path, model):
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    for out in (first, second):
        assert dlhwc(capsys, "run", model, "--input", SAMPLES[model], "--output", out)[0] == 0
    assert first.read_bytes() == second.read_bytes()


def test_passes_lists_fold_constants_with_its_option_and_doc(capsys):
    from dlhwc.compiler.passes.fold_constants import FoldConstantsPass

    code, out, _ = dlhwc(capsys, "passes")
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("fold-constants"))
    assert "max-elements" in header
    assert inspect.getdoc(FoldConstantsPass).splitlines()[0] in out
