"""`onnx` dialect -> ONNX protos (the inverse of the importer, where one is needed).

Used to run generic `onnx.Node` ops on the host as one-node models, and by
`export_module` to write a whole module (at the `onnx` or `comp` level) as an ONNX model.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    Float32Type,
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    NoneType,
    StringAttr,
    TensorType,
    UnrankedTensorType,
    f32,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue

from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat


def attribute_proto(name: str, attr: Attribute) -> AttributeProto:
    """The ONNX attribute ``name`` with the value of builtin attribute ``attr``."""
    if isinstance(attr, onnx_d.ProtoAttr):
        proto = AttributeProto.FromString(bytes.fromhex(attr.hex.data))
        proto.name = name
        return proto
    if isinstance(attr, DenseIntOrFPElementsAttr):
        return onnx.helper.make_attribute(
            name, numpy_helper.from_array(np.array(onnx_d.array_from_dense(attr)))
        )
    if isinstance(attr, DenseArrayBase):
        values = list(attr.get_values())
        is_int = not isinstance(attr.elt_type, onnx_d.AnyFloat)
        kind = AttributeProto.INTS if is_int else AttributeProto.FLOATS
        return onnx.helper.make_attribute(name, values, attr_type=kind)
    if isinstance(attr, IntegerAttr | FloatAttr | StringAttr):
        return onnx.helper.make_attribute(name, onnx_d.attr_to_python(attr))
    value = onnx_d.attr_to_python(attr)
    if isinstance(value, list) and not value:
        return onnx.helper.make_attribute(name, value, attr_type=AttributeProto.STRINGS)
    return onnx.helper.make_attribute(name, value)


def type_proto(typ: Attribute) -> onnx.TypeProto:
    """The ONNX type of an IR value type (ranked or unranked tensors)."""
    if isinstance(typ, TensorType):
        dtype = onnx_d.numpy_dtype(typ.get_element_type())
        shape = [d if d >= 0 else None for d in typ.get_shape()]
        return onnx.helper.make_tensor_type_proto(
            onnx.helper.np_dtype_to_tensor_dtype(dtype), shape
        )
    if isinstance(typ, UnrankedTensorType):
        dtype = onnx_d.numpy_dtype(typ.element_type)
        return onnx.helper.make_tensor_type_proto(onnx.helper.np_dtype_to_tensor_dtype(dtype), None)
    raise ValueError(f"type {typ} has no ONNX tensor type")


def node_proto(op: onnx_d.OnnxOp, inputs: list[str], outputs: list[str]) -> onnx.NodeProto:
    """The ONNX node of ``op`` with the given input and output tensor names."""
    attrs = op.attrs.data if isinstance(op, onnx_d.NodeOp) and op.attrs else {}
    if not isinstance(op, onnx_d.NodeOp):
        attrs = op.onnx_properties
    node = onnx.helper.make_node(
        op.onnx_type, inputs, outputs, name=op.node_name or "", domain=op.onnx_domain or None
    )
    node.attribute.extend(attribute_proto(k, v) for k, v in sorted(attrs.items()))
    return node


def opset_imports(module) -> list[onnx.OperatorSetIdProto]:
    """The opset imports recorded on a module by the importer."""
    table = module.attributes.get("onnx.opset_import")
    if table is None:
        return [onnx.helper.make_opsetid("", onnx.defs.onnx_opset_version())]
    return [
        onnx.helper.make_opsetid("" if d == "ai.onnx" else d, v.value.data)
        for d, v in table.data.items()
    ]


# ---------------------------------------------------------------------------------------
# Whole modules -> ONNX models
#
# `export_module` writes the `@main` function of a module at the `onnx` or `comp` level
# as a standard ONNX model:
#
#   onnx.Constant      -> an initializer (named after its location when that is unique)
#   comp.weight        -> an initializer holding the dense float32 tensor it materializes
#   onnx.NoValue       -> an empty input name
#   dedicated ops and onnx.Node -> nodes (node names from locations, made unique)
#   comp.quantize      -> Clip? -> QuantizeLinear -> DequantizeLinear, or the float chain
#                         Mul -> Round -> Clip -> Mul (see `_quantize_style`)
#
# Both forms of comp.quantize compute exactly what spec/fixedpoint.py computes: the
# scales are powers of two, so x / 2^-F and q * 2^-F are exact in float32; ONNX rounds
# half to even (QuantizeLinear and Round alike) and QuantizeLinear saturates; a Clip to
# [qmin, qmax] * 2^-F before quantizing (or to [qmin, qmax] after rounding) saturates to
# N bits, which commutes with rounding because the bounds are integers in code space.
#
# onnxruntime caveat: with its default graph optimizations, onnxruntime reads Q/DQ pairs
# as a request to quantize, and quantizes the float weights of a Gemm/MatMul whose input
# comes from a DequantizeLinear to int8 with scales of its own (and biases to int32),
# which changes the results. Run Q/DQ models with the session config entry
# `session.disable_quant_qdq = 1` to get the model's ONNX semantics, or export with
# ``quantize_as="float"``, whose float chain onnxruntime computes as written.

QDQ_OPSET = 21  # the first ai.onnx opset whose QuantizeLinear has int16
DEFAULT_OPSET = 21  # ai.onnx opset of a module that records none
MIN_EXPORT_OPSET = 7  # older forms of Gemm, Add, Cast, ... differ from the dedicated ops'
_QDQ_MAX_FRAC = 100  # |F| bound for Q/DQ: keeps every scale and clip bound a normal float32
_FLOAT_MAX_FRAC = 126  # |F| bound for the float chain: 2^F and 2^-F are normal float32
QUANTIZE_FORMS = ("qdq", "float")


def export_module(
    module: ModuleOp, *, quantize_as: str = "qdq", check: bool = True
) -> onnx.ModelProto:
    """The ONNX model of ``module``'s `@main` (IR at the `onnx` or `comp` level).

    Graph inputs and outputs keep their `onnx.name`, element types, shapes and the
    symbolic dims of `onnx.dim_params` (a dynamic dim without a name stays unnamed); other
    values are named after their SSA name hints where those are unique. The opset imports
    and IR version come from the module's `onnx.opset_import` and `onnx.ir_version`; the
    ai.onnx opset is raised to 21 only when a comp.quantize needs int16 QuantizeLinear and
    no op's definition changes on the way (see `_quantize_style`). ``quantize_as`` is the
    preferred form of comp.quantize: "qdq" (QuantizeLinear/DequantizeLinear) or "float"
    (Mul/Round/Clip/Mul); the other form is used where the preferred one cannot be
    written. With ``check`` the model is checked with
    `onnx.checker.check_model(full_check=True)`; a model the checker refuses raises a
    `DlhwcError`. The same module always gives the same bytes.
    """
    if quantize_as not in QUANTIZE_FORMS:
        raise DlhwcError(
            f"unknown quantize form '{quantize_as}' (forms: {', '.join(QUANTIZE_FORMS)})"
        )
    model = _ModuleExporter(module, quantize_as).run()
    if check:
        try:
            onnx.checker.check_model(model, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
            reason = " ".join(str(e).split())
            raise DlhwcError(f"the exported model is not valid ONNX: {reason}") from None
    return model


def _schema_since(op_type: str, domain: str, opset: int) -> int | None:
    """The opset version that defined ``op_type`` as seen from ``opset`` (None: unknown)."""
    try:
        return onnx.defs.get_schema(op_type, opset, domain).since_version
    except onnx.defs.SchemaError:
        return None


def _module_opsets(module: ModuleOp) -> dict[str, int]:
    """The module's opset imports, domain ("" for ai.onnx) -> version."""
    table = module.attributes.get("onnx.opset_import")
    opsets: dict[str, int] = {}
    if isinstance(table, DictionaryAttr):
        for domain, version in table.data.items():
            if isinstance(version, IntegerAttr):
                opsets["" if domain in ("", "ai.onnx") else domain] = version.value.data
    return opsets


