"""Differential tests of the reference ONNX kernels against onnxruntime and ONNX's node tests.

Each differential case builds a one-node model, runs it in onnxruntime and compares the result
with the kernel called directly: dtype and shape must match exactly, values within 1e-6 for
floats and exactly otherwise. The ONNX backend node cases are replayed straight against the
kernels.
"""

import importlib
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper, numpy_helper

from dlhwc.compiler.interpreters.onnx_ops import Dropout
from dlhwc.compiler.interpreters.registry import KERNELS

OPSET = 21
RNG = np.random.default_rng(0)
F32 = np.float32
I64 = np.int64


def _assert_same(actual, expected, rtol=1e-6, atol=1e-6, where=""):
    assert isinstance(actual, np.ndarray), f"{where}: kernel returned {type(actual)}"
    assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{where}: shape {actual.shape} != {expected.shape}"
    if expected.dtype.kind in "fc":
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
    elif expected.dtype.kind == "V":
        # ml_dtypes types (bfloat16, int4, float8): every value is exact in float32.
        np.testing.assert_array_equal(actual.astype(F32), expected.astype(F32))
    else:
        np.testing.assert_array_equal(actual, expected)


def _run_ort(op, inputs, attrs, n_outputs, opset):
    # onnxruntime's Squeeze fails on an explicit "" axes input, so trailing omitted optional
    # inputs are dropped instead, which ONNX treats the same.
    while inputs and inputs[-1] is None:
        inputs = inputs[:-1]
    names = ["" if x is None else f"in{i}" for i, x in enumerate(inputs)]
    graph_inputs = [
        helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)
        for name, x in zip(names, inputs, strict=True)
        if x is not None
    ]
    # Untyped outputs let onnxruntime infer them, so the model states no expectation.
    outputs = [onnx.ValueInfoProto(name=f"out{i}") for i in range(n_outputs)]
    onnx_attrs = {
        k: numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v for k, v in attrs.items()
    }
    node = helper.make_node(op, names, [o.name for o in outputs], **onnx_attrs)
    graph = helper.make_graph([node], op, graph_inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {name: x for name, x in zip(names, inputs, strict=True) if x is not None}
    return session.run(None, feeds)


def check(op, inputs, attrs=None, n_outputs=1, opset=OPSET):
    """Run ``op`` in onnxruntime and through its kernel, and require identical results."""
    attrs = attrs or {}
    expected = _run_ort(op, inputs, attrs, n_outputs, opset)
    actual = KERNELS[op](*inputs, **attrs)
    assert isinstance(actual, tuple)
    assert len(actual) >= n_outputs
    for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
        _assert_same(a, e, where=f"{op} output {i}")


def rand(*shape, dtype=F32, low=-3, high=3):
    if np.issubdtype(dtype, np.integer):
        return np.asarray(RNG.integers(low, high + 1, size=shape), dtype=dtype)
    return np.asarray(RNG.uniform(low, high, size=shape), dtype=dtype)


# -- linear algebra ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "attrs"),
    [
        ((3, 4), (4, 5), {}),
        ((4, 3), (4, 5), {"transA": 1}),
        ((3, 4), (5, 4), {"transB": 1}),
        ((4, 3), (5, 4), {"transA": 1, "transB": 1, "alpha": 0.5}),
        ((1, 1), (1, 1), {"alpha": -2.0}),
    ],
)
@pytest.mark.parametrize(
    "c_shape", [None, (), (1,), (5,), (1, 5), (3, 1), (3, 5)], ids=lambda s: f"C{s}"
)
@pytest.mark.parametrize("beta", [1.0, 0.25])
def test_gemm(a_shape, b_shape, attrs, c_shape, beta):
    n = b_shape[0] if attrs.get("transB") else b_shape[1]
    m = a_shape[1] if attrs.get("transA") else a_shape[0]
    if c_shape is not None and len(c_shape) == 2:
        c_shape = (min(c_shape[0], m), min(c_shape[1], n))
    elif c_shape == (5,):
        c_shape = (n,)
    c = None if c_shape is None else rand(*c_shape)
    check("Gemm", [rand(*a_shape), rand(*b_shape), c], {**attrs, "beta": beta})


