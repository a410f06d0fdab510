"""Tests of the LSTM, GRU and RNN reference kernels (compiler/interpreters/onnx_rnn.py).

1. Differential tests against onnxruntime on one-node models over a grid of op x direction x
   feature set (optional inputs, sequence_lens, peepholes, clip, input_forget,
   linear_before_reset, activation lists), at opset 14 and in the opset-9 form.
   onnxruntime refuses layout=1 for all three ops ("Batchwise recurrent operations (layout ==
   1) are not supported"), so layout=1 is checked twice instead: against onnxruntime running
   the same data transposed to layout 0, and natively against onnx.reference's
   ReferenceEvaluator, whose RNN ops support layout but ignore sequence_lens, clip,
   input_forget and non-default activations (so those cases use none of them).
2. The ONNX backend node test cases of the three ops.
3. Properties that need no oracle: sequence_lens against running each batch entry alone,
   zero lengths, dtypes, and the documented default activation parameters.
"""

import importlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from dlhwc.compiler.interpreters.onnx_rnn import GRU, LSTM, RNN
from dlhwc.compiler.interpreters.registry import KERNELS

RTOL, ATOL = 1e-5, 1e-6
SEQ, BATCH, INPUT, HIDDEN = 5, 3, 4, 6
LENGTHS = np.array([5, 2, 4], np.int32)  # varied, one full length

KERNEL = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
NUM_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
INPUT_NAMES = {
    "LSTM": ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"],
    "GRU": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
    "RNN": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
}
OUTPUT_NAMES = {"LSTM": ["Y", "Y_h", "Y_c"], "GRU": ["Y", "Y_h"], "RNN": ["Y", "Y_h"]}
STATE_NAMES = {"LSTM": ["initial_h", "initial_c"], "GRU": ["initial_h"], "RNN": ["initial_h"]}
DIRECTIONS = ["forward", "reverse", "bidirectional"]


def _num_directions(direction):
    return 2 if direction == "bidirectional" else 1


def _seed(*parts):
    return zlib.crc32("/".join(map(str, parts)).encode())


