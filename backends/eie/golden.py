"""Semantics of the `eie` dialect: the fixed-point golden model of the EIE accelerator.

Written from the `spmv` pseudo-code of the ISA (spec/eie/isa.py, backends/eie/README.md)
and from nothing the simulator runs: it imports nothing of runtime/. The simulator
(runtime/eie/sim.py) decodes the container's PE streams, sums per broadcast column and
finishes with runtime/eie/arith.py; this model multiplies the IR's dense weight codes
and finishes with the rules below, written out here and in backends/golden.py. "Bit for bit equal" between
the two is then a check of both.

    acc = x_codes @ W_codes^T                          exact integer sums
    s   = sat(acc + bias, acc_bits)                    bias at frac fa+fw
    y   = sat(round_half_even(s * 2^-shift), act_bits) shift may be negative (a left shift)
    y   = max(y, 0) if relu

The number formats themselves (FixedFormat, to_codes/from_codes for the host <-> code
conversions of `dma.in`/`dma.out`) are the shared definition in spec/fixedpoint.py.
"""

from __future__ import annotations

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, PythonValues, impl, register_impls

from dlhwc.backends.golden import exact_products, round_shift_right, saturate_signed
from dlhwc.dialects import eie
from dlhwc.spec.fixedpoint import FixedFormat, from_codes, to_codes


def requantize(s: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """sat(round_half_even(s * 2^-shift), bits) of saturated sums s.

    A negative shift multiplies by 2^-shift: the sum is first clamped to the range whose
    products stay within one step outside the output's, which saturates the same way and
    keeps the product inside int64 (s up to 62 bits, shifts up to 32).
    """
    if shift > 0:
        return saturate_signed(round_shift_right(s, shift), bits)
    left = -shift
    limit = 1 << (bits - 1)
    s = np.minimum(np.maximum(s, -((limit >> left) + 1)), (limit >> left) + 1)
    return saturate_signed(s * (1 << left), bits)


def fc(op: eie.FCOp, args: list) -> tuple:
    """One layer on integer codes, as the ISA's `spmv` pseudo-code defines it."""
    x, w = args[0], args[1]
    fa, fo, fw = op.in_format.format, op.out_format.format, op.weight_format
    acc_bits = op.acc_bits.value.data
    a = to_codes(x.reshape(-1, x.shape[-1]), fa)
    acc = exact_products(a, to_codes(w, fw))
    if len(args) > 2:
        acc = acc + to_codes(args[2], FixedFormat(acc_bits, fa.frac + fw.frac)).reshape(1, -1)
    y = requantize(saturate_signed(acc, acc_bits), op.shift, fo.bits)
    if op.relu.value.data:
        y = np.maximum(y, 0)
    return (from_codes(y, fo).reshape(*x.shape[:-1], -1),)


@register_impls
class EieFunctions(InterpreterFunctions):
    """The reference interpreter's semantics of the `eie` dialect: `fc` above."""

    @impl(eie.FCOp)
    def run_fc(self, interpreter: Interpreter, op: eie.FCOp, args: PythonValues):
        return fc(op, list(args))
