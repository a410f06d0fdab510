"""The `onnx` dialect: one op per ONNX operator, as imported from a model.

Every op names its operands after its ONNX inputs (`op.A`, `op.X`, `op.W`, ...): a
required input is an `operand_def`, an optional one an `opt_operand_def`, a variadic one
(Concat's inputs, a generic node's) a `var_operand_def`. Optional inputs are positional as
in ONNX: an omitted one in the middle is the result of an `onnx.NoValue`, omitted
trailing ones are absent (their accessor gives None). An op with several optional inputs
records how many are present in the `operandSegmentSizes` property, which the textual
form leaves out (it follows from the operand count). The ONNX outputs are the results. ONNX attributes are op properties with
their ONNX names; absent attributes take the ONNX default. The ONNX node name is the op's
location, printed as `loc("name")`.

Attribute kinds map to builtin attributes one to one:

    INT     -> IntegerAttr i64        FLOAT   -> FloatAttr f32
    INTS    -> array<i64: ...>        FLOATS  -> array<f32: ...>
    STRING  -> StringAttr             STRINGS -> [StringAttr, ...]
    TENSOR  -> dense<...> : tensor<...>

Dedicated ops follow the newest opset's form of their operator (the importer rewrites
older forms); every other ONNX operator, of any domain, is an `onnx.Node` that keeps its
op type, domain and attributes.

Custom assembly format of every op but `onnx.Constant`:

    %y = onnx.Gemm(%x, %w, %b) {transB = 1 : i64} : (tensor<?x64xf32>, ...) -> tensor<?x300xf32> loc("fc1")

It is hand-written rather than declarative because it carries what xDSL's declarative
format cannot spell the same way: the ONNX node name as a trailing `loc("name")`, dense
payloads lifted out of the text for fast parsing (`dlhwc_blob<i>`), and the operand
segment sizes left implicit.

Every dedicated op is `Pure` (a function of its operands, no side effects), so xDSL's
`cse`, `dce` and `canonicalize` apply to it; `onnx.Node` has no traits, as any ONNX
operator may be behind it (RandomNormal draws anew each time it runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import ClassVar

import numpy as np
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    AnyFloat,
    ArrayAttr,
    BFloat16Type,
    BytesAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DenseResourceAttr,
    DictionaryAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    NameLoc,
    NoneAttr,
    NoneType,
    Signedness,
    StringAttr,
    TensorType,
    UnrankedTensorType,
    f32,
    i64,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SSAValue, TypeAttribute
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    OptionalDef,
    VarOperandDef,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    param_def,
    prop_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import AttrParser, Parser
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern
from xdsl.printer import Printer
from xdsl.traits import HasCanonicalizationPatternsTrait, Pure
from xdsl.utils.exceptions import VerifyException

# A discardable attribute a target's lowering sets on an op it leaves to the host: why
# (shown in the compiler's placement table; not printed in the IR).
HOST_REASON = "dlhwc.host_reason"


# ---------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------


@irdl_attr_definition
class OpaqueType(ParametrizedAttribute, TypeAttribute):
    """A non-tensor ONNX value type (sequence, map, optional), kept as its ONNX spelling.

    Only generic `onnx.Node` ops produce or consume such values; they run on the host.
    """

    name = "onnx.opaque"
    spelling: StringAttr = param_def()

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            return (StringAttr(parser.parse_str_literal()),)

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string_literal(self.spelling.data)


@irdl_attr_definition
class ProtoAttr(ParametrizedAttribute):
    """An ONNX attribute with no builtin counterpart (a graph, a sparse tensor, a type),
    kept as the hex of its serialized AttributeProto so the node runs as it was imported.
    """

    name = "onnx.proto"
    hex: StringAttr = param_def()

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            return (StringAttr(parser.parse_str_literal()),)

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string_literal(self.hex.data)


# numpy dtype <-> builtin element type. Signless integers stand for ONNX's signed ones.
_ELEMENT_TYPES: dict[np.dtype, Attribute] = {
    np.dtype(np.float32): Float32Type(),
    np.dtype(np.float64): Float64Type(),
    np.dtype(np.float16): Float16Type(),
    np.dtype(np.int64): IntegerType(64),
    np.dtype(np.int32): IntegerType(32),
    np.dtype(np.int16): IntegerType(16),
    np.dtype(np.int8): IntegerType(8),
    np.dtype(np.uint64): IntegerType(64, Signedness.UNSIGNED),
    np.dtype(np.uint32): IntegerType(32, Signedness.UNSIGNED),
    np.dtype(np.uint16): IntegerType(16, Signedness.UNSIGNED),
    np.dtype(np.uint8): IntegerType(8, Signedness.UNSIGNED),
    np.dtype(np.bool_): IntegerType(1),
}
_DTYPES: dict[Attribute, np.dtype] = {v: k for k, v in _ELEMENT_TYPES.items()}


def element_type(dtype: np.dtype) -> Attribute:
    """The builtin element type that stands for numpy ``dtype``."""
    try:
        return _ELEMENT_TYPES[np.dtype(dtype)]
    except KeyError:
        raise ValueError(f"element type {np.dtype(dtype)} is not supported") from None


def numpy_dtype(elem: Attribute) -> np.dtype:
    """The numpy dtype of builtin element type ``elem`` (bf16 has none: it is refused)."""
    if isinstance(elem, BFloat16Type):
        raise ValueError("bf16 tensors are not supported by numpy")
    try:
        return _DTYPES[elem]
    except KeyError:
        raise ValueError(f"element type {elem} has no numpy dtype") from None


def tensor_type(dtype: np.dtype, shape: Sequence[int | None]) -> TensorType:
    """A ranked tensor type; a dimension given as None or a negative number is dynamic (`?`)."""
    dims = [DYNAMIC_INDEX if d is None or d < 0 else int(d) for d in shape]
    return TensorType(element_type(dtype), dims)


def dense_from_array(array: np.ndarray) -> DenseIntOrFPElementsAttr:
    """A dense attribute backed by ``array``'s bytes (little-endian, C order), no copy of values."""
    array = np.asarray(array)
    typ = tensor_type(array.dtype, array.shape)
    if array.dtype == np.bool_:
        data = np.ascontiguousarray(array).view(np.uint8).tobytes()
    else:
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return DenseIntOrFPElementsAttr(typ, BytesAttr(data))