def _random_inputs(op, direction, *, present, layout=0, seed=0, lengths=LENGTHS):
    """Inputs of ``op`` by ONNX name; optional ones are None unless named in ``present``."""
    rng = np.random.default_rng(seed)
    d, g = _num_directions(direction), NUM_GATES[op]

    def normal(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    state_shape = (d, BATCH, HIDDEN) if layout == 0 else (BATCH, d, HIDDEN)
    optional = {
        "B": lambda: normal(d, 2 * g * HIDDEN, scale=0.5),
        "sequence_lens": lambda: np.array(lengths, np.int32),
        "initial_h": lambda: normal(*state_shape),
        "initial_c": lambda: normal(*state_shape),
        "P": lambda: normal(d, 3 * HIDDEN, scale=0.5),
    }
    inputs = {
        "X": normal(*((SEQ, BATCH, INPUT) if layout == 0 else (BATCH, SEQ, INPUT))),
        "W": normal(d, g * HIDDEN, INPUT, scale=0.5),
        "R": normal(d, g * HIDDEN, HIDDEN, scale=0.5),
    }
    for name in INPUT_NAMES[op][3:]:
        inputs[name] = optional[name]() if name in present else None
    return inputs


def _model(op, inputs, attrs, opset):
    names = [n if inputs.get(n) is not None else "" for n in INPUT_NAMES[op]]
    while names[-1] == "":
        names.pop()
    graph_inputs = [
        helper.make_tensor_value_info(
            n, helper.np_dtype_to_tensor_dtype(inputs[n].dtype), inputs[n].shape
        )
        for n in names
        if n
    ]
    outputs = [onnx.ValueInfoProto(name=n) for n in OUTPUT_NAMES[op]]
    # onnx.helper cannot type an empty list; an empty alpha/beta list is the same as none.
    attrs = {k: v for k, v in attrs.items() if v != []}
    node = helper.make_node(op, names, OUTPUT_NAMES[op], **attrs)
    graph = helper.make_graph([node], op, graph_inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _feeds(inputs):
    return {n: v for n, v in inputs.items() if v is not None}


def _run_ort(op, inputs, attrs, opset=14):
    model = _model(op, inputs, attrs, opset)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, _feeds(inputs))


def _run_kernel(op, inputs, attrs):
    return KERNELS[op](*(inputs.get(n) for n in INPUT_NAMES[op]), **attrs)


def _assert_outputs(actual, expected, where=""):
    assert len(actual) == len(expected), where
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a.dtype == e.dtype and a.shape == e.shape, f"{where} output {i}"
        np.testing.assert_allclose(a, e, rtol=RTOL, atol=ATOL, err_msg=f"{where} output {i}")


# -- differential against onnxruntime -----------------------------------------------------------

ALL_INPUTS = {"B", "sequence_lens", "initial_h", "initial_c", "P"}

# Non-default activation lists, per direction (forward's, then reverse's).  f is kept bounded
# so the states stay finite.  The LSTM lists put an alpha-less function before one that
# takes alpha, which checks that alpha/beta are consumed only by functions that use them.
ACTIVATIONS = {
    "LSTM": [
        (["HardSigmoid", "Tanh", "LeakyRelu"], [0.3, 0.05], [0.4]),
        (["Sigmoid", "ScaledTanh", "Elu"], [1.5, 0.8], [0.7]),
    ],
    "GRU": [
        (["HardSigmoid", "Softplus"], [0.25], [0.45]),
        (["Sigmoid", "Affine"], [0.8], [0.1]),
    ],
    # onnxruntime's RNN indexes alpha/beta by direction, so both directions take both.
    "RNN": [(["HardSigmoid"], [0.3], [0.4]), (["ScaledTanh"], [1.2], [0.6])],
}


def _activation_attrs(op, direction):
    lists = ACTIVATIONS[op][: _num_directions(direction)]
    return {
        "activations": [name for names, _, _ in lists for name in names],
        "activation_alpha": [a for _, alphas, _ in lists for a in alphas],
        "activation_beta": [b for _, _, betas in lists for b in betas],
    }


# variant -> (present optional inputs, attributes or a function of (op, direction) giving them)
VARIANTS = {
    "plain": (set(), {}),
    "bias": ({"B"}, {}),
    "lens": ({"sequence_lens"}, {}),
    "initial": ({"initial_h", "initial_c"}, {}),
    "all": (ALL_INPUTS, {}),
    "clip": (ALL_INPUTS, {"clip": 0.4}),
    "activations": (ALL_INPUTS, _activation_attrs),
}
OP_VARIANTS = {
    "LSTM": {
        "peepholes": ({"P"}, {}),
        "input_forget": (ALL_INPUTS, {"input_forget": 1}),
        "input_forget_clip": (ALL_INPUTS, {"input_forget": 1, "clip": 0.4}),
    },
    "GRU": {
        "lbr": ({"B"}, {"linear_before_reset": 1}),
        "lbr_all": (ALL_INPUTS, {"linear_before_reset": 1}),
        "lbr_clip": (ALL_INPUTS, {"linear_before_reset": 1, "clip": 0.4}),
        "lbr_activations": (
            ALL_INPUTS,
            lambda op, direction: {**_activation_attrs(op, direction), "linear_before_reset": 1},
        ),
    },
    "RNN": {},
}


def _variant(op, direction, variant):
    present, attrs = {**VARIANTS, **OP_VARIANTS[op]}[variant]
    attrs = attrs(op, direction) if callable(attrs) else attrs
    return present, {"hidden_size": HIDDEN, "direction": direction, **attrs}


GRID = [
    (op, direction, variant)
    for op in KERNEL
    for direction in DIRECTIONS
    for variant in [*VARIANTS, *OP_VARIANTS[op]]
]


@pytest.mark.parametrize(("op", "direction", "variant"), GRID, ids=["-".join(c) for c in GRID])
def test_against_onnxruntime(op, direction, variant):
    present, attrs = _variant(op, direction, variant)
    inputs = _random_inputs(op, direction, present=present, seed=_seed(op, direction, variant))
    _assert_outputs(_run_kernel(op, inputs, attrs), _run_ort(op, inputs, attrs), variant)


OPSET9_GRID = [(op, d, v) for op in KERNEL for d in DIRECTIONS for v in ("plain", "all")]


@pytest.mark.parametrize(
    ("op", "direction", "variant"), OPSET9_GRID, ids=["-".join(c) for c in OPSET9_GRID]
)
def test_opset9_form_against_onnxruntime(op, direction, variant):
    # LSTM/GRU/RNN-7 are the newest forms without `layout`; the kernel needs no adjustment.
    present, attrs = _variant(op, direction, variant)
    inputs = _random_inputs(op, direction, present=present, seed=_seed(op, direction, 9))
    _assert_outputs(_run_kernel(op, inputs, attrs), _run_ort(op, inputs, attrs, opset=9))


def _to_layout0(op, inputs):
    moved = dict(inputs, X=inputs["X"].swapaxes(0, 1))
    for name in STATE_NAMES[op]:
        if inputs.get(name) is not None:
            moved[name] = inputs[name].swapaxes(0, 1)
    return moved


def _outputs_to_layout1(outputs):
    Y, *states = outputs
    return [Y.transpose(2, 0, 1, 3), *(s.swapaxes(0, 1) for s in states)]


LAYOUT_GRID = [
    (op, d, v)
    for op in KERNEL
    for d in DIRECTIONS
    for v in ("all", "activations", "lbr_all" if op == "GRU" else "clip")
]


@pytest.mark.parametrize(
    ("op", "direction", "variant"), LAYOUT_GRID, ids=["-".join(c) for c in LAYOUT_GRID]
)
def test_layout1_against_onnxruntime_on_transposed_data(op, direction, variant):
    present, attrs = _variant(op, direction, variant)
    inputs = _random_inputs(op, direction, present=present, layout=1, seed=_seed(op, 1, variant))
    expected = _outputs_to_layout1(_run_ort(op, _to_layout0(op, inputs), attrs))
    _assert_outputs(_run_kernel(op, inputs, {**attrs, "layout": 1}), expected)


REFERENCE_GRID = [
    (op, d, lbr) for op in KERNEL for d in DIRECTIONS for lbr in ([0, 1] if op == "GRU" else [0])
]


@pytest.mark.parametrize(
    ("op", "direction", "lbr"),
    REFERENCE_GRID,
    ids=[f"{op}-{d}-lbr{lbr}" for op, d, lbr in REFERENCE_GRID],
)
def test_layout1_against_reference_evaluator(op, direction, lbr):
    present = {"B", "initial_h", "initial_c", "P"}  # no sequence_lens: the reference ignores it
    inputs = _random_inputs(op, direction, present=present, layout=1, seed=_seed(op, direction))
    attrs = {"hidden_size": HIDDEN, "direction": direction, "layout": 1}
    if op == "GRU":
        attrs["linear_before_reset"] = lbr
    model = _model(op, inputs, attrs, opset=14)
    expected = ReferenceEvaluator(model).run(None, _feeds(inputs))
    _assert_outputs(_run_kernel(op, inputs, attrs), expected)


# Every activation ONNX defines, on the RNN (one function per direction).  alpha/beta are
# given explicitly, as onnxruntime's RNN uses 0 for any that are missing.  It also indexes
# them by direction rather than consuming them in order, so the reverse direction of the
# bidirectional case uses the next function that takes the same parameters.
ALL_ACTIVATIONS = {
    "Relu": ([], []),
    "Tanh": ([], []),
    "Sigmoid": ([], []),
    "Affine": ([0.7], [0.1]),
    "LeakyRelu": ([0.2], []),
    "ThresholdedRelu": ([0.3], []),
    "ScaledTanh": ([1.2], [0.6]),
    "HardSigmoid": ([0.3], [0.4]),
    "Elu": ([0.9], []),
    "Softsign": ([], []),
    "Softplus": ([], []),
}


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
def test_every_activation_against_onnxruntime(name, direction):
    params = {n: tuple(map(bool, ab)) for n, ab in ALL_ACTIVATIONS.items()}
    same_params = [n for n in ALL_ACTIVATIONS if params[n] == params[name]]
    partner = same_params[(same_params.index(name) + 1) % len(same_params)]
    chosen = [name] if direction == "forward" else [name, partner]
    attrs = {
        "hidden_size": HIDDEN,
        "direction": direction,
        "activations": chosen,
        "activation_alpha": [a for n in chosen for a in ALL_ACTIVATIONS[n][0]],
        "activation_beta": [b for n in chosen for b in ALL_ACTIVATIONS[n][1]],
    }
    inputs = _random_inputs("RNN", direction, present=ALL_INPUTS, seed=_seed(name, direction))
    _assert_outputs(_run_kernel("RNN", inputs, attrs), _run_ort("RNN", inputs, attrs))


# The ONNX default alpha/beta of each activation.  Without alpha/beta the kernel must match
# onnxruntime given these values explicitly (onnxruntime's own defaults differ for some).
ONNX_DEFAULTS = {
    "Affine": ([1.0], [0.0]),
    "LeakyRelu": ([0.01], []),
    "ThresholdedRelu": ([1.0], []),
    "ScaledTanh": ([1.0], [1.0]),
    "HardSigmoid": ([0.2], [0.5]),
    "Elu": ([1.0], []),
}
DEFAULTS_GRID = [("RNN", [name]) for name in ONNX_DEFAULTS] + [
    ("GRU", ["HardSigmoid", "ThresholdedRelu", "Sigmoid", "ScaledTanh"]),
    ("LSTM", ["HardSigmoid", "Affine", "LeakyRelu", "Sigmoid", "Elu", "Tanh"]),
]


@pytest.mark.parametrize(
    ("op", "names"), DEFAULTS_GRID, ids=[f"{op}-{'-'.join(n)}" for op, n in DEFAULTS_GRID]
)
def test_default_activation_parameters(op, names):
    direction = "forward" if len(names) == {"RNN": 1, "GRU": 2, "LSTM": 3}[op] else "bidirectional"
    attrs = {"hidden_size": HIDDEN, "direction": direction, "activations": names}
    explicit = {
        **attrs,
        "activation_alpha": [a for n in names for a in ONNX_DEFAULTS.get(n, ([], []))[0]],
        "activation_beta": [b for n in names for b in ONNX_DEFAULTS.get(n, ([], []))[1]],
    }
    inputs = _random_inputs(op, direction, present=ALL_INPUTS, seed=_seed(op, *names))
    _assert_outputs(_run_kernel(op, inputs, attrs), _run_ort(op, inputs, explicit))


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_zero_length_against_onnxruntime(op, direction):
    # onnxruntime's RNN (rnn.cc, Assign_Y_h) reads Y at step -1 for a forward zero length, so
    # only LSTM and GRU are compared; test_zero_length_sequences covers all three.
    present, attrs = _variant(op, direction, "all")
    inputs = _random_inputs(op, direction, present=present, seed=_seed(op, 0), lengths=[0, 5, 2])
    _assert_outputs(_run_kernel(op, inputs, attrs), _run_ort(op, inputs, attrs))


# -- properties ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("op", list(KERNEL))
def test_sequence_lens_equals_running_each_sequence_alone(op, direction, layout):
    present, attrs = _variant(op, direction, "all")
    attrs["layout"] = layout
    inputs = _random_inputs(op, direction, present=present, layout=layout, seed=_seed(op, layout))
    batched = _run_kernel(op, inputs, attrs)
    time_axis, batch_axis = (0, 1) if layout == 0 else (1, 0)
    state_batch_axis = 1 if layout == 0 else 0
    for b, length in enumerate(LENGTHS):
        alone = dict(inputs, sequence_lens=None)
        alone["X"] = inputs["X"].take([b], batch_axis).take(range(length), time_axis)
        for name in STATE_NAMES[op]:
            alone[name] = inputs[name].take([b], state_batch_axis)
        Y, *states = _run_kernel(op, alone, attrs)
        Y_batch_axis = 2 if layout == 0 else 0
        Y_b = batched[0].take([b], Y_batch_axis)
        np.testing.assert_allclose(Y_b.take(range(length), time_axis), Y, rtol=RTOL, atol=ATOL)
        assert not Y_b.take(range(length, SEQ), time_axis).any()
        for got, want in zip(batched[1:], states, strict=True):
            np.testing.assert_allclose(got.take([b], state_batch_axis), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("op", list(KERNEL))
def test_zero_length_sequences(op, direction):
    present, attrs = _variant(op, direction, "all")
    inputs = _random_inputs(op, direction, present=present, seed=_seed(op), lengths=[0, 5, 2])
    Y, *states = _run_kernel(op, inputs, attrs)
    assert not Y[:, :, 0].any()
    for state in states:
        assert not state[:, 0].any()


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
@pytest.mark.parametrize("op", list(KERNEL))
def test_outputs_keep_the_float_dtype(op, dtype):
    present, attrs = _variant(op, "bidirectional", "all")
    inputs = _random_inputs(op, "bidirectional", present=present, seed=_seed(op, dtype))
    reference = _run_kernel(op, inputs, attrs)
    cast = {
        n: v if v is None or n == "sequence_lens" else v.astype(dtype) for n, v in inputs.items()
    }
    for got, want in zip(_run_kernel(op, cast, attrs), reference, strict=True):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-2 if dtype == np.float16 else 1e-5)


def test_kernels_are_registered():
    assert KERNELS["LSTM"] is LSTM and KERNELS["GRU"] is GRU and KERNELS["RNN"] is RNN


@pytest.mark.parametrize(
    ("attrs", "match"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"activations": ["Tanh", "Tanh"]}, "activations"),  # LSTM needs 3 per direction
        ({"activations": ["Sigmoid", "Tanh", "Gelu"]}, "Gelu"),
        ({"hidden_size": HIDDEN + 1}, "hidden_size"),
    ],
)
def test_invalid_attributes_are_refused(attrs, match):
    inputs = _random_inputs("LSTM", "forward", present=set())
    with pytest.raises(ValueError, match=match):
        _run_kernel("LSTM", inputs, attrs)