def _type_from_spelling(spelling: str) -> onnx.TypeProto:
    """The ONNX type spelled like `seq(map(int64,tensor(float)))` (an `onnx.opaque` type)."""
    text = spelling.replace(" ", "")

    def parse(pos: int) -> tuple[onnx.TypeProto, int]:
        kind, _, _ = text[pos:].partition("(")
        pos += len(kind) + 1
        if kind == "tensor":
            end = text.index(")", pos)
            elem = TensorProto.DataType.Value(text[pos:end].upper())
            return onnx.helper.make_tensor_type_proto(elem, None), end + 1
        if kind == "map":
            comma = text.index(",", pos)
            key = TensorProto.DataType.Value(text[pos:comma].upper())
            inner, pos = parse(comma + 1)
            return onnx.helper.make_map_type_proto(key, inner), pos + 1
        if kind in ("seq", "optional"):
            inner, pos = parse(pos)
            make = (
                onnx.helper.make_sequence_type_proto
                if kind == "seq"
                else onnx.helper.make_optional_type_proto
            )
            return make(inner), pos + 1
        raise ValueError(kind)

    try:
        typ, end = parse(0)
        if end != len(text):
            raise ValueError(text)
    except ValueError:
        raise DlhwcError(
            f"a graph input or output has the type '{spelling}', which has no ONNX form"
        ) from None
    return typ


