"""The compression ledger: definitions, totals, stages, the digits MLP, and the CLI."""

import json

import numpy as np
import pytest

from dlhwc.compiler.cli import main
from dlhwc.compiler.compression.huffman import code_lengths, huffman_bits
from dlhwc.compiler.compression.ledger import LedgerRow, ledger
from dlhwc.compiler.frontend.onnx_importer import import_file
from dlhwc.compiler.passes.weights import find_weights
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
from dlhwc.compiler.plugins import available_passes
from dlhwc.spec.encoding import encode_sparse

MLP = "examples/models/digits_mlp.onnx"
LSTM = "examples/models/digits_lstm.onnx"
COUNTS = ("weights", "biases", "kept", "entries", "fillers", "index_q", "position_q",
          "index_h", "position_h", "codebook", "pointers", "tables", "bias_bits",
          "original")  # fmt: skip
FULL = "prune{sparsity=0.9},share-weights{bits=4},huffman"


def run(spec: str, path: str = MLP):
    module = import_file(path)
    if spec:
        apply_passes(module, parse_pipeline(spec, available_passes()))
    return module


@pytest.fixture(scope="module")
def full():
    return run(FULL)


@pytest.mark.parametrize(
    "spec",
    ["", "prune{sparsity=0.9}", "quantize{weight-bits=8}", "prune{sparsity=0.9},share-weights",
     FULL, "prune{sparsity=0.9},share-weights,quantize{weight-bits=8},huffman{pes=4}"],
)  # fmt: skip
def test_totals_are_the_sums_of_the_rows(spec):
    table = ledger(run(spec))
    assert [r.name for r in table.rows] == ["fc1", "fc2", "fc3"]
    for key in COUNTS:
        assert getattr(table.total, key) == sum(getattr(r, key) for r in table.rows), key
    t = table.total
    assert t.compressed_pqh == sum(r.compressed_pqh for r in table.rows)
    assert t.rate_pqh == pytest.approx(t.original / t.compressed_pqh)
    assert t.weights == 64 * 300 + 300 * 100 + 100 * 10 and t.biases == 410


def test_raw_model_is_dense_32_bit():
    table = ledger(run(""))
    for r in table.rows:
        assert (r.stage, r.layout) == ("raw", "dense")
        assert r.bits_per_weight_pq == r.bits_per_weight_pqh == 32.0
        assert r.density == 1.0 and r.pointers == r.position_q == 0
    assert table.total.rate_pq == table.total.rate_pqh == 1.0


def test_shared_row_definitions(full):
    table = ledger(full)
    slot = find_weights(full, "matrix")[1]  # fc2: [100 rows, 300 cols]
    row = table.rows[1]
    w = slot.source
    enc = encode_sparse(slot.to_rows(w.mask_array())[0], slot.to_rows(w.indices_array())[0])
    assert (row.stage, row.layout, row.pes, row.run_bits) == ("huffman", "sparse", 1, 4)
    assert row.kept == enc.nonzeros == int(w.mask_array().sum())
    assert row.entries == enc.entries and row.fillers == enc.fillers
    assert row.index_q == enc.entries * 4 and row.position_q == enc.entries * 4
    assert row.codebook == 16 * 32
    assert row.pointers == 1 * (300 + 1) * 16
    index_code = np.array(w.index_code.get_values())
    run_code = np.array(w.run_code.get_values())
    assert row.index_h == huffman_bits(np.bincount(enc.v, minlength=16), index_code)
    assert row.position_h == huffman_bits(np.bincount(enc.z, minlength=16), run_code)
    longest = max(index_code.max(), run_code.max())
    assert row.tables == (16 + 16) * max(5, int(longest).bit_length())
    assert row.bias_bits == 100 * 32 and row.original == 32 * (30000 + 100)
    assert row.bits_per_weight_pq == pytest.approx(
        (row.index_q + row.position_q + row.codebook + row.pointers) / row.kept
    )
    assert row.bits_per_weight_pqh == pytest.approx(
        (row.index_h + row.position_h + row.codebook + row.pointers + row.tables) / row.kept
    )
    assert row.compressed_pq == row.index_q + row.position_q + row.codebook + row.pointers + (
        row.bias_bits
    )
    assert row.rate_pqh == pytest.approx(row.original / row.compressed_pqh)
    assert row.percent_pqh == pytest.approx(100 / row.rate_pqh)


def test_other_pes_than_the_stored_code_recomputes(full):
    row = ledger(full, pes=8, pointer_bits=20).rows[0]  # fc1: [300, 64]
    slot = find_weights(full, "matrix")[0]
    w = slot.source
    enc = encode_sparse(w.mask_array(), w.indices_array(), pes=8)
    assert (row.stage, row.pes) == ("shared", 8)
    assert row.entries == enc.entries and row.pointers == 8 * 65 * 20
    counts = np.bincount(enc.v, minlength=16)
    assert row.index_h == huffman_bits(counts, code_lengths(counts))


