"""--ledger-after-all and --time-passes on compile and opt."""

import re
from pathlib import Path

import pytest

from dlhwc.compiler.compression.ledger import ledger
from dlhwc.compiler.estimate import estimate
from dlhwc.compiler.pipeline import compile_for_target
from dlhwc.compiler.plugins import available_passes
from dlhwc.spec.eie.config import EIEConfig
from tests.test_cli import assert_user_error, dlhwc

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "examples" / "models" / "digits_mlp.onnx"
CALIB = ROOT / "examples" / "data" / "digits_calib.npz"
PIPELINE = (
    "prune{sparsity=0.9},share-weights{bits=4 zero-code=true},quantize{weight-bits=16 act-bits=16}"
)


def _blocks(err: str) -> dict[str, list[str]]:
    """The ledger blocks of stderr by pass name (the lines after each header)."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in err.splitlines():
        m = re.match(r"// -----// Ledger After (\S+) //----- //", line)
        if m:
            current = blocks.setdefault(m.group(1), [])
        elif current is not None:
            if not line:
                current = None
            else:
                current.append(line)
    return blocks


def _line(block: list[str], name: str) -> str:
    (line,) = [line for line in block if line.split()[0] == name]
    return line


def _cells(block: list[str], name: str) -> list[str]:
    """The row's cells, without the mark of a changed layer."""
    return [c for c in _line(block, name).split() if c != "*"]


