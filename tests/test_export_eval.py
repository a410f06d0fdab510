"""`export_module` / `dlhwc export` (IR -> ONNX) and `dlhwc eval` (float vs compressed).

The exactness of the comp.quantize formulations is proved on adversarial values (ties at
every half step, both saturation bounds, huge, infinite and tiny values) against
spec/fixedpoint.py, the definition the interpreter uses.

onnxruntime runs Q/DQ models with the session config entry `session.disable_quant_qdq`:
by default its QDQ optimizers quantize float weights next to Q/DQ activations to int8,
which is onnxruntime's reinterpretation, not the model's ONNX semantics. The float form
of comp.quantize runs with onnxruntime's default options.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from xdsl.ir import Operation

from dlhwc.compiler.cli import main
from dlhwc.compiler.frontend.onnx_exporter import export_module
from dlhwc.compiler.frontend.onnx_importer import import_file, import_model
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.irio import module_to_string, parse_module
from dlhwc.compiler.passes import BUILTIN_PASSES
from dlhwc.compiler.passes.weights import find_weights, replace_source
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
from dlhwc.dialects import comp
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat, frac_bits_for, quantize

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MLP = EXAMPLES / "models" / "digits_mlp.onnx"
DIGITS = EXAMPLES / "data" / "digits_test.npz"
MODELS = sorted((EXAMPLES / "models").glob("*.onnx")) + sorted(
    (ROOT / "tests" / "models" / "exported").glob("*.onnx")
)


def _feeds(model: Path) -> dict[str, np.ndarray]:
    sample = model.with_suffix(".npz")
    if sample.exists():
        with np.load(sample) as data:
            return dict(data)
    data_file = "digits_test_seq.npz" if "lstm" in model.name else "digits_test.npz"
    with np.load(EXAMPLES / "data" / data_file) as data:
        return {"input": data["input"][:16]}


def _digits(rows: int = 64) -> np.ndarray:
    with np.load(DIGITS) as data:
        return data["input"][:rows]


def _ort(model: onnx.ModelProto | str, feeds: dict, *, qdq_as_written: bool = False) -> list:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if qdq_as_written:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    data = model if isinstance(model, str) else model.SerializeToString()
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _assert_close(actual: np.ndarray, expected: np.ndarray, rel: float) -> None:
    """Equal to ``rel`` relative to each value, with the same slack near zero."""
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rel, atol=rel * scale)


def _module(text: str):
    return parse_module(text, "<test>")


# -- import -> export round trips ---------------------------------------------------------


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_round_trip_runs_like_the_original(path):
    original = onnx.load(str(path))
    exported = export_module(import_file(path))
    onnx.checker.check_model(exported, full_check=True)
    assert exported.ir_version == original.ir_version
    assert {(o.domain, o.version) for o in exported.opset_import} == {
        (o.domain, o.version) for o in original.opset_import
    }
    assert [i.name for i in exported.graph.input] == [
        i.name
        for i in original.graph.input
        if i.name not in {t.name for t in original.graph.initializer}
    ]
    assert [o.name for o in exported.graph.output] == [o.name for o in original.graph.output]
    feeds = _feeds(path)
    expected = _ort(str(path), feeds)
    actual = _ort(exported, feeds)
    for a, e in zip(actual, expected, strict=True):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=1e-6)


def test_interface_names_and_symbolic_dims_are_kept():
    mlp = export_module(import_file(MLP))
    (x,) = mlp.graph.input
    (y,) = mlp.graph.output
    assert x.name == "input" and y.name == "probabilities"
    assert [d.dim_param for d in x.type.tensor_type.shape.dim] == ["N", ""]
    assert [d.dim_value for d in x.type.tensor_type.shape.dim] == [0, 64]
    assert [d.dim_param for d in y.type.tensor_type.shape.dim] == ["N", ""]
    assert [n.name for n in mlp.graph.node] == ["fc1", "relu1", "fc2", "relu2", "fc3", "softmax"]
    assert [t.name for t in mlp.graph.initializer][:2] == ["fc1.weight", "fc1.bias"]
    assert mlp.graph.name == "digits_mlp" and mlp.producer_name == "dlhwc"
    # skl2onnx's batch dim has neither a value nor a name, and stays so.
    skl = export_module(import_file(ROOT / "tests/models/exported/skl_mlp.onnx"))
    dim = skl.graph.input[0].type.tensor_type.shape.dim[0]
    assert not dim.HasField("dim_value") and not dim.HasField("dim_param")


def test_names_are_made_unique_and_outputs_get_identities():
    module = _module(
        """
