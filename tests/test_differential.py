"""Differential tests: dlhwc's reference interpreter against onnxruntime on whole models.

Every model runs in onnxruntime and in the interpreter at three stages: as imported, after
the `fold-constants` pass (and the IR must still verify), and after printing the folded
IR as saved IR and parsing it back. Floats must agree to rtol 1e-5 / atol 1e-6, integers
and labels exactly, dtypes and shapes always.

(a) the exporter-produced models of tests/models/exported on their .npz samples, with the
    sample's batch of 3 and cut / tiled to 1 and 5 (the batch dim is symbolic);
(b) the example digits models on their committed test splits, with 100% top-1 agreement;
(c) small models built here with onnx.helper for the opset forms the importer normalizes,
    its generic fallbacks, and the exporter patterns fold-constants must remove.
"""

import functools
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from xdsl.dialects.builtin import ModuleOp

from dlhwc.compiler.frontend.onnx_importer import import_model, load_model
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.irio import context, module_to_string, parse_module
from dlhwc.compiler.passes.fold_constants import FoldConstantsPass
from dlhwc.dialects import onnx as onnx_d

ROOT = Path(__file__).resolve().parent.parent
EXPORTED = sorted((ROOT / "tests/models/exported").glob("*.onnx"))
RTOL, ATOL = 1e-5, 1e-6
STAGES = ["imported", "folded", "reparsed"]

# -- helpers -------------------------------------------------------------------------------


def reference(model: onnx.ModelProto, feeds: dict) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def at_stage(model: onnx.ModelProto, stage: str) -> ModuleOp:
    module = import_model(model)
    if stage == "imported":
        return module
    FoldConstantsPass().apply(context(), module)
    module.verify()
    if stage == "folded":
        return module
    return parse_module(module_to_string(module))


def assert_same(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, ref in expected.items():
        out = actual[name]
        assert (out.dtype, out.shape) == (ref.dtype, ref.shape), name
        if ref.dtype.kind in "fc":
            np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL, err_msg=name)
        else:
            np.testing.assert_array_equal(out, ref, err_msg=name)


def check(model: onnx.ModelProto, feeds: dict) -> dict[str, ModuleOp]:
    """Compare every stage against onnxruntime; returns the modules by stage."""
    expected = reference(model, feeds)
    modules = {stage: at_stage(model, stage) for stage in STAGES}
    for module in modules.values():
        assert_same(run_module(module, feeds), expected)
    return modules


def op_types(module: ModuleOp) -> list[str]:
    """The ONNX op type of every op; generic ones as `Node:<type>`."""
    return [
        f"Node:{op.onnx_type}" if isinstance(op, onnx_d.NodeOp) else op.onnx_type
        for op in module.walk()
        if isinstance(op, onnx_d.OnnxOp)
    ]


def the_op(module: ModuleOp, op_type: str) -> onnx_d.OnnxOp:
    (op,) = [o for o in module.walk() if isinstance(o, onnx_d.OnnxOp) and o.onnx_type == op_type]
    return op


def generic(module: ModuleOp) -> list[str]:
    return [t.removeprefix("Node:") for t in op_types(module) if t.startswith("Node:")]


def rnd(*shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def init(name: str, array) -> TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def ints(name: str, values) -> TensorProto:
    return init(name, np.array(values, dtype=np.int64))


def model(nodes, inputs, outputs, inits=(), opset=17, ml=False) -> onnx.ModelProto:
    def info(spec):
        name, shape, *dtype = spec
        return helper.make_tensor_value_info(name, dtype[0] if dtype else TensorProto.FLOAT, shape)

    graph = helper.make_graph(
        nodes, "test", [info(i) for i in inputs], [info(o) for o in outputs], list(inits)
    )
    opsets = [helper.make_opsetid("", opset)]
    if ml:
        opsets.append(helper.make_opsetid("ai.onnx.ml", 1))
    m = helper.make_model_gen_version(graph, opset_imports=opsets)  # IR version of the opset
    onnx.checker.check_model(m)
    return m


node = helper.make_node


# -- (a) exporter-produced models ----------------------------------------------------------


@functools.cache
def exported(name: str, stage: str) -> ModuleOp:
    return at_stage(load_model(ROOT / f"tests/models/exported/{name}.onnx"), stage)


def _exported_params():
    for path in EXPORTED:
        for stage in STAGES:
            for batch in (1, 3, 5):
                yield pytest.param(path.stem, stage, batch)


@pytest.mark.parametrize("name,stage,batch", list(_exported_params()))
def test_exported_model(name, stage, batch):
    with np.load(ROOT / f"tests/models/exported/{name}.npz") as data:
        feeds = {k: np.concatenate([v, v])[:batch] for k, v in data.items()}
    expected = reference(load_model(ROOT / f"tests/models/exported/{name}.onnx"), feeds)
    assert_same(run_module(exported(name, stage), feeds), expected)


def test_exported_models_fold_to_their_layers():
    """The shape arithmetic of every torch export is gone after fold-constants."""
    for path in EXPORTED:
        if path.stem.startswith("torch_"):
            types = set(op_types(exported(path.stem, "folded")))
            assert not types & {"Shape", "Concat", "ConstantOfShape", "Expand", "Slice"}, path
            assert not generic(exported(path.stem, "imported")), path


# -- (b) example models on their test splits -----------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize(
    "model_file,data_file", [("digits_mlp", "digits_test"), ("digits_lstm", "digits_test_seq")]
)
def test_example_model(model_file, data_file, stage):
    onnx_model = load_model(ROOT / f"examples/models/{model_file}.onnx")
    with np.load(ROOT / f"examples/data/{data_file}.npz") as data:
        feeds = {"input": data["input"]}
    expected = reference(onnx_model, feeds)
    actual = run_module(at_stage(onnx_model, stage), feeds)
    assert_same(actual, expected)
    top1 = actual["probabilities"].argmax(axis=1) == expected["probabilities"].argmax(axis=1)
    assert top1.mean() == 1.0


