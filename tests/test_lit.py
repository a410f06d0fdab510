"""Runs the lit + FileCheck suite in tests/filecheck, so that `pytest` runs it too."""

import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parent / "filecheck"


def test_lit_suite():
    # lit has no `python -m lit`; its console script is `lit.main:main`.
    result = subprocess.run(
        [sys.executable, "-c", "from lit.main import main; main()", "-sv", str(SUITE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"lit failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