def test_gemm_integer_keeps_dtype():
    # onnxruntime has no integer Gemm, so this is checked against plain integer arithmetic.
    a, b, c = rand(2, 3, dtype=I64), rand(4, 3, dtype=I64), rand(4, dtype=I64)
    (y,) = KERNELS["Gemm"](a, b, c, alpha=2.0, beta=3.0, transB=1)
    assert y.dtype == I64
    np.testing.assert_array_equal(y, 2 * (a @ b.T) + 3 * c)


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((3, 4), (4, 5)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 3, 4), (4, 5)),
        ((4,), (2, 4, 3)),
        ((2, 1, 3, 4), (5, 4, 2)),
        ((0, 4), (4, 2)),
    ],
)
@pytest.mark.parametrize("dtype", [F32, I64, np.int32])
def test_matmul(a_shape, b_shape, dtype):
    check("MatMul", [rand(*a_shape, dtype=dtype), rand(*b_shape, dtype=dtype)])


# -- elementwise ---------------------------------------------------------------------------------

BROADCAST_PAIRS = [
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((3,), (2, 3)),
    ((2, 1, 4), (3, 1)),
    ((), (2, 3)),
    ((1,), ()),
    ((0, 3), (1, 3)),
]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize(("a_shape", "b_shape"), BROADCAST_PAIRS)
@pytest.mark.parametrize("dtype", [F32, I64, np.int32])
def test_binary(op, a_shape, b_shape, dtype):
    b = rand(*b_shape, dtype=dtype, low=1, high=5)
    # Negative divisors too; zero is kept out because onnxruntime traps on integer x / 0.
    b = np.asarray(b * np.where(RNG.random(b.shape) < 0.5, -1, 1).astype(dtype))
    check(op, [rand(*a_shape, dtype=dtype, low=-20, high=20), b])


@pytest.mark.parametrize("dtype", [np.int8, np.int32, I64])
def test_div_integer_truncates_toward_zero(dtype):
    a = np.array([-7, 7, -7, 7, -1, 5, 6, -6, 0], dtype)
    b = np.array([2, -2, -2, 2, 3, -3, 3, 3, -4], dtype)
    check("Div", [a, b])
    np.testing.assert_array_equal(KERNELS["Div"](a, b)[0], [-3, -3, 3, 3, 0, -1, 2, -2, 0])


def test_div_float_by_zero_is_ieee():
    with np.errstate(all="raise"):
        check("Div", [np.array([1, -1, 0, np.nan], F32), np.zeros(4, F32)])


@pytest.mark.parametrize("dtype", [F32, np.int8, np.int32])
def test_relu(dtype):
    check("Relu", [rand(3, 4, dtype=dtype)])


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh"])
def test_activation(op):
    x = np.concatenate([rand(50, low=-8, high=8), [0, -30, 30, -100, 100, -1e4, 1e4]])
    # Underflow to 0 is expected; overflow or NaN would mean an unstable formula.
    with np.errstate(over="raise", invalid="raise"):
        check(op, [x.astype(F32).reshape(3, 19)])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize(
    ("shape", "axis"), [((3, 4), None), ((2, 3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), -2), ((5,), 0)]
)
def test_softmax(op, shape, axis):
    attrs = {} if axis is None else {"axis": axis}
    check(op, [rand(*shape, low=-5, high=5)], attrs)
    # A uniform offset of 1e4 would overflow exp without the max shift.
    check(op, [rand(*shape, low=-5, high=5) + F32(1e4)], attrs)


# -- shape manipulation --------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, 2, 4, -1, -4, None])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 0, 3, 1)])
def test_flatten(axis, shape):
    check("Flatten", [rand(*shape)], {} if axis is None else {"axis": axis})


@pytest.mark.parametrize(
    ("in_shape", "shape", "allowzero"),
    [
        ((2, 3, 4), [4, 6], 0),
        ((2, 3, 4), [-1], 0),
        ((2, 3, 4), [0, -1], 0),
        ((2, 3, 4), [0, 0, 2, 2], 0),
        ((2, 3, 4), [4, 0, -1], 0),
        ((2, 3, 4), [1, 1, 24, 1], 0),
        ((2, 0, 4), [0, 4, 0], 1),
        ((2, 0, 4), [8, 0], 1),
        ((0, 3), [3, 0], 1),
        ((0, 3), [0, 3], 0),
        ((), [1, 1], 0),
        ((1,), [], 0),
    ],
)
def test_reshape(in_shape, shape, allowzero):
    check("Reshape", [rand(*in_shape), np.array(shape, I64)], {"allowzero": allowzero})


@pytest.mark.parametrize(
    ("shape", "perm"), [((2, 3), None), ((2, 3, 4), None), ((2, 3, 4), [1, 0, 2]), ((5,), [0])]
)
def test_transpose(shape, perm):
    check("Transpose", [rand(*shape, dtype=I64)], {} if perm is None else {"perm": perm})