def test_bad_sequence_lens_are_refused():
    inputs = _random_inputs("GRU", "forward", present={"sequence_lens"}, lengths=[1, SEQ + 1, 2])
    with pytest.raises(ValueError, match="sequence_lens"):
        _run_kernel("GRU", inputs, {})


# -- ONNX backend node tests --------------------------------------------------------------------

# onnx's wheel may not ship onnx/backend/test/data/node (1.23 does not).  The cases are then
# regenerated in memory from the generators that produce those folders
# (onnx.backend.test.case.node.{lstm,gru,rnn}), recording what they pass to `expect`.
NODE_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"
EXCLUDED: dict[str, str] = {}  # case name -> reason; none needed


@dataclass
class BackendCase:
    name: str
    node: onnx.NodeProto
    # (inputs, expected outputs), aligned with node.input / node.output; None where omitted.
    data_sets: list[tuple[list[np.ndarray | None], list[np.ndarray | None]]]


def _read_tensor(path):
    tensor = TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def _read_case_dir(case_dir: Path) -> BackendCase | None:
    """Read an onnx backend test folder; None unless its model is one LSTM/GRU/RNN node."""
    model = onnx.load(case_dir / "model.onnx")
    nodes = model.graph.node
    if len(nodes) != 1 or nodes[0].op_type not in KERNEL or nodes[0].domain not in ("", "ai.onnx"):
        return None
    data_sets = []
    for data_dir in sorted(case_dir.glob("test_data_set_*")):
        values = {}
        for prefix, infos in (("input", model.graph.input), ("output", model.graph.output)):
            for j, info in enumerate(infos):
                values[info.name] = _read_tensor(data_dir / f"{prefix}_{j}.pb")
        data_sets.append(
            (
                [values[n] if n else None for n in nodes[0].input],
                [values.get(n) if n else None for n in nodes[0].output],
            )
        )
    return BackendCase(case_dir.name, nodes[0], data_sets)