builtin.module attributes {onnx.opset_import = {ai.onnx = 17 : i64}, onnx.ir_version = 8 : i64} {
  func.func @main(%x: tensor<?x4xf32> {onnx.name = "x", onnx.dim_params = ["batch", ""]})
      -> (tensor<?x4xf32> {onnx.name = "y"}, tensor<?x4xf32> {onnx.name = "x_copy"},
          tensor<4xf32> {onnx.name = "w_out"}) {
    %a = onnx.Constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32> loc("w")
    %b = onnx.Constant dense<0.5> : tensor<4xf32> loc("w")
    %s = onnx.Add(%x, %a) : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32> loc("n")
    %t = onnx.Mul(%s, %b) : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32> loc("n")
    func.return %t, %x, %a : tensor<?x4xf32>, tensor<?x4xf32>, tensor<4xf32>
  }
}
"""
    )
    model = export_module(module)
    assert [t.name for t in model.graph.initializer] == ["w", "w_1"]
    assert [(n.op_type, n.name) for n in model.graph.node] == [
        ("Add", "n"),
        ("Mul", "n_1"),
        ("Identity", ""),
        ("Identity", ""),
    ]
    assert list(model.graph.node[0].output) == ["s"]
    assert [o.name for o in model.graph.output] == ["y", "x_copy", "w_out"]
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    y, x_copy, w_out = _ort(model, {"x": x})
    np.testing.assert_array_equal(y, (x + [1, 2, 3, 4]) * 0.5)
    np.testing.assert_array_equal(x_copy, x)
    np.testing.assert_array_equal(w_out, [1, 2, 3, 4])


def _old_opset_model(opset: int = 11) -> onnx.ModelProto:
    """Squeeze/Unsqueeze with attributes (before opset 13), which the importer normalizes;
    Slice with attributes before opset 10."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 6])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 4])
    if opset < 10:
        slice_node = helper.make_node(
            "Slice", ["s"], ["c"], starts=[1], ends=[5], axes=[1], name="slice"
        )
    else:
        slice_node = helper.make_node("Slice", ["s", "b", "e", "a"], ["c"], name="slice")
    nodes = [
        helper.make_node("Unsqueeze", ["x"], ["u"], axes=[1], name="unsqueeze"),
        helper.make_node("Squeeze", ["u"], ["s"], axes=[1], name="squeeze"),
        slice_node,
        helper.make_node("Softmax", ["c"], ["y"], axis=1, name="softmax"),
    ]
    inits = [
        onnx.numpy_helper.from_array(np.array([v], dtype=np.int64), n)
        for n, v in (("b", 1), ("e", 5), ("a", 1))
    ]
    graph = helper.make_graph(nodes, "old", [x], [y], inits if opset >= 10 else [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 4 if opset < 10 else 6
    return model


def test_older_opsets_get_their_own_forms_back():
    original = _old_opset_model()
    exported = export_module(import_model(original))
    assert [(o.domain, o.version) for o in exported.opset_import] == [("", 11)]
    attrs = {n.op_type: {a.name: list(a.ints) for a in n.attribute} for n in exported.graph.node}
    assert attrs["Squeeze"] == attrs["Unsqueeze"] == {"axes": [1]}  # attributes again
    x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    np.testing.assert_allclose(_ort(exported, {"x": x})[0], _ort(original, {"x": x})[0], rtol=1e-6)


def test_models_below_opset_11_are_upgraded(capsys):
    """Opset 9 has no exact form of comp.quantize: the importer upgrades to 11, with a note."""
    original = _old_opset_model(9)
    module = import_model(original, "old.onnx")
    assert "old.onnx: upgraded from ai.onnx opset 9 to 11" in capsys.readouterr().err
    exported = export_module(module)
    assert [(o.domain, o.version) for o in exported.opset_import] == [("", 11)]
    x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    np.testing.assert_allclose(_ort(exported, {"x": x})[0], _ort(original, {"x": x})[0], rtol=1e-6)


def test_export_bytes_are_deterministic(tmp_path):
    first = export_module(import_file(MLP)).SerializeToString()
    assert export_module(import_file(MLP)).SerializeToString() == first
    # Through the CLI, from the ONNX file and from its saved IR, the bytes are the same.
    ir = tmp_path / "mlp.mlir"
    ir.write_text(module_to_string(import_file(MLP)))
    assert main(["export", str(MLP), "-o", str(tmp_path / "a.onnx")]) == 0
    assert main(["export", str(ir), "-o", str(tmp_path / "b.onnx")]) == 0
    assert (tmp_path / "a.onnx").read_bytes() == first == (tmp_path / "b.onnx").read_bytes()


# -- comp.weight --------------------------------------------------------------------------


def _share_fc1(module) -> comp.WeightOp:
    """Replace fc1's weight by a comp.weight: half pruned, a 16-value codebook."""
    (slot,) = [s for s in find_weights(module, "matrix") if s.layer == "fc1"]
    w = slot.value()
    mask = np.abs(w) > np.median(np.abs(w))
    codebook = np.linspace(w[mask].min(), w[mask].max(), 16, dtype=np.float32)
    indices = np.abs(w[..., None] - codebook).argmin(-1).astype(np.uint8)
    new = comp.WeightOp.from_arrays(
        slot.source.results[0].type,
        mask,
        codebook=codebook,
        indices=np.where(mask, indices, 0),
        index_bits=4,
        node_name="fc1.weight",
    )
    replace_source(slot, new)
    return new


def test_comp_weight_becomes_its_dense_initializer():
    module = import_file(MLP)
    weight = _share_fc1(module)
    model = export_module(module)
    onnx.checker.check_model(model, full_check=True)
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(stored["fc1.weight"], weight.dense())
    assert set(np.unique(stored["fc1.weight"])) <= {0.0, *weight.codebook_array()}
    x = _digits()
    _assert_close(
        _ort(model, {"input": x})[0], run_module(module, {"input": x})["probabilities"], 1e-5
    )


@pytest.mark.skipif("share-weights" not in BUILTIN_PASSES, reason="no share-weights pass")
def test_share_weights_pass_output_exports():
    module = import_file(MLP)
    apply_passes(
        module, parse_pipeline("prune{sparsity=0.8},share-weights{bits=4}", BUILTIN_PASSES)
    )
    assert any(isinstance(op, comp.WeightOp) for op in module.walk())
    x = _digits()
    expected = run_module(module, {"input": x})["probabilities"]
    _assert_close(_ort(export_module(module), {"input": x})[0], expected, 1e-5)


# -- comp.quantize: the exactness proof -----------------------------------------------------

FORMATS = [  # (N, F)
    (8, 4),
    (8, -2),
    (4, 2),
    (2, 0),
    (3, 7),
    (12, 10),
    (16, 8),
    (16, 14),
    (16, 0),
    (24, 12),
    (32, 20),
]


def _adversarial(fmt: FixedFormat) -> np.ndarray:
    """Values at, between and half-way between codes across (and beyond) the range."""
    step = fmt.scale
    span = min(fmt.qmax + 3, 5000)
    codes = np.unique(
        np.concatenate(
            [
                np.arange(-span - 1, span + 3),
                np.linspace(fmt.qmin - 3, fmt.qmax + 3, 2001).round(),
            ]
        )
    )
    rng = np.random.default_rng(fmt.bits * 100 + fmt.frac)
    values = np.concatenate(
        [
            codes * step,
            (codes + 0.5) * step,  # ties: half to even
            (codes - 0.5) * step,
            (codes + 0.25) * step,
            (codes + 0.5 + 2.0**-20) * step,
            rng.normal(0.0, fmt.max_value, 4000),
            [np.inf, -np.inf, 3e38, -3e38, 1e-40, -1e-40, 0.0, -0.0],
            [fmt.qmax * step, fmt.qmin * step, (fmt.qmax + 0.5) * step, (fmt.qmin - 0.5) * step],
        ]
    )
    with np.errstate(over="ignore"):
        return values.astype(np.float32)


def _quantize_module(fmt: FixedFormat, opset: int, extra: str = "", source: str = "%x") -> str:
    return f"""
builtin.module attributes {{onnx.opset_import = {{ai.onnx = {opset} : i64}}, onnx.ir_version = 7 : i64}} {{
  func.func @main(%x: tensor<?xf32> {{onnx.name = "x"}}) -> (tensor<?xf32> {{onnx.name = "y"}}) {{
    {extra}
    %y = comp.quantize {source} {{format = #comp.fixed<{fmt.bits}, {fmt.frac}>}} : tensor<?xf32>
    func.return %y : tensor<?xf32>
  }}
}}
"""


def _expected_form(fmt: FixedFormat, opset: int, prefer: str) -> str:
    qdq = fmt.bits <= 8 or (fmt.bits <= 16 and opset >= 13)  # 13..20 is raised to 21
    return "qdq" if qdq and (prefer == "qdq" or opset < 11) else "float"


@pytest.mark.parametrize("opset", [10, 11, 17, 21])
@pytest.mark.parametrize("prefer", ["qdq", "float"])
@pytest.mark.parametrize("bits,frac", FORMATS)
def test_quantize_export_is_exact(bits, frac, prefer, opset):
    fmt = FixedFormat(bits, frac)
    form = _expected_form(fmt, opset, prefer)
    module = _module(_quantize_module(fmt, opset))
    if opset < 11 and form == "float":
        with pytest.raises(DlhwcError, match="cannot export comp.quantize"):
            export_module(module, quantize_as=prefer)
        return
    model = export_module(module, quantize_as=prefer)
    ops = [n.op_type for n in model.graph.node]
    if form == "qdq":
        assert ops[-2:] == ["QuantizeLinear", "DequantizeLinear"]
        assert ops[:-2] == ([] if bits in (8, 16) else ["Clip"])
        zero = {t.name: t for t in model.graph.initializer}[model.graph.node[-1].input[2]]
        assert zero.data_type == (onnx.TensorProto.INT8 if bits <= 8 else onnx.TensorProto.INT16)
    else:
        assert ops == ["Mul", "Round", "Clip", "Mul"]
    version = {o.domain: o.version for o in model.opset_import}[""]
    assert version == (21 if form == "qdq" and bits > 8 and opset < 21 else opset)
    x = _adversarial(fmt)
    (y,) = _ort(model, {"x": x})
    expected = quantize(x, fmt)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, expected)  # value-exact (-0.0 == 0.0)
    if form == "qdq":  # bit-exact too: no negative zeros
        np.testing.assert_array_equal(y.view(np.uint32), expected.view(np.uint32))
    np.testing.assert_array_equal(run_module(module, {"x": x})["y"], expected)


def test_opset_is_not_raised_over_a_changed_operator():
    # ReduceMean takes axes as an attribute at opset 17 and as an input from opset 18:
    # raising the opset to 21 for int16 QuantizeLinear would change it, so the float form
    # is used instead.
    extra = (
        '%m = onnx.Node(%x) {op_type = "ReduceMean", domain = "", opset = 17 : i64, '
        "attrs = {axes = array<i64: 0>, keepdims = 1 : i64}} : (tensor<?xf32>) -> tensor<1xf32>\n"
        "    %d = onnx.Sub(%x, %m) : (tensor<?xf32>, tensor<1xf32>) -> tensor<?xf32>"
    )
    fmt = FixedFormat(12, 8)
    module = _module(_quantize_module(fmt, 17, extra, "%d"))
    model = export_module(module)
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    assert "Round" in [n.op_type for n in model.graph.node]
    x = _adversarial(fmt)[:2000]
    np.testing.assert_array_equal(_ort(model, {"x": x})[0], run_module(module, {"x": x})["y"])


# -- comp.quantize in a model ------------------------------------------------------------


def _insert_quantize(value, fmt: FixedFormat) -> None:
    q = comp.QuantizeOp(value, fmt)
    owner = value.owner
    if isinstance(owner, Operation):
        owner.parent_block().insert_op_after(q, owner)
    else:
        owner.insert_op_before(q, owner.first_op)
    value.replace_uses_with_if(q.output, lambda use: use.operation is not q)


def _quantized_mlp(fmt: FixedFormat):
    """The digits MLP with 8-bit fixed-point weights and ``fmt`` activations (input, the
    two hidden layers, the logits): every Gemm then sums dyadic numbers exactly, in any
    order, so onnxruntime and the interpreter see the same values at every comp.quantize."""
    module = import_file(MLP)
    for slot in find_weights(module):
        w = slot.value()
        wfmt = FixedFormat(8, frac_bits_for(float(np.abs(w).max()), 8))
        values = quantize(w, wfmt)
        new = comp.WeightOp.from_arrays(
            slot.source.results[0].type, values != 0, values=values, fmt=wfmt, node_name=slot.name
        )
        replace_source(slot, new)
    fn = next(op for op in module.walk() if op.name == "func.func")
    _insert_quantize(fn.body.block.args[0], fmt)
    for op in list(fn.body.block.ops):
        if getattr(op, "node_name", None) in ("relu1", "relu2", "fc3"):
            _insert_quantize(op.results[0], fmt)
    return module


@pytest.mark.parametrize("bits,frac", [(16, 8), (8, 4), (12, 6)])
@pytest.mark.parametrize("prefer", ["qdq", "float"])
def test_quantized_model_agrees_with_the_interpreter(bits, frac, prefer):
    module = _quantized_mlp(FixedFormat(bits, frac))
    assert sum(isinstance(op, comp.QuantizeOp) for op in module.walk()) == 4
    model = export_module(module, quantize_as=prefer)
    ops = {n.op_type for n in model.graph.node}
    assert ("QuantizeLinear" in ops) == (prefer == "qdq")
    x = _digits(200)
    expected = run_module(module, {"input": x})["probabilities"]
    actual = _ort(model, {"input": x}, qdq_as_written=prefer == "qdq")[0]
    _assert_close(actual, expected, 1e-6)


@pytest.mark.skipif("quantize" not in BUILTIN_PASSES, reason="no quantize pass")
@pytest.mark.parametrize("act_bits", [8, 12])
@pytest.mark.parametrize("prefer", ["qdq", "float"])
def test_quantize_pass_output_agrees_with_the_interpreter(act_bits, prefer):
    module = import_file(MLP)
    pipeline = f"quantize{{weight-bits=8 act-bits={act_bits}}}"
    apply_passes(module, parse_pipeline(pipeline, BUILTIN_PASSES))
    assert any(isinstance(op, comp.QuantizeOp) for op in module.walk())
    model = export_module(module, quantize_as=prefer)
    opset = {o.domain: o.version for o in model.opset_import}[""]
    assert opset == (21 if prefer == "qdq" and act_bits > 8 else 17)
    x = _digits(200)
    expected = run_module(module, {"input": x})["probabilities"]
    actual = _ort(model, {"input": x}, qdq_as_written=prefer == "qdq")[0]
    _assert_close(actual, expected, 1e-6)


# -- the CLI: export --------------------------------------------------------------------------


def test_cli_export_from_mlir(tmp_path, capsys):
    module = _quantized_mlp(FixedFormat(16, 8))
    ir = tmp_path / "q.mlir"
    ir.write_text(module_to_string(module))
    out = tmp_path / "q.onnx"
    assert main(["export", str(ir), "-o", str(out)]) == 0
    assert "session.disable_quant_qdq=1" in capsys.readouterr().err
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import}[""] == 21
    assert main(["export", str(ir), "-o", str(out), "--quantize-as", "float"]) == 0
    assert capsys.readouterr().err == ""
    assert "QuantizeLinear" not in {n.op_type for n in onnx.load(str(out)).graph.node}


