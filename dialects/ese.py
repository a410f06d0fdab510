"""The `ese` dialect: recurrent layers as the ESE accelerator runs them.

`ese.rnn` is one ONNX LSTM, GRU or RNN node (all its directions) in fixed point. Its
operands are the ONNX node's inputs in ONNX order (X, W, R, B, sequence_lens,
initial_h, initial_c, P; `onnx.NoValue` for an omitted one), with W and R quantized
`comp.weight`s; its results are Y, Y_h (and Y_c for an LSTM). Properties:

    kind                 "LSTM", "GRU" or "RNN"
    direction, hidden_size, layout, activations, clip, input_forget, linear_before_reset
                         as in ONNX (activations always spelled out, one list per direction)
    x_format, h_format   the input and hidden-state formats (fixed<16, F>)
    cell_frac            the LSTM cell state's fraction bits (fixed<16, cell_frac>)
    lut_in_frac          gate pre-activations and table inputs: fixed<16, lut_in_frac>
    lut_segments         pieces of each sigmoid/tanh table

Semantics: the fixed-point golden model (backends/ese/golden.py), one step of each cell
on codes as the ISA defines it (spec/ese/isa.py), iterated over time as ONNX defines;
the simulator must match it bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xdsl.dialects.builtin import (
    ArrayAttr,
    FloatAttr,
    IntegerAttr,
    NameLoc,
    NoneAttr,
    StringAttr,
)
from xdsl.ir import Attribute, Dialect, OpResult, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    opt_prop_def,
    prop_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from dlhwc.dialects.comp import FixedAttr, WeightOp
from dlhwc.dialects.onnx import NoneType, print_name_loc
from dlhwc.spec.ese.lut import HARDWARE_ACTIVATIONS
from dlhwc.spec.fixedpoint import FixedFormat

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


@irdl_op_definition
class RNNOp(IRDLOperation):
    """A recurrent layer in fixed point (see the module docstring).

    Format: `%y, %h = ese.rnn(%x, %w, %r, ...) {props} : (types) -> (types) loc("name")`,
    hand-written for the trailing layer name, which xDSL's declarative format does not
    print.
    """

    name = "ese.rnn"
    traits = traits_def(Pure())

    inputs = var_operand_def()
    outputs = var_result_def()

    kind = prop_def(StringAttr)
    direction = prop_def(StringAttr)
    hidden_size = prop_def(IntegerAttr)
    layout = prop_def(IntegerAttr)
    activations = prop_def(ArrayAttr)
    clip = opt_prop_def(FloatAttr)
    input_forget = prop_def(IntegerAttr)
    linear_before_reset = prop_def(IntegerAttr)
    x_format = prop_def(FixedAttr)
    h_format = prop_def(FixedAttr)
    cell_frac = prop_def(IntegerAttr)
    lut_in_frac = prop_def(IntegerAttr)
    lut_segments = prop_def(IntegerAttr)

    def __init__(
        self,
        inputs: Sequence[SSAValue],
        result_types: Sequence[Attribute],
        properties: Mapping[str, Attribute],
        layer_name: str | None = None,
    ):
        super().__init__(
            operands=[list(inputs)],
            result_types=[list(result_types)],
            properties=dict(sorted(properties.items())),
        )
        if layer_name:
            self.location = NameLoc(StringAttr(layer_name), NoneAttr())

    # -- reading -------------------------------------------------------------------------

    @property
    def layer_name(self) -> str | None:
        return self.location.desc.data if isinstance(self.location, NameLoc) else None

    def operand(self, index: int) -> SSAValue | None:
        """ONNX input ``index`` (0 X, 1 W, 2 R, 3 B, 4 sequence_lens, 5 initial_h,
        6 initial_c, 7 P), or None when omitted."""
        if index >= len(self.inputs) or isinstance(self.inputs[index].type, NoneType):
            return None
        return self.inputs[index]

    @property
    def num_directions(self) -> int:
        return 2 if self.direction.data == "bidirectional" else 1

    @property
    def gates(self) -> int:
        return GATES[self.kind.data]

    def result_format(self, value: SSAValue) -> FixedFormat:
        """Y and Y_h are hidden states; an LSTM's Y_c is its cell state."""
        if self.kind.data == "LSTM" and isinstance(value, OpResult) and value.index == 2:
            return FixedFormat(16, self.cell_frac.value.data)
        return self.h_format.format

    @property
    def activation_names(self) -> list[str]:
        return [a.data for a in self.activations.data]

    def verify_(self) -> None:
        if self.kind.data not in GATES:
            raise VerifyException(f"ese.rnn kind must be LSTM, GRU or RNN, not {self.kind.data}")
        if self.direction.data not in ("forward", "reverse", "bidirectional"):
            raise VerifyException(f"ese.rnn direction {self.direction.data} is not an ONNX one")
        for i in (1, 2):
            w = self.operand(i)
            if w is None or not isinstance(w.owner, WeightOp) or w.owner.format is None:
                raise VerifyException("ese.rnn W and R must be quantized comp.weight values")
        per_dir = {"LSTM": 3, "GRU": 2, "RNN": 1}[self.kind.data]
        if len(self.activations.data) != per_dir * self.num_directions:
            raise VerifyException(
                f"ese.rnn {self.kind.data} needs {per_dir * self.num_directions} activations"
            )
        unknown = sorted(set(self.activation_names) - set(HARDWARE_ACTIVATIONS))
        if unknown:
            raise VerifyException(
                f"ese.rnn activation {unknown[0]} has no hardware unit "
                f"(ESE has {', '.join(HARDWARE_ACTIVATIONS)})"
            )
        for what, fmt in (("x_format", self.x_format), ("h_format", self.h_format)):
            if fmt.format.bits != 16:
                raise VerifyException(f"ese.rnn {what} must be 16-bit, not {fmt.format}")

    # -- format ----------------------------------------------------------------------

    def print(self, printer: Printer) -> None:
        printer.print_string("(")
        printer.print_list(self.inputs, printer.print_operand)
        printer.print_string(") ")
        printer.print_attr_dict(self.properties)
        printer.print_string(" : ")
        printer.print_function_type(self.inputs.types, self.outputs.types)
        print_name_loc(printer, self)

    @classmethod
    def parse(cls, parser: Parser) -> RNNOp:
        operands = parser.parse_comma_separated_list(
            Parser.Delimiter.PAREN, parser.parse_unresolved_operand
        )
        props = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        fn_type = parser.parse_function_type()
        resolved = parser.resolve_operands(operands, fn_type.inputs.data, parser.pos)
        return cls(resolved, fn_type.outputs.data, props)


ESE = Dialect("ese", [RNNOp], [])
