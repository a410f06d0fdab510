"""Semantics of the `eie` dialect: the fixed-point golden model of the EIE accelerator."""

from __future__ import annotations

from dlhwc.compiler.interpreters.registry import impl
from dlhwc.dialects import eie
from dlhwc.runtime.eie.arith import exact_matvec, finish
from dlhwc.spec.fixedpoint import FixedFormat, from_codes, to_codes


@impl(eie.FCOp)
def fc(op: eie.FCOp, args: list) -> tuple:
    """One layer on integer codes, exactly as the accelerator computes it."""
    x, w = args[0], args[1]
    fa, fo, fw = op.in_format.format, op.out_format.format, op.weight_format
    acc_bits = op.acc_bits.value.data
    bias = None
    if len(args) > 2:
        bias = to_codes(args[2], FixedFormat(acc_bits, fa.frac + fw.frac))
    codes = to_codes(x.reshape(-1, x.shape[-1]), fa)
    acc = exact_matvec(to_codes(w, fw), codes)
    y = finish(acc, bias, op.shift, bool(op.relu.value.data), fo.bits, acc_bits)
    return (from_codes(y, fo).reshape(*x.shape[:-1], -1),)