@pytest.mark.parametrize(
    "source,output,message",
    [
        (MLP, False, "export needs -o FILE.onnx"),
        (Path("missing.mlir"), True, "no such file"),
        (DIGITS, True, "not a valid ONNX model"),  # an .npz is no ONNX file
    ],
)
def test_cli_export_errors(source, output, message, tmp_path, capsys):
    out = tmp_path / "o.onnx"
    argv = ["export", str(source if source.is_absolute() else tmp_path / source)]
    assert main(argv + (["-o", str(out)] if output else [])) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


# -- the CLI: eval ----------------------------------------------------------------------------


def _eval(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = main(["eval", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _expected_accuracy() -> float:
    with np.load(DIGITS) as data:
        (probs,) = _ort(str(MLP), {"input": data["input"]})
        return float(np.mean(probs.argmax(1) == data["labels"]))


def test_eval_with_labels(tmp_path, capsys):
    module = import_file(MLP)
    _share_fc1(module)
    compressed = tmp_path / "shared.mlir"
    compressed.write_text(module_to_string(module))
    report = tmp_path / "eval.json"
    argv = [str(MLP), "--data", str(DIGITS), "--labels", "labels", "--compressed", str(compressed)]
    rc, out, err = _eval([*argv, "--json", str(report)], capsys)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["float", "model", str(MLP)]
    assert "450 samples" in lines[2] and "labels 'labels'" in lines[2]
    title = next(line for line in lines if line.startswith("output"))
    row = next(line for line in lines if line.startswith("probabilities"))
    for column in ("max abs error", "SQNR (dB)", "top-1 agreement", "float accuracy"):
        assert column in title
    assert len(row) == len(title)  # numbers right-aligned under their titles
    numbers = json.loads(report.read_text())
    assert set(numbers) == {
        "float_model",
        "compressed_model",
        "data",
        "labels",
        "samples",
        "outputs",
    }
    entry = numbers["outputs"]["probabilities"]
    assert set(entry) == {
        "shape",
        "dtype",
        "max_abs_error",
        "sqnr_db",
        "top1_agreement",
        "float_accuracy",
        "compressed_accuracy",
    }
    assert numbers["samples"] == 450 and entry["shape"] == [450, 10]
    assert entry["float_accuracy"] == pytest.approx(_expected_accuracy())
    assert 0 < entry["max_abs_error"] < 1 and 0 < entry["sqnr_db"] < 200
    assert 0.5 < entry["top1_agreement"] <= 1 and 0.5 < entry["compressed_accuracy"] <= 1
    assert f"{entry['float_accuracy']:.2%}" in row and f"{entry['sqnr_db']:.2f}" in row


def test_eval_identical_models_have_infinite_sqnr(tmp_path, capsys):
    same = tmp_path / "same.mlir"
    same.write_text(module_to_string(import_file(MLP)))
    report = tmp_path / "eval.json"
    argv = [str(MLP), "--data", str(DIGITS), "--compressed", str(same), "--json", str(report)]
    rc, out, err = _eval(argv, capsys)
    assert rc == 0
    assert "ignoring arrays not among the model's inputs: labels" in err
    row = next(line for line in out.splitlines() if line.startswith("probabilities"))
    assert row.split()[1:4] == ["0.000e+00", "inf", "100.00%"]
    entry = json.loads(report.read_text())["outputs"]["probabilities"]
    assert entry["sqnr_db"] == "inf" and entry["max_abs_error"] == 0.0
    assert entry["float_accuracy"] is None and entry["compressed_accuracy"] is None
    # -p compiles MODEL with the pipeline; fold-constants leaves the MLP as it is.
    rc, out, _ = _eval([str(MLP), "--data", str(DIGITS), "-p", "fold-constants"], capsys)
    assert rc == 0 and "with -p 'fold-constants'" in out and " inf " in out


@pytest.mark.skipif("prune" not in BUILTIN_PASSES, reason="no prune pass")
def test_eval_with_a_pipeline(capsys):
    argv = [str(MLP), "--data", str(DIGITS), "--labels", "labels", "-p", "prune{sparsity=0.5}"]
    rc, out, _ = _eval(argv, capsys)
    assert rc == 0
    cells = next(line for line in out.splitlines() if line.startswith("probabilities")).split()
    assert cells[2] != "inf" and float(cells[2]) > 0


@pytest.mark.parametrize(
    "extra,message",
    [
        ([], "eval needs the compressed model: give either -p PIPELINE"),
        (["-p", "fold-constants", "--compressed", "x.mlir"], "not both"),
        (["-p", "fold-constants", "--labels", "classes"], "no array 'classes' for --labels"),
        (["-p", "fold-constants", "--labels", "input"], "names a model input"),
    ],
)
def test_eval_errors(extra, message, capsys):
    rc, out, err = _eval([str(MLP), "--data", str(DIGITS), *extra], capsys)
    assert rc == 1 and out == ""
    assert message in err and err.count("\n") == 1
