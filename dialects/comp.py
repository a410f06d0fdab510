"""The `comp` dialect: compression state as first-class IR.

`comp.weight` is a compressed weight tensor. It replaces the `onnx.Constant` that fed a
weight operand (a Gemm/MatMul matrix, an LSTM/GRU/RNN W or R, or a bias) and says what
the weight has become, stage by stage:

    after prune          mask (i1, full shape) + values (f32, zero where pruned)
    after share-weights  mask + codebook (f32 [k]) + indices (ui8, full shape) + index_bits
    after quantize       + format: the codebook (or values) are exact in fixed<N, F>
    after huffman        + index_code / run_code: Huffman code lengths of the index and
                         relative-position (zero-run) streams, and pes, the row
                         interleaving the zero runs were counted for

Its reference semantics materialize the dense tensor: values, or codebook[indices],
with zeros where the mask is false. Weights that are exactly zero are pruned: the mask
is false there from the first compression pass on.

`comp.quantize` rounds and saturates an activation tensor to a fixed-point format (see
spec/fixedpoint.py for the rules); it is the IR's record of activation formats.

Printed form (payloads are ordinary dense attributes: hex when saved, elided in dumps;
the trailing comment is a summary for readers, ignored by the parser):

    %w = comp.weight {codebook = dense<...> : tensor<16xf32>, format = #comp.fixed<16, 14>,
           index_bits = 4 : i64, indices = dense<"0x..."> : tensor<300x64xui8>,
           mask = dense<"0x..."> : tensor<300x64xi1>} : tensor<300x64xf32> loc("fc1.weight")
           // density 10.00%, 4-bit indices, 16 centroids, fixed<16,14>
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from xdsl.dialects.builtin import (
    BytesAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    NameLoc,
    NoneAttr,
    StringAttr,
    TensorType,
    f64,
    i64,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    base,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    param_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from dlhwc.dialects import onnx as onnx_d
from dlhwc.dialects.onnx import array_from_dense, dense_from_array, tensor_type
from dlhwc.spec.fixedpoint import FixedFormat


@irdl_attr_definition
class FixedAttr(ParametrizedAttribute):
    """`#comp.fixed<N, F>`: signed fixed point, N bits in total, F after the point."""

    name = "comp.fixed"
    bits: IntegerAttr = param_def()
    frac: IntegerAttr = param_def()

    @staticmethod
    def get(fmt: FixedFormat) -> FixedAttr:
        return FixedAttr(IntegerAttr(fmt.bits, i64), IntegerAttr(fmt.frac, i64))

    @property
    def format(self) -> FixedFormat:
        return FixedFormat(self.bits.value.data, self.frac.value.data)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            bits = parser.parse_integer()
            parser.parse_punctuation(",")
            frac = parser.parse_integer()
        return (IntegerAttr(bits, i64), IntegerAttr(frac, i64))

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.bits.value.data}, {self.frac.value.data}>")

    def verify(self) -> None:
        if not 2 <= self.bits.value.data <= 32:
            raise VerifyException(f"fixed-point width {self.bits.value.data} outside 2..32")


class DenseBuffer:
    """A dense attribute built in place: numpy writes its bytes, which the IR then keeps.

    `dense_from_array` needs the whole array first and then copies it (`tobytes`), so
    building a 400 MB weight that way holds it twice. Here the bytes are allocated once,
    zero-filled, inside an `io.BytesIO`; `array` is a writable numpy view of them, and
    `attr()` hands them to the attribute (CPython's `BytesIO.getvalue` returns its buffer
    without a copy when no view of it is left, so drop every reference to `array` and to
    arrays derived from it first; if one is left, the bytes are copied, which is slower
    but still correct). The result is byte for byte what `dense_from_array` gives for
    the same array (little-endian, C order, bool as one 0/1 byte).
    """

    def __init__(self, dtype: np.dtype | type, shape: Sequence[int]):
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(d) for d in shape)
        nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self._io = io.BytesIO()
        if nbytes:
            self._io.seek(nbytes - 1)
            self._io.write(b"\0")  # extends the buffer with zeros up to nbytes
        self._view = self._io.getbuffer()
        storage = np.uint8 if self.dtype == np.bool_ else self.dtype.newbyteorder("<")
        flat = np.frombuffer(self._view, dtype=storage)
        if self.dtype == np.bool_:
            flat = flat.view(np.bool_)
        self.array: np.ndarray | None = flat.reshape(self.shape)

    def attr(self) -> DenseIntOrFPElementsAttr:
        """The attribute holding the bytes written; the buffer is unusable afterwards."""
        self.array = None
        try:
            self._view.release()
        except BufferError:
            pass  # an array over the bytes is still alive: getvalue copies them
        data = self._io.getvalue()
        self._io = None
        return DenseIntOrFPElementsAttr(tensor_type(self.dtype, self.shape), BytesAttr(data))


def bool_array(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    """An i1 dense attribute as a bool array, a read-only view of its bytes when they are
    all 0 or 1 (always, for attributes dlhwc builds), else a converted copy."""
    if not is_canonical_mask(attr):
        return array_from_dense(attr)  # a splat, or bytes other than 0/1 (from a parse)
    shape = tuple(attr.get_type().get_shape())
    return np.frombuffer(attr.data.data, dtype=np.uint8).view(np.bool_).reshape(shape)


def is_canonical_mask(attr: DenseIntOrFPElementsAttr) -> bool:
    """Whether an i1 attribute is what `dense_from_array` makes of its value (one 0/1 byte
    per element), so that it can be reused as it is instead of being rebuilt."""
    raw = np.frombuffer(attr.data.data, dtype=np.uint8)
    shape = tuple(attr.get_type().get_shape())
    return raw.size == int(np.prod(shape, dtype=np.int64)) and not (raw.size and raw.max() > 1)


@irdl_op_definition
class WeightOp(IRDLOperation):
    """A compressed weight tensor; its value is the dense tensor it materializes.

    value = where(mask, values, 0)              (pruned, not shared)
          = where(mask, codebook[indices], 0)   (shared)

    Hand-written format: `{props} : type loc("name") // summary`, with the one-line
    summary comment and dense payloads lifted out of the text for fast parsing, neither
    of which xDSL's declarative format can express.
    """

    name = "comp.weight"
    traits = traits_def(Pure())

    mask = prop_def(DenseIntOrFPElementsAttr)
    values = opt_prop_def(DenseIntOrFPElementsAttr)
    codebook = opt_prop_def(DenseIntOrFPElementsAttr)
    indices = opt_prop_def(DenseIntOrFPElementsAttr)
    index_bits = opt_prop_def(IntegerAttr)
    format = opt_prop_def(FixedAttr)
    index_code = opt_prop_def(DenseArrayBase)
    run_code = opt_prop_def(DenseArrayBase)
    pes = opt_prop_def(IntegerAttr)

    output = result_def(TensorType)

    def __init__(
        self,
        result_type: TensorType,
        properties: dict[str, Attribute],
        node_name: str | None = None,
    ):
        super().__init__(
            result_types=[result_type],
            properties={k: v for k, v in sorted(properties.items()) if v is not None},
        )
        if node_name:
            self.location = NameLoc(StringAttr(node_name), NoneAttr())

    # -- construction from arrays ------------------------------------------------------

    @staticmethod
    def from_arrays(
        like: TensorType,
        mask: np.ndarray,
        values: np.ndarray | None = None,
        codebook: np.ndarray | None = None,
        indices: np.ndarray | None = None,
        index_bits: int | None = None,
        fmt: FixedFormat | None = None,
        node_name: str | None = None,
        **extra: Attribute,
    ) -> WeightOp:
        """A weight from numpy arrays (copied into the IR as bytes)."""
        props: dict[str, Attribute] = {"mask": dense_from_array(np.asarray(mask, dtype=np.bool_))}
        if values is not None:
            props["values"] = dense_from_array(np.asarray(values, dtype=np.float32))
        if codebook is not None:
            props["codebook"] = dense_from_array(np.asarray(codebook, dtype=np.float32))
            props["indices"] = dense_from_array(np.asarray(indices, dtype=np.uint8))
        if index_bits is not None:
            props["index_bits"] = IntegerAttr(index_bits, i64)
        if fmt is not None:
            props["format"] = FixedAttr.get(fmt)
        props.update(extra)
        return WeightOp(like, props, node_name)

    # -- reading -----------------------------------------------------------------------

    @property
    def node_name(self) -> str | None:
        return self.location.desc.data if isinstance(self.location, NameLoc) else None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.output.type.get_shape())

    def mask_array(self) -> np.ndarray:
        """The mask as bool, a read-only view of the IR's bytes (no copy)."""
        return bool_array(self.mask)

    def values_array(self) -> np.ndarray | None:
        return None if self.values is None else array_from_dense(self.values)

    def codebook_array(self) -> np.ndarray | None:
        return None if self.codebook is None else array_from_dense(self.codebook)

    def indices_array(self) -> np.ndarray | None:
        return None if self.indices is None else array_from_dense(self.indices)

    @property
    def fixed_format(self) -> FixedFormat | None:
        return None if self.format is None else self.format.format

    @property
    def is_shared(self) -> bool:
        return self.codebook is not None

    def dense(self) -> np.ndarray:
        """The dense float32 tensor this weight stands for."""
        mask = self.mask_array()
        if self.codebook is None:
            return np.where(mask, self.values_array(), np.float32(0)).astype(np.float32, copy=False)
        # The gather is a fresh array: zero it in place rather than allocate a second one.
        full = self.codebook_array()[self.indices_array()].astype(np.float32, copy=False)
        np.copyto(full, np.float32(0), where=~mask)
        return full

    def density(self) -> float:
        mask = self.mask_array()
        return float(np.count_nonzero(mask)) / max(mask.size, 1)

    def summary(self) -> str:
        """One line for readers: density, index bits, codebook size, format, Huffman."""
        parts = [f"density {self.density():.2%}"]
        if self.codebook is not None:
            bits = self.index_bits.value.data if self.index_bits else "?"
            parts.append(f"{bits}-bit indices, {len(self.codebook)} centroids")
        if self.format is not None:
            parts.append(str(self.fixed_format))
        if self.index_code is not None:
            parts.append("huffman")
        return ", ".join(parts)

    # -- verification and format ---------------------------------------------------------

    def verify_(self) -> None:
        shape = self.shape
        if tuple(self.mask.get_type().get_shape()) != shape:
            raise VerifyException(
                f"comp.weight mask shape {tuple(self.mask.get_type().get_shape())} differs "
                f"from the weight shape {shape}"
            )
        if (self.values is None) == (self.codebook is None):
            raise VerifyException("comp.weight needs exactly one of `values` or `codebook`")
        if self.values is not None and tuple(self.values.get_type().get_shape()) != shape:
            raise VerifyException("comp.weight values shape differs from the weight shape")
        if self.codebook is not None:
            if self.indices is None:
                raise VerifyException("comp.weight with a codebook needs `indices`")
            if tuple(self.indices.get_type().get_shape()) != shape:
                raise VerifyException("comp.weight indices shape differs from the weight shape")
            k = len(self.codebook)
            if self.index_bits is not None and not 1 <= self.index_bits.value.data <= 16:
                raise VerifyException(
                    f"comp.weight index_bits {self.index_bits.value.data} outside 1..16"
                )
            if self.index_bits is not None and k > (1 << self.index_bits.value.data):
                raise VerifyException(
                    f"comp.weight codebook has {k} entries, more than 2^{self.index_bits.value.data}"
                )
            self._verify_codebook(k)
        # A mask element is one byte, 0 or 1 (0xFF is how xDSL stores a parsed `true`):
        # any other byte (from a hex payload) is neither and would read as true.
        raw = np.frombuffer(self.mask.data.data, dtype=np.uint8)
        bad = raw[(raw > 1) & (raw != 0xFF)]
        if bad.size:
            raise VerifyException(
                f"comp.weight mask holds byte 0x{int(bad[0]):02X}; a mask element is 0 or 1"
            )

    def _verify_codebook(self, k: int) -> None:
        """What `dense()` relies on: finite centroids, and every index naming one of them."""
        codebook = self.codebook_array()
        if codebook.ndim != 1:
            raise VerifyException(f"comp.weight codebook must be 1-D, not {codebook.ndim}-D")
        if not np.isfinite(codebook).all():
            raise VerifyException("comp.weight codebook holds a NaN or infinite entry")
        indices = self.indices_array()
        if indices.dtype.kind not in "iu":
            raise VerifyException(f"comp.weight indices must be integers, not {indices.dtype}")
        if indices.size and (indices.max() >= k or indices.min() < 0):
            bad = int(indices.max()) if indices.max() >= k else int(indices.min())
            raise VerifyException(
                f"comp.weight index {bad} is outside its codebook of {k} entries [0, {k - 1}]"
            )

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_attr_dict(self.properties)
        printer.print_string(" : ")
        printer.print_attribute(self.output.type)
        onnx_d.print_name_loc(printer, self)
        printer.print_string(f" // {self.summary()}")

    @classmethod
    def parse(cls, parser: Parser) -> WeightOp:
        props = onnx_d.parse_attribute_dict(parser)
        parser.parse_punctuation(":")
        typ = parser.parse_type()
        return cls(typ, props)