def array_from_dense(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    """The numpy array a dense attribute holds, read straight from its bytes (read-only view)."""
    typ = attr.get_type()
    dtype = numpy_dtype(typ.get_element_type())
    raw = attr.data.data
    shape = tuple(typ.get_shape())
    count = int(np.prod(shape)) if shape else 1
    if dtype == np.bool_:
        values = np.frombuffer(raw, dtype=np.uint8).astype(np.bool_)
    else:
        values = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    if values.size == 1 and count != 1:
        values = np.broadcast_to(values, (count,))
    return values.reshape(shape)


# ---------------------------------------------------------------------------------------
# Attribute conversion (builtin attribute <-> python value)
# ---------------------------------------------------------------------------------------


def attr_from_python(value: object) -> Attribute:
    """The builtin attribute for an ONNX attribute value given as a python value."""
    if isinstance(value, Attribute):
        return value
    if isinstance(value, bool | np.bool_):
        return IntegerAttr(int(value), i64)
    if isinstance(value, int | np.integer):
        return IntegerAttr(int(value), i64)
    if isinstance(value, float | np.floating):
        return FloatAttr(float(np.float32(value)), f32)
    if isinstance(value, str):
        return StringAttr(value)
    if isinstance(value, np.ndarray):
        return dense_from_array(value)
    if isinstance(value, list | tuple):
        if all(isinstance(v, str) for v in value) and value:
            return ArrayAttr([StringAttr(v) for v in value])
        if all(isinstance(v, int | np.integer) for v in value):
            return DenseArrayBase.from_list(i64, [int(v) for v in value])
        if all(isinstance(v, int | float | np.number) for v in value):
            return DenseArrayBase.from_list(f32, [float(np.float32(v)) for v in value])
    raise ValueError(f"cannot represent attribute value {value!r}")


def attr_to_python(attr: Attribute) -> object:
    """The python value of an ONNX attribute (int, float, str, lists of them, or ndarray)."""
    if isinstance(attr, IntegerAttr):
        return attr.value.data
    if isinstance(attr, FloatAttr):
        return attr.value.data
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, DenseArrayBase):
        return list(attr.get_values())
    if isinstance(attr, ArrayAttr):
        return [attr_to_python(a) for a in attr.data]
    if isinstance(attr, DenseIntOrFPElementsAttr):
        return array_from_dense(attr)
    if isinstance(attr, DictionaryAttr):
        return {k: attr_to_python(v) for k, v in attr.data.items()}
    if isinstance(attr, ProtoAttr):
        return attr
    raise ValueError(f"attribute {attr} has no python value")


# ---------------------------------------------------------------------------------------
# Large constants in saved IR
# ---------------------------------------------------------------------------------------

# compiler/irio.parse_module lifts the hex payloads of large dense literals out of the
# text before xDSL lexes it (lexing a 800 MB string literal takes seconds) and leaves
# `dlhwc_blob<i> : tensor<...>` in their place; the ops that hold large constants read
# them back here. The payloads of the module being parsed:
HEX_BLOBS: ContextVar[list[str] | None] = ContextVar("HEX_BLOBS", default=None)


def parse_attribute_value(parser: Parser) -> Attribute:
    """An attribute, or a lifted dense payload, or a dictionary of either."""
    if parser.parse_optional_keyword("dlhwc_blob") is not None:
        pos = parser.pos
        parser.parse_punctuation("<")
        index = parser.parse_integer()
        parser.parse_punctuation(">")
        parser.parse_punctuation(":")
        typ = parser.parse_type()
        blobs = HEX_BLOBS.get()
        if blobs is None or not 0 <= index < len(blobs) or not isinstance(typ, TensorType):
            parser.raise_error("dlhwc_blob is not an attribute", pos, parser.pos)
        data = bytes.fromhex(blobs[index])
        attr = DenseIntOrFPElementsAttr(typ, BytesAttr(data))
        if len(attr) != max(1, int(np.prod(typ.get_shape()))):
            parser.raise_error("dense literal size differs from its type", pos, parser.pos)
        return attr
    if parser._current_token.text == "{":
        return DictionaryAttr(parse_attribute_dict(parser))
    pos = parser.pos
    attr = parser.parse_attribute()
    if isinstance(attr, DenseIntOrFPElementsAttr) and not dense_size_ok(attr):
        parser.raise_error(
            f"dense literal of {len(attr.data.data)} bytes does not fill its type "
            f"{attr.get_type()}",
            pos,
            parser.pos,
        )
    return attr


