"""ONNX model -> `onnx` dialect.

The model is checked by the ONNX checker, its shapes are inferred by ONNX shape
inference (symbolic dimensions stay dynamic, and graph inputs keep their names in
`onnx.dim_params`), and every node becomes one op:

- a node of the default domain whose operator has a dedicated op becomes that op, after
  its opset's form is rewritten to the newest one (see `_NORMALIZE`);
- any other node, of any domain, becomes an `onnx.Node` that keeps its op type, domain,
  opset and attributes. The importer never refuses a valid model: later stages decide
  where each op can run.

Initializers become `onnx.Constant` ops backed by the tensor's raw bytes. The function
is `func.func @main`; its arguments and results carry the ONNX names as `onnx.name`.

Pre-quantized (QDQ) models: a DequantizeLinear of constant integers becomes a weight
(see `_Importer.dequantize_weight`), and a QuantizeLinear -> DequantizeLinear pair on an
activation that is exactly a fixed-point rounding becomes a `comp.quantize`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto, numpy_helper
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    BytesAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    FunctionType,
    IntegerAttr,
    ModuleOp,
    NoneType,
    StringAttr,
    TensorType,
    UnrankedTensorType,
    f32,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.utils.exceptions import VerifyException

from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import MAX_BITS as MAX_FIXED_BITS
from dlhwc.spec.fixedpoint import FixedFormat

DEFAULT_DOMAINS = ("", "ai.onnx")


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file, refusing what is not one with a one-line error."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DlhwcError("no such file", file=str(path)) from None
    except IsADirectoryError:
        raise DlhwcError("is a directory, not an ONNX file", file=str(path)) from None
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise DlhwcError(
            f"not a valid ONNX model (protobuf decoding failed: {e})", file=str(path)
        ) from None
    if not model.HasField("graph") or not data:
        raise DlhwcError("not a valid ONNX model (it has no graph)", file=str(path))
    _check_names(model.graph, str(path))
    if any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer):
        try:
            onnx.load_external_data_for_model(model, str(path.parent))
        except (OSError, ValueError, onnx.checker.ValidationError) as e:
            reason = " ".join(str(e).split())
            raise DlhwcError(
                f"cannot load external tensor data: {reason}", file=str(path)
            ) from None
    return model


def _check_names(graph: onnx.GraphProto, source: str) -> None:
    """Refuse names that are not UTF-8: protobuf hands them over as bytes, which the IR
    (node names become locations) cannot hold."""
    names = [graph.name]
    for node in graph.node:
        names += [node.name, node.op_type, node.domain, *node.input, *node.output]
    for value in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        names.append(value.name)
    bad = next((n for n in names if not isinstance(n, str)), None)
    if bad is not None:
        raise DlhwcError(f"not a valid ONNX model (a name is not UTF-8: {bad!r})", file=source)


def import_file(path: str | Path) -> ModuleOp:
    """Load, check and import the ONNX model at ``path``."""
    return import_model(load_model(path), str(path))


def import_model(model: onnx.ModelProto, source: str = "<model>") -> ModuleOp:
    """Check ``model`` with the ONNX checker, infer its shapes and import it.

    A valid model older than ai.onnx opset `UPGRADE_OPSET` is then upgraded to it (see
    `upgrade_opset`), with a note on stderr. One whose upgrade would change its inputs
    or outputs is imported at its own opset with every op a generic `onnx.Node`, which
    runs on the host as the model wrote it.
    """
    skeleton = _without_large_weights(model)
    try:
        onnx.checker.check_model(skeleton)
    except onnx.checker.ValidationError as e:
        reason = " ".join(str(e).split())
        raise DlhwcError(f"rejected by the ONNX checker: {reason}", file=source) from None
    except UnicodeDecodeError as e:  # a string field that is not UTF-8
        raise DlhwcError(f"not a valid ONNX model (a string is not UTF-8: {e.reason})",
                         file=source) from None  # fmt: skip
    upgraded = upgrade_opset(model, source)
    generic = False
    if upgraded is None:
        generic = True  # kept at its own opset: every op stays as the model wrote it
    elif upgraded is not model:
        model, skeleton = upgraded, _without_large_weights(upgraded)
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=False, data_prop=True)
    except Exception as e:  # noqa: BLE001 - shape inference raises many types
        raise DlhwcError(
            f"ONNX shape inference failed: {_first_line(str(e))}", file=source
        ) from None
    module = _Importer(model, inferred, source, generic).run()
    try:
        module.verify()  # what the ops promise: shapes of Gemm, LSTM, axes (dialects/onnx.py)
    except VerifyException as e:
        raise DlhwcError(f"invalid model: {_first_line(str(e))}", file=source) from None
    return module


# ---------------------------------------------------------------------------------------
# Older opsets. Host segments are exported at the model's own opset, and comp.quantize
# has an exact ONNX form only from opset 10 (8 bits) and 11 (the float chain for 16
# bits; onnx_exporter._quantize_style). So a model below opset 11 is upgraded at import
# by onnx's version converter, to 11 and no further: the lowest opset that dlhwc's
# exporter needs, and the fewest adapters a model goes through. (onnx's newest opset
# would outrun the onnxruntime that runs the host segments.) Newer models are imported
# as they are; the importer's normalizers read the forms of opsets 11 and 12.

UPGRADE_OPSET = 11


def upgrade_opset(model: onnx.ModelProto, source: str = "<model>") -> onnx.ModelProto | None:
    """``model`` at ai.onnx opset `UPGRADE_OPSET` when it is older, else ``model`` itself;
    None when the upgrade would change the types of the graph's inputs or outputs (the
    converter's Scan 8 -> 9 adapter drops Scan-8's batch axis from them), so the model
    must stay at its own opset.

    Prints a one-line note either way; a model the converter cannot convert is a
    `DlhwcError` naming the converter's reason. Large initializers skip the converter
    (it copies the model; its adapters rewrite nodes, never initializers) and are put
    back as they are.
    """
    opset = next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), None)
    if opset is None or opset >= UPGRADE_OPSET:
        return model
    from onnx import version_converter

    skeleton = _without_large_weights(model)
    try:
        upgraded = version_converter.convert_version(skeleton, UPGRADE_OPSET)
    except Exception as e:  # noqa: BLE001 - the converter raises RuntimeError, IndexError...
        raise DlhwcError(
            f"cannot upgrade ai.onnx opset {opset} to {UPGRADE_OPSET} (dlhwc needs "
            f">= {UPGRADE_OPSET}): onnx's version converter failed: {_converter_reason(e)}",
            file=source,
        ) from None
    changed = _interface_change(model.graph, upgraded.graph)
    if changed:
        print(
            f"dlhwc: note: {source}: kept at ai.onnx opset {opset}: upgrading it to "
            f"{UPGRADE_OPSET} would change {changed}; its ops run on the host as written",
            file=sys.stderr,
        )
        return None
    if skeleton is not model:
        large = {t.name: t for t in model.graph.initializer if t.name not in
                 {s.name for s in skeleton.graph.initializer}}  # fmt: skip
        declared = {i.name for i in model.graph.input}
        inputs = [i for i in upgraded.graph.input if i.name not in large or i.name in declared]
        del upgraded.graph.input[:]
        upgraded.graph.input.extend(inputs)
        upgraded.graph.initializer.extend(large.values())
    # The IR version must be one that knows the new opset (IR 6 for opset 11).
    upgraded.ir_version = max(
        upgraded.ir_version, onnx.helper.find_min_ir_version_for(list(upgraded.opset_import))
    )
    print(
        f"dlhwc: note: {source}: upgraded from ai.onnx opset {opset} to {UPGRADE_OPSET} "
        "(onnx version converter)",
        file=sys.stderr,
    )
    return upgraded


def _interface_change(before: onnx.GraphProto, after: onnx.GraphProto) -> str | None:
    """The first graph input or output whose declared type the upgrade changed."""
    for kind, old, new in (("input", before.input, after.input),
                           ("output", before.output, after.output)):  # fmt: skip
        types = {v.name: v.type for v in new}
        for v in old:
            if v.name in types and types[v.name] != v.type:
                return f"{kind} '{v.name}' from {_type_text(v.type)} to {_type_text(types[v.name])}"
    return None


def _type_text(t: onnx.TypeProto) -> str:
    if t.HasField("tensor_type") and t.tensor_type.HasField("shape"):
        dims = [d.dim_param or str(d.dim_value) if d.HasField("dim_value") or d.dim_param
                else "?" for d in t.tensor_type.shape.dim]  # fmt: skip
        return f"[{', '.join(dims)}]"
    return _type_spelling(t)


def _converter_reason(e: Exception) -> str:
    """The converter's message without its source path and assertion wrapper."""
    text = _first_line(str(e)) or type(e).__name__
    # "/project/onnx/.../BaseConverter.h:66: adapter_lookup: Assertion `false` failed: No
    # Adapter From Version $6 for Less" -> "No Adapter From Version $6 for Less"
    return re.sub(r"^(\S*\.h:\d+:\s*)?(\w+:\s*)?(Assertion `[^`]*` failed:\s*)?", "", text)


