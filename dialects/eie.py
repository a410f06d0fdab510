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

from xdsl.ir import Dialect
from xdsl.irdl import irdl_op_definition
from xdsl.utils.exceptions import VerifyException

from dlhwc.dialects.comp import FixedFCOp, WeightOp


@irdl_op_definition
class FCOp(FixedFCOp):
    """out = requant(W @ x + b) with optional ReLU, on fixed-point codes (see module doc).

    Format: `%y = eie.fc %x, %w[, %b] {in_format = #comp.fixed<16, 12>, ...} :
    (tensor<?x64xf32>, tensor<300x64xf32>[, tensor<300xf32>]) -> tensor<?x300xf32>
    loc("name")`. The weight is weight-shared, its codebook entry 0 is 0.0.
    """

    name = "eie.fc"

    def verify_(self) -> None:
        w = self.weight.owner
        if not isinstance(w, WeightOp) or not w.is_shared or w.format is None:
            raise VerifyException(
                "eie.fc needs a weight-shared, quantized comp.weight as its weight operand"
            )
        codebook = w.codebook_array()
        assert codebook is not None  # a weight-shared weight has a codebook
        if len(codebook) == 0 or codebook[0] != 0.0:
            raise VerifyException("eie.fc weight codebook entry 0 must be 0.0 (the filler code)")
        super().verify_()


EIE = Dialect("eie", [FCOp], [])
