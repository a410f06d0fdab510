"""Malformed input of every kind ends in one line; nothing hangs; outputs are written
whole or not at all, and never replace what they must not.

Each test is one defect class of issue 11's malformed-input corpus; tests/test_fuzz.py
generates many variants of each.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlhwc.spec.fileio import write_atomic
from tests.test_cli import MLP, assert_user_error, dlhwc, run_script

ROOT = Path(__file__).resolve().parent.parent
DIGITS_MLP = ROOT / "examples" / "models" / "digits_mlp.onnx"


@pytest.fixture(autouse=True)
def _no_tracebacks(monkeypatch):
    monkeypatch.delenv("DLHWC_TRACEBACK", raising=False)


@pytest.fixture(scope="module")
def saved_ir(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("ir") / "mlp.mlir"
    assert (
        subprocess.run(
            [sys.executable, "-m", "dlhwc.compiler.cli", "compile", MLP, "-o", out]
        ).returncode
        == 0
    )
    return out.read_text()


# ---------------------------------------------------------------------------------------
# IR text: lexing cannot backtrack


@pytest.mark.parametrize("command", ["opt", "run"])
def test_ir_truncated_inside_a_hex_payload_fails_at_once(capsys, tmp_path, saved_ir, command):
    start = saved_ir.index('dense<"0x') + len('dense<"0x')
    path = tmp_path / "truncated.mlir"
    path.write_text(saved_ir[: start + 200])  # 200 hex digits and no closing quote
    argv = [command, path] + (["--input", tmp_path / "x.npz"] if command == "run" else [])
    began = time.monotonic()
    assert_user_error(capsys, argv, path, "closing string literal")
    assert time.monotonic() - began < 10


# ---------------------------------------------------------------------------------------
# Output files


def test_output_equal_to_the_input_is_refused(capsys, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(DIGITS_MLP.read_bytes())
    assert_user_error(capsys, ["compile", model, "-o", model], "overwrite the input")
    assert model.read_bytes() == DIGITS_MLP.read_bytes()


def test_output_linked_to_the_input_is_refused(capsys, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(DIGITS_MLP.read_bytes())
    (tmp_path / "link.onnx").symlink_to(model)
    assert_user_error(capsys, ["compile", model, "-o", tmp_path / "link.onnx"], "overwrite")
    assert model.read_bytes() == DIGITS_MLP.read_bytes()


def test_two_outputs_naming_one_file_are_refused(capsys, tmp_path):
    out = tmp_path / "same.json"
    argv = ["compile", MLP, "-o", out, "--report-json", out]
    assert_user_error(capsys, argv, "two outputs", output=out)


def test_output_directory_is_checked_before_the_compile(capsys, tmp_path, monkeypatch):
    from dlhwc.compiler import pipeline

    def must_not_run(*args, **kwargs):
        raise AssertionError("compiled before checking the output")

    monkeypatch.setattr(pipeline, "compile_for_target", must_not_run)
    out = tmp_path / "missing" / "x.dlhw"
    argv = ["compile", DIGITS_MLP, "--target", "eie", "-o", out]
    assert_user_error(capsys, argv, "does not exist", output=out)


def test_output_that_is_a_directory(capsys, tmp_path):
    assert_user_error(capsys, ["compile", MLP, "-o", tmp_path], "is a directory")


def test_unwritable_output_directory(capsys, tmp_path, monkeypatch):
    out = tmp_path / "x.mlir"
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    assert_user_error(capsys, ["compile", MLP, "-o", out], "permission denied", output=out)


def test_symlink_output_keeps_the_link_and_replaces_its_target(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_device_output_is_written_in_place(capsys):
    before = os.stat("/dev/null")
    code, _, err = dlhwc(capsys, "compile", MLP, "-o", "/dev/null")
    assert (code, err) == (0, "")
    after = os.stat("/dev/null")
    assert (after.st_ino, after.st_rdev, after.st_mode) == (
        before.st_ino, before.st_rdev, before.st_mode,
    )  # fmt: skip


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_device_is_an_error(capsys):
    assert_user_error(capsys, ["compile", MLP, "-o", "/dev/full"], "No space left")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_stdout_on_a_full_device_is_an_error():
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "dlhwc.compiler.cli", "passes"], stdout=full, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("dlhwc: error: <stdout>: No space left")
    assert result.stderr.count("\n") == 1


def test_broken_pipe_ends_quietly():
    script = f"'{sys.executable}' -m dlhwc.compiler.cli passes | head -c 10 > /dev/null"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True,
                            text=True, cwd=ROOT)  # fmt: skip
    assert result.stderr == ""
    assert result.returncode == 141


def test_sigterm_during_the_write_leaves_no_file(tmp_path):
    out = tmp_path / "x.mlir"
    code = (
        "import os, signal, sys\n"
        "from dlhwc.compiler import cli\nfrom dlhwc.spec import fileio\n"
        "def interrupted(f, payload):\n"
        "    f.write(payload[:10])\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "fileio._write_all = interrupted\n"
        f"sys.exit(cli.main(['compile', {str(MLP)!r}, '-o', {str(out)!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (143, "dlhwc: terminated\n")
    assert list(tmp_path.iterdir()) == []


def test_sigkill_leaves_no_temporary_file(tmp_path):
    """The data is written to an unnamed file: a process killed mid-write leaves nothing."""
    code = (
        "import os, sys\n"
        "from dlhwc.spec import fileio\n"
        "def killed(f, payload):\n"
        "    f.write(payload[:10])\n"
        "    os.kill(os.getpid(), 9)\n"
        "fileio._write_all = killed\n"
        f"fileio.write_atomic({str(tmp_path / 'out.bin')!r}, b'x' * 100)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT)
    assert result.returncode == -9
    assert list(tmp_path.iterdir()) == []


def test_console_script_output_onto_the_input(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(DIGITS_MLP.read_bytes())
    result = run_script("compile", model, "--target", "eie", "-o", model)
    assert result.returncode == 1 and "overwrite the input" in result.stderr
    assert model.read_bytes() == DIGITS_MLP.read_bytes()


# ---------------------------------------------------------------------------------------
# Containers: what `run` trusts


@pytest.fixture(scope="module")
def mlp_program(tmp_path_factory) -> Path:
    """The digits MLP for EIE: three layers on the accelerator, Softmax on the host."""
    out = tmp_path_factory.mktemp("prog") / "mlp.dlhw"
    argv = [sys.executable, "-m", "dlhwc.compiler.cli", "compile", DIGITS_MLP, "--target", "eie"]
    assert subprocess.run([*argv, "-o", out], cwd=ROOT, capture_output=True).returncode == 0
    return out


def _rewritten(program: Path, path: Path, edit) -> Path:
    """``program`` with ``edit(container)`` applied and its checksum made valid again."""
    from dlhwc.spec.container import Container

    container = Container.read(program)
    edit(container)
    container.write(path)
    return path


def test_host_segment_with_external_data_is_refused(capsys, tmp_path, mlp_program, monkeypatch):
    import numpy as np
    import onnx

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(10, dtype=np.float32).tobytes())

    def leak(container):
        name = container.header["host_segments"][0]["section"]
        model = onnx.load_from_string(container.sections[name].tobytes())
        tensor = onnx.TensorProto(name="leak", data_type=onnx.TensorProto.FLOAT, dims=[10])
        tensor.data_location = onnx.TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "secret.bin"
        model.graph.initializer.append(tensor)
        container.sections[name] = np.frombuffer(model.SerializeToString(), np.uint8)

    program = _rewritten(mlp_program, tmp_path / "leak.dlhw", leak)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.npz"
    argv = ["run", program, "--input", ROOT / "examples/data/digits_test.npz", "--output", out]
    assert_user_error(capsys, argv, "'leak' refers to external data", output=out)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("clock_mhz", float("inf"), "clock_mhz must be a finite number"),
        ("dma_words_per_cycle", 0, "dma_words_per_cycle must be in [1, 65536]"),
        ("num_pes", 10**9, "num_pes must be in [1, 4096]"),
    ],
)
def test_container_config_out_of_range(capsys, tmp_path, mlp_program, field, value, fragment):
    def edit(container):
        container.header["hw"][field] = value

    program = _rewritten(mlp_program, tmp_path / "bad.dlhw", edit)
    assert_user_error(capsys, ["report", program], "bad.dlhw", fragment)


def test_container_header_nested_too_deeply(capsys, tmp_path):
    import hashlib
    import struct

    header = b"[" * 100_000 + b"]" * 100_000
    body = struct.pack("<4sHHQ", b"DLHW", 1, 0, len(header)) + header
    path = tmp_path / "deep.dlhw"
    path.write_bytes(body + hashlib.sha256(body).digest())
    assert_user_error(capsys, ["report", path], "deep.dlhw", "nests too deeply")


# ---------------------------------------------------------------------------------------
# ONNX models: what the checker lets through


def _gemm_model(path: Path, edit=None) -> Path:
    """x [1, 3] @ w.T, w [4, 3]; ``edit(w)`` may change the initializer."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    if edit:
        edit(w)
    node = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    _ = onnx  # the model is written unchecked on purpose
    return path