# ---------------------------------------------------------------------------------------
# The checker and shape inference copy the model (more than once); on a model with
# 100M weights that costs seconds. They need only the shapes of large initializers, so
# they run on a skeleton where each large initializer is a graph input of the same type.
# (Not an external-data stub: the checker requires a stub's file to exist.) The skeleton
# is built field by field, so the weights are never copied and the caller's model is
# never modified.

_LARGE = 1 << 16


def _without_large_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    large = {t.name for t in model.graph.initializer if _num_elements(t) > _LARGE}
    if not large:
        return model
    skeleton = onnx.ModelProto()
    _copy_fields_except(model, skeleton, "graph")
    _copy_fields_except(model.graph, skeleton.graph, "initializer")
    declared = {i.name for i in skeleton.graph.input}
    for t in model.graph.initializer:
        if t.name in large and t.name in declared:
            continue  # the graph input already gives its type
        if t.name in large and model.ir_version >= 4:
            skeleton.graph.input.append(
                onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
            )
        else:
            # Small, or an IR < 4 initializer missing from the inputs: the checker must
            # see it as it is to reject the model with its own message.
            skeleton.graph.initializer.append(t)
    return skeleton


def _copy_fields_except(src, dst, skip: str) -> None:
    """Copy every set field of protobuf message ``src`` but ``skip`` into ``dst``."""
    for field, value in src.ListFields():
        if field.name == skip:
            continue
        if _is_repeated(field):
            getattr(dst, field.name).extend(value)
        elif field.message_type is not None:
            getattr(dst, field.name).CopyFrom(value)
        else:
            setattr(dst, field.name, value)


