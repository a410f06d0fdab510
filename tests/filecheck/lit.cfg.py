"""lit configuration for dlhwc's FileCheck tests.

Run with `lit tests/filecheck` (or `pytest tests/test_lit.py`). RUN lines call `dlhwc` and
`filecheck` from the virtualenv of the Python that runs lit, whatever PATH says, and use
`%models` (tests/models/exported) and `%examples` (examples) for the committed models.
"""

# ruff: noqa: F821 - lit provides `config`

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import lit.formats

config.name = "dlhwc"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".test"]

here = Path(__file__).resolve().parent
repo = here.parent.parent
config.test_source_root = str(here)
# lit's Output/ directories go to a temporary directory, not into the source tree.
tag = hashlib.sha1(str(here).encode()).hexdigest()[:12]
config.test_exec_root = os.path.join(tempfile.gettempdir(), f"dlhwc-lit-{tag}")

# The venv's bin directory first, so that `dlhwc` and `filecheck` are the venv's.
bindir = os.path.dirname(sys.executable)
config.environment["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
for var in ("HOME", "TMPDIR", "PYTHONPATH"):
    if var in os.environ:
        config.environment[var] = os.environ[var]

config.substitutions.append(("%models", str(repo / "tests" / "models" / "exported")))
config.substitutions.append(("%examples", str(repo / "examples")))