def _missing_external(w):
    import onnx

    w.ClearField("raw_data")
    w.data_location = onnx.TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "missing.bin"


def _impossible_dims(w):
    w.dims[:] = [4, 1_000_000_000]


@pytest.mark.parametrize("command", ["compile", "run"])
@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (_missing_external, "cannot load external tensor data"),
        (_impossible_dims, "tensor 'w' has 48 bytes of data, but its dims [4, 1000000000]"),
    ],
    ids=["missing-external-data", "impossible-dims"],
)
def test_initializer_errors(capsys, tmp_path, command, edit, fragment):
    import numpy as np

    model = _gemm_model(tmp_path / "m.onnx", edit)
    np.savez(tmp_path / "x.npz", x=np.ones((1, 3), np.float32))
    argv = [command, model] + (["--input", tmp_path / "x.npz"] if command == "run" else [])
    assert_user_error(capsys, argv, "m.onnx", fragment)


@pytest.mark.parametrize("command", ["compile", "run", "compile-ese"])
def test_lstm_hidden_size_inconsistent_with_w(capsys, tmp_path, command):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    hidden, size = 4, 3
    w = numpy_helper.from_array(np.ones((1, 4 * hidden, size), np.float32), "W")
    r = numpy_helper.from_array(np.ones((1, 4 * hidden, hidden), np.float32), "R")
    node = helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=5, name="lstm")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1, 1, 5])], [w, r],
    )  # fmt: skip
    model = tmp_path / "lstm.onnx"
    opsets = [helper.make_opsetid("", 17)]
    model.write_bytes(helper.make_model(graph, opset_imports=opsets).SerializeToString())
    np.savez(tmp_path / "x.npz", x=np.ones((2, 1, size), np.float32))
    argv = {
        "compile": ["compile", model],
        "run": ["run", model, "--input", tmp_path / "x.npz"],
        "compile-ese": ["compile", model, "--target", "ese", "-o", tmp_path / "l.dlhw"],
    }[command]
    assert_user_error(capsys, argv, "lstm.onnx", "onnx.LSTM 'lstm'", "is 16, expected 20")