def dense_size_ok(attr: DenseIntOrFPElementsAttr) -> bool:
    """Whether a dense attribute's bytes hold its type's elements (or one, a splat): a hex
    payload of another length would be read as other values, or not at all."""
    typ = attr.get_type()
    itemsize = numpy_dtype(typ.get_element_type()).itemsize
    count = int(np.prod(typ.get_shape())) if typ.get_shape() else 1
    return len(attr.data.data) in (count * itemsize, itemsize)


def parse_attribute_dict(parser: Parser) -> dict[str, Attribute]:
    """An optional `{name = value, ...}` whose values may be lifted dense payloads."""
    entries: dict[str, Attribute] = {}
    if parser.parse_optional_punctuation("{") is None:
        return entries
    if parser.parse_optional_punctuation("}") is not None:
        return entries
    while True:
        name = parser.parse_optional_identifier()
        if name is None:
            name = parser.parse_str_literal()
        parser.parse_punctuation("=")
        entries[name] = parse_attribute_value(parser)
        if parser.parse_optional_punctuation(",") is None:
            break
    parser.parse_punctuation("}")
    return entries


# ---------------------------------------------------------------------------------------
# Ops
# ---------------------------------------------------------------------------------------


def print_name_loc(printer: Printer, op: IRDLOperation) -> None:
    """` loc("name")` when the op carries a name (an ONNX node or layer name)."""
    if isinstance(op.location, NameLoc):
        printer.print_string(" loc(")
        printer.print_string_literal(op.location.desc.data)
        printer.print_string(")")


class LayerFormat:
    """The textual form of a layer op with operands (input, weight, optional bias):
    `%x, %w[, %b] {properties} : (types) -> type loc("name")` (eie.fc, and a target's
    layer op alike). A declarative format cannot print the trailing `loc("name")`."""

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_list(self.operands, printer.print_operand)
        printer.print_string(" ")
        printer.print_attr_dict(self.properties)
        printer.print_string(" : ")
        printer.print_function_type(self.operand_types, self.result_types)
        print_name_loc(printer, self)

    @classmethod
    def parse(cls, parser: Parser) -> IRDLOperation:
        operands = parser.parse_comma_separated_list(
            Parser.Delimiter.NONE, parser.parse_unresolved_operand
        )
        props = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        fn_type = parser.parse_function_type()
        resolved = parser.resolve_operands(operands, fn_type.inputs.data, parser.pos)
        op = cls.__new__(cls)
        IRDLOperation.__init__(
            op,
            operands=[resolved[0], resolved[1], resolved[2:]],
            result_types=[fn_type.outputs.data[0]],
            properties=props,
        )
        return op


def static_shape(value: SSAValue) -> tuple[int, ...] | None:
    """The shape of a ranked tensor value (None for a dynamic dimension), else None."""
    typ = value.type
    if not isinstance(typ, TensorType):
        return None
    return tuple(None if d == DYNAMIC_INDEX else d for d in typ.get_shape())


def _label(op: IRDLOperation) -> str:
    """The op for a message: its name and, if it has one, its ONNX node's name."""
    node = op.location.desc.data if isinstance(op.location, NameLoc) else None
    return f"{op.name} '{node}'" if node else op.name


def _int_prop(op: IRDLOperation, name: str, default: int) -> int:
    attr = op.properties.get(name)
    return attr.value.data if isinstance(attr, IntegerAttr) else default


def _check_dim(op: IRDLOperation, what: str, got: int | None, want: int | None) -> None:
    """Two dimensions that must agree, when both are known."""
    if got is not None and want is not None and got != want:
        raise VerifyException(f"{_label(op)}: {what} is {got}, expected {want}")


def _verify_axis(op: IRDLOperation, default: int) -> None:
    """`axis` within [-rank, rank - 1] of the first operand."""
    shape = static_shape(op.operands[0]) if op.operands else None
    axis = _int_prop(op, "axis", default)
    if shape is not None and not -len(shape) <= axis < len(shape):
        raise VerifyException(
            f"{_label(op)}: axis {axis} is outside [{-len(shape)}, {len(shape) - 1}] for a "
            f"rank-{len(shape)} input"
        )


SEGMENT_SIZES = AttrSizedOperandSegments.attribute_name


class IdentityCanonicalization(HasCanonicalizationPatternsTrait):
    """onnx.Identity's patterns (below)."""

    @classmethod
    def get_canonicalization_patterns(cls) -> tuple[RewritePattern, ...]:
        return (RemoveIdentity(),)


class TransposeCanonicalization(HasCanonicalizationPatternsTrait):
    """onnx.Transpose's patterns (below)."""

    @classmethod
    def get_canonicalization_patterns(cls) -> tuple[RewritePattern, ...]:
        return (CancelTransposes(),)