@pytest.mark.parametrize(
    ("shape", "axes"),
    [((1, 3, 1, 2), [0]), ((1, 3, 1, 2), [0, 2]), ((1, 3, 1, 2), [-2]), ((1, 3, 1, 2), None)],
)
def test_squeeze(shape, axes):
    check("Squeeze", [rand(*shape), None if axes is None else np.array(axes, I64)])


def test_squeeze_empty_axes_squeezes_all_like_onnxruntime():
    check("Squeeze", [rand(1, 3, 1), np.array([], I64)])


@pytest.mark.parametrize(
    ("shape", "axes"),
    [((3, 4), [0]), ((3, 4), [2]), ((3, 4), [-1]), ((3, 4), [3, 0]), ((3,), [1, -1]), ((), [0])],
)
def test_unsqueeze(shape, axes):
    check("Unsqueeze", [rand(*shape), np.array(axes, I64)])


@pytest.mark.parametrize(
    ("shapes", "axis"),
    [
        ([(2, 3), (4, 3)], 0),
        ([(2, 3), (2, 1), (2, 0)], 1),
        ([(2, 3, 1), (2, 3, 2), (2, 3, 3)], -1),
        ([(3,)], 0),
    ],
)
def test_concat(shapes, axis):
    check("Concat", [rand(*s, dtype=I64) for s in shapes], {"axis": axis})


@pytest.mark.parametrize(
    ("data_shape", "indices", "axis"),
    [
        ((5, 3), [0, 4, 2], 0),
        ((5, 3), [[-1, 0], [-5, 3]], 0),
        ((5, 3), [2, -3, -1], 1),
        ((2, 3, 4), [[1], [-1]], 1),
        ((2, 3, 4), [3, 0], -1),
        ((5,), 2, 0),
        ((5, 3), -1, 1),
        ((5, 3), np.zeros((0,), I64), 0),
    ],
)
@pytest.mark.parametrize("index_dtype", [I64, np.int32])
def test_gather(data_shape, indices, axis, index_dtype):
    check("Gather", [rand(*data_shape), np.array(indices, index_dtype)], {"axis": axis})


INT64_MAX = np.iinfo(I64).max
INT64_MIN = np.iinfo(I64).min


@pytest.mark.parametrize(
    ("starts", "ends", "axes", "steps"),
    [
        ([0, 1], [3, 4], None, None),
        ([1], [-1], [1], None),
        ([-3, -100], [INT64_MAX, 100], [0, 2], None),
        ([20], [30], [0], None),
        ([0], [-1], [-1], [2]),
        ([-1], [INT64_MIN], [1], [-1]),
        ([4, 10], [0, -100], [1, 2], [-2, -3]),
        ([3], [1], [0], [1]),
        ([1], [3], [0], [-1]),
        ([0, 0, 3], [2, 3, 0], None, [1, 2, -1]),
    ],
)
def test_slice(starts, ends, axes, steps):
    data = rand(4, 5, 6, dtype=I64)
    optional = [None if v is None else np.array(v, I64) for v in (axes, steps)]
    check("Slice", [data, np.array(starts, I64), np.array(ends, I64), *optional])


def test_slice_int32_inputs_and_omitted_axes_with_steps():
    data = rand(4, 5)
    i32 = np.int32
    check(
        "Slice", [data, np.array([3, 0], i32), np.array([0, 5], i32), None, np.array([-1, 2], i32)]
    )


@pytest.mark.parametrize(
    ("start", "end"),
    [(None, None), (1, None), (None, 2), (-1, None), (1, -1), (-10, 10), (3, 1), (0, 0), (2, 5)],
)
def test_shape(start, end):
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    check("Shape", [rand(2, 3, 4, 5)], attrs)


def test_shape_of_scalar():
    check("Shape", [np.array(1.0, F32)])


@pytest.mark.parametrize(
    ("in_shape", "shape"),
    [
        ((3, 1), [3, 4]),
        ((3, 1), [2, 1, 6]),
        ((2, 3, 1), [4]),
        ((2, 1, 4), [1, 3, 1]),
        ((1,), []),
        ((), [2, 2]),
        ((3, 1), [0, 3, 1]),
    ],
)
def test_expand(in_shape, shape):
    check("Expand", [rand(*in_shape, dtype=I64), np.array(shape, I64)])