# ---------------------------------------------------------------------------------------
# IR: verifiers check what the ops promise

IR_HEAD = "builtin.module {\n  func.func @main(%x: tensor<2x4xf32>) -> tensor<2x2xf32> {\n"
IR_TAIL = "    func.return %g : tensor<2x2xf32>\n  }\n}\n"
GOOD_WEIGHT = (
    "codebook = dense<[-0.3, 0.1, 0.7]> : tensor<3xf32>, index_bits = 2 : i64, "
    'indices = dense<"0x0001020102020000"> : tensor<2x4xui8>, '
    'mask = dense<"0x0101010001010101"> : tensor<2x4xi1>'
)


def _weight_ir(props: str, gemm_b: str = "tensor<2x4xf32>") -> str:
    return (
        IR_HEAD
        + f"    %w = comp.weight {{{props}}} : tensor<2x4xf32>\n"
        + f"    %g = onnx.Gemm(%x, %w) {{transB = 1 : i64}} : (tensor<2x4xf32>, {gemm_b}) "
        "-> tensor<2x2xf32>\n" + IR_TAIL
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (_weight_ir(GOOD_WEIGHT.replace("0x0001020102020000", "0x0001020102020300")),
         "index 3 is outside its codebook of 3 entries [0, 2]"),
        (_weight_ir(GOOD_WEIGHT.replace("[-0.3, 0.1, 0.7]", '"0x9A9999BE0000C07F3333333F"')),
         "codebook holds a NaN or infinite entry"),
        (_weight_ir(GOOD_WEIGHT.replace("0x0101010001010101", "0x0101010201010101")),
         "mask holds byte 0x02"),
        (IR_HEAD + "    %w = onnx.Constant dense<1.0> : tensor<3x4xf32>\n"
         "    %g = onnx.Gemm(%x, %w) {transB = 1 : i64} : (tensor<2x4xf32>, tensor<3x4xf32>) "
         "-> tensor<2x2xf32>\n" + IR_TAIL, "the result's columns is 2, expected 3"),
        (IR_HEAD + "    %w = onnx.Constant dense<1.0> : tensor<2x5xf32>\n"
         "    %g = onnx.Gemm(%x, %w) {transB = 1 : i64} : (tensor<2x4xf32>, tensor<2x5xf32>) "
         "-> tensor<2x2xf32>\n" + IR_TAIL, "B's K dimension is 5, expected 4"),
        (IR_HEAD.replace("tensor<2x2xf32> {", "tensor<2x4xf32> {")
         + "    %g = onnx.Softmax(%x) {axis = 7 : i64} : (tensor<2x4xf32>) -> tensor<2x4xf32>\n"
         + IR_TAIL.replace("2x2", "2x4"), "axis 7 is outside [-2, 1]"),
    ],
    ids=["index-past-codebook", "nan-codebook", "mask-byte", "gemm-n", "gemm-k", "softmax-axis"],
)  # fmt: skip
def test_ir_verifier_errors(capsys, tmp_path, text, fragment):
    path = tmp_path / "bad.mlir"
    path.write_text(text)
    out = tmp_path / "out.mlir"
    assert_user_error(capsys, ["opt", path, "-o", out], "bad.mlir", fragment, output=out)
    assert_user_error(capsys, ["run", path, "--input", tmp_path / "x.npz"], fragment)


