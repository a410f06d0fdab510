"""Runs each benchmark script at a tiny size so the scripts keep working.

Timings are not checked here (they mean nothing at this size); only that the script
runs to the end and that what it checks for correctness holds.
"""

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
