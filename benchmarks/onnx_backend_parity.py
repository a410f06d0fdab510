"""The whole ONNX backend suite through dlhwc and through onnxruntime, side by side.

    .venv/bin/python benchmarks/onnx_backend_parity.py [--include REGEX]
        [--write-exclusions tests/onnx_backend_exclusions.py] [--strict]

Runs every CPU case of onnx's backend test suite (`onnx.backend.test.BackendTest`: the
node, simple, pytorch-converted, pytorch-operator and real categories, no include
filter) twice in this process: through `onnxruntime.backend` (the baseline) and through
`runtime.onnx_backend.DlhwcBackend` (dlhwc's importer and reference interpreter). It
prints, per category, the cases each passes and the wall time of each run, then every
case onnxruntime passes and dlhwc does not (parity means there are none) and the cases
dlhwc passes and onnxruntime does not.

`--write-exclusions FILE` writes the cases both fail, each with the reason onnxruntime
gives, as the `EXCLUDED` table tests/test_onnx_backend_suite.py skips (the only cases
the default test run leaves out). Exit status 0 unless --strict is given and a case
onnxruntime passes fails through dlhwc.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import unittest
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CATEGORIES = {
    "OnnxBackendNodeModelTest": "node",
    "OnnxBackendSimpleModelTest": "simple",
    "OnnxBackendPyTorchConvertedModelTest": "pytorch-converted",
    "OnnxBackendPyTorchOperatorModelTest": "pytorch-operator",
    "OnnxBackendRealModelTest": "real",
}


class _Result(unittest.TestResult):
    """Each case's outcome: "pass", or the first line of its failure."""

    def __init__(self) -> None:
        super().__init__()
        self.status: dict[str, tuple[str, str]] = {}  # case -> (category, outcome)

    def _set(self, test, outcome: str) -> None:
        category = CATEGORIES.get(type(test).__name__, type(test).__name__)
        self.status[test.id().rsplit(".", 1)[-1]] = (category, outcome)

    def addSuccess(self, test) -> None:
        self._set(test, "pass")

    def addFailure(self, test, err) -> None:
        self._set(test, "fail: " + " ".join(str(err[1]).split()))

    def addError(self, test, err) -> None:
        self._set(test, f"error: {type(err[1]).__name__}: " + " ".join(str(err[1]).split()))

    def addSkip(self, test, reason) -> None:
        pass


def run_suite(backend, include: str) -> tuple[dict[str, tuple[str, str]], float]:
    """(case -> (category, outcome), seconds) of every CPU case through ``backend``."""
    import onnx.backend.test

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the case generators overflow casts on purpose
        backend_test = onnx.backend.test.BackendTest(backend, __name__)
        backend_test.include(include)
        suite = unittest.TestSuite()
        for cls in backend_test.test_cases.values():
            suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(cls))
        result = _Result()
        start = time.perf_counter()
        suite.run(result)
    return result.status, time.perf_counter() - start


def reason(outcome: str) -> str:
    """Why onnxruntime fails a case, in a few words, from its message."""
    patterns = [
        (r"Could not find an implementation for (\w+)\((\d+)\)",
         r"onnxruntime has no CPU kernel for \1 (opset \2)"),
        (r"Failed to find kernel for (\w+)\((\d+)\)",
         r"onnxruntime has no CPU kernel for \1 (opset \2)"),
        (r"Fatal error: ([\w.]+):(\w+)\(", r"onnxruntime does not implement \1:\2"),
        (r"No corresponding Numpy type for Tensor Type\. (\w+)",
         r"onnxruntime's Python API cannot return \1 tensors"),
        (r"Numpy_type (\d+) can't be converted",
         r"onnxruntime's Python API cannot take numpy type \1 (ml_dtypes)"),
        (r"layout_ == 0 was false", "onnxruntime has no batch-first (layout=1) recurrent layers"),
        (r"^fail: (Not equal to tolerance|\nNot equal)",
         "onnxruntime's result differs from the reference beyond the suite's tolerance"),
        (r"^fail: Items are not equal: ACTUAL: dtype\('(\w+)'\) DESIRED: dtype\((\w+)\)",
         r"onnxruntime returns \1 where the reference has \2"),
        (r"Non per-tensor quantization is not supported",
         "onnxruntime has no per-channel ConvInteger"),
    ]  # fmt: skip
    for pattern, text in patterns:
        match = re.search(pattern, outcome)
        if match:
            return match.expand(text)
    return "onnxruntime fails it: " + outcome.removeprefix("error: ")[:120]


def write_exclusions(path: Path, ort: dict, dlhwc: dict) -> int:
    both = sorted(k for k, (_, o) in ort.items() if o != "pass" and dlhwc[k][1] != "pass")
    lines = [
        '"""The ONNX backend cases the default test run leaves out: onnxruntime fails each',
        "(with the reason given), and so does dlhwc. Written by",
        "benchmarks/onnx_backend_parity.py --write-exclusions; onnx 1.23.2, onnxruntime 1.32.0.",
        '"""',
        "",
        "EXCLUDED = {",
    ]
    lines += [f"    {k!r}: {reason(ort[k][1])!r}," for k in both]
    lines += ["}", ""]
    path.write_text("\n".join(lines))
    return len(both)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--include", default=r"_cpu$", help="regex of the cases to run")
    ap.add_argument("--write-exclusions", metavar="FILE", type=Path)
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args()

    import onnxruntime.backend

    from dlhwc.runtime.onnx_backend import DlhwcBackend

    ort, ort_time = run_suite(onnxruntime.backend, args.include)
    dlhwc, dlhwc_time = run_suite(DlhwcBackend, args.include)
    print(f"{'category':18} {'cases':>6} {'onnxruntime':>12} {'dlhwc':>6}")
    for category in CATEGORIES.values():
        cases = [k for k, (c, _) in ort.items() if c == category]
        o = sum(ort[k][1] == "pass" for k in cases)
        d = sum(dlhwc[k][1] == "pass" for k in cases)
        print(f"{category:18} {len(cases):6} {o:12} {d:6}")
    o = sum(v == "pass" for _, v in ort.values())
    d = sum(v == "pass" for _, v in dlhwc.values())
    print(f"{'all':18} {len(ort):6} {o:12} {d:6}")
    print(f"time: onnxruntime {ort_time:.1f} s, dlhwc {dlhwc_time:.1f} s "
          f"({dlhwc_time / ort_time:.2f}x)")  # fmt: skip
    missing = sorted(k for k, (_, v) in ort.items() if v == "pass" and dlhwc[k][1] != "pass")
    extra = sorted(k for k, (_, v) in dlhwc.items() if v == "pass" and ort[k][1] != "pass")
    print(f"\nonnxruntime passes, dlhwc fails: {len(missing)}")
    for k in missing:
        print(f"  {k}: {dlhwc[k][1][:200]}")
    print(f"dlhwc passes, onnxruntime fails: {len(extra)}")
    for k in extra:
        print(f"  {k}: {reason(ort[k][1])}")
    if args.write_exclusions:
        n = write_exclusions(args.write_exclusions, ort, dlhwc)
        print(f"\nwrote {n} exclusions to {args.write_exclusions}")
    return 1 if args.strict and missing else 0


if __name__ == "__main__":
    sys.exit(main())