def _value_info(name: str, typ: Attribute, dim_params: list[str]) -> onnx.ValueInfoProto:
    """A graph input or output: its type, with the symbolic dims named by ``dim_params``."""
    if isinstance(typ, onnx_d.OpaqueType):
        if typ.spelling.data == "unknown":  # left to onnxruntime's inference
            return onnx.helper.make_value_info(name, onnx.TypeProto())
        return onnx.helper.make_value_info(name, _type_from_spelling(typ.spelling.data))
    try:
        proto = type_proto(typ)
    except ValueError as e:
        raise DlhwcError(f"graph input or output '{name}': {e}") from None
    tensor = proto.tensor_type
    if tensor.HasField("shape") and len(dim_params) == len(tensor.shape.dim):
        for dim, param in zip(tensor.shape.dim, dim_params, strict=True):
            if param and not dim.HasField("dim_value"):
                dim.dim_param = param
    return onnx.helper.make_value_info(name, proto)


def _dim_params_of(attrs: ArrayAttr | None, index: int) -> list[str]:
    if attrs is None or index >= len(attrs.data):
        return []
    entry = attrs.data[index].data.get("onnx.dim_params")
    if not isinstance(entry, ArrayAttr):
        return []
    return [s.data if isinstance(s, StringAttr) else "" for s in entry.data]