# -- (c) models built here -----------------------------------------------------------------


def mlp(opset: int) -> onnx.ModelProto:
    """Gemm -> Relu -> MatMul -> Add -> Softmax on x[N, 8] (2-D, so Softmax < 13 is last-axis)."""
    return model(
        [
            node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
            node("Relu", ["h"], ["a"]),
            node("MatMul", ["a", "w2"], ["m"]),
            node("Add", ["m", "b2"], ["l"]),
            node("Softmax", ["l"], ["y"], axis=1),
        ],
        [("x", ["N", 8])],
        [("y", ["N", 4])],
        [
            init("w1", rnd(16, 8, seed=1)),
            init("b1", rnd(16, seed=2)),
            init("w2", rnd(16, 4, seed=3)),
            init("b2", rnd(4, seed=4)),
        ],
        opset=opset,
    )


@pytest.mark.parametrize("opset", [9, 11, 13, 17, 21])
def test_mlp(opset):
    modules = check(mlp(opset), {"x": rnd(3, 8)})
    assert op_types(modules["imported"]).count("Constant") == 4
    assert not generic(modules["imported"])


def test_symbolic_batch():
    module = import_model(mlp(17))
    fn = module.body.block.first_op
    assert fn.arg_attrs.data[0].data["onnx.dim_params"].data[0].data == "N"
    assert fn.res_attrs.data[0].data["onnx.dim_params"].data[0].data == "N"
    for batch in (1, 2, 7):
        feeds = {"x": rnd(batch, 8, seed=batch)}
        assert_same(run_module(module, feeds), reference(mlp(17), feeds))


def squeeze_unsqueeze(opset: int) -> onnx.ModelProto:
    if opset < 13:  # axes as attributes
        nodes = [
            node("Squeeze", ["x"], ["s"], axes=[1]),
            node("Unsqueeze", ["s"], ["y"], axes=[0, 3]),
        ]
        inits = []
    else:  # axes as inputs
        nodes = [
            node("Squeeze", ["x", "sq_axes"], ["s"]),
            node("Unsqueeze", ["s", "unsq_axes"], ["y"]),
        ]
        inits = [ints("sq_axes", [1]), ints("unsq_axes", [0, -1])]
    return model(nodes, [("x", ["N", 1, 4])], [("y", [1, "N", 4, 1])], inits, opset)


def slice_model(opset: int) -> onnx.ModelProto:
    if opset < 10:  # starts, ends, axes as attributes
        nodes = [node("Slice", ["x"], ["y"], starts=[1, 0], ends=[3, -1], axes=[1, 2])]
        return model(nodes, [("x", ["N", 4, 6])], [("y", ["N", 2, 5])], [], opset)
    nodes = [node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])]
    inits = [
        ints("starts", [1, -1]),
        ints("ends", [3, -1000]),
        ints("axes", [1, -1]),
        ints("steps", [1, -2]),
    ]
    return model(nodes, [("x", ["N", 4, 6])], [("y", ["N", 2, 3])], inits, opset)


def reshape_model(opset: int) -> onnx.ModelProto:
    nodes = [node("Reshape", ["x", "shape"], ["y"])]
    return model(nodes, [("x", ["N", 4, 6])], [("y", ["N", 24])], [ints("shape", [0, -1])], opset)