@irdl_op_definition
class QuantizeOp(IRDLOperation):
    """y = round_half_even(x * 2^F) saturated to N bits, times 2^-F (an activation format).

    `overflow_rate` records the fraction of calibration values that saturated.
    """

    name = "comp.quantize"
    traits = traits_def(Pure())

    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    output = result_def(T)
    format = prop_def(FixedAttr)
    overflow_rate = opt_prop_def(FloatAttr)

    assembly_format = "$input attr-dict `:` type($output)"
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, value: SSAValue, fmt: FixedFormat, overflow: float | None = None):
        props: dict[str, Attribute] = {"format": FixedAttr.get(fmt)}
        if overflow is not None:
            props["overflow_rate"] = FloatAttr(overflow, f64)
        super().__init__(operands=[value], result_types=[value.type], properties=props)

    def verify_(self) -> None:
        if self.input.type != self.output.type:
            raise VerifyException("comp.quantize keeps its operand's type")

    def result_format(self, value: SSAValue) -> FixedFormat:
        return self.format.format


class FixedFCOp(onnx_d.LayerFormat, IRDLOperation):
    """Base of the targets' fully connected layer ops on fixed-point codes (eie.fc, ...).

    out = requant(W @ x + b) with optional ReLU: operands the activation [batch, cols],
    a quantized `comp.weight` [rows, cols] and optionally the bias [rows]; the result is
    in out_format, the exact sum saturated to acc_bits first. A target's op subclasses it
    with its `name` and the checks its hardware adds; the layer name prints as
    `loc("name")` (hand-written format: xDSL's declarative one does not print it).
    """

    traits = traits_def(Pure())

    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    output = result_def(TensorType)

    in_format = prop_def(FixedAttr)
    out_format = prop_def(FixedAttr)
    relu = prop_def(IntegerAttr)
    acc_bits = prop_def(IntegerAttr)

    def __init__(self, x: SSAValue, weight: SSAValue, bias: SSAValue | None,
                 result_type: TensorType, in_format: FixedFormat, out_format: FixedFormat,
                 relu: bool, acc_bits: int, layer_name: str | None = None):  # fmt: skip
        super().__init__(
            operands=[x, weight, [bias] if bias is not None else []],
            result_types=[result_type],
            properties={
                "in_format": FixedAttr.get(in_format),
                "out_format": FixedAttr.get(out_format),
                "relu": IntegerAttr(int(relu), i64),
                "acc_bits": IntegerAttr(acc_bits, i64),
            },
        )
        if layer_name:
            self.location = NameLoc(StringAttr(layer_name), NoneAttr())

    @property
    def layer_name(self) -> str | None:
        return self.location.desc.data if isinstance(self.location, NameLoc) else None

    @property
    def weight_op(self) -> WeightOp:
        return self.weight.owner

    @property
    def weight_format(self) -> FixedFormat:
        return self.weight_op.fixed_format

    def result_format(self, value: SSAValue) -> FixedFormat:
        return self.out_format.format

    @property
    def shift(self) -> int:
        """Right shift from the accumulator (frac fa+fw) to the output format."""
        return self.in_format.format.frac + self.weight_format.frac - self.out_format.format.frac

    def verify_(self) -> None:
        w = self.weight.owner
        if not isinstance(w, WeightOp) or w.format is None or len(w.shape) != 2:
            raise VerifyException(f"{self.name} needs a quantized 2-D comp.weight as its weight")
        rows, cols = w.shape
        cols_in = self.input.type.get_shape()[-1]
        if cols_in != cols:
            raise VerifyException(f"{self.name} input has {cols_in} columns, the weight {cols}")
        rows_out = self.output.type.get_shape()[-1]
        if rows_out != rows:
            raise VerifyException(f"{self.name} output has {rows_out} rows, the weight {rows}")


# Ops that only move or reshape their first operand's values.
LAYOUT_OPS = (onnx_d.TransposeOp, onnx_d.ReshapeOp, onnx_d.SqueezeOp, onnx_d.UnsqueezeOp,
              onnx_d.IdentityOp, onnx_d.FlattenOp)  # fmt: skip


def value_format(value: SSAValue) -> FixedFormat | None:
    """The fixed-point format ``value``'s elements are in, or None if it is float.

    Found through layout-only ops (a transpose or reshape keeps its input's format) back
    to an op that produces fixed-point values: one with a `result_format(value)` method
    (comp.quantize, and the targets' layer ops).
    """
    while True:
        owner = value.owner
        result_format = getattr(owner, "result_format", None)
        if result_format is not None:
            return result_format(value)
        if isinstance(owner, LAYOUT_OPS) and owner.operands:
            value = owner.operands[0]
            continue
        return None


COMP = Dialect("comp", [WeightOp, QuantizeOp], [FixedAttr])
