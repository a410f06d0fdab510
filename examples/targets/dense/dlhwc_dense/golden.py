"""Semantics of `dense.fc` in dlhwc's reference interpreter: the golden model.

Written from the ISA's pseudo-code (isa.py, the README's instruction set) for the whole
layer at once: one exact integer product of the IR's weight codes, where the simulator
sums tile by tile from the container's images. What the two share on purpose is the
specification of rounding and saturation (dlhwc.spec.fixedpoint).
"""

from __future__ import annotations

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, PythonValues, impl, register_impls

from dlhwc.spec.fixedpoint import FixedFormat, from_codes, saturate, shift_round, to_codes
from dlhwc_dense.dialect import FCOp


def fc(op: FCOp, args: list) -> tuple:
    """s = sat(W a + b, acc_bits); y = sat(round_half_even(s 2^-shift), act_bits); ReLU."""
    x, w = np.asarray(args[0]), np.asarray(args[1])
    fa, fo, fw = op.in_format.format, op.out_format.format, op.weight_format
    acc_bits = op.acc_bits.value.data
    acc = to_codes(x, fa) @ to_codes(w, fw).T  # int64: exact
    if len(args) > 2:
        acc = acc + to_codes(
            np.asarray(args[2]).reshape(-1), FixedFormat(acc_bits, fa.frac + fw.frac)
        )
    y = saturate(shift_round(saturate(acc, acc_bits), op.shift), fo.bits)
    if op.relu.value.data:
        y = np.maximum(y, 0)
    return (from_codes(y, fo),)


@register_impls
class DenseFunctions(InterpreterFunctions):
    """The reference interpreter's semantics of the `dense` dialect: `fc` above."""

    @impl(FCOp)
    def run_fc(self, interpreter: Interpreter, op: FCOp, args: PythonValues):
        return fc(op, list(args))
