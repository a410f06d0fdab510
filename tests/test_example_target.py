"""The example target (examples/targets/dense): an out-of-tree package registered through
the entry-point group `dlhwc.targets`, compiled for, simulated, assembled and reported
by dlhwc's own commands, and bit-exact with its golden model."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from dlhwc.compiler import cli

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples/models/digits_mlp.onnx"
TEST = ROOT / "examples/data/digits_test.npz"
CALIB = ROOT / "examples/data/digits_calib.npz"
NOT_INSTALLED = "the example target 'dense' is not installed: run `make test`, which installs it"


def _registered() -> bool:
    return any(ep.name == "dense" for ep in entry_points(group="dlhwc.targets"))


@pytest.fixture(autouse=True)
def _installed(request):
    if request.node.name != "test_entry_point_registered" and not _registered():
        pytest.fail(NOT_INSTALLED, pytrace=False)


def dlhwc(*args, capsys=None) -> tuple[int, str, str]:
    """Run the `dlhwc` command in this process: (status, stdout, stderr)."""
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr() if capsys else ("", "")
    return status, out, err


def test_entry_point_registered():
    eps = {ep.name: ep.value for ep in entry_points(group="dlhwc.targets")}
    if "dense" not in eps:
        pytest.fail(NOT_INSTALLED, pytrace=False)
    assert eps["dense"] == "dlhwc_dense.target:TARGET"
    from dlhwc.spec.targets import target

    assert target("dense").lowering == "convert-onnx-to-dense"


def _compile_and_run(model, inputs, calib, tmp: Path, capsys, *hw) -> dict:
    """The program's and the golden model's outputs, and the compile's stderr."""
    prog, mlir = tmp / "p.dlhw", tmp / "p.mlir"
    status, _, err = dlhwc("compile", model, "--target", "dense", "--calibration", calib,
                           *hw, "-o", prog, capsys=capsys)  # fmt: skip
    assert status == 0, err
    assert dlhwc("compile", model, "--target", "dense", "--emit", "dense", "--calibration",
                 calib, *hw, "-o", mlir, capsys=capsys)[0] == 0  # fmt: skip
    status, _, run_err = dlhwc("run", prog, "--input", inputs, "--output", tmp / "sim.npz",
                               "--stats", tmp / "s.json", capsys=capsys)  # fmt: skip
    assert status == 0, run_err
    assert "dense: " in run_err and "cycles/vector" in run_err
    assert dlhwc("run", mlir, "--input", inputs, "--output", tmp / "gold.npz",
                 capsys=capsys)[0] == 0  # fmt: skip
    return {"sim": dict(np.load(tmp / "sim.npz")), "gold": dict(np.load(tmp / "gold.npz")),
            "compile_err": err, "prog": prog}  # fmt: skip


def _onnxruntime(model, inputs: dict) -> dict:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, inputs), strict=True))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return tmp_path_factory.mktemp("dense")


def test_digits_mlp_bit_exact_and_accurate(digits, capsys):
    r = _compile_and_run(MLP, TEST, CALIB, digits, capsys)
    assert "fc1      dense.fc       dense" in r["compile_err"]
    sim, gold = r["sim"]["probabilities"], r["gold"]["probabilities"]
    assert np.array_equal(sim, gold)
    data = np.load(TEST)
    ref = _onnxruntime(MLP, {"input": data["input"]})["probabilities"]
    accuracy = lambda p: float(np.mean(p.argmax(axis=1) == data["labels"]))  # noqa: E731
    assert abs(accuracy(sim) - accuracy(ref)) <= 0.01
    assert np.abs(sim - ref).max() < 1e-2