def _align(names, present_values):
    values = iter(present_values)
    return [next(values) if n else None for n in names]


def _generated_cases() -> list[BackendCase]:
    cases = []

    def record(node, inputs, outputs, name, **_):
        data = (_align(node.input, inputs), _align(node.output, outputs))
        cases.append(BackendCase(name, node, [data]))

    for op in KERNEL:
        module = importlib.import_module(f"onnx.backend.test.case.node.{op.lower()}")
        exporter = getattr(module, op)
        with mock.patch.object(module, "expect", record):
            for attr in sorted(vars(exporter)):
                if attr.startswith("export"):
                    np.random.seed(0)  # as onnx does before each export
                    getattr(exporter, attr)()
    return cases


def _backend_cases() -> dict[str, BackendCase]:
    if NODE_DATA.is_dir():
        cases = [_read_case_dir(d) for d in sorted(NODE_DATA.glob("test_*"))]
    else:
        cases = _generated_cases()
    return {case.name: case for case in cases if case is not None}


BACKEND_CASES = _backend_cases()


def _python_attribute(attr):
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


def test_backend_cases_were_found():
    ops = {case.node.op_type for case in BACKEND_CASES.values()}
    assert ops == set(KERNEL), sorted(BACKEND_CASES)
    assert set(EXCLUDED) <= set(BACKEND_CASES)


