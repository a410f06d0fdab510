"""Runs each benchmark script at a tiny size so the scripts keep working.

Timings are not checked here (they mean nothing at this size); only that the script
runs to the end and that what it checks for correctness holds.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
def test_bench_frontend_runs_at_tiny_size(tmp_path):
    # 512x256 = 131072 weights: above the importer's large-initializer threshold (65536),
    # so the path that hides big weights from the checker and shape inference is taken.
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_frontend.py"),
            "--rows",
            "512",
            "--cols",
            "256",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for row in (
        "onnx.load (baseline)",
        "dlhwc import",
        "elided dump",
        "save full IR (hex)",
        "parse back (read + parse)",
        "dlhwc --help",
        "python -c pass",
        "peak RSS",
    ):
        assert row in out, f"missing row {row!r} in:\n{out}"
    assert "byte-identical" in out, out
    assert out.count("PASS") + out.count("MISS") >= 3, out
    assert (tmp_path / "fc6.onnx").is_file() and (tmp_path / "fc6.mlir").is_file()


@pytest.mark.slow
def test_bench_compression_runs_at_tiny_size():
    # 2048x512 = 1M weights: every pass, the ledger and both k-means comparisons run.
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_compression.py"),
            "--rows",
            "2048",
            "--cols",
            "512",
            "--kmeans-repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for row in (
        "  prune",
        "  share-weights",
        "  huffman",
        "passes total",
        "peak RSS increase during the passes",
        "absolute peak RSS",
        "Compression ledger, total row",
        "linear init",
        "density init",
        "speed ratio",
    ):
        assert row in out, f"missing row {row!r} in:\n{out}"
    # Correctness checks hold at any size: the density of the mask, the pass's codebook.
    assert "round(0.04 x 1,048,576): yes" in out, out
    assert re.search(r"pass codebook = kmeans_1d\(survivors, linear init\)\s+yes", out), out
    assert out.count("PASS") + out.count("MISS") >= 4, out


@pytest.mark.slow
def test_bench_kmeans_runs_at_small_size():
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_kmeans.py"), "--n", "100000", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for row in ("dlhwc kmeans_1d", "scikit-learn KMeans lloyd", "speed ratio", "checks pass"):
        assert row in out, f"missing row {row!r} in:\n{out}"
    assert "max relative centroid difference" in out, out


@pytest.mark.slow
def test_bench_eie_runs_at_tiny_size():
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_eie.py"), "--layers", "NT-LSTM,Alex-8",
         "--scale", "0.1", "--vectors", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "NT-LSTM" in proc.stdout and "FIFO depth:" in proc.stdout
    assert "Simulation speed" in proc.stdout


@pytest.mark.slow
def test_bench_ese_runs_at_tiny_size():
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_ese.py"), "--hidden", "32", "--input", "8",
         "--steps", "4", "--sequences", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "balance-aware" in proc.stdout and "yes" in proc.stdout


@pytest.mark.slow
def test_bench_vgg_runs_at_tiny_size(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_vgg.py"), "--scale", "0.0625", "--vectors", "2",
         "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for row in ("compile --target eie", "compile peak RSS", "simulation peak RSS", "on eie:"):
        assert row in proc.stdout, f"missing row {row!r} in:\n{proc.stdout}"


@pytest.mark.slow
def test_fuzz_malformed_runs_at_tiny_size(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "fuzz_malformed.py"), "--per-category", "3",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "27 cases, oracle: PASS" in proc.stdout


@pytest.mark.slow
def test_bench_interpreter_runs_at_tiny_size():
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_interpreter.py"), "--repeat", "1",
         "--rows", "20000"],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for row in ("ResNet-50 (light)", "DenseNet-121 (light)", "digits MLP", "digits LSTM"):
        assert re.search(rf"^{re.escape(row)}.*(PASS|MISS)$", proc.stdout, re.M), row
    assert proc.stdout.count("overhead growth") == 2