class OnnxOp(IRDLOperation):
    """Base of every op of the `onnx` dialect (see the module docstring for its format).

    Subclasses declare their operands, named after the ONNX inputs, in ONNX order.
    """

    outputs = var_result_def()

    # The most outputs the ONNX operator has (None: any number).
    MAX_OUTPUTS: ClassVar[int | None] = 1

    def __init__(
        self,
        inputs: Sequence[SSAValue],
        result_types: Sequence[Attribute],
        attributes: Mapping[str, Attribute] | None = None,
        node_name: str | None = None,
    ):
        super().__init__(
            operands=self.group_inputs(list(inputs)),
            result_types=[list(result_types)],
            properties={k: v for k, v in sorted((attributes or {}).items()) if v is not None},
        )
        if node_name:
            self.location = NameLoc(StringAttr(node_name), NoneAttr())

    @classmethod
    def arity(cls) -> tuple[int, int | None]:
        """The fewest and the most ONNX inputs the op takes (None: any number)."""
        defs = [d for _, d in cls.get_irdl_definition().operands]
        required = sum(not isinstance(d, VarOperandDef) for d in defs)
        variadic = any(isinstance(d, VarOperandDef) and not isinstance(d, OptionalDef)
                       for d in defs)  # fmt: skip
        return required, None if variadic else len(defs)

    @classmethod
    def group_inputs(cls, inputs: Sequence[SSAValue]) -> list[SSAValue | list[SSAValue]]:
        """The ONNX inputs (positional, trailing omitted ones absent) split over the op's
        operand definitions."""
        low, high = cls.arity()
        if len(inputs) < low or (high is not None and len(inputs) > high):
            most = "any number of" if high is None else f"at most {high}"
            raise ValueError(
                f"{cls.name} takes at least {low} and {most} inputs, got {len(inputs)}"
            )
        groups: list[SSAValue | list[SSAValue]] = []
        rest = list(inputs)
        for _, d in cls.get_irdl_definition().operands:
            if isinstance(d, OptionalDef):
                groups.append(rest[:1])
                rest = rest[1:]
            elif isinstance(d, VarOperandDef):
                groups.append(rest)
                rest = []
            else:
                groups.append(rest.pop(0))
        return groups

    @property
    def inputs(self) -> tuple[SSAValue, ...]:
        """The ONNX inputs in ONNX order (every operand, whatever its name)."""
        return tuple(self.operands)

    def set_inputs(self, inputs: Sequence[SSAValue]) -> None:
        """Replace the ONNX inputs (the count may change: optional inputs come and go)."""
        groups = self.group_inputs(list(inputs))
        self.operands = list(inputs)
        if SEGMENT_SIZES in self.properties:
            sizes = [len(g) if isinstance(g, list) else 1 for g in groups]
            self.properties[SEGMENT_SIZES] = DenseArrayBase.from_list(IntegerType(32), sizes)

    def onnx_input(self, index: int) -> SSAValue | None:
        """ONNX input ``index``, or None when it is omitted (absent or an `onnx.NoValue`)."""
        if index >= len(self.operands) or isinstance(self.operands[index].type, NoneType):
            return None
        return self.operands[index]

    @property
    def onnx_type(self) -> str:
        """The ONNX op type, e.g. ``"Gemm"``."""
        return self.name.removeprefix("onnx.")

    @property
    def onnx_domain(self) -> str:
        """The ONNX domain ("" is the default ai.onnx domain)."""
        return ""

    @property
    def node_name(self) -> str | None:
        """The ONNX node name carried as this op's location, if any."""
        return self.location.desc.data if isinstance(self.location, NameLoc) else None

    @property
    def onnx_properties(self) -> dict[str, Attribute]:
        """The op's ONNX attributes (its properties but the operand segment sizes)."""
        return {k: v for k, v in self.properties.items() if k != SEGMENT_SIZES}

    def onnx_attributes(self) -> dict[str, object]:
        """The op's ONNX attributes as python values (only those that are set)."""
        return {k: attr_to_python(v) for k, v in self.onnx_properties.items()}

    def verify_(self) -> None:
        if self.MAX_OUTPUTS is not None and len(self.outputs) > self.MAX_OUTPUTS:
            raise VerifyException(
                f"{self.name} has {len(self.outputs)} results, at most {self.MAX_OUTPUTS} allowed"
            )

    def print(self, printer: Printer) -> None:
        printer.print_string("(")
        printer.print_list(self.operands, printer.print_operand)
        printer.print_string(")")
        props = self.onnx_properties
        if props:
            printer.print_string(" ")
            printer.print_attr_dict(props)
        printer.print_string(" : ")
        printer.print_function_type(self.operand_types, self.result_types)
        print_name_loc(printer, self)

    @classmethod
    def parse(cls, parser: Parser) -> OnnxOp:
        pos = parser.pos
        operands = parser.parse_comma_separated_list(
            Parser.Delimiter.PAREN, parser.parse_unresolved_operand
        )
        low, high = cls.arity()
        if len(operands) < low or (high is not None and len(operands) > high):
            most = "" if high is None else f" and at most {high}"
            parser.raise_error(
                f"{cls.name} takes at least {low}{most} operands, got {len(operands)}",
                pos,
                parser.pos,
            )
        props = parse_attribute_dict(parser)
        parser.parse_punctuation(":")
        pos = parser.pos
        fn_type = parser.parse_function_type()
        if len(fn_type.inputs.data) != len(operands):
            parser.raise_error(
                f"{len(operands)} operands but {len(fn_type.inputs.data)} operand types",
                pos,
                parser.pos,
            )
        resolved = parser.resolve_operands(operands, fn_type.inputs.data, parser.pos)
        op = cls.__new__(cls)
        IRDLOperation.__init__(
            op,
            operands=cls.group_inputs(resolved),
            result_types=[list(fn_type.outputs.data)],
            properties=dict(sorted(props.items())),
        )
        return op


