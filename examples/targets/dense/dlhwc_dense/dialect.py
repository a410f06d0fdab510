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

from xdsl.ir import Dialect
from xdsl.irdl import irdl_op_definition

from dlhwc.dialects.comp import FixedFCOp


@irdl_op_definition
class FCOp(FixedFCOp):
    """out = requant(W @ x + b) with optional ReLU, on fixed-point codes (module doc).

    Format: `%y = dense.fc %x, %w[, %b] {acc_bits = 32 : i64, in_format = ..., out_format
    = ..., relu = 1 : i64} : (tensor<?x64xf32>, tensor<32x64xf32>) -> tensor<?x32xf32>
    loc("name")`. Any quantized 2-D weight: nothing is skipped.
    """

    name = "dense.fc"


DENSE = Dialect("dense", [FCOp], [])
