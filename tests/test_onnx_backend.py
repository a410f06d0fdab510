"""The ONNX backend node tests of every dedicated op, run on the numpy kernels through
`KernelBackend` (every op by itself; tests/test_onnx_backend_suite.py runs the whole
suite through `DlhwcBackend`, whose regions run in onnxruntime).

onnx 1.23.2 generates its node test cases in memory from `onnx.backend.test.case.node`
(the wheel ships no node data files). `BackendTest` turns each into a unittest method
`test_<case>_<device>` that imports the one-node model with dlhwc's importer and runs it in
the reference interpreter; only the CPU variants of the cases selected by `INCLUDE` and
not skipped by `EXCLUDE` run here.

The importer sends any node it cannot represent as a dedicated op to onnxruntime as a
generic `onnx.Node`, which would make those tests pass without touching the numpy
kernels, so `test_imports_dedicated_op` checks that every selected case imports as the
dedicated op under test and no `onnx.Node`, except for `GENERIC_BY_DESIGN`.
"""

import re
import warnings

import onnx.backend.test
import pytest
from onnx.backend.test.loader import load_model_tests

from dlhwc.compiler.frontend.onnx_importer import import_model
from dlhwc.dialects import onnx as onnx_d
from dlhwc.runtime.onnx_backend import KernelBackend

# The node test names of each dedicated op: what follows "test_" and precedes "_cpu".
# Each is written so that similarly named tests of other operators stay out.
DEDICATED_TESTS = {
    "Gemm": r"gemm_\w+",
    "MatMul": r"matmul_\w+",  # not test_matmulinteger
    "Add": r"add(_\w+)?",
    "Sub": r"sub(_\w+)?",
    "Mul": r"mul(_\w+)?",
    "Div": r"div(_\w+)?",
    "Relu": r"relu",  # test_relu_expanded_ver18 has no Relu node
    "Sigmoid": r"sigmoid(_example)?",  # not test_hardsigmoid
    "Tanh": r"tanh(_example)?",  # not test_atanh, test_gelu_tanh
    "Softmax": r"softmax_(?!cross_entropy)\w+",  # not test_sce_* / softmax_cross_entropy
    "LogSoftmax": r"logsoftmax_\w+",
    "Flatten": r"flatten_\w+",
    "Reshape": r"reshape_\w+",
    "Transpose": r"transpose_\w+",  # not test_convtranspose, test_einsum_transpose
    "Squeeze": r"squeeze(_\w+)?",
    "Unsqueeze": r"unsqueeze_\w+",
    "Concat": r"concat_\w+",  # not test_concatfromsequence, test_string_concat
    "Gather": r"gather_(?!elements)\w+",  # not test_gather_elements_*, test_gathernd_*
    "Slice": r"slice(_\w+)?",
    "Shape": r"shape(_\w+)?",
    "Expand": r"expand_dim_\w+",
    "Constant": r"constant",  # not test_constant_pad* (Pad)
    "ConstantOfShape": r"constantofshape_\w+",
    "Identity": r"identity(_\w+)?",
    "Dropout": r"(training_)?dropout(_\w+)?",
    "Cast": r"cast_\w+",  # not test_castlike_*
    "LSTM": r"lstm_\w+",
    "GRU": r"gru_\w+",
    "RNN": r"(simple_)?rnn_\w+",
}
# The `_expanded` variants (Softmax, LogSoftmax, Relu) replace the op by its function body.
INCLUDE = {op: rf"^test_(?!\w*_expanded)(?:{p})_cpu$" for op, p in DEDICATED_TESTS.items()}

# Cases that cannot pass, with the reason.
EXCLUDE = {
    # training-mode Dropout is random; the interpreter refuses it by design
    r"^test_training_dropout": "training mode",
    # sequence / optional values: the interpreter's inputs and outputs are tensors
    r"^test_identity_(opt|sequence)_": "non-tensor values",
    # the Cast kernel refuses float8 targets by design (astype ignores ONNX's saturation)
    r"^test_cast_(no_saturate_)?FLOAT(16)?_to_FLOAT8E[45]": "float8 target",
    # Cast with round_mode is generic (see below) and onnxruntime's Python API cannot
    # return FLOAT8E8M0 tensors
    r"^test_cast_e8m0_FLOAT(16)?_to_FLOAT8E8M0": "float8e8m0 target",
}

# Selected cases the importer deliberately imports as a generic onnx.Node, with why.
# The importer's other fallbacks have no node test in onnx 1.23.2 (its Softmax tests are
# opset 13); tests/test_differential.py checks old-opset Softmax / LogSoftmax with
# axis != last and Dropout < 12 with a mask output.
GENERIC_BY_DESIGN = {
    "test_cast_e8m0_FLOAT_to_FLOAT8E8M0": "Cast's round_mode is not an onnx.Cast property",
    "test_cast_e8m0_FLOAT16_to_FLOAT8E8M0": "Cast's round_mode is not an onnx.Cast property",
}

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the case generators overflow casts on purpose
    backend_test = onnx.backend.test.BackendTest(KernelBackend, __name__)
for _pattern in INCLUDE.values():
    backend_test.include(_pattern)
for _pattern in EXCLUDE:
    backend_test.exclude(_pattern)

OnnxBackendNodeModelTest = backend_test.test_cases["OnnxBackendNodeModelTest"]
# Drop what the include patterns leave out (every other node test and the CUDA variants),
# which BackendTest would otherwise report as thousands of skipped tests.
_INCLUDED = [re.compile(p) for p in INCLUDE.values()]
for _name in [n for n in vars(OnnxBackendNodeModelTest) if n.startswith("test_")]:
    if not any(p.search(_name) for p in _INCLUDED):
        delattr(OnnxBackendNodeModelTest, _name)


def _op_under_test(case_name: str) -> str | None:
    for op, pattern in INCLUDE.items():
        if re.search(pattern, f"{case_name}_cpu"):
            return op
    return None


NODE_CASES = {c.name: c for c in load_model_tests(kind="node") if _op_under_test(c.name)}


def test_selection():
    """Every dedicated op has node tests, look-alike operators' tests are left out, and the
    exclusions and fallbacks name selected cases."""
    ops = {_op_under_test(name) for name in NODE_CASES}
    assert ops == set(onnx_d.OPS_BY_TYPE)
    for pattern in EXCLUDE:
        assert any(re.search(pattern, f"{name}_cpu") for name in NODE_CASES), pattern
    assert set(GENERIC_BY_DESIGN) <= set(NODE_CASES)
    look_alikes = {
        "test_gather_elements_0",
        "test_gathernd_example_float32",
        "test_matmulinteger",
        "test_constant_pad",
        "test_castlike_FLOAT_to_DOUBLE",
        "test_softmax_axis_0_expanded",
        "test_relu_expanded_ver18",
        "test_hardsigmoid",
        "test_atanh",
        "test_convtranspose",
    }
    assert look_alikes <= {c.name for c in load_model_tests(kind="node")}
    assert not look_alikes & set(NODE_CASES)


@pytest.mark.parametrize("name", sorted(NODE_CASES))
def test_imports_dedicated_op(name):
    module = import_model(NODE_CASES[name].model)
    generic = [op.onnx_type for op in module.walk() if isinstance(op, onnx_d.NodeOp)]
    if name in GENERIC_BY_DESIGN:
        assert generic, f"{name} no longer falls back: remove it from GENERIC_BY_DESIGN"
        return
    assert not generic
    op_name = onnx_d.OPS_BY_TYPE[_op_under_test(name)].name
    assert op_name in {op.name for op in module.walk()}