def test_ledger_after_every_pass_with_the_estimate(capsys, tmp_path):
    out = tmp_path / "p.dlhw"
    plain = tmp_path / "plain.dlhw"
    args = ["compile", MLP, "--target", "eie", "-p", PIPELINE, "--calibration", CALIB]
    code, _, _ = dlhwc(capsys, *args, "-o", plain)
    assert code == 0
    code, stdout, err = dlhwc(capsys, *args, "-o", out, "--ledger-after-all")
    assert code == 0 and stdout == ""
    assert out.read_bytes() == plain.read_bytes()  # the flag changes no output
    blocks = _blocks(err)
    assert list(blocks) == [
        "import", "fold-constants", "prune", "share-weights", "quantize", "convert-onnx-to-eie",
    ]  # fmt: skip
    head = blocks["import"][0].split()
    assert head[:3] == ["layer", "stage", "weights"] and head[-3:] == ["cycles", "est.", "nJ"]
    assert blocks["fold-constants"][-1] == "change: none"
    assert blocks["convert-onnx-to-eie"] == [
        "no onnx/comp weights left: they are in the target's ops now"
    ]
    # prune: every layer changed (marked), non-zeros fell by 90%, and so did the estimate
    prune = blocks["prune"]
    assert _line(prune, "fc1").startswith("fc1 *  pruned")
    assert not _line(blocks["fold-constants"], "fc1").startswith("fc1 *")
    assert "non-zeros 50,200 -> 5,020 (-90.0%)" in prune[-1]
    assert "est. cycles" in prune[-1]
    # share-weights changes bits, not non-zeros or cycles
    share = blocks["share-weights"][-1]
    assert "non-zeros" not in share and "est. cycles" not in share and "P+Q B" in share

    # The last compression block has the figures `--report` computes, in bytes.
    comp = compile_for_target(str(MLP), "eie", PIPELINE, available_passes(), "comp")
    table = ledger(comp)
    rows = {r.name: r for r in table.rows}
    for name, row in rows.items():
        cells = _cells(blocks["quantize"], name)
        assert cells[1:4] == [row.stage, f"{row.weights:,}", f"{row.kept:,}"]
        assert cells[4:6] == [f"{row.bits_per_weight_pq:.2f}", f"{row.bits_per_weight_pqh:.2f}"]
        pq = -(-row.compressed_pq // 8)
        assert cells[6:9] == [f"{-(-row.original // 8):,}", f"{pq:,}",
                              f"{-(-row.compressed_pqh // 8):,}"]  # fmt: skip
        assert cells[9] == f"{estimate(comp, 'eie', EIEConfig())[name].cycles:,}"
    total = _cells(blocks["quantize"], "total")
    assert total[1:3] == [f"{table.total.weights:,}", f"{table.total.kept:,}"]
    assert total[6] == f"{-(-table.total.compressed_pq // 8):,}"


def test_ledger_without_a_target_has_no_estimate(capsys, tmp_path):
    code, stdout, err = dlhwc(capsys, "compile", MLP, "-p", "prune{sparsity=0.5}",
                              "--ledger-after-all")  # fmt: skip
    assert code == 0
    code2, stdout2, _ = dlhwc(capsys, "compile", MLP, "-p", "prune{sparsity=0.5}")
    assert stdout == stdout2  # the IR on stdout is the same
    blocks = _blocks(err)
    assert list(blocks) == ["import", "prune"]
    assert blocks["import"][0].split()[-1] == "B"  # no estimate columns
    assert "non-zeros 50,200 -> 25,100 (-50.0%)" in blocks["prune"][-1]


def test_opt_prints_the_ledger_and_timing_after_parse(capsys, tmp_path):
    ir = tmp_path / "m.mlir"
    assert dlhwc(capsys, "compile", MLP, "-o", ir)[0] == 0
    code, plain, _ = dlhwc(capsys, "opt", ir, "-p", "prune{sparsity=0.7}")
    code, stdout, err = dlhwc(capsys, "opt", ir, "-p", "prune{sparsity=0.7}",
                              "--ledger-after-all", "--time-passes")  # fmt: skip
    assert code == 0 and stdout == plain
    assert list(_blocks(err)) == ["parse", "prune"]
    names = _timing_rows(err)
    assert names[:4] == ["load modules", "parse", "prune", "output"]


def _timing_rows(err: str) -> list[str]:
    rows = re.findall(r"^\s+\d+\.\d{4} \(\s*\d+\.\d%\)  (.+)$", err, re.M)
    assert rows[-1] == "Total"
    return rows


def test_time_passes_table(capsys, tmp_path):
    out = tmp_path / "p.dlhw"
    args = ["compile", MLP, "--target", "eie", "-p", PIPELINE, "--calibration", CALIB, "-o", out]
    code, _, err = dlhwc(capsys, *args, "--time-passes", "--print-ir-after-all")
    assert code == 0
    assert "... Execution time report ..." in err
    assert re.search(r"Total Execution Time: \d+\.\d{4} seconds", err)
    rows = _timing_rows(err)
    assert rows == [
        "load modules", "import", "fold-constants", "prune", "share-weights", "quantize",
        "convert-onnx-to-eie", "encode the eie program", "output",
        "after-pass output (--print-ir-after-all, --ledger-after-all)",
        "(rest: option checks, messages)", "Total",
    ]  # fmt: skip
    seconds = [float(s) for s in re.findall(r"^\s+(\d+\.\d{4}) \(", err, re.M)]
    assert sum(seconds[:-1]) == pytest.approx(seconds[-1], abs=1e-3)
    assert err.index("IR Dump After quantize") < err.index("Execution time report")


def test_time_passes_without_target(capsys):
    code, stdout, err = dlhwc(capsys, "compile", MLP, "-p", "prune{sparsity=0.5}", "--time-passes")
    assert code == 0 and stdout.startswith("builtin.module")
    assert _timing_rows(err)[:4] == ["load modules", "import", "prune", "output"]


def test_ledger_with_a_bad_hardware_config_is_one_error(capsys, tmp_path):
    hw = tmp_path / "hw.toml"
    hw.write_text("num_pes = 0\n")
    out = tmp_path / "p.dlhw"
    argv = ["compile", MLP, "--target", "eie", "--hw", hw, "-o", out, "--ledger-after-all"]
    assert_user_error(capsys, argv, "hw.toml", "num_pes must be in", output=out)