@pytest.mark.parametrize(
    "attrs",
    [
        {"value": np.arange(6, dtype=F32).reshape(2, 3)},
        {"value": np.array(7, I64)},
        {"value": np.array([True, False])},
        {"value_float": 2.5},
        {"value_floats": [1.5, -2.0]},
        {"value_int": -3},
        {"value_ints": [4, 5, 6]},
        {"value_string": "abc"},
        {"value_strings": ["x", "yz"]},
    ],
    ids=lambda a: next(iter(a)),
)
def test_constant(attrs):
    check("Constant", [], attrs)


@pytest.mark.parametrize("given", [{}, {"value": 1, "value_int": 2}])
def test_constant_requires_exactly_one_value(given):
    with pytest.raises(ValueError, match="exactly one"):
        KERNELS["Constant"](**given)


@pytest.mark.parametrize(
    ("shape", "value"),
    [
        ([2, 3], None),
        ([2, 3], np.array([1.5], F32)),
        ([4], np.array([-7], I64)),
        ([3, 1], np.array([True])),
        ([2, 0], np.array([5], np.int32)),
        ([], np.array([3], I64)),
    ],
)
def test_constant_of_shape(shape, value):
    attrs = {} if value is None else {"value": value}
    check("ConstantOfShape", [np.array(shape, I64)], attrs)


@pytest.mark.parametrize("dtype", [F32, I64, np.bool_])
def test_identity(dtype):
    check("Identity", [rand(2, 3).astype(dtype)])


@pytest.mark.parametrize(
    "optional",
    [[], [np.array(0.3, F32)], [np.array(0.5, F32), np.array(False)], [None, np.array(False)]],
)
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_dropout(optional, n_outputs):
    check("Dropout", [rand(3, 4), *optional], n_outputs=n_outputs)


def test_dropout_training_is_refused():
    with pytest.raises(ValueError, match="training_mode=1"):
        Dropout(rand(3), np.array(0.5, F32), np.array(True))


CAST_SOURCES = {
    "float32": np.array([0.0, -0.0, 0.7, -0.7, 1.5, -2.5, 126.9, -126.9, 3e4, np.inf], F32),
    "float64": np.array([0.1, -3.99, 1e-40, 7e5, -np.inf, np.nan]),
    "int64": np.array([0, 1, -1, 127, 128, -129, 70000, 2**40 + 3]),
    "int32": np.array([0, -5, 300, -(2**31)], np.int32),
    "bool": np.array([True, False, True]),
}
CAST_TARGETS = [
    TensorProto.FLOAT,
    TensorProto.DOUBLE,
    TensorProto.FLOAT16,
    TensorProto.INT64,
    TensorProto.INT32,
    TensorProto.INT8,
    TensorProto.UINT8,
    TensorProto.BOOL,
]


@pytest.mark.parametrize("source", CAST_SOURCES)
@pytest.mark.parametrize("to", CAST_TARGETS, ids=TensorProto.DataType.Name)
def test_cast(source, to):
    x = CAST_SOURCES[source]
    if x.dtype.kind == "f" and to not in (TensorProto.FLOAT, TensorProto.DOUBLE):
        # Non-finite or out-of-range floats to integers are undefined in ONNX.
        x = x[np.isfinite(x) & (np.abs(x) < 128)]
        if to == TensorProto.UINT8:
            x = np.abs(x)
    check("Cast", [x], {"to": to})


def test_cast_float_to_bool_treats_nan_as_true():
    check("Cast", [np.array([np.nan, 0.0, -0.0, 1e-30], F32)], {"to": TensorProto.BOOL})


@pytest.mark.parametrize(
    "to", [TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E5M2, TensorProto.STRING]
)
def test_cast_refuses_float8_and_string_targets(to):
    with pytest.raises(ValueError):
        KERNELS["Cast"](np.ones(2, F32), to=to)


# -- property tests ------------------------------------------------------------------------------

_small_floats = st.floats(-100, 100, width=32, allow_subnormal=False)
_small_ints = st.integers(-1000, 1000)


@settings(max_examples=30, deadline=None)
@given(
    op=st.sampled_from(["Add", "Sub", "Mul", "Div"]),
    dtype=st.sampled_from([F32, I64]),
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
    data=st.data(),
)
def test_binary_broadcasting_property(op, dtype, shapes, data):
    elements = _small_floats if dtype is F32 else _small_ints
    a_shape, b_shape = shapes.input_shapes
    a = data.draw(hnp.arrays(dtype, a_shape, elements=elements))
    divisor = elements.filter(lambda v: v != 0) if op == "Div" else elements
    b = data.draw(hnp.arrays(dtype, b_shape, elements=divisor))
    check(op, [a, b])


