"""The whole ONNX backend suite through `DlhwcBackend`: every CPU case of the node, simple,
pytorch-converted, pytorch-operator and real categories (onnx 1.23.2 ships the real
category's networks as its light models, so nothing is downloaded).

The only cases left out are those onnxruntime itself fails on this machine, each with
onnxruntime's reason (tests/onnx_backend_exclusions.py, written by
benchmarks/onnx_backend_parity.py, which runs both backends side by side). dlhwc passes
some cases onnxruntime fails (batch-first recurrent layers run on the numpy kernels,
models older than onnxruntime's kernels are upgraded at import); those stay in.
"""

import re
import warnings

import onnx.backend.test

from dlhwc.runtime.onnx_backend import DlhwcBackend
from tests.onnx_backend_exclusions import EXCLUDED

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the case generators overflow casts on purpose
    backend_test = onnx.backend.test.BackendTest(DlhwcBackend, __name__)
backend_test.include(r"_cpu$")
for _name in EXCLUDED:
    backend_test.exclude(f"^{re.escape(_name)}$")

CATEGORIES = (
    "OnnxBackendNodeModelTest",
    "OnnxBackendSimpleModelTest",
    "OnnxBackendPyTorchConvertedModelTest",
    "OnnxBackendPyTorchOperatorModelTest",
    "OnnxBackendRealModelTest",
)
ALL_CASES: set[str] = set()
for _category in CATEGORIES:
    _cls = backend_test.test_cases[_category]
    ALL_CASES.update(n for n in vars(_cls) if n.endswith("_cpu"))
    # Drop the CUDA variants and the exclusions, which BackendTest would otherwise
    # report as skipped tests by the hundred.
    for _name in [n for n in vars(_cls) if n.startswith("test_")]:
        if not _name.endswith("_cpu") or _name in EXCLUDED:
            delattr(_cls, _name)
    globals()[_category] = _cls


def test_every_category_runs():
    """Each category has cases, and the exclusions name cases of the suite."""
    for category in CATEGORIES:
        assert [n for n in vars(globals()[category]) if n.startswith("test_")], category
    assert set(EXCLUDED) <= ALL_CASES
    assert all(reason.startswith("onnxruntime") for reason in EXCLUDED.values())