class PureOp(OnnxOp):
    """An onnx op without side effects: xDSL's CSE and DCE may merge or drop it."""

    traits = traits_def(Pure())


class UnaryOp(PureOp):
    """An elementwise op of one input X."""

    X = operand_def()


class BinaryOp(PureOp):
    """An elementwise op of inputs A and B, broadcasting."""

    A = operand_def()
    B = operand_def()


class NormalizeOp(PureOp):
    """An op normalizing its input along one axis (default -1)."""

    input = operand_def()
    axis = opt_prop_def(IntegerAttr)

    def verify_(self) -> None:
        super().verify_()
        _verify_axis(self, -1)


# Dedicated ops, in the newest opset's form. The numpy kernels in
# compiler/interpreters/onnx_ops.py and onnx_rnn.py are their living definition.


@irdl_op_definition
class GemmOp(PureOp):
    """Y = alpha * op(A) @ op(B) + beta * C, op transposing when transA/transB is 1."""

    name = "onnx.Gemm"
    A = operand_def()
    B = operand_def()
    C = opt_operand_def()
    alpha = opt_prop_def(FloatAttr)
    beta = opt_prop_def(FloatAttr)
    transA = opt_prop_def(IntegerAttr)
    transB = opt_prop_def(IntegerAttr)

    def verify_(self) -> None:
        """Operands A [M, K] and B [K, N] (as transposed), C broadcastable to Y [M, N]."""
        super().verify_()
        if len(self.outputs) != 1:
            raise VerifyException(f"{_label(self)} has one result")
        trans_a, trans_b = _int_prop(self, "transA", 0), _int_prop(self, "transB", 0)
        if trans_a not in (0, 1) or trans_b not in (0, 1):
            raise VerifyException(f"{_label(self)}: transA and transB are 0 or 1")
        a, b = static_shape(self.A), static_shape(self.B)
        if a is None or b is None:
            return
        if len(a) != 2 or len(b) != 2:
            raise VerifyException(
                f"{_label(self)}: A and B must be 2-D, got ranks {len(a)}, {len(b)}"
            )
        m, k = a[::-1] if trans_a else a
        k_b, n = b[::-1] if trans_b else b
        _check_dim(self, "B's K dimension", k_b, k)
        y = static_shape(self.outputs[0])
        if y is not None:
            if len(y) != 2:
                raise VerifyException(f"{_label(self)}: the result must be 2-D, got rank {len(y)}")
            _check_dim(self, "the result's rows", y[0], m)
            _check_dim(self, "the result's columns", y[1], n)
        c = static_shape(self.C) if self.C is not None else None
        if c is not None and c != ():
            if len(c) > 2:
                raise VerifyException(f"{_label(self)}: C must have rank <= 2, got {len(c)}")
            for got, want in zip(reversed(c), (n, m), strict=False):
                if got not in (1, None) and want is not None and got != want:
                    raise VerifyException(
                        f"{_label(self)}: C of shape {list(c)} does not broadcast to [{m}, {n}]"
                    )


@irdl_op_definition
class MatMulOp(BinaryOp):
    """Y = A @ B with numpy matmul broadcasting."""

    name = "onnx.MatMul"


@irdl_op_definition
class AddOp(BinaryOp):
    """C = A + B, broadcasting."""

    name = "onnx.Add"


@irdl_op_definition
class SubOp(BinaryOp):
    """C = A - B, broadcasting."""

    name = "onnx.Sub"


@irdl_op_definition
class MulOp(BinaryOp):
    """C = A * B, broadcasting."""

    name = "onnx.Mul"


@irdl_op_definition
class DivOp(BinaryOp):
    """C = A / B, broadcasting; integer division truncates toward zero."""

    name = "onnx.Div"


@irdl_op_definition
class ReluOp(UnaryOp):
    """Y = max(X, 0)."""

    name = "onnx.Relu"


@irdl_op_definition
class SigmoidOp(UnaryOp):
    """Y = 1 / (1 + exp(-X))."""

    name = "onnx.Sigmoid"


@irdl_op_definition
class TanhOp(UnaryOp):
    """Y = tanh(X)."""

    name = "onnx.Tanh"


@irdl_op_definition
class SoftmaxOp(NormalizeOp):
    """Y = exp(X) / sum(exp(X)) along one axis (default -1)."""

    name = "onnx.Softmax"