def dropout_model(opset: int) -> onnx.ModelProto:
    if opset < 12:
        nodes = [node("Dropout", ["x"], ["y"], ratio=0.3)]
        return model(nodes, [("x", ["N", 8])], [("y", ["N", 8])], [], opset)
    nodes = [node("Dropout", ["x", "ratio"], ["y", "mask"])]
    outputs = [("y", ["N", 8]), ("mask", ["N", 8], TensorProto.BOOL)]
    return model(nodes, [("x", ["N", 8])], outputs, [init("ratio", np.float32(0.3))], opset)


def cast_model(opset: int) -> onnx.ModelProto:
    extra = {"saturate": 1} if opset >= 19 else {}
    nodes = [
        node("Cast", ["x"], ["i32"], to=TensorProto.INT32, **extra),
        node("Cast", ["x"], ["b"], to=TensorProto.BOOL),
        node("Cast", ["x"], ["f16"], to=TensorProto.FLOAT16, **extra),
        node("Cast", ["i32"], ["i64"], to=TensorProto.INT64),
        node("Cast", ["i64"], ["f64"], to=TensorProto.DOUBLE),
    ]
    outputs = [
        ("i32", ["N", 8], TensorProto.INT32),
        ("b", ["N", 8], TensorProto.BOOL),
        ("f16", ["N", 8], TensorProto.FLOAT16),
        ("f64", ["N", 8], TensorProto.DOUBLE),
    ]
    return model(nodes, [("x", ["N", 8])], outputs, [], opset)


def constant_nodes(opset: int) -> onnx.ModelProto:
    nodes = [
        node("Constant", [], ["two"], value_float=2.0),
        node("Constant", [], ["shape"], value_ints=[-1, 4]),
        node("Constant", [], ["bias"], value_floats=[0.5, -0.5, 1.0, 0.0]),
        node("Constant", [], ["one"], value_int=1),
        node("Mul", ["x", "two"], ["m"]),
        node("Reshape", ["m", "shape"], ["r"]),
        node("Add", ["r", "bias"], ["y"]),
        node("Cast", ["one"], ["one_f"], to=TensorProto.FLOAT),
        node("Sub", ["y", "one_f"], ["z"]),
    ]
    return model(nodes, [("x", ["N", 8])], [("z", [None, 4])], [], opset)