class _Names:
    """A namespace (value names or node names): hands out each name once."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def claim(self, name: str) -> bool:
        """Take ``name`` if it is still free."""
        if not name or name in self.taken:
            return False
        self.taken.add(name)
        return True

    def fresh(self, base: str) -> str:
        """``base`` if free, else the first free ``base_1``, ``base_2``, ..."""
        if self.claim(base):
            return base
        i = 1
        while not self.claim(f"{base}_{i}"):
            i += 1
        return f"{base}_{i}"


def _quantize_style(fmt: FixedFormat, opset: int, prefer: str = "qdq") -> str | None:
    """How comp.quantize at ``fmt`` is written at ai.onnx ``opset`` (None: it cannot be).

    "qdq"   QuantizeLinear/DequantizeLinear with scale 2^-F and a zero point of int8
            (N <= 8, opset >= 10) or int16 (N <= 16, opset >= 21); for N other than 8 and
            16 a Clip to the N-bit range [qmin, qmax] * 2^-F comes first.
    "float" Mul(2^F) -> Round -> Clip(qmin, qmax) -> Mul(2^-F), in float32 (opset >= 11):
            for N > 16 and where int16 QuantizeLinear is not available. Round is half to
            even; a negative value that rounds to zero gives -0.0 (equal to 0.0).

    ``prefer`` is taken when it is possible, else the other form.
    """
    n, f = fmt.bits, fmt.frac
    qdq = abs(f) <= _QDQ_MAX_FRAC and ((n <= 8 and opset >= 10) or (n <= 16 and opset >= QDQ_OPSET))
    flt = abs(f) <= _FLOAT_MAX_FRAC and opset >= 11
    order = [("qdq", qdq), ("float", flt)]
    if prefer == "float":
        order.reverse()
    return next((style for style, ok in order if ok), None)


class _ModuleExporter:
    """One export: names, nodes and initializers of the ONNX graph of a module's @main."""

    def __init__(self, module: ModuleOp, quantize_as: str = "qdq"):
        from dlhwc.compiler.functions import main_function

        self.module = module
        self.quantize_as = quantize_as
        self.fn = main_function(module)
        self.block = self.fn.body.block
        self.values: dict[SSAValue, str] = {}
        self.value_names = _Names()
        self.node_names = _Names()
        self.seen_node_names: set[str] = set()
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.shared: dict[tuple, str] = {}  # constants the quantize chains share
        self.output_identities: list[tuple[SSAValue, str]] = []
        self.captured: dict[str, SSAValue] = {}  # capture names given to values by Identity
        self.opsets = self._opsets()
        self.styles: dict[comp.QuantizeOp, str] = {}

    # -- opsets ---------------------------------------------------------------------------

    def _opsets(self) -> dict[str, int]:
        opsets = _module_opsets(self.module)
        for op in self.block.ops:
            if isinstance(op, onnx_d.NodeOp):
                opsets.setdefault(op.onnx_domain, op.opset.value.data)
        opsets.setdefault("", DEFAULT_OPSET)
        if opsets[""] < MIN_EXPORT_OPSET:
            raise DlhwcError(
                f"cannot export at ai.onnx opset {opsets['']}: the dedicated ops have no "
                f"exact form before opset {MIN_EXPORT_OPSET}"
            )
        return opsets

    def _can_raise_default_opset(self, new: int) -> bool:
        """Whether every op means the same at ai.onnx opset ``new`` as at the module's.

        The dedicated ops are in their newest form: from opset 13 to 21 their definitions
        only gain types and attributes whose defaults keep the old behaviour (Reshape
        allowzero 14, Shape start/end 15, Cast saturate 19, LSTM/GRU/RNN layout 14).
        Older opsets keep other forms, so they are never raised. A generic onnx.Node of
        ai.onnx must have the same definition (schema version) at both opsets.
        """
        old = self.opsets[""]
        if old < 13:
            return False
        for op in self.block.ops:
            if isinstance(op, onnx_d.NodeOp) and op.onnx_domain == "":
                before = _schema_since(op.onnx_type, "", op.opset.value.data)
                if before is None or before != _schema_since(op.onnx_type, "", new):
                    return False
        return True

    def _plan_quantize(self) -> None:
        ops = [op for op in self.block.ops if isinstance(op, comp.QuantizeOp)]
        for op in ops:
            typ = op.input.type
            if not isinstance(typ, TensorType) or not isinstance(
                typ.get_element_type(), Float32Type
            ):
                raise DlhwcError(f"cannot export comp.quantize of {typ}: only f32 tensors")
        opset = self.opsets[""]
        wants_int16 = self.quantize_as == "qdq" and any(
            8 < op.format.format.bits <= 16 for op in ops
        )
        if wants_int16 and opset < QDQ_OPSET and self._can_raise_default_opset(QDQ_OPSET):
            self.opsets[""] = opset = QDQ_OPSET
        for op in ops:
            style = _quantize_style(op.format.format, opset, self.quantize_as)
            if style is None:
                raise DlhwcError(
                    f"cannot export comp.quantize at {op.format.format} with ai.onnx opset "
                    f"{opset}: it needs opset >= 11 (>= 10 for 8 bits) and |F| <= "
                    f"{_FLOAT_MAX_FRAC}"
                )
            self.styles[op] = style

    # -- names ----------------------------------------------------------------------------

    def _name_values(self) -> None:
        from dlhwc.compiler.functions import input_names, output_names

        for arg, name in zip(self.block.args, input_names(self.fn), strict=True):
            if not self.value_names.claim(name):
                raise DlhwcError(f"two graph inputs are named '{name}'")
            self.values[arg] = name
        inputs = set(self.values.values())
        ret = self.block.last_op
        if not isinstance(ret, func.ReturnOp):
            raise DlhwcError("the @main function does not end with func.return")
        out_names = output_names(self.fn)
        if len(set(out_names)) != len(out_names):
            raise DlhwcError("two graph outputs have the same name")
        for value, name in zip(ret.operands, out_names, strict=True):
            if self.values.get(value) == name:
                continue  # a graph input that is also a graph output
            if name in inputs:
                raise DlhwcError(f"graph output '{name}' has the name of a graph input")
            self.value_names.claim(name)
            producer = value.owner
            if (
                value in self.values
                or not isinstance(producer, Operation)
                or isinstance(producer, onnx_d.ConstantOp | comp.WeightOp)
            ):
                self.output_identities.append((value, name))
            else:
                self.values[value] = name

        # Values a node's subgraphs read from this graph keep the names they read them by.
        for op in self.block.ops:
            if isinstance(op, onnx_d.NodeOp):
                for name, value in zip(
                    op.capture_names, op.operands[op.node_inputs :], strict=True
                ):
                    if value not in self.values and self.value_names.claim(name):
                        self.values[value] = name

        # Initializers take their location name, other values their name hint, where
        # unique; the rest get fresh names derived from them, in program order.
        wanted: list[tuple[SSAValue, str]] = []
        for op in self.block.ops:
            if isinstance(op, onnx_d.ConstantOp | comp.WeightOp):
                value = op.results[0]
                if value not in self.values:
                    wanted.append((value, op.node_name or value.name_hint or "const"))
        for op in self.block.ops:
            if isinstance(op, onnx_d.ConstantOp | comp.WeightOp | onnx_d.NoValueOp):
                continue
            for value in op.results:
                if value not in self.values and not isinstance(value.type, NoneType):
                    wanted.append((value, value.name_hint or ""))
        counts: dict[str, int] = {}
        for _, name in wanted:
            counts[name] = counts.get(name, 0) + 1
        for value, name in wanted:
            if name and counts[name] == 1 and self.value_names.claim(name):
                self.values[value] = name
        for value, name in wanted:
            if value not in self.values:
                self.values[value] = self.value_names.fresh(name or "v")

    def _node_name(self, name: str | None) -> str:
        """A unique node name: the location name, suffixed if it was used already."""
        if not name:
            return ""
        if name not in self.seen_node_names:
            self.seen_node_names.add(name)
            return name
        return self.node_names.fresh(name)

    def _fresh_node(self, base: str) -> str:
        """A generated node name that no location name uses."""
        return self.node_names.fresh(base)

    def _input_name(self, value: SSAValue) -> str:
        if isinstance(value.owner, onnx_d.NoValueOp):
            return ""
        return self.values[value]

    # -- emission -------------------------------------------------------------------------

    def run(self) -> onnx.ModelProto:
        self._plan_quantize()
        self._name_values()
        # Node names from locations are kept as they are; generated ones avoid them all.
        for op in self.block.ops:
            name = getattr(op, "node_name", None)
            if name:
                self.node_names.taken.add(name)
        for op in self.block.ops:
            self._emit(op)
        for value, name in self.output_identities:
            self._add_node("Identity", [self.values[value]], [name], "")

        from dlhwc.compiler.functions import input_names, output_names

        graph_inputs = [
            _value_info(name, arg.type, _dim_params_of(self.fn.arg_attrs, i))
            for i, (arg, name) in enumerate(zip(self.block.args, input_names(self.fn), strict=True))
        ]
        graph_outputs = [
            _value_info(name, typ, _dim_params_of(self.fn.res_attrs, i))
            for i, (typ, name) in enumerate(
                zip(self.fn.function_type.outputs.data, output_names(self.fn), strict=True)
            )
        ]
        used = {name for node in self.nodes for name in node.input}
        used.update(o.name for o in graph_outputs)
        used.update(self.values[v] for op in self.block.ops if isinstance(op, onnx_d.NodeOp)
                    for v in op.operands[op.node_inputs :])  # read by subgraphs  # fmt: skip
        initializers = [t for t in self.initializers if t.name in used]
        graph_name = self.module.attributes.get("onnx.graph_name")
        graph = onnx.helper.make_graph(
            self.nodes,
            graph_name.data if isinstance(graph_name, StringAttr) else self.fn.sym_name.data,
            graph_inputs,
            graph_outputs,
            initializer=initializers,
        )
        opsets = [onnx.helper.make_opsetid(d, v) for d, v in sorted(self.opsets.items())]
        model = onnx.helper.make_model(
            graph,
            opset_imports=opsets,
            producer_name="dlhwc",
            producer_version=_dlhwc_version(),
        )
        recorded = self.module.attributes.get("onnx.ir_version")
        ir_version = recorded.value.data if isinstance(recorded, IntegerAttr) else 0
        needed = onnx.helper.find_min_ir_version_for(opsets, ignore_unknown=True)
        # IR 4 lets initializers be other than graph inputs.
        model.ir_version = max(ir_version, needed, 4)
        return model

    def _add_node(
        self,
        op_type: str,
        inputs: list[str],
        outputs: list[str],
        name: str,
        domain: str = "",
        attrs: dict[str, Attribute] | None = None,
    ) -> None:
        while inputs and not inputs[-1]:
            inputs = inputs[:-1]
        while outputs and not outputs[-1]:
            outputs = outputs[:-1]
        node = onnx.helper.make_node(
            op_type, inputs, outputs, name=name or None, domain=domain or None
        )
        node.attribute.extend(attribute_proto(k, v) for k, v in sorted((attrs or {}).items()))
        self.nodes.append(node)

    def _add_initializer(self, array: np.ndarray, name: str) -> None:
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))

    def _emit(self, op: Operation) -> None:
        if isinstance(op, onnx_d.ConstantOp):
            self._add_initializer(op.to_array(), self.values[op.outputs[0]])
        elif isinstance(op, comp.WeightOp):
            self._add_initializer(op.dense(), self.values[op.output])
        elif isinstance(op, onnx_d.NoValueOp | func.ReturnOp):
            pass
        elif isinstance(op, comp.QuantizeOp):
            self._emit_quantize(op)
        elif isinstance(op, onnx_d.OnnxOp):
            self._emit_onnx(op)
        else:
            raise DlhwcError(f"cannot export {op.name}: it has no ONNX form")

    def _emit_onnx(self, op: onnx_d.OnnxOp) -> None:
        inputs = [self._input_name(v) for v in op.operands]
        outputs = ["" if isinstance(r.type, NoneType) else self.values[r] for r in op.results]
        if isinstance(op, onnx_d.NodeOp):
            inputs = inputs[: op.node_inputs]
            self._emit_captures(op)
            attrs = dict(op.attrs.data) if op.attrs is not None else {}
            domain = op.onnx_domain
            known = _schema_since(op.onnx_type, domain, op.opset.value.data)
            now = _schema_since(op.onnx_type, domain, self.opsets[domain])
            if known != now:
                raise DlhwcError(
                    f"cannot export {op.onnx_type} '{op.node_name or ''}': it was imported "
                    f"at {domain or 'ai.onnx'} opset {op.opset.value.data}, and its "
                    f"definition differs at the model's opset {self.opsets[domain]}"
                )
        else:
            attrs = dict(op.onnx_properties)
            domain = ""
            inputs = _legacy_form(op, self.opsets[""], inputs, attrs)
            if "activations" in attrs:
                attrs["activations"] = _spelled_activations(attrs["activations"])
        self._add_node(op.onnx_type, inputs, outputs, self._node_name(op.node_name), domain, attrs)

    def _emit_captures(self, op: onnx_d.NodeOp) -> None:
        """Make every captured value visible under the name the subgraphs read it by."""
        for name, value in zip(op.capture_names, op.operands[op.node_inputs :], strict=True):
            if self.values[value] == name or self.captured.get(name) is value:
                continue
            if not self.value_names.claim(name):
                raise DlhwcError(
                    f"cannot export {op.onnx_type} '{op.node_name or ''}': its subgraphs read "
                    f"'{name}', a name another value of the graph has"
                )
            self.captured[name] = value
            self._add_node("Identity", [self.values[value]], [name], self._fresh_node("capture"))

    # -- comp.quantize --------------------------------------------------------------------

    def _constant(self, key: tuple, name: str, array: np.ndarray) -> str:
        """An initializer shared by every quantize chain that needs the same value."""
        if key not in self.shared:
            self.shared[key] = self.value_names.fresh(name)
            self._add_initializer(array, self.shared[key])
        return self.shared[key]

    def _emit_quantize(self, op: comp.QuantizeOp) -> None:
        fmt = op.format.format
        n, f = fmt.bits, fmt.frac
        x, y = self.values[op.input], self.values[op.output]
        scale = self._constant(("scale", f), f"fixed.f{f}.scale", np.float32(2.0**-f))
        if self.styles[op] == "qdq":
            dtype = np.dtype(np.int8 if n <= 8 else np.int16)
            zero = self._constant(("zero", dtype.name), f"fixed.{dtype.name}.zero", dtype.type(0))
            if n not in (8, 16):
                # Saturate to N bits first: the bounds are codes, so this commutes with
                # rounding, and QuantizeLinear then never saturates further.
                lo = np.float32(fmt.qmin * fmt.scale)
                hi = np.float32(fmt.qmax * fmt.scale)
                x = self._clip(x, f"{y}.clipped", lo, hi, f"fixed<{n},{f}>", f"{y}/Clip")
            codes = self.value_names.fresh(f"{y}.codes")
            self._add_node(
                "QuantizeLinear", [x, scale, zero], [codes], self._fresh_node(f"{y}/QuantizeLinear")
            )
            self._add_node(
                "DequantizeLinear",
                [codes, scale, zero],
                [y],
                self._fresh_node(f"{y}/DequantizeLinear"),
            )
            return
        inverse = self._constant(("inverse", f), f"fixed.f{f}.inverse_scale", np.float32(2.0**f))
        scaled = self.value_names.fresh(f"{y}.scaled")
        rounded = self.value_names.fresh(f"{y}.rounded")
        self._add_node("Mul", [x, inverse], [scaled], self._fresh_node(f"{y}/Scale"))
        self._add_node("Round", [scaled], [rounded], self._fresh_node(f"{y}/Round"))
        lo, hi = np.float32(fmt.qmin), np.float32(fmt.qmax)
        codes = self._clip(rounded, f"{y}.codes", lo, hi, f"int{n}", f"{y}/Clip")
        self._add_node("Mul", [codes, scale], [y], self._fresh_node(f"{y}/Unscale"))

    def _clip(self, x: str, out: str, lo: np.float32, hi: np.float32, tag: str, name: str) -> str:
        """Clip ``x`` to [lo, hi] into a fresh value named after ``out``; returns its name."""
        out = self.value_names.fresh(out)
        node_name = self._fresh_node(name)
        if self.opsets[""] < 11:  # Clip-6 takes its bounds as attributes
            attrs = {"min": FloatAttr(float(lo), f32), "max": FloatAttr(float(hi), f32)}
            self._add_node("Clip", [x], [out], node_name, attrs=attrs)
            return out
        lo_name = self._constant(("min", tag), f"{tag}.min", lo)
        hi_name = self._constant(("max", tag), f"{tag}.max", hi)
        self._add_node("Clip", [x, lo_name, hi_name], [out], node_name)
        return out