def test_shared_without_huffman_estimates_the_code():
    table = ledger(run("prune{sparsity=0.9},share-weights"))
    assert {r.stage for r in table.rows} == {"shared"}
    assert table.total.index_h < table.total.index_q
    assert table.total.tables > 0


def test_pruned_only_layouts():
    table = ledger(run("prune{sparsity=0.9}"))
    for r in table.rows:
        assert (r.stage, r.layout) == ("pruned", "sparse")
        assert r.index_q == r.entries * 32 and r.position_q == r.entries * 4
        assert r.index_h == r.index_q and r.position_h == r.position_q and r.tables == 0
        assert r.codebook == 0 and r.pointers > 0
    # quantized but not pruned: stored dense at the format's width, biases too
    table = ledger(run("quantize{weight-bits=8}"))
    for r in table.rows:
        assert (r.stage, r.layout) == ("pruned", "dense")
        assert r.index_q == r.weights * 8 and r.pointers == r.position_q == 0
        assert r.bias_bits == r.biases * 8
    assert table.total.rate_pq == pytest.approx(4.0)
    kinds = {q["kind"] for q in table.quantization}
    assert kinds == {"weight", "bias", "activation"}


def test_quantized_codebook_width():
    table = ledger(run("prune{sparsity=0.9},share-weights,quantize{weight-bits=8}"))
    assert all(r.codebook == 16 * 8 for r in table.rows)


def test_digits_mlp_rates_are_plausible(full):
    """LeNet-300-100's shape on 8x8 digits, 10% density, 4-bit: Deep Compression reports
    40x on LeNet-300-100 (784 inputs, biases negligible); this smaller model pays more
    for pointers and its 32-bit biases."""
    t = ledger(full).total
    print(f"\ndigits MLP P+Q {t.rate_pq:.1f}x, P+Q+H {t.rate_pqh:.1f}x, "
          f"{t.bits_per_weight_pqh:.2f} bits/weight")  # fmt: skip
    assert t.density == pytest.approx(0.1, abs=0.001)
    assert 15 < t.rate_pq < t.rate_pqh < 45
    assert 8 < t.bits_per_weight_pqh < t.bits_per_weight_pq < 14


def test_lstm_rows_and_biases():
    table = ledger(run("prune{sparsity=0.8},share-weights{bits=4}", LSTM))
    names = [r.name for r in table.rows]
    assert names == ["lstm:lstm.W", "lstm:lstm.R", "fc"]
    assert table.rows[0].biases == 512 and table.rows[1].biases == 0
    assert table.rows[1].weights == 256 * 64


def test_json_and_table(full):
    table = ledger(full)
    data = json.loads(json.dumps(table.to_json()))
    assert set(data) == {"settings", "rows", "total", "quantization"}
    assert data["settings"] == {"pes": None, "run_bits": None, "pointer_bits": 16}
    row = data["rows"][0]
    for key in (*COUNTS, "name", "stage", "density", "bits_per_weight_pq", "bits_per_weight_pqh",
                "index_bits_q", "index_bits_h", "position_bits_q", "position_bits_h",
                "rate_pq", "rate_pqh", "percent_pq", "percent_pqh"):  # fmt: skip
        assert key in row, key
    assert data["total"]["name"] == "total"
    text = table.format_table()
    lines = text.splitlines()
    assert lines[0].startswith("Compression ledger")
    assert any(line.startswith("fc1 ") for line in lines)
    assert any(line.startswith("total ") for line in lines)


def test_empty_row_ratios_are_none():
    row = LedgerRow(name="x")
    assert row.density is None and row.rate_pq is None and row.bits_per_weight_pqh is None


# -- the command line ---------------------------------------------------------------------


def test_cli_report_after_the_ir(capsys):
    assert main(["compile", MLP, "-p", FULL, "--emit", "comp", "--report"]) == 0
    out = capsys.readouterr().out
    ir, _, table = out.partition("Compression ledger")
    assert "comp.weight" in ir and table
    assert "total" in table and "rate P+Q+H" in table


def test_cli_report_json_and_output(tmp_path, capsys):
    out_ir = tmp_path / "m.mlir"
    out_json = tmp_path / "ledger.json"
    argv = ["compile", MLP, "-p", FULL, "--emit", "comp", "-o", str(out_ir), "--report",
            "--report-json", str(out_json)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("Compression ledger")
    data = json.loads(out_json.read_text())
    assert set(data) == {"settings", "rows", "total", "quantization"}
    assert [r["name"] for r in data["rows"]] == ["fc1", "fc2", "fc3"]
    # opt reads the saved IR back and reports the same ledger
    again = tmp_path / "again.json"
    assert main(["opt", str(out_ir), "--report-json", str(again), "-o", str(tmp_path / "x")]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(again.read_text()) == data


def test_cli_report_json_bad_directory(tmp_path, capsys):
    argv = ["compile", MLP, "--report-json", str(tmp_path / "missing" / "l.json"), "-o",
            str(tmp_path / "m.mlir")]  # fmt: skip
    assert main(argv) == 1
    assert "output directory does not exist" in capsys.readouterr().err