def _is_repeated(field) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf >= 6; `label` is deprecated there
        return field.is_repeated
    return field.label == field.LABEL_REPEATED


def _num_elements(t: TensorProto) -> int:
    return int(np.prod(t.dims)) if t.dims else 1


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text


# ---------------------------------------------------------------------------------------
# Types and attributes


_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.$-]")


def _name_hint(name: str) -> str | None:
    hint = _NAME_CHARS.sub("_", name).strip("_")
    if not hint or hint[0].isdigit():
        hint = "v" + hint
    # xDSL uses a trailing "_<digits>" for its own uniquing.
    hint = re.sub(r"_(\d+)$", r"\1", hint)
    return hint if SSAValue.is_valid_name(hint) else None


def _value_type(type_proto: onnx.TypeProto | None) -> Attribute:
    if type_proto is None or not type_proto.HasField("tensor_type"):
        if type_proto is not None and type_proto.WhichOneof("value") is not None:
            spelling = _type_spelling(type_proto)
            return onnx_d.OpaqueType(StringAttr(spelling))
        return onnx_d.OpaqueType(StringAttr("unknown"))
    tt = type_proto.tensor_type
    try:
        elem = onnx_d.element_type(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
    except (KeyError, ValueError):
        return onnx_d.OpaqueType(StringAttr(_type_spelling(type_proto)))
    if not tt.HasField("shape"):
        return UnrankedTensorType(elem)
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
    return TensorType(elem, [d if d >= 0 else DYNAMIC_INDEX for d in dims])


def _dtype_name(data_type: int) -> str:
    try:
        return TensorProto.DataType.Name(data_type).lower()
    except ValueError:  # a number no ONNX version defines
        return f"unknown{data_type}"


def _type_spelling(type_proto: onnx.TypeProto) -> str:
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        return f"tensor({_dtype_name(type_proto.tensor_type.elem_type)})"
    if kind == "sequence_type":
        return f"seq({_type_spelling(type_proto.sequence_type.elem_type)})"
    if kind == "map_type":
        key = _dtype_name(type_proto.map_type.key_type)
        return f"map({key},{_type_spelling(type_proto.map_type.value_type)})"
    if kind == "optional_type":
        return f"optional({_type_spelling(type_proto.optional_type.elem_type)})"
    return kind or "unknown"


def _dense_from_tensor(t: TensorProto, source: str | None = None) -> DenseIntOrFPElementsAttr:
    """The tensor's values as a dense attribute; its data must fill its dims exactly
    (the ONNX checker does not look: 12 bytes with dims [4, 1e9] passed it)."""
    try:
        np_dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
    except KeyError:
        raise DlhwcError(f"tensor '{t.name}' has unknown data type {t.data_type}",
                         file=source) from None  # fmt: skip
    if t.HasField("raw_data") and np_dtype != np.bool_ and np.dtype(np_dtype).kind in "fiu":
        need = _num_elements(t) * np.dtype(np_dtype).itemsize
        if len(t.raw_data) != need:
            raise DlhwcError(
                f"tensor '{t.name}' has {len(t.raw_data)} bytes of data, but its dims "
                f"{list(t.dims)} need {need}",
                file=source,
            )
        # Zero-copy path: the IR holds the tensor's little-endian bytes as they are.
        typ = onnx_d.tensor_type(np_dtype, list(t.dims))
        return DenseIntOrFPElementsAttr(typ, BytesAttr(t.raw_data))
    try:
        array = numpy_helper.to_array(t)
    except (ValueError, TypeError) as e:
        raise DlhwcError(f"tensor '{t.name}': {_first_line(str(e))}", file=source) from None
    return onnx_d.dense_from_array(array)


def _has_element_type(data_type: int) -> bool:
    """Whether tensors of ONNX ``data_type`` have a builtin element type."""
    try:
        onnx_d.element_type(onnx.helper.tensor_dtype_to_np_dtype(data_type))
    except (KeyError, ValueError, TypeError):
        return False
    return True


def _attribute(a: AttributeProto) -> Attribute:
    if a.type == AttributeProto.FLOAT:
        return onnx_d.attr_from_python(float(a.f))
    if a.type == AttributeProto.INT:
        return IntegerAttr(int(a.i), i64)
    if a.type == AttributeProto.STRING:
        return StringAttr(a.s.decode("utf-8", errors="replace"))
    if a.type == AttributeProto.TENSOR and _has_element_type(a.t.data_type):
        return _dense_from_tensor(a.t)
    if a.type == AttributeProto.FLOATS:
        return DenseArrayBase.from_list(f32, [float(v) for v in a.floats])
    if a.type == AttributeProto.INTS:
        return DenseArrayBase.from_list(i64, [int(v) for v in a.ints])
    if a.type == AttributeProto.STRINGS:
        return ArrayAttr([StringAttr(s.decode("utf-8", errors="replace")) for s in a.strings])
    # Graphs, sparse tensors, tensors of strings (or of a type numpy has no dtype for),
    # type protos and lists of them are kept as the serialized AttributeProto, so the
    # node still runs on the host exactly as it was.
    return onnx_d.ProtoAttr(StringAttr(a.SerializeToString().hex()))


# ---------------------------------------------------------------------------------------
# Normalization of older opset forms. Each function takes the node, its opset and the
# attribute dict (ONNX name -> builtin attribute, mutated in place) and the input values;
# it returns the new inputs, or None when the form has no dedicated equivalent (the node
# then stays a generic onnx.Node, which is always correct).

Normalizer = Callable[["_Importer", onnx.NodeProto, int, dict, list], list | None]
_NORMALIZE: dict[str, Normalizer] = {}


def _normalizes(*op_types: str):
    def register(fn: Normalizer) -> Normalizer:
        for t in op_types:
            _NORMALIZE[t] = fn
        return fn

    return register


@_normalizes("Squeeze", "Unsqueeze")
def _squeeze(imp: _Importer, node, opset, attrs, inputs):
    if "axes" in attrs:
        axes = np.array(attrs.pop("axes").get_values(), dtype=np.int64)
        inputs = [inputs[0], imp.constant(axes, f"{node.name}.axes")]
    return inputs


@_normalizes("Slice")
def _slice(imp: _Importer, node, opset, attrs, inputs):
    if opset >= 10:
        return inputs
    starts = np.array(attrs.pop("starts").get_values(), dtype=np.int64)
    ends = np.array(attrs.pop("ends").get_values(), dtype=np.int64)
    new = [inputs[0], imp.constant(starts, f"{node.name}.starts")]
    new.append(imp.constant(ends, f"{node.name}.ends"))
    if "axes" in attrs:
        axes = np.array(attrs.pop("axes").get_values(), dtype=np.int64)
        new.append(imp.constant(axes, f"{node.name}.axes"))
    return new


@_normalizes("Softmax", "LogSoftmax")
def _softmax(imp: _Importer, node, opset, attrs, inputs):
    if opset >= 13:
        return inputs
    # Before opset 13 the input is coerced to 2-D at `axis` (default 1): that equals the
    # new single-axis form only when `axis` is the last axis.
    rank = imp.rank(inputs[0])
    axis = attrs["axis"].value.data if "axis" in attrs else 1
    if rank is None or (axis % rank if rank else 0) != rank - 1:
        return None
    attrs["axis"] = IntegerAttr(-1, i64)
    return inputs


@_normalizes("Dropout")
def _dropout(imp: _Importer, node, opset, attrs, inputs):
    if opset >= 12:
        return inputs
    if len(node.output) > 1 and node.output[1] in imp.used_names:
        return None  # the pre-12 mask has other types or values (onnxruntime: all false)
    for name in ("ratio", "is_test", "consumed_inputs"):
        attrs.pop(name, None)
    return inputs


@_normalizes("Cast")
def _cast(imp: _Importer, node, opset, attrs, inputs):
    to = attrs.get("to")
    if isinstance(to, StringAttr):
        attrs["to"] = IntegerAttr(TensorProto.DataType.Value(to.data.upper()), i64)
    return inputs


@_normalizes("Reshape")
def _reshape(imp: _Importer, node, opset, attrs, inputs):
    if "shape" in attrs:
        shape = np.array(attrs.pop("shape").get_values(), dtype=np.int64)
        inputs = [inputs[0], imp.constant(shape, f"{node.name}.shape")]
    attrs.pop("consumed_inputs", None)
    return inputs


@_normalizes("Gemm")
def _gemm(imp: _Importer, node, opset, attrs, inputs):
    attrs.pop("broadcast", None)
    return inputs


@_normalizes("Add", "Sub", "Mul", "Div")
def _binary(imp: _Importer, node, opset, attrs, inputs):
    if opset >= 7:
        return inputs
    if attrs.pop("broadcast", None) is not None and "axis" in attrs:
        return None  # legacy broadcasting along an axis
    attrs.pop("consumed_inputs", None)
    return inputs


@_normalizes("Relu", "Sigmoid", "Tanh")
def _unary(imp: _Importer, node, opset, attrs, inputs):
    attrs.pop("consumed_inputs", None)
    return inputs


@_normalizes("Concat")
def _concat(imp: _Importer, node, opset, attrs, inputs):
    attrs.setdefault("axis", IntegerAttr(1, i64))  # the default before opset 4
    return inputs


@_normalizes("LSTM", "GRU", "RNN")
def _rnn(imp: _Importer, node, opset, attrs, inputs):
    attrs.pop("output_sequence", None)
    return inputs


# ---------------------------------------------------------------------------------------


class _Importer:
    def __init__(
        self, model: onnx.ModelProto, inferred: onnx.ModelProto, source: str, generic: bool
    ):
        self.model = model
        self.source = source
        self.generic = generic  # every op a generic onnx.Node
        self.opsets = {
            ("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import
        }
        graph = inferred.graph
        self.types: dict[str, onnx.TypeProto] = {}
        for vi in [*graph.input, *graph.value_info, *graph.output]:
            self.types[vi.name] = vi.type
        self.values: dict[str, SSAValue] = {}
        # Names some node (or subgraph) reads or the graph returns: an optional output
        # outside this set is never observed.
        self.used_names = {o.name for o in model.graph.output} | _read_names(model.graph)
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for n in model.graph.node:
            for name in n.input:
                self.readers.setdefault(name, []).append(n)
        # QuantizeLinear outputs left out for the DequantizeLinear that reads them:
        # name -> (the quantized value, its format).
        self.pending_quantize: dict[str, tuple[SSAValue, FixedFormat]] = {}
        self.block: Block | None = None
        self._no_value: SSAValue | None = None

    # -- helpers used by the normalizers --------------------------------------------

    def constant(self, array: np.ndarray, name: str) -> SSAValue:
        op = onnx_d.ConstantOp(array, name or None)
        self.block.add_op(op)
        return op.outputs[0]

    def rank(self, value: SSAValue) -> int | None:
        typ = value.type
        return len(typ.get_shape()) if isinstance(typ, TensorType) else None

    def no_value(self) -> SSAValue:
        if self._no_value is None:
            op = onnx_d.NoValueOp()
            self.block.add_op(op)
            self._no_value = op.outputs[0]
            self._no_value.name_hint = "none"
        return self._no_value

    # -- the import ------------------------------------------------------------------

    def run(self) -> ModuleOp:
        graph = self.model.graph
        initializer_names = {t.name for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initializer_names]

        arg_types, arg_attrs = [], []
        for i in inputs:
            arg_types.append(_value_type(i.type))
            attrs: dict[str, Attribute] = {"onnx.name": StringAttr(i.name)}
            params = _dim_params(i.type)
            if any(params):
                attrs["onnx.dim_params"] = ArrayAttr([StringAttr(p) for p in params])
            arg_attrs.append(DictionaryAttr(attrs))
        res_types = [_value_type(self.types.get(o.name, o.type)) for o in graph.output]
        res_attrs = []
        for o in graph.output:
            attrs = {"onnx.name": StringAttr(o.name)}
            params = _dim_params(o.type)
            if any(params):
                attrs["onnx.dim_params"] = ArrayAttr([StringAttr(p) for p in params])
            res_attrs.append(DictionaryAttr(attrs))

        fn = func.FuncOp(
            "main",
            (arg_types, res_types),
            arg_attrs=ArrayAttr(arg_attrs),
            res_attrs=ArrayAttr(res_attrs),
        )
        self.block = fn.body.block
        for arg, i in zip(self.block.args, inputs, strict=True):
            arg.name_hint = _name_hint(i.name)
            self.values[i.name] = arg

        for t in graph.initializer:
            op = onnx_d.ConstantOp(_dense_from_tensor(t, self.source), t.name)
            op.outputs[0].name_hint = _name_hint(t.name)
            self.block.add_op(op)
            self.values[t.name] = op.outputs[0]

        for node in graph.node:
            self.import_node(node)

        results = []
        for o in graph.output:
            if o.name not in self.values:
                raise DlhwcError(f"graph output '{o.name}' is never produced", file=self.source)
            results.append(self.values[o.name])
        # Shape inference may know an output's type better than the graph declares.
        fn.function_type = FunctionType.from_lists(arg_types, [v.type for v in results])
        self.block.add_op(func.ReturnOp(*results))

        module_attrs = {
            "onnx.opset_import": DictionaryAttr(
                {d or "ai.onnx": IntegerAttr(v, i64) for d, v in sorted(self.opsets.items())}
            ),
            "onnx.ir_version": IntegerAttr(self.model.ir_version, i64),
        }
        if self.model.producer_name:
            module_attrs["onnx.producer"] = StringAttr(
                f"{self.model.producer_name} {self.model.producer_version}".strip()
            )
        if graph.name:
            module_attrs["onnx.graph_name"] = StringAttr(graph.name)
        return ModuleOp([fn], attributes=module_attrs)

    def import_node(self, node: onnx.NodeProto) -> None:
        if node.input and node.input[0] in self.pending_quantize:
            # The DequantizeLinear of a deferred pair (defer_quantize checked the readers).
            value, fmt = self.pending_quantize[node.input[0]]
            self.add(comp.QuantizeOp(value, fmt), node)
            return
        inputs = []
        for name in node.input:
            if not name:
                inputs.append(self.no_value())
            elif name in self.values:
                inputs.append(self.values[name])
            else:
                raise DlhwcError(
                    f"input '{name}' is not defined before it is used",
                    file=self.source,
                    where=f"node '{node.name or node.op_type}'",
                )
        while inputs and node.input[len(inputs) - 1] == "":
            inputs.pop()  # trailing omitted inputs carry no information
        result_types = [self._output_type(name) for name in node.output]

        domain = "" if node.domain in DEFAULT_DOMAINS else node.domain
        opset = self.opsets.get(domain, 1)
        if self.generic:
            domain = "-"  # none of the dedicated forms below
        if domain == "" and node.op_type == "QuantizeLinear" and self.defer_quantize(node):
            return
        op = None
        if domain == "" and node.op_type == "DequantizeLinear":
            op = self.dequantize_weight(node, inputs)
        if op is None and domain == "" and node.op_type in onnx_d.OPS_BY_TYPE:
            op = self._dedicated(node, opset, inputs, result_types)
        if op is None:
            attrs = {a.name: _attribute(a) for a in node.attribute}
            captures = [
                (name, self.values[name]) for name in _outer_names(node) if name in self.values
            ]
            domain = "" if node.domain in DEFAULT_DOMAINS else node.domain
            op = onnx_d.NodeOp(
                node.op_type, domain, opset, inputs, result_types, attrs, node.name or None,
                captures,
            )  # fmt: skip
        self.add(op, node)

    def add(self, op: Operation, node: onnx.NodeProto) -> None:
        """Append ``op``, the import of ``node``, and name its results after the outputs."""
        self.block.add_op(op)
        for name, result in zip(node.output, op.results, strict=True):
            if name:
                result.name_hint = _name_hint(name)
                self.values[name] = result

    def _dedicated(self, node, opset, inputs, result_types) -> onnx_d.OnnxOp | None:
        attrs = {a.name: _attribute(a) for a in node.attribute}
        if node.op_type == "Constant":
            return self._constant(node, attrs)
        normalize = _NORMALIZE.get(node.op_type)
        if normalize is not None:
            inputs = normalize(self, node, opset, attrs, inputs)
            if inputs is None:
                return None
        cls = onnx_d.OPS_BY_TYPE[node.op_type]
        declared = set(cls.get_irdl_definition().properties) - {onnx_d.SEGMENT_SIZES}
        if not set(attrs) <= declared:
            return None  # an attribute this form of the op does not have
        if any(isinstance(v, onnx_d.ProtoAttr) for v in attrs.values()):
            return None
        if len(result_types) > (cls.MAX_OUTPUTS or len(result_types)):
            return None
        low, high = cls.arity()
        if len(inputs) < low or (high is not None and len(inputs) > high):
            return None  # an input count this form of the op does not take
        return cls(inputs, result_types, attrs, node.name or None)

    def _constant(self, node: onnx.NodeProto, attrs: dict) -> onnx_d.OnnxOp | None:
        (a,) = node.attribute
        if a.name == "value":
            value = attrs["value"]
        elif a.name == "value_float":
            value = onnx_d.dense_from_array(np.array(a.f, dtype=np.float32))
        elif a.name == "value_floats":
            value = onnx_d.dense_from_array(np.array(a.floats, dtype=np.float32))
        elif a.name == "value_int":
            value = onnx_d.dense_from_array(np.array(a.i, dtype=np.int64))
        elif a.name == "value_ints":
            value = onnx_d.dense_from_array(np.array(a.ints, dtype=np.int64))
        else:
            return None  # strings and sparse tensors stay generic
        return onnx_d.ConstantOp(value, node.name or None)

    # -- pre-quantized (QDQ) models ----------------------------------------------------

    def dequantize_weight(self, node: onnx.NodeProto, inputs: list[SSAValue]) -> Operation | None:
        """A DequantizeLinear of constant integers, as the weight it stands for.

        y = (x - zero_point) * scale, computed as ONNX does (float32), so the model means
        the same. How it is kept:
          - one power-of-two scale 2^-F and zero point 0: a `comp.weight` in the fixed
            point the integers already are, fixed<N, F> (N: the integer type's bits, one
            more when it is unsigned);
          - one scale of another value, or a zero point, over at most 8-bit integers: a
            shared `comp.weight` whose codebook is the levels that occur (8-bit indices);
          - per-channel scales (or wider integers): an `onnx.Constant` of the dequantized
            floats, which the compression passes treat as any float weight.
        Zeros are pruned (the comp.weight rule). Blocked quantization (block_size) and
        non-constant operands stay a generic node.
        """
        consts = [getattr(v.owner, "to_array", None) for v in inputs]
        if len(inputs) < 2 or any(c is None for c in consts):
            return None
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("block_size", 0) or set(attrs) - {"axis", "block_size", "output_dtype"}:
            return None
        x, scale = np.asarray(consts[0]()), np.asarray(consts[1]())
        zero = np.asarray(consts[2]()) if len(consts) > 2 else np.zeros((), x.dtype)
        if x.dtype.kind not in "iu" or scale.dtype != np.float32 or zero.size != scale.size:
            return None
        if scale.ndim == 1 and scale.size > 1:  # per channel, along `axis`
            axis = attrs.get("axis", 1) % max(x.ndim, 1)
            shape = [1] * x.ndim
            shape[axis] = scale.size
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        values = ((x.astype(np.int64) - zero.astype(np.int64)).astype(np.float32) * scale).astype(
            np.float32
        )
        name = node.name or node.output[0]
        typ = onnx_d.tensor_type(np.float32, list(x.shape))
        mask = values != 0
        bits = 8 * x.dtype.itemsize + (x.dtype.kind == "u")
        mantissa, exponent = np.frexp(scale)
        if not np.any(zero) and np.all(mantissa == 0.5) and np.all(exponent == exponent.flat[0]):
            if bits <= MAX_FIXED_BITS:
                fmt = FixedFormat(bits, 1 - int(exponent.flat[0]))
                return comp.WeightOp.from_arrays(typ, mask, values=values, fmt=fmt, node_name=name)
        if scale.size == 1 and bits <= 9:
            codebook, indices = np.unique(values[mask], return_inverse=True)
            full = np.zeros(x.shape, dtype=np.uint8)
            full[mask] = indices
            return comp.WeightOp.from_arrays(
                typ, mask, codebook=codebook, indices=full, index_bits=8, node_name=name
            )
        return onnx_d.ConstantOp(values, name)

    def defer_quantize(self, node: onnx.NodeProto) -> bool:
        """Leave out a QuantizeLinear whose only readers are DequantizeLinear nodes with
        the same scale and zero point, when the pair is exactly a signed fixed-point
        rounding: float32 input, one power-of-two scale 2^-F, zero point 0 of a signed
        integer type. (QuantizeLinear rounds half to even and saturates to the integer
        type, as comp.quantize does; spec/fixedpoint.py.) Each reader becomes a
        `comp.quantize` at fixed<N, F>."""
        out = node.output[0]
        readers = self.readers.get(out, [])
        if not out or len(node.input) < 3 or out in {o.name for o in self.model.graph.output}:
            return False  # without a zero point the type is uint8: no signed format
        if not readers or any(
            r.op_type != "DequantizeLinear" or r.domain not in DEFAULT_DOMAINS
            or list(r.input[1:3]) != list(node.input[1:3]) for r in readers
        ):  # fmt: skip
            return False
        if any(a.name not in ("axis", "saturate") for a in node.attribute):
            return False
        if any(out in _outer_names(r) for r in self.model.graph.node):
            return False  # a subgraph reads the quantized integers
        x = self.values.get(node.input[0])
        consts = [getattr(self.values.get(n), "owner", None) for n in node.input[1:3]]
        if x is None or not all(isinstance(c, onnx_d.ConstantOp) for c in consts):
            return False
        scale, zero = (np.asarray(c.to_array()) for c in consts)
        if not isinstance(x.type, TensorType) or x.type.get_element_type() != f32:
            return False
        if scale.size != 1 or scale.dtype != np.float32 or zero.dtype.kind != "i" or np.any(zero):
            return False
        mantissa, exponent = np.frexp(scale.reshape(()))
        if mantissa != 0.5:
            return False
        fmt = FixedFormat(8 * zero.dtype.itemsize, 1 - int(exponent))
        self.pending_quantize[out] = (x, fmt)
        return True

    def _output_type(self, name: str) -> Attribute:
        if not name:
            return NoneType()
        return _value_type(self.types.get(name))


def _outer_names(node: onnx.NodeProto) -> list[str]:
    """Names the node's subgraphs read from enclosing graphs, in first-use order."""
    found: list[str] = []

    def visit(graph: onnx.GraphProto, outer_defined: set[str]) -> None:
        defined = set(outer_defined)
        defined.update(i.name for i in graph.input)
        defined.update(t.name for t in graph.initializer)
        for n in graph.node:
            for name in n.input:
                if name and name not in defined and name not in found:
                    found.append(name)
            for a in n.attribute:
                for sub in [a.g] if a.type == AttributeProto.GRAPH else list(a.graphs):
                    visit(sub, defined)
            defined.update(n.output)

    for a in node.attribute:
        for sub in [a.g] if a.type == AttributeProto.GRAPH else list(a.graphs):
            visit(sub, set())
    return found


def _read_names(graph: onnx.GraphProto) -> set[str]:
    """Every name a node of ``graph`` or of its subgraphs reads."""
    names: set[str] = set()
    for n in graph.node:
        names.update(n.input)
        for a in n.attribute:
            for sub in [a.g] if a.type == AttributeProto.GRAPH else list(a.graphs):
                names |= _read_names(sub) | {o.name for o in sub.output}
    return names


def _dim_params(type_proto: onnx.TypeProto) -> list[str]:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return []
    return [d.dim_param for d in type_proto.tensor_type.shape.dim]