@settings(max_examples=30, deadline=None)
@given(
    shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=3),
    data=st.data(),
)
def test_transpose_property(shape, data):
    perm = data.draw(st.permutations(range(len(shape))))
    x = np.arange(int(np.prod(shape)), dtype=F32).reshape(shape)
    # onnx.helper cannot type an empty list attribute; the default perm of a scalar is [] too.
    check("Transpose", [x], {"perm": list(perm)} if perm else {})


# -- ONNX backend node tests ---------------------------------------------------------------------

# onnx no longer ships backend/test/data/node in its wheel; its own loader regenerates those
# cases in memory from onnx.backend.test.case.node, which is what is replayed here. Only the
# modules that produce these ops are imported (castlike yields single Cast nodes too): importing
# every module takes seconds.
ONNX_OPS = frozenset(
    "Gemm MatMul Add Sub Mul Div Relu Sigmoid Tanh Softmax LogSoftmax Flatten Reshape Transpose"
    " Squeeze Unsqueeze Concat Gather Slice Shape Expand Constant ConstantOfShape Identity"
    " Dropout Cast".split()
)
_CASE_MODULES = sorted({op.lower() for op in ONNX_OPS} | {"castlike"})

EXCLUDED = {
    "test_identity_sequence": "sequence-typed input; the kernels are tensor-only",
    "test_identity_opt": "optional-typed input; the kernels are tensor-only",
    "test_training_dropout": "training mode is refused by design",
    "test_training_dropout_mask": "training mode is refused by design",
    "test_training_dropout_default": "training mode is refused by design",
    "test_training_dropout_default_mask": "training mode is refused by design",
    "test_training_dropout_zero_ratio": "training mode is refused by design",
    "test_training_dropout_zero_ratio_mask": "training mode is refused by design",
}


def _is_float8_cast(name: str) -> bool:
    return "FLOAT8" in name.split("_to_")[-1]


def _onnx_opset(model: onnx.ModelProto) -> int:
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _backend_cases():
    from onnx.backend.test.case import node as case_node

    # The generators overflow on purpose while building their Cast inputs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for module in _CASE_MODULES:
            importlib.import_module(f"{case_node.__name__}.{module}")
    cases = {}
    for case in case_node._NodeTestCases:
        nodes = case.model.graph.node
        if len(nodes) != 1 or nodes[0].domain not in ("", "ai.onnx"):
            continue
        if nodes[0].op_type in ONNX_OPS and _onnx_opset(case.model) >= 13:
            cases[case.name] = case
    return cases


BACKEND_CASES = _backend_cases()
# Casts to float8 are refused by the kernel (ONNX saturation rules); the refusal is tested.
FLOAT8_CASTS = {name for name in BACKEND_CASES if _is_float8_cast(name)}


def _python_attribute(attr: onnx.AttributeProto):
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


def _as_array(value):
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else value


def test_backend_cases_cover_every_op_and_exclusions_are_real():
    assert {case.model.graph.node[0].op_type for case in BACKEND_CASES.values()} == ONNX_OPS
    assert set(EXCLUDED) <= set(BACKEND_CASES)
    assert FLOAT8_CASTS
    assert ONNX_OPS <= set(KERNELS)


@pytest.mark.parametrize("name", sorted(set(BACKEND_CASES) - set(EXCLUDED) - FLOAT8_CASTS))
def test_backend_node(name):
    case = BACKEND_CASES[name]
    (node,) = case.model.graph.node
    ((inputs, expected),) = case.data_sets
    present = iter(inputs)
    args = [None if n == "" else _as_array(next(present)) for n in node.input]
    attrs = {a.name: _python_attribute(a) for a in node.attribute}
    actual = KERNELS[node.op_type](*args, **attrs)
    assert len(actual) >= len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
        _assert_same(a, _as_array(e), rtol=1e-5, atol=1e-6, where=f"{name} output {i}")


@pytest.mark.parametrize("name", sorted(FLOAT8_CASTS))
def test_backend_float8_casts_are_refused(name):
    case = BACKEND_CASES[name]
    (node,) = case.model.graph.node
    ((inputs, _),) = case.data_sets
    attrs = {a.name: _python_attribute(a) for a in node.attribute}
    with pytest.raises(ValueError, match="float8"):
        KERNELS["Cast"](_as_array(inputs[0]), **attrs)