@irdl_op_definition
class LogSoftmaxOp(NormalizeOp):
    """Y = X - log(sum(exp(X))) along one axis (default -1)."""

    name = "onnx.LogSoftmax"


@irdl_op_definition
class FlattenOp(PureOp):
    """Y = X reshaped to [prod(shape[:axis]), prod(shape[axis:])] (default axis 1)."""

    name = "onnx.Flatten"
    input = operand_def()
    axis = opt_prop_def(IntegerAttr)


@irdl_op_definition
class ReshapeOp(PureOp):
    """Y = X reshaped to input `shape`: 0 copies the input dim unless allowzero, -1 is inferred."""

    name = "onnx.Reshape"
    data = operand_def()
    shape = operand_def()
    allowzero = opt_prop_def(IntegerAttr)


@irdl_op_definition
class TransposeOp(PureOp):
    """Y = X with its axes permuted by perm (default: reversed)."""

    name = "onnx.Transpose"
    data = operand_def()
    traits = traits_def(TransposeCanonicalization())
    perm = opt_prop_def(DenseArrayBase)


@irdl_op_definition
class SqueezeOp(PureOp):
    """Y = X without the size-1 axes listed in input `axes` (all size-1 axes if omitted)."""

    name = "onnx.Squeeze"
    data = operand_def()
    axes = opt_operand_def()


@irdl_op_definition
class UnsqueezeOp(PureOp):
    """Y = X with size-1 axes inserted at the output positions in input `axes`."""

    name = "onnx.Unsqueeze"
    data = operand_def()
    axes = operand_def()


@irdl_op_definition
class ConcatOp(PureOp):
    """Y = the inputs concatenated along axis."""

    name = "onnx.Concat"
    inputs = var_operand_def()
    axis = opt_prop_def(IntegerAttr)


@irdl_op_definition
class GatherOp(PureOp):
    """Y = take(data, indices, axis); negative indices count from the end."""

    name = "onnx.Gather"
    data = operand_def()
    indices = operand_def()
    axis = opt_prop_def(IntegerAttr)


@irdl_op_definition
class SliceOp(PureOp):
    """Y = data[starts:ends:steps] on `axes`, all four given as inputs."""

    name = "onnx.Slice"
    data = operand_def()
    starts = operand_def()
    ends = operand_def()
    axes = opt_operand_def()
    steps = opt_operand_def()
    irdl_options = (AttrSizedOperandSegments(as_property=True),)


@irdl_op_definition
class ShapeOp(PureOp):
    """Y = shape(X)[start:end] as int64."""

    name = "onnx.Shape"
    data = operand_def()
    start = opt_prop_def(IntegerAttr)
    end = opt_prop_def(IntegerAttr)


@irdl_op_definition
class ExpandOp(PureOp):
    """Y = X broadcast bidirectionally with input `shape`."""

    name = "onnx.Expand"
    input = operand_def()
    shape = operand_def()


@irdl_op_definition
class ConstantOfShapeOp(PureOp):
    """Y = a tensor of shape `input` filled with value (default float32 0)."""

    name = "onnx.ConstantOfShape"
    input = operand_def()
    value = opt_prop_def(DenseIntOrFPElementsAttr)


@irdl_op_definition
class IdentityOp(PureOp):
    """Y = X."""

    name = "onnx.Identity"
    input = operand_def()
    traits = traits_def(IdentityCanonicalization())


@irdl_op_definition
class DropoutOp(PureOp):
    """Inference only: Y = X and mask = all true; training_mode true is refused."""

    name = "onnx.Dropout"
    data = operand_def()
    ratio = opt_operand_def()
    training_mode = opt_operand_def()
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    MAX_OUTPUTS: ClassVar[int | None] = 2
    seed = opt_prop_def(IntegerAttr)


@irdl_op_definition
class CastOp(PureOp):
    """Y = X converted to element type `to` (an onnx.TensorProto data type id)."""

    name = "onnx.Cast"
    input = operand_def()
    to = opt_prop_def(IntegerAttr)
    saturate = opt_prop_def(IntegerAttr)


