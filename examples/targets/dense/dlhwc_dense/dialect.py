"""The `dense` dialect: the layer-level op of the dense weight-stationary array.

`dense.fc` is one fully connected layer on integer codes, every weight multiplied
(nothing is skipped: pruned weights are zeros like any other):

    a   = codes of x in in_format                      (frac fa)
    W   = codes of the weight in its format            (frac fw), [rows, cols]
    s   = sat(W @ a + bias codes at frac fa+fw, acc_bits)          (exact sum)
    y   = sat(round_half_even(s * 2^-(fa+fw-fo)), act_bits)       (fo = out_format.frac)
    out = max(y, 0) * 2^-fo if relu else y * 2^-fo

Operands: the activation [batch, cols], a quantized `comp.weight` [rows, cols], and
optionally the bias [rows]. golden.py gives it its semantics in the reference
interpreter (the golden model the simulator must match bit for bit).
"""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, NameLoc, NoneAttr, StringAttr, TensorType, i64
from xdsl.ir import Dialect, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from dlhwc.dialects.comp import FixedAttr, WeightOp
from dlhwc.dialects.onnx import print_name_loc
from dlhwc.spec.fixedpoint import FixedFormat


@irdl_op_definition
class FCOp(IRDLOperation):
    """out = requant(W @ x + b) with optional ReLU, on fixed-point codes (module doc).

    Format: `%y = dense.fc %x, %w[, %b] {acc_bits = 32 : i64, in_format = ..., out_format
    = ..., relu = 1 : i64} : (tensor<?x64xf32>, tensor<32x64xf32>) -> tensor<?x32xf32>`
    """

    name = "dense.fc"

    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    output = result_def(TensorType)

    in_format = prop_def(FixedAttr)
    out_format = prop_def(FixedAttr)
    relu = prop_def(IntegerAttr)
    acc_bits = prop_def(IntegerAttr)

    traits = traits_def(Pure())

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
    def weight_format(self) -> FixedFormat:
        return self.weight.owner.fixed_format

    def result_format(self, value: SSAValue) -> FixedFormat:
        return self.out_format.format

    @property
    def shift(self) -> int:
        """Right shift from the accumulator (frac fa+fw) to the output format."""
        return self.in_format.format.frac + self.weight_format.frac - self.out_format.format.frac

    def verify_(self) -> None:
        w = self.weight.owner
        if not isinstance(w, WeightOp) or w.format is None or len(w.shape) != 2:
            raise VerifyException("dense.fc needs a quantized 2-D comp.weight as its weight")
        rows, cols = w.shape
        if self.input.type.get_shape()[-1] != cols:
            raise VerifyException(
                f"dense.fc input has {self.input.type.get_shape()[-1]} columns, the weight {cols}"
            )
        if self.output.type.get_shape()[-1] != rows:
            raise VerifyException(
                f"dense.fc output has {self.output.type.get_shape()[-1]} rows, the weight {rows}"
            )

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_list(self.operands, printer.print_operand)
        printer.print_string(" ")
        printer.print_attr_dict(self.properties)
        printer.print_string(" : ")
        printer.print_function_type(self.operand_types, self.result_types)
        print_name_loc(printer, self)

    @classmethod
    def parse(cls, parser: Parser) -> FCOp:
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


DENSE = Dialect("dense", [FCOp], [])