def _odd_model(path: Path) -> None:
    """37 -> 23 (Gemm, ReLU) -> Sigmoid on the host -> 19 (MatMul + Add) -> a Gemm with
    alpha = 0.5 (host: the array runs alpha = 1) -> 7."""
    rng = np.random.default_rng(0)
    init = [
        numpy_helper.from_array(rng.normal(0, 0.3, (23, 37)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, 23).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.3, (23, 19)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(0, 0.1, 19).astype(np.float32), "b2"),
        numpy_helper.from_array(rng.normal(0, 0.3, (19, 7)).astype(np.float32), "w3"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], "fc1", transB=1),
        helper.make_node("Relu", ["h1"], ["r1"], "relu1"),
        helper.make_node("Sigmoid", ["r1"], ["s1"], "sigmoid"),
        helper.make_node("MatMul", ["s1", "w2"], ["m2"], "fc2"),
        helper.make_node("Add", ["m2", "b2"], ["y"], "fc2_bias"),
        helper.make_node("Gemm", ["y", "w3"], ["z"], "fc3", alpha=0.5),
    ]
    graph = helper.make_graph(
        nodes, "odd",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 37])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 19]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 7])],
        init,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_host_op_and_odd_sizes(tmp_path, capsys):
    model, data = tmp_path / "odd.onnx", tmp_path / "x.npz"
    _odd_model(model)
    x = np.random.default_rng(1).normal(0, 1, (50, 37)).astype(np.float32)
    np.savez(data, x=x)
    hw = tmp_path / "hw.toml"
    hw.write_text("acc_depth = 16\narray_rows = 8\narray_cols = 5\n")  # 4 groups, ragged tiles
    r = _compile_and_run(model, data, data, tmp_path, capsys, "--hw", hw)
    assert "Sigmoid" in r["compile_err"] and "a Gemm with transA, alpha or beta" in r["compile_err"]
    ref = _onnxruntime(model, {"x": x})
    for name in ("y", "z"):
        assert np.array_equal(r["sim"][name], r["gold"][name]), name
        scale = np.abs(ref[name]).max()
        assert np.abs(r["sim"][name] - ref[name]).max() < 1e-3 * scale, name
    status, out, _ = dlhwc("verify", model, "--target", "dense", "--input", data,
                           "--calibration", data, "--hw", hw, capsys=capsys)  # fmt: skip
    assert status == 0 and "no stage jumps" in out


def test_disasm_asm_round_trip(digits, capsys):
    prog = digits / "p.dlhw"
    assert dlhwc("disasm", prog, "-o", digits / "p.s", capsys=capsys)[0] == 0
    text = (digits / "p.s").read_text()
    assert text.startswith(".target dense\n") and "    mmtile " in text
    assert dlhwc("asm", digits / "p.s", "-o", digits / "q.dlhw", capsys=capsys)[0] == 0
    assert (digits / "q.dlhw").read_bytes() == prog.read_bytes()


def test_report_and_stats_are_deterministic(digits, capsys):
    prog = digits / "p.dlhw"
    status, out, _ = dlhwc("report", prog, capsys=capsys)
    assert status == 0 and out.startswith("dense program: ") and "weights resident" in out
    runs = []
    for name in ("a.json", "b.json"):
        args = ("run", prog, "--input", TEST, "--output", digits / "o.npz")
        assert dlhwc(*args, "--stats", digits / name, capsys=capsys)[0] == 0
        runs.append((digits / name).read_bytes())
    assert runs[0] == runs[1]
    status, out, _ = dlhwc("report", prog, "--stats", digits / "a.json", capsys=capsys)
    assert status == 0 and out.startswith("dense simulation: 450 vectors")


@pytest.mark.parametrize(
    "toml,message",
    [
        ("weight_sram_bytes = 16384\n", "layer 'fc1': its 76 weight tiles take 38,912 bytes; "
         "the weight SRAM holds 16,384 (weight_sram_bytes in --hw)"),
        ("array_rows = 0\n", "array_rows must be in [1, 4096], got 0"),
    ],
)  # fmt: skip
def test_user_error_is_one_line(tmp_path, capsys, toml, message):
    hw, out = tmp_path / "hw.toml", tmp_path / "p.dlhw"
    hw.write_text(toml)
    status, _, err = dlhwc("compile", MLP, "--target", "dense", "--hw", hw, "-o", out,
                           capsys=capsys)  # fmt: skip
    assert status == 1
    assert err.count("\n") == 1 and err.startswith("dlhwc: error: ") and message in err
    assert not out.exists()


def test_commands_that_model_only_the_sparse_targets(digits, tmp_path, capsys):
    """`report --html` and `explore` refuse a plugin's program in one line; the ledger's
    static estimate leaves its columns empty ("-") rather than failing."""
    page = tmp_path / "p.html"
    status, _, err = dlhwc("report", digits / "p.dlhw", "--html", page, capsys=capsys)
    assert status == 1 and err.count("\n") == 1 and not page.exists()
    assert "report --html draws the sparse PE machines (eie, ese), not a 'dense' program" in err
    status, _, err = dlhwc("explore", MLP, "--target", "dense", "--train", TEST, "--data", TEST,
                           "--out", tmp_path / "x", capsys=capsys)  # fmt: skip
    assert (
        status == 1 and err == "dlhwc: error: explore searches the targets eie, ese, not 'dense'\n"
    )
    status, _, err = dlhwc("compile", MLP, "--target", "dense", "--emit", "comp",
                           "--ledger-after-all", "-o", tmp_path / "c.mlir", capsys=capsys)  # fmt: skip
    assert status == 0 and "IR Dump" not in err and "quantize" in err