def test_well_formed_weight_ir_passes(capsys, tmp_path):
    path = tmp_path / "good.mlir"
    path.write_text(_weight_ir(GOOD_WEIGHT))
    code, out, err = dlhwc(capsys, "opt", path)
    assert (code, err) == (0, "") and "comp.weight" in out


@pytest.mark.parametrize(
    "text",
    [
        "builtin.module attributes {a = " + "[" * 5000 + "]" * 5000 + "} {\n}\n",
        "builtin.module {\n" + '"test.op"() ({\n' * 5000,
        "builtin.module attributes {a = " + "tensor<" * 3000 + "f32" + ">" * 3000 + "} {\n}\n",
    ],
    ids=["attribute", "regions", "types"],
)
def test_deeply_nested_ir(capsys, tmp_path, text):
    path = tmp_path / "deep.mlir"
    path.write_text(text)
    assert_user_error(capsys, ["opt", path], "deep.mlir")


# ---------------------------------------------------------------------------------------
# Data files


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_array_header_claiming_a_huge_array(capsys, tmp_path, suffix):
    import io
    import zipfile

    import numpy as np

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    )
    data = header.getvalue() + bytes(16)
    path = tmp_path / f"huge{suffix}"
    if suffix == ".npy":
        path.write_bytes(data)
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("input.npy", data)
    argv = ["run", DIGITS_MLP, "--input", path]
    assert_user_error(capsys, argv, path, "claims shape [1000000000000]")


# ---------------------------------------------------------------------------------------
# Plugins: their errors are the user's

PASS_HEAD = (
    "from dataclasses import dataclass\nfrom xdsl.passes import ModulePass\n\n"
    "@dataclass(frozen=True)\nclass Boom(ModulePass):\n    name = 'boom'\n\n"
    "    def apply(self, ctx, op):\n"
)


@pytest.mark.parametrize(
    ("source", "fragments"),
    [
        (PASS_HEAD + "        raise RuntimeError('kaboom')\n",
         [":9: pass 'boom' failed: RuntimeError: kaboom"]),
        (PASS_HEAD + "        import sys\n        sys.exit(0)\n",
         [":10: pass 'boom' failed: it called sys.exit(0)"]),
        ("import sys\nsys.exit(3)\n", [":2: importing the pass plugin failed: it called sys.exit(3)"]),
        ("import sys\nsys.exit()\n", ["it called sys.exit(None)"]),
    ],
    ids=["pass-raises", "pass-exits", "import-exits", "import-exits-0"],
)  # fmt: skip
def test_plugin_errors(capsys, tmp_path, source, fragments):
    plugin = tmp_path / "plugin.py"
    plugin.write_text(source)
    out = tmp_path / "out.mlir"
    argv = ["compile", MLP, "--load-pass-plugin", plugin, "-p", "boom", "-o", out]
    assert_user_error(capsys, argv, "plugin.py", *fragments, output=out)


