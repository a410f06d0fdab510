"""Target compilation errors: hardware configs, and layers the machine cannot hold."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.test_cli import assert_user_error


def _gemm(path, rows: int, cols: int, dense_column: bool = False):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    if dense_column:
        w[:, 1:] = 0.0  # only column 0 has weights
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cols])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", rows])],
        [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.fixture
def small_model(tmp_path):
    return _gemm(tmp_path / "fc.onnx", 8, 100)


def _hw(tmp_path, text: str):
    path = tmp_path / "hw.toml"
    path.write_text(text)
    return path


def test_vector_longer_than_the_activation_memory(capsys, tmp_path, small_model):
    hw = _hw(tmp_path, "num_pes = 1\nregfile_entries = 16\nact_sram_bytes = 64\n")
    out = tmp_path / "p.dlhw"
    assert_user_error(
        capsys,
        ["compile", small_model, "--target", "eie", "--hw", hw, "-o", out],
        "layer 'fc'", "100 inputs", "at most 32 elements",
        output=out,
    )  # fmt: skip


def test_column_larger_than_the_sparse_matrix_sram(capsys, tmp_path):
    model = _gemm(tmp_path / "col.onnx", 40, 4, dense_column=True)
    hw = _hw(tmp_path, "num_pes = 1\nspmat_sram_bytes = 16\n")
    out = tmp_path / "p.dlhw"
    assert_user_error(
        capsys,
        ["compile", model, "--target", "eie", "--hw", hw, "-o", out],
        "layer 'fc'", "column 0 alone needs 40 entries", "holds 16",
        output=out,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("num_pes = [\n", ["invalid TOML"]),
        ("num_pe = 4\n", ["unknown hardware config field(s): num_pe"]),
        ("num_pes = 'four'\n", ["num_pes must be an integer"]),
        ("num_pes = 0\n", ["num_pes must be in [1, 4096], got 0"]),
        ("num_pes = 100000000\n", ["num_pes must be in [1, 4096]"]),
        ("clock_mhz = inf\n", ["clock_mhz must be a finite number, got inf"]),
        ("clock_mhz = -800.0\n", ["clock_mhz must be in [0.001, 1e+06]"]),
        ("dma_words_per_cycle = -4\n", ["dma_words_per_cycle must be in [1, 65536]"]),
        ("host_words_per_cycle = 0\n", ["host_words_per_cycle must be in [1, 65536]"]),
        ("acc_bits = 20\n", ["acc_bits must be in [act_bits + weight_bits = 32, 62], got 20"]),
        ("acc_bits = 63\n", ["acc_bits must be in [act_bits + weight_bits = 32, 62], got 63"]),
        ("fifo_depth = true\n", ["fifo_depth must be an integer, got True"]),
        ("[energy]\nmac = nan\n", ["energy.mac must be a finite number, got nan"]),
        ("[energy]\nmac = -1.0\n", ["energy.mac must be in [0, 1e+09], got -1.0"]),
        ("index_bits = 5\n", ["index_bits + run_bits must equal spmat_entry_bits"]),
        ("[energy]\nmac = 'x'\n", ["energy.mac must be a number"]),
        ("[energy]\nmacs = 1.0\n", ["unknown [energy] field(s): macs"]),
    ],
)
def test_bad_eie_hardware_config(capsys, tmp_path, small_model, text, fragments):
    hw = _hw(tmp_path, text)
    out = tmp_path / "p.dlhw"
    argv = ["compile", small_model, "--target", "eie", "--hw", hw, "-o", out]
    assert_user_error(capsys, argv, "hw.toml", *fragments, output=out)


def test_missing_hardware_config(capsys, tmp_path, small_model):
    argv = ["compile", small_model, "--target", "eie", "--hw", tmp_path / "none.toml"]
    assert_user_error(capsys, argv, "none.toml", "no such hardware config file")


def test_bad_ese_hardware_config(capsys, tmp_path):
    model = "examples/models/digits_lstm.onnx"
    hw = _hw(tmp_path, "lut_segments = 100\n")
    argv = ["compile", model, "--target", "ese", "--hw", hw, "-o", tmp_path / "p.dlhw"]
    assert_user_error(capsys, argv, "hw.toml", "lut_segments must be a power of two")


def test_unknown_target(capsys, small_model):
    assert_user_error(capsys, ["compile", small_model, "--target", "tpu"], "unknown target 'tpu'")


def test_unknown_stage_for_a_target(capsys, small_model):
    argv = ["compile", small_model, "--target", "eie", "--emit", "ese"]
    assert_user_error(capsys, argv, "unknown stage 'ese'", "onnx, comp, eie, asm, dlhw")