def verify_recurrent(op: RecurrentOp, gates: int) -> None:
    """The shapes an ONNX recurrent op promises, for G gates and D directions:
    X [T, B, I] (layout 0) or [B, T, I] (layout 1), W [D, G*H, I], R [D, G*H, H],
    B [D, 2*G*H]; hidden_size H, when given, agrees with them."""
    direction = op.properties.get("direction")
    direction = direction.data if isinstance(direction, StringAttr) else "forward"
    if direction not in ("forward", "reverse", "bidirectional"):
        raise VerifyException(f"{_label(op)}: direction '{direction}' is not forward, reverse or "
                              "bidirectional")  # fmt: skip
    layout = _int_prop(op, "layout", 0)
    if layout not in (0, 1):
        raise VerifyException(f"{_label(op)}: layout {layout} is not 0 or 1")
    hidden = _int_prop(op, "hidden_size", -1)
    if "hidden_size" in op.properties and hidden < 1:
        raise VerifyException(f"{_label(op)}: hidden_size {hidden} must be >= 1")
    dirs = 2 if direction == "bidirectional" else 1
    x, w, r = static_shape(op.X), static_shape(op.W), static_shape(op.R)
    for what, shape in (("X", x), ("W", w), ("R", r)):
        if shape is not None and len(shape) != 3:
            raise VerifyException(f"{_label(op)}: {what} must be 3-D, got rank {len(shape)}")
    rows = gates * hidden if hidden > 0 else None
    if w is not None:
        _check_dim(op, "W's direction dimension", w[0], dirs)
        if rows is None and w[1] is not None:
            rows = w[1]
        _check_dim(op, f"W's rows ({gates} gates x hidden_size)", w[1], rows)
        if x is not None:
            _check_dim(op, "W's input size", w[2], x[2])
    if rows is not None and rows % gates:
        raise VerifyException(f"{_label(op)}: {rows} weight rows are not {gates} gates")
    hidden_size = rows // gates if rows is not None else None
    if r is not None:
        _check_dim(op, "R's direction dimension", r[0], dirs)
        _check_dim(op, f"R's rows ({gates} gates x hidden_size)", r[1], rows)
        _check_dim(op, "R's columns (hidden_size)", r[2], hidden_size)
    b = static_shape(op.B) if op.B is not None else None
    if b is not None and len(b) == 2:
        _check_dim(op, "B's direction dimension", b[0], dirs)
        _check_dim(op, "B's length (2 x gates x hidden_size)", b[1], 2 * rows if rows else None)


class RecurrentOp(PureOp):
    """The operands and attributes ONNX's LSTM, GRU and RNN share; GATES gates a direction."""

    X = operand_def()
    W = operand_def()
    R = operand_def()
    B = opt_operand_def()
    sequence_lens = opt_operand_def()
    initial_h = opt_operand_def()
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    MAX_OUTPUTS: ClassVar[int | None] = 2
    GATES: ClassVar[int] = 1
    activation_alpha = opt_prop_def(DenseArrayBase)
    activation_beta = opt_prop_def(DenseArrayBase)
    activations = opt_prop_def(ArrayAttr)
    clip = opt_prop_def(FloatAttr)
    direction = opt_prop_def(StringAttr)
    hidden_size = opt_prop_def(IntegerAttr)
    layout = opt_prop_def(IntegerAttr)

    def verify_(self) -> None:
        super().verify_()
        verify_recurrent(self, self.GATES)


@irdl_op_definition
class LSTMOp(RecurrentOp):
    """LSTM over a sequence; gates i,o,f,c; outputs Y, Y_h, Y_c (see onnx_rnn.LSTM)."""

    name = "onnx.LSTM"
    # xDSL takes a subclass's fields before its bases': all eight restate ONNX's order.
    X = operand_def()
    W = operand_def()
    R = operand_def()
    B = opt_operand_def()
    sequence_lens = opt_operand_def()
    initial_h = opt_operand_def()
    initial_c = opt_operand_def()
    P = opt_operand_def()
    MAX_OUTPUTS: ClassVar[int | None] = 3
    GATES: ClassVar[int] = 4
    input_forget = opt_prop_def(IntegerAttr)


@irdl_op_definition
class GRUOp(RecurrentOp):
    """GRU over a sequence; gates z,r,h; outputs Y, Y_h (see onnx_rnn.GRU)."""

    name = "onnx.GRU"
    GATES: ClassVar[int] = 3
    linear_before_reset = opt_prop_def(IntegerAttr)


@irdl_op_definition
class RNNOp(RecurrentOp):
    """Simple RNN over a sequence; outputs Y, Y_h (see onnx_rnn.RNN)."""

    name = "onnx.RNN"


@irdl_op_definition
class ConstantOp(PureOp):
    """Y = value: a tensor held in the IR as bytes (initializers and Constant nodes).

    Format: `%w = onnx.Constant dense<...> : tensor<...> loc("name")`.
    """

    name = "onnx.Constant"
    value = prop_def(DenseIntOrFPElementsAttr)

    def __init__(self, value: DenseIntOrFPElementsAttr | np.ndarray, node_name: str | None = None):
        if isinstance(value, np.ndarray):
            value = dense_from_array(value)
        super().__init__([], [value.get_type()], {"value": value}, node_name)

    def to_array(self) -> np.ndarray:
        """The constant's value as a read-only numpy array over the IR's bytes."""
        return array_from_dense(self.value)

    def verify_(self) -> None:
        if len(self.outputs) != 1:
            raise VerifyException("onnx.Constant takes no operands and has one result")
        if self.outputs[0].type != self.value.get_type():
            raise VerifyException(
                f"onnx.Constant result type {self.outputs[0].type} differs from its value's "
                f"type {self.value.get_type()}"
            )

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_attribute(self.value)
        print_name_loc(printer, self)

    @classmethod
    def parse(cls, parser: Parser) -> ConstantOp:
        pos = parser.pos
        value = parse_attribute_value(parser)
        if isinstance(value, DenseResourceAttr):
            parser.raise_error(
                "this constant was elided when the IR was printed; a dump with elided "
                "weights cannot be read back (write the IR with -o to keep them)",
                pos,
                parser.pos,
            )
        if not isinstance(value, DenseIntOrFPElementsAttr):
            parser.raise_error("expected a dense elements attribute", pos, parser.pos)
        return cls(value)