# ---------------------------------------------------------------------------------------
# Assembly: `asm` refuses what `run` would, at the instruction's line


@pytest.fixture(scope="module")
def mlp_assembly(mlp_program, tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("asm") / "mlp.s"
    argv = [sys.executable, "-m", "dlhwc.compiler.cli", "disasm", mlp_program, "-o", out]
    assert subprocess.run(argv, cwd=ROOT).returncode == 0
    return out.read_text().splitlines()


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("dma.in  sym=0, buf=0", "dma.in  sym=7, buf=0", "instruction 0 (dma.in): no symbol 7"),
        ("host    seg=0", "host    seg=3", "(host): no host segment 3"),
        ("load    layer=2, block=0", "load    layer=9, block=0", "(load): no layer 9 (3 layers)"),
        ("load    layer=2, block=0", "load    layer=2, block=5", "has no block 5"),
    ],
    ids=["symbol", "segment", "layer", "block"],
)
def test_asm_refuses_operands_run_would_refuse(capsys, tmp_path, mlp_assembly, old, new, fragment):
    (line_no,) = [n for n, line in enumerate(mlp_assembly, 1) if line.strip() == old]
    lines = list(mlp_assembly)
    lines[line_no - 1] = lines[line_no - 1].replace(old, new)
    source = tmp_path / "bad.s"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "bad.dlhw"
    assert_user_error(capsys, ["asm", source, "-o", out], f"bad.s:{line_no}:5: ", fragment,
                      output=out)  # fmt: skip


def test_asm_refuses_a_header_naming_a_missing_section(capsys, tmp_path, mlp_assembly):
    lines = [re.sub(r"^\.section host0 ", ".section other ", line) for line in mlp_assembly]
    source = tmp_path / "bad.s"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "bad.dlhw"
    argv = ["asm", source, "-o", out]
    assert_user_error(capsys, argv, "bad.s:2:", "no section 'host0'", output=out)


def test_asm_of_the_disassembly_gives_the_same_bytes(capsys, tmp_path, mlp_program, mlp_assembly):
    source = tmp_path / "ok.s"
    source.write_text("\n".join(mlp_assembly) + "\n")
    code, _, err = dlhwc(capsys, "asm", source, "-o", tmp_path / "ok.dlhw")
    assert (code, err) == (0, "")
    assert (tmp_path / "ok.dlhw").read_bytes() == mlp_program.read_bytes()


# ---------------------------------------------------------------------------------------
# Errors the fuzz suite found, one test each


def test_onnx_name_that_is_not_utf8(capsys, tmp_path):
    model = _gemm_model(tmp_path / "m.onnx")
    model.write_bytes(model.read_bytes().replace(b"\x1a\x02fc", b"\x1a\x02\xe3\xa0"))
    assert_user_error(capsys, ["compile", model], "m.onnx", "not UTF-8")


def test_onnx_tensor_of_unknown_data_type(capsys, tmp_path):
    def unknown(w):
        w.data_type = 65

    assert_user_error(capsys, ["compile", _gemm_model(tmp_path / "m.onnx", unknown)],
                      "m.onnx", "unknown data type 65")  # fmt: skip


def test_hex_literal_that_does_not_fill_its_type(capsys, tmp_path):
    path = tmp_path / "bad.mlir"
    path.write_text(
        IR_HEAD.replace("tensor<2x2xf32> {", "tensor<3xf32> {")
        + '    %g = onnx.Constant dense<"0x0000803F0000803F0000803F00">'
        + " : tensor<3xf32>\n" + IR_TAIL.replace("2x2", "3")
    )  # fmt: skip
    assert_user_error(capsys, ["opt", path], "bad.mlir:", "13 bytes does not fill")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("%w = onnx.Constant dense<[1, 2]> : tensor<2xi2147483648>", "unsupported IR"),
        ("%w = comp.quantize %x {format = #comp.fixed<-1, 0>} : tensor<2x4xf32>",
         "invalid IR: fixed-point width -1"),
    ],
    ids=["element-type", "fixed-width"],
)  # fmt: skip
def test_ir_attributes_refused_as_they_are_built(capsys, tmp_path, text, fragment):
    path = tmp_path / "bad.mlir"
    path.write_text(IR_HEAD + f"    {text}\n" + IR_TAIL)
    assert_user_error(capsys, ["opt", path], "bad.mlir", fragment)