# (builder, opset, input shape) of the opset forms the importer turns into dedicated ops.
FORMS = {
    "squeeze_axes_attr_11": (squeeze_unsqueeze, 11, (3, 1, 4)),
    "squeeze_axes_input_13": (squeeze_unsqueeze, 13, (3, 1, 4)),
    "squeeze_axes_input_21": (squeeze_unsqueeze, 21, (3, 1, 4)),
    "slice_attrs_9": (slice_model, 9, (3, 4, 6)),
    "slice_inputs_10": (slice_model, 10, (3, 4, 6)),
    "slice_inputs_13": (slice_model, 13, (3, 4, 6)),
    "reshape_initializer_13": (reshape_model, 13, (3, 4, 6)),
    "dropout_10": (dropout_model, 10, (3, 8)),
    "dropout_13": (dropout_model, 13, (3, 8)),
    "dropout_10_unused_mask": (lambda opset: dropout_10_mask(return_mask=False), 10, (2, 3, 4)),
    "cast_6": (cast_model, 6, (3, 8)),
    "cast_13": (cast_model, 13, (3, 8)),
    "cast_19_saturate": (cast_model, 19, (3, 8)),
    "constant_nodes_13": (constant_nodes, 13, (3, 8)),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_opset_form(form):
    builder, opset, shape = FORMS[form]
    x = rnd(*shape) * 3  # casts see values beyond +-1
    modules = check(builder(opset), {"x": x})
    assert not generic(modules["imported"])
    if form.startswith("constant_nodes"):
        assert op_types(modules["imported"]).count("Constant") == 4


def old_softmax(op_type: str, axis: int) -> onnx.ModelProto:
    nodes = [node(op_type, ["x"], ["y"], axis=axis)]
    return model(nodes, [("x", [2, 3, 4])], [("y", [2, 3, 4])], opset=11)


def dropout_10_mask(return_mask: bool = True) -> onnx.ModelProto:
    """Dropout with a mask output (old exporters write one even when nothing reads it)."""
    nodes = [node("Dropout", ["x"], ["y", "mask"])]
    outputs = [("y", [2, 3, 4])]
    if return_mask:
        outputs.append(("mask", [2, 3, 4], TensorProto.BOOL))
    return model(nodes, [("x", [2, 3, 4])], outputs, opset=10)


def conv_reducemean() -> onnx.ModelProto:
    nodes = [
        node("Conv", ["x", "k", "kb"], ["c"], pads=[1, 1, 1, 1]),
        node("ReduceMean", ["c"], ["r"], axes=[2, 3], keepdims=0),
        node("Relu", ["r"], ["y"]),
    ]
    inits = [init("k", rnd(2, 1, 3, 3, seed=5)), init("kb", rnd(2, seed=6))]
    return model(nodes, [("x", ["N", 1, 5, 5])], [("y", ["N", 2])], inits, opset=13)


def ml_classifier() -> onnx.ModelProto:
    ml = {"domain": "ai.onnx.ml"}
    nodes = [
        node("Scaler", ["x"], ["s"], offset=[0.1, 0.2, 0.3, 0.4], scale=[2, 1, 0.5, 1.5], **ml),
        node(
            "LinearClassifier",
            ["s"],
            ["label", "scores"],
            coefficients=rnd(12, seed=7).tolist(),
            intercepts=[0.1, -0.1, 0.0],
            classlabels_ints=[3, 5, 7],
            post_transform="SOFTMAX",
            **ml,
        ),
    ]
    outputs = [("label", ["N"], TensorProto.INT64), ("scores", ["N", 3])]
    return model(nodes, [("x", ["N", 4])], outputs, ml=True)


# Models the importer deliberately leaves (partly) generic: (model, input shape, generic ops).
FALLBACKS = {
    # before opset 13 Softmax coerces to 2-D at axis: only axis = last is the new form
    "softmax_11_axis_not_last": (old_softmax("Softmax", 1), (2, 3, 4), ["Softmax"]),
    "logsoftmax_11_axis_0": (old_softmax("LogSoftmax", 0), (2, 3, 4), ["LogSoftmax"]),
    # operators without a dedicated op, of the default domain and of ai.onnx.ml
    "conv_reducemean": (conv_reducemean(), (3, 1, 5, 5), ["Conv", "ReduceMean"]),
    "ml_scaler_linear_classifier": (ml_classifier(), (6, 4), ["Scaler", "LinearClassifier"]),
    # the pre-12 Dropout mask has other types or values (onnxruntime's is all false)
    "dropout_10_mask": (dropout_10_mask(), (2, 3, 4), ["Dropout"]),
}


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_generic_fallback(case):
    onnx_model, shape, expected_generic = FALLBACKS[case]
    modules = check(onnx_model, {"x": rnd(*shape)})
    assert generic(modules["imported"]) == expected_generic


# -- exporter shape arithmetic that fold-constants removes ----------------------------------

T, F, H = 4, 3, 5  # sequence length, features, hidden size
GATES = {"LSTM": 4, "GRU": 3}
SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Concat", "ConstantOfShape", "Expand", "Slice"}


def rnn_with_shape_subgraph(cell: str, fill: str) -> onnx.ModelProto:
    """A batch-first `cell` over x[N, T, F] whose zero initial state is computed from
    Shape(x): TorchScript's ConstantOfShape(Concat(.., Unsqueeze(Gather(Shape(x), 0)), ..))
    or dynamo's Slice(Expand(0, Concat(.., Shape(x, 0, 1), ..)))."""
    g = GATES[cell]
    if fill == "constant_of_shape":
        nodes = [
            node("Shape", ["x"], ["shape"]),
            node(
                "Constant", [], ["zero"], value=helper.make_tensor("", TensorProto.INT64, [], [0])
            ),
            node("Gather", ["shape", "zero"], ["batch"], axis=0),
            node("Constant", [], ["ax0"], value_ints=[0]),
            node("Unsqueeze", ["batch", "ax0"], ["batch1"]),
            node("Concat", ["one", "batch1", "hidden"], ["state_shape"], axis=0),
            node(
                "ConstantOfShape",
                ["state_shape"],
                ["h0"],
                value=helper.make_tensor("", TensorProto.FLOAT, [1], [0.0]),
            ),
        ]
        opset, inits = 14, []
    else:
        nodes = [
            node("Shape", ["x"], ["batch1"], start=0, end=1),
            node("Concat", ["one", "batch1", "hidden"], ["state_shape"], axis=0),
            node("Expand", ["fzero", "state_shape"], ["zeros"]),
            node("Slice", ["zeros", "i0", "one", "i0"], ["h0"]),
        ]
        opset, inits = 20, [init("fzero", np.float32(0)), ints("i0", [0])]
    states = ["h0", "h0"] if cell == "LSTM" else ["h0"]
    nodes += [
        node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        node(cell, ["xt", "W", "R", "B", "", *states], ["", "Y_h"], hidden_size=H),
        node("Squeeze", ["Y_h", "ax0_"], ["y"]),
    ]
    inits += [
        ints("one", [1]),
        ints("hidden", [H]),
        ints("ax0_", [0]),
        init("W", rnd(1, g * H, F, seed=1) * 0.5),
        init("R", rnd(1, g * H, H, seed=2) * 0.5),
        init("B", rnd(1, 2 * g * H, seed=3) * 0.5),
    ]
    return model(nodes, [("x", ["N", T, F])], [("y", ["N", H])], inits, opset)


@pytest.mark.parametrize("fill", ["constant_of_shape", "expand"])
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_fold_removes_state_shape_subgraph(cell, fill):
    modules = check(rnn_with_shape_subgraph(cell, fill), {"x": rnd(3, T, F)})
    assert {"Shape", "Concat"} <= set(op_types(modules["imported"]))
    for stage in ("folded", "reparsed"):
        types = op_types(modules[stage])
        assert not SHAPE_OPS & set(types), types
        assert len(the_op(modules[stage], cell).operands) <= 4


# TorchScript's gate order -> ONNX's, as row ranges in units of H (README of tests/models).
REORDER = {"LSTM": [(0, 1), (3, 4), (1, 3)], "GRU": [(1, 2), (0, 1), (2, 3)]}


def rnn_unoptimized(cell: str, exporter: str) -> onnx.ModelProto:
    """A `cell` fed torch-layout weights through Unsqueeze(Concat(Slice(w, ..), ..)), as
    exported without constant folding. TorchScript slices at constant bounds; dynamo
    computes them as Shape(initial state, start=2, end=3) * k."""
    g = GATES[cell]
    weights = {
        "w_ih": rnd(g * H, F, seed=1) * 0.5,
        "w_hh": rnd(g * H, H, seed=2) * 0.5,
        "b_ih": rnd(g * H, seed=3) * 0.5,
        "b_hh": rnd(g * H, seed=4) * 0.5,
    }
    inits = [init(k, v) for k, v in weights.items()] + [ints("ax0", [0])]
    nodes = []
    if exporter == "dynamo":
        nodes += [
            node("Shape", ["x"], ["batch1"], start=0, end=1),
            node("Concat", ["one", "batch1", "hidden"], ["state_shape"], axis=0),
            node("Expand", ["fzero", "state_shape"], ["h0"]),
            node("Shape", ["h0"], ["h"], start=2, end=3),
        ]
        inits += [init("fzero", np.float32(0)), ints("one", [1]), ints("hidden", [H])]
    for k in sorted({b for r in REORDER[cell] for b in r}):
        if exporter == "dynamo":
            inits.append(ints(f"k{k}", [k]))
            nodes.append(node("Mul", ["h", f"k{k}"], [f"at{k}"]))
        else:
            inits.append(ints(f"at{k}", [k * H]))

    def reordered(name):
        parts = [f"{name}_{i}" for i in range(len(REORDER[cell]))]
        for part, (lo, hi) in zip(parts, REORDER[cell], strict=True):
            nodes.append(node("Slice", [name, f"at{lo}", f"at{hi}", "ax0"], [part]))
        nodes.append(node("Concat", parts, [f"{name}_onnx"], axis=0))
        return f"{name}_onnx"

    w, r = reordered("w_ih"), reordered("w_hh")
    nodes.append(node("Concat", [reordered("b_ih"), reordered("b_hh")], ["bias"], axis=0))
    for name in (w, r, "bias"):
        nodes.append(node("Unsqueeze", [name, "ax0"], [f"{name}3"]))
    nodes += [
        node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        node(cell, ["xt", f"{w}3", f"{r}3", "bias3"], ["", "Y_h"], hidden_size=H),
        node("Squeeze", ["Y_h", "ax0"], ["y"]),
    ]
    opset = 20 if exporter == "dynamo" else 14
    return model(nodes, [("x", ["N", T, F])], [("y", ["N", H])], inits, opset)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_fold_computes_unoptimized_weights(cell, exporter):
    modules = check(rnn_unoptimized(cell, exporter), {"x": rnd(3, T, F)})
    assert {"Slice", "Concat", "Unsqueeze"} <= set(op_types(modules["imported"]))
    for stage in ("folded", "reparsed"):
        types = op_types(modules[stage])
        assert not SHAPE_OPS & set(types), types
        rnn = the_op(modules[stage], cell)
        assert len(rnn.operands) == 4
        assert all(isinstance(v.owner, onnx_d.ConstantOp) for v in rnn.operands[1:])