# The recurrent ops' activation names as the ONNX schemas spell them; the importer and
# the kernels accept any case, onnxruntime only these.
_ACTIVATION_SPELLING = {
    name.lower(): name
    for name in (
        "Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh",
        "HardSigmoid", "Elu", "Softsign", "Softplus",
    )
}  # fmt: skip


def _spelled_activations(attr: Attribute) -> Attribute:
    if not isinstance(attr, ArrayAttr):
        return attr
    return ArrayAttr([
        StringAttr(_ACTIVATION_SPELLING.get(a.data.lower(), a.data))
        if isinstance(a, StringAttr) else a
        for a in attr.data
    ])  # fmt: skip


def _dlhwc_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("dlhwc")
    except PackageNotFoundError:
        return ""


def _constant_ints(value: SSAValue, what: str, op: onnx_d.OnnxOp, opset: int) -> list[int]:
    """The values of an int constant operand that an older opset takes as an attribute."""
    owner = value.owner
    if not isinstance(owner, onnx_d.ConstantOp):
        raise DlhwcError(
            f"cannot export {op.onnx_type} '{op.node_name or ''}' at ai.onnx opset {opset}: "
            f"its {what} must be a constant there"
        )
    return [int(v) for v in np.asarray(owner.to_array()).reshape(-1)]