def test_codebook_index_bits_out_of_range(capsys, tmp_path):
    path = tmp_path / "bad.mlir"
    path.write_text(_weight_ir(GOOD_WEIGHT.replace("index_bits = 2", "index_bits = -3")))
    assert_user_error(capsys, ["opt", path], "index_bits -3 outside 1..16")


def _set(path_in_header, value):
    def edit(container):
        parent = container.header
        for key in path_in_header[:-1]:
            parent = parent[key]
        parent[path_in_header[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "command", "fragment"),
    [
        (_set(("placement", 0, "op"), None), "report",
         "header.placement[0].op: expected str, got null"),
        (_set(("host_segments", 0, "name"), 7), "report",
         "header.host_segments[0].name: expected str, got 7"),
        (_set(("layers", 0, "blocks", 0, "fillers", 0), "x"), "report",
         'header.layers[0].blocks[0].fillers[0]: expected int >= 0, got "x"'),
        (_set(("layers", 0, "cols"), float("inf")), "report",
         "header.layers[0].cols: expected int >= 1, got Infinity"),
        (_set(("symbols", 0, "shape", 0), float("inf")), "report",
         "header.symbols[0].shape[0]: expected int >= -1, got Infinity"),
        (_set(("symbols", 0, "format"), [16, 5000]), "report",
         "header.symbols[0].format: fraction bits out of range"),
        (_set(("hw",), 3), "report", "must be a table of fields"),
    ],
    ids=["placement", "segment-name", "fillers", "layer-cols", "symbol-shape", "symbol-frac",
         "hw-not-a-table"],
)  # fmt: skip
def test_crafted_container_headers(capsys, tmp_path, mlp_program, edit, command, fragment):
    program = _rewritten(mlp_program, tmp_path / "bad.dlhw", edit)
    assert_user_error(capsys, [command, program], fragment)


def test_container_section_table_and_target_types(capsys, tmp_path, mlp_program):
    import hashlib
    import json
    import struct

    data = mlp_program.read_bytes()
    (hlen,) = struct.unpack_from("<Q", data, 8)
    for key, value, fragment in [
        ("target", ["eie"], 'header.target: expected str, got ["eie"]'),
        ("sections", [{"name": 3, "dtype": "<u8", "shape": [1], "offset": 0, "size": 8}],
         "header.sections[0].name: expected str, got 3"),
    ]:  # fmt: skip
        header = json.loads(data[16 : 16 + hlen])
        header[key] = value
        text = json.dumps(header).encode()
        body = data[:8] + struct.pack("<Q", len(text)) + text + data[16 + hlen : -32]
        path = tmp_path / "bad.dlhw"
        path.write_bytes(body + hashlib.sha256(body).digest())
        assert_user_error(capsys, ["disasm", path], "bad.dlhw", fragment)


def test_toml_nested_too_deeply(capsys, tmp_path):
    hw = tmp_path / "hw.toml"
    hw.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    argv = ["compile", DIGITS_MLP, "--target", "eie", "--hw", hw, "-o", tmp_path / "x.dlhw"]
    assert_user_error(capsys, argv, "hw.toml", "nests too deeply")


# ---------------------------------------------------------------------------------------
# Inputs that are not regular files are not read (a device or a FIFO would never end)


@pytest.mark.parametrize(
    "argv",
    [
        ["compile", "{x}"],
        ["run", MLP, "--input", "{x}"],
        ["asm", "{x}", "-o", "out.dlhw"],
        ["compile", DIGITS_MLP, "--target", "eie", "--hw", "{x}", "-o", "out.dlhw"],
        ["passes", "--load-pass-plugin", "{x}"],
        ["compile", MLP, "-p", "prune{recipe={x}}"],
        ["compile", MLP, "-p", "quantize{calibration={x}}"],
    ],
    ids=["model", "input", "asm", "hw", "plugin", "recipe", "calibration"],
)
@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_inputs_that_are_not_regular_files(capsys, tmp_path, monkeypatch, argv, kind):
    monkeypatch.chdir(tmp_path)
    if kind == "device":
        path = "/dev/zero"
    elif kind == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    else:
        path = str(tmp_path)
    argv = [str(a).replace("{x}", path) for a in argv]
    fragment = "is a directory" if kind == "directory" else "not a regular file"
    assert_user_error(capsys, argv, path, fragment)