@pytest.mark.parametrize("name", sorted(set(BACKEND_CASES) - set(EXCLUDED)))
def test_backend_node(name):
    case = BACKEND_CASES[name]
    attrs = {a.name: _python_attribute(a) for a in case.node.attribute}
    for inputs, expected in case.data_sets:
        actual = KERNEL[case.node.op_type](*inputs, **attrs)
        assert len(actual) == len(OUTPUT_NAMES[case.node.op_type])
        for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
            if e is not None:
                assert a.dtype == e.dtype and a.shape == e.shape, f"{name} output {i}"
                np.testing.assert_allclose(a, e, rtol=RTOL, atol=ATOL, err_msg=f"{name} output {i}")


def _write_case_dir(case: BackendCase, case_dir: Path):
    """Write ``case`` in the layout of onnx's backend-test-tools generate-data."""
    ((inputs, outputs),) = case.data_sets

    def infos(names, values):
        return [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for n, v in zip(names, values, strict=True)
            if n
        ]

    graph = helper.make_graph(
        [case.node], case.name, infos(case.node.input, inputs), infos(case.node.output, outputs)
    )
    data_dir = case_dir / "test_data_set_0"
    data_dir.mkdir(parents=True)
    onnx.save(helper.make_model(graph), case_dir / "model.onnx")
    for prefix, values in (("input", inputs), ("output", outputs)):
        for j, value in enumerate(v for v in values if v is not None):
            (data_dir / f"{prefix}_{j}.pb").write_bytes(
                numpy_helper.from_array(value).SerializeToString()
            )


def test_backend_case_folder_reader(tmp_path):
    # Keeps _read_case_dir exercised where onnx ships no data folders.
    for name in ("test_lstm_with_peepholes", "test_gru_batchwise"):
        case = BACKEND_CASES[name]
        _write_case_dir(case, tmp_path / name)
        read = _read_case_dir(tmp_path / name)
        assert read is not None and read.node == case.node
        for got, want in zip(read.data_sets[0], case.data_sets[0], strict=True):
            assert [v is None for v in got] == [v is None for v in want]
            for g, w in zip(got, want, strict=True):
                if w is not None:
                    np.testing.assert_array_equal(g, w)
