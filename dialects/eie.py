"""The `eie` dialect: layer-level operations of the EIE accelerator.

`eie.fc` is one fully connected layer as EIE runs it: a sparse, weight-shared matrix
times each activation vector, with the bias, the requantizing shift and an optional
ReLU fused in, on integer codes:

    a   = codes of x in in_format                     (frac fa; x is exact in it)
    W   = codes of the weight's codebook (frac fw), [rows, cols], zero where pruned
    acc = sat(W @ a + bias codes at frac fa+fw, acc_bits)      (an exact integer sum)
    y   = sat(round_half_even(acc * 2^-(fa+fw-fo)), act_bits)  (fo = out_format.frac)
    y   = max(y, 0) if relu
    out = y * 2^-fo

Its operands are the activation [batch, cols], a `comp.weight` [rows, cols] with a
codebook whose entry 0 is 0.0 (EIE's filler code) and a fixed-point format, and
optionally the bias [rows]. This is the fixed-point golden model of the accelerator:
the simulator, executing the compiled container, must produce the same codes.
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
    """out = requant(W @ x + b) with optional ReLU, on fixed-point codes (see module doc).

    Format: `%y = eie.fc %x, %w[, %b] {in_format = #comp.fixed<16, 12>, ...} :
    (tensor<?x64xf32>, tensor<300x64xf32>[, tensor<300xf32>]) -> tensor<?x300xf32>`

    Hand-written: the layer name follows as `loc("name")`, which xDSL's declarative
    format does not print.
    """

    name = "eie.fc"
    traits = traits_def(Pure())

    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    output = result_def(TensorType)

    in_format = prop_def(FixedAttr)
    out_format = prop_def(FixedAttr)
    relu = prop_def(IntegerAttr)
    acc_bits = prop_def(IntegerAttr)

    def __init__(
        self,
        x: SSAValue,
        weight: SSAValue,
        bias: SSAValue | None,
        result_type: TensorType,
        in_format: FixedFormat,
        out_format: FixedFormat,
        relu: bool,
        acc_bits: int,
        layer_name: str | None = None,
    ):
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
        if not isinstance(w, WeightOp) or not w.is_shared or w.format is None:
            raise VerifyException(
                "eie.fc needs a weight-shared, quantized comp.weight as its weight operand"
            )
        codebook = w.codebook_array()
        if len(codebook) == 0 or codebook[0] != 0.0:
            raise VerifyException("eie.fc weight codebook entry 0 must be 0.0 (the filler code)")
        rows, cols = w.shape
        x_shape = self.input.type.get_shape()
        if x_shape[-1] != cols:
            raise VerifyException(f"eie.fc input has {x_shape[-1]} columns, the weight {cols}")
        if self.output.type.get_shape()[-1] != rows:
            raise VerifyException(
                f"eie.fc output has {self.output.type.get_shape()[-1]} rows, the weight {rows}"
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


EIE = Dialect("eie", [FCOp], [])