def test_report_reads_its_stats_file(capsys, tmp_path, mlp_program):
    stats = tmp_path / "s.json"
    argv = ["run", mlp_program, "--input", ROOT / "examples/data/digits_test.npz", "--stats", stats]
    assert dlhwc(capsys, *argv)[0] == 0
    before = stats.read_bytes()
    code, out, _ = dlhwc(capsys, "report", mlp_program, "--stats", stats)
    assert code == 0 and "fc1" in out and stats.read_bytes() == before


def test_recipe_nested_too_deeply(capsys, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[defaults]\na = " + "[" * 5000 + "]" * 5000 + "\n")
    assert_user_error(
        capsys, ["compile", MLP, "-p", f"prune{{recipe={recipe}}}"], "nests too deeply"
    )


def test_splat_constant_larger_than_memory(capsys, tmp_path):
    path = tmp_path / "huge.mlir"
    path.write_text(
        "builtin.module {\n  func.func @main(%x: tensor<1x8xf32>) -> tensor<1x8xf32> {\n"
        "    %w = onnx.Constant dense<1.0> : tensor<1000000000000x8xf32>\n"
        "    %y = onnx.Gemm(%x, %w) {transB = 1 : i64} : (tensor<1x8xf32>, "
        "tensor<1000000000000x8xf32>) -> tensor<1x1000000000000xf32>\n"
        "    %s = onnx.Relu(%x) : (tensor<1x8xf32>) -> tensor<1x8xf32>\n"
        "    func.return %s : tensor<1x8xf32>\n  }\n}\n"
    )
    out = tmp_path / "out.mlir"
    assert_user_error(capsys, ["opt", path, "-p", "quantize", "-o", out], "out of memory",
                      output=out)  # fmt: skip


def test_layer_columns_must_match_its_blocks(capsys, tmp_path, mlp_program):
    """A crafted column count (10^12) made run compute for minutes."""
    program = _rewritten(mlp_program, tmp_path / "bad.dlhw", _set(("layers", 0, "cols"), 10**12))
    argv = ["run", program, "--input", ROOT / "examples/data/digits_test.npz"]
    assert_user_error(capsys, argv, "column blocks cover 64 of its 1000000000000 columns")


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda text: "[" * 100_000 + "]" * 100_000, "nests too deeply"),
        (lambda text: text.replace('"layers": [', '"layers": 5, "x": [', 1), "not an EIE stats"),
        (lambda text: text.replace('"machine": {', '"machine": [', 1).replace("}\n}", "]\n}"),
         "not"),
    ],
    ids=["deep", "layers-number", "machine-list"],
)  # fmt: skip
def test_malformed_stats_file(capsys, tmp_path, mlp_program, edit, fragment):
    stats = tmp_path / "s.json"
    argv = ["run", mlp_program, "--input", ROOT / "examples/data/digits_test.npz", "--stats", stats]
    assert dlhwc(capsys, *argv)[0] == 0
    stats.write_text(edit(stats.read_text()))
    assert_user_error(capsys, ["report", mlp_program, "--stats", stats], "s.json", fragment)


def test_default_output_that_would_overwrite_the_model(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "m.dlhw"  # an ONNX model with the container's suffix
    model.write_bytes(DIGITS_MLP.read_bytes())
    assert_user_error(capsys, ["compile", model, "--target", "eie"], "overwrite the input")
    assert model.read_bytes() == DIGITS_MLP.read_bytes()


def test_asm_refuses_a_program_header_without_its_layer_table(capsys, tmp_path, mlp_assembly):
    import json

    header = json.loads(mlp_assembly[1].removeprefix(".header "))
    del header["layers"]
    lines = [mlp_assembly[0], ".header " + json.dumps(header), *mlp_assembly[2:]]
    source = tmp_path / "bad.s"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "bad.dlhw"
    assert_user_error(
        capsys, ["asm", source, "-o", out], "bad.s:2:", "header: missing field 'layers'", output=out
    )