@irdl_op_definition
class NoValueOp(PureOp):
    """An omitted optional input: the result stands for 'no value' (type none)."""

    name = "onnx.NoValue"

    def __init__(self):
        super().__init__([], [NoneType()])


@irdl_op_definition
class NodeOp(OnnxOp):
    """Any ONNX operator without a dedicated op, of any domain, kept as it was imported.

    `op_type` and `domain` name the operator; `attrs` holds its ONNX attributes. It runs
    on the host through onnxruntime as a one-node model.

    A node with subgraphs (If, Loop, Scan) whose subgraphs read values of the enclosing
    graph by name has those values as its last operands, and `captures` lists their ONNX
    names (the names the subgraphs use), in operand order.
    """

    name = "onnx.Node"
    inputs = var_operand_def()
    MAX_OUTPUTS: ClassVar[int | None] = None
    op_type = prop_def(StringAttr)
    domain = prop_def(StringAttr)
    opset = prop_def(IntegerAttr)
    attrs = opt_prop_def(DictionaryAttr)
    captures = opt_prop_def(ArrayAttr)

    def __init__(
        self,
        op_type: str,
        domain: str,
        opset: int,
        inputs: Sequence[SSAValue],
        result_types: Sequence[Attribute],
        attrs: Mapping[str, Attribute] | None = None,
        node_name: str | None = None,
        captures: Sequence[tuple[str, SSAValue]] = (),
    ):
        props: dict[str, Attribute] = {
            "op_type": StringAttr(op_type),
            "domain": StringAttr(domain),
            "opset": IntegerAttr(opset, i64),
        }
        if attrs:
            props["attrs"] = DictionaryAttr(dict(attrs))
        if captures:
            props["captures"] = ArrayAttr([StringAttr(name) for name, _ in captures])
        inputs = [*inputs, *(value for _, value in captures)]
        super().__init__(inputs, result_types, props, node_name)

    @property
    def capture_names(self) -> list[str]:
        """The ONNX names of the enclosing-graph values the subgraphs read."""
        return [] if self.captures is None else [c.data for c in self.captures.data]

    @property
    def node_inputs(self) -> int:
        """How many operands are the ONNX node's own inputs (the rest are captures)."""
        return len(self.inputs) - len(self.capture_names)

    @property
    def onnx_type(self) -> str:
        return self.op_type.data

    @property
    def onnx_domain(self) -> str:
        return self.domain.data

    def onnx_attributes(self) -> dict[str, object]:
        if self.attrs is None:
            return {}
        return {k: attr_to_python(v) for k, v in self.attrs.data.items()}


DEDICATED_OPS: tuple[type[OnnxOp], ...] = (
    GemmOp, MatMulOp, AddOp, SubOp, MulOp, DivOp, ReluOp, SigmoidOp, TanhOp, SoftmaxOp,
    LogSoftmaxOp, FlattenOp, ReshapeOp, TransposeOp, SqueezeOp, UnsqueezeOp, ConcatOp,
    GatherOp, SliceOp, ShapeOp, ExpandOp, ConstantOp, ConstantOfShapeOp, IdentityOp,
    DropoutOp, CastOp, LSTMOp, GRUOp, RNNOp,
)  # fmt: skip

OPS_BY_TYPE: dict[str, type[OnnxOp]] = {op.name.removeprefix("onnx."): op for op in DEDICATED_OPS}

ONNX = Dialect("onnx", [*DEDICATED_OPS, NoValueOp, NodeOp], [OpaqueType, ProtoAttr])

__all__ = [
    "ONNX",
    "OPS_BY_TYPE",
    "AnyFloat",
    "OnnxOp",
    "ConstantOp",
    "NoValueOp",
    "NodeOp",
    "OpaqueType",
    "UnrankedTensorType",
]


# -- canonicalization patterns (xDSL's `canonicalize` pass) ---------------------------


class RemoveIdentity(RewritePattern):
    """Identity(x) -> x, when the result has x's type."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: IdentityOp, rewriter: PatternRewriter) -> None:
        if len(op.results) != 1 or op.results[0].type != op.input.type:
            return
        rewriter.replace_all_uses_with(op.results[0], op.input)
        rewriter.erase(op)


class CancelTransposes(RewritePattern):
    """Transpose(Transpose(x)) -> x when the second undoes the first (both with an
    explicit perm); the inner Transpose goes too once nothing else reads it.

    The EIE lowering applies it to a convolution's NHWC -> NCHW result read by the next
    convolution's NCHW -> NHWC input, so that consecutive layers pass their activations
    on chip instead of through the host."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: TransposeOp, rewriter: PatternRewriter) -> None:
        inner = op.data.owner
        if not isinstance(inner, TransposeOp):
            return
        p1, p2 = _perm(inner), _perm(op)
        if p1 is None or p2 is None or [p1[i] for i in p2] != list(range(len(p1))):
            return
        rewriter.replace_all_uses_with(op.results[0], inner.data)
        rewriter.erase(op)
        if not inner.results[0].uses:
            rewriter.erase(inner)


def _perm(op: TransposeOp) -> list[int] | None:
    return None if op.perm is None else [int(p) for p in op.perm.get_values()]