def _legacy_form(
    op: onnx_d.OnnxOp, opset: int, inputs: list[str], attrs: dict[str, Attribute]
) -> list[str]:
    """Rewrite a dedicated op (newest form) to the form of ai.onnx ``opset``, in place on
    ``attrs``; returns the node's inputs. The inverse of the importer's `_NORMALIZE`."""

    def refuse(why: str) -> DlhwcError:
        return DlhwcError(
            f"cannot export {op.onnx_type} '{op.node_name or ''}' at ai.onnx opset {opset}: {why}"
        )

    def drop_default(name: str, default: int | None) -> None:
        attr = attrs.pop(name, None)
        if attr is not None and attr.value.data != default:
            raise refuse(f"attribute {name} is newer than the opset")

    kind = op.onnx_type
    operands = list(op.operands)
    if kind in ("Squeeze", "Unsqueeze") and opset < 13:
        if len(operands) > 1 and not isinstance(operands[1].owner, onnx_d.NoValueOp):
            axes = _constant_ints(operands[1], "axes", op, opset)
            attrs["axes"] = DenseArrayBase.from_list(i64, axes)
        elif kind == "Unsqueeze":
            raise refuse("it has no axes")
        return inputs[:1]
    if kind == "Slice" and opset < 10:
        if len(operands) > 4 and not isinstance(operands[4].owner, onnx_d.NoValueOp):
            if any(s != 1 for s in _constant_ints(operands[4], "steps", op, opset)):
                raise refuse("steps other than 1 need opset 10")
        for i, name in enumerate(("starts", "ends", "axes"), start=1):
            if i < len(operands) and not isinstance(operands[i].owner, onnx_d.NoValueOp):
                attrs[name] = DenseArrayBase.from_list(
                    i64, _constant_ints(operands[i], name, op, opset)
                )
        return inputs[:1]
    if kind == "Dropout" and opset < 12:
        attrs.pop("seed", None)
        if opset < 10 and len(op.results) > 1 and not isinstance(op.results[1].type, NoneType):
            raise refuse("its mask output has another type before opset 10")
        return inputs[:1]
    if kind == "Reshape" and opset < 14:
        drop_default("allowzero", 0)
    elif kind == "Shape" and opset < 15:
        drop_default("start", 0)
        drop_default("end", None)
    elif kind == "Cast" and opset < 19:
        drop_default("saturate", 1)
    elif kind in ("LSTM", "GRU", "RNN") and opset < 14:
        drop_default("layout", 0)
    elif kind in ("Softmax", "LogSoftmax") and opset < 13:
        typ = op.operands[0].type
        axis = attrs["axis"].value.data if "axis" in attrs else -1
        rank = len(typ.get_shape()) if isinstance(typ, TensorType) else None
        if rank is None or axis % max(rank, 1) != rank - 1:
            raise refuse("before opset 13 it normalizes over all axes from `axis` on")
    return inputs
