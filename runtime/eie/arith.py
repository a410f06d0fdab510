"""EIE's fixed-point arithmetic, as written in the ISA's `spmv` pseudo-code.

Shared by the golden model (runtime/interpreters/eie.py) and the simulator
(runtime/eie/sim.py): each computes the accumulator its own way (a dense product of
the IR's weight codes, or the decoded PE streams of the container), then finishes it here.
"""

from __future__ import annotations

import numpy as np

from runtime.fixedpoint import saturate, shift_round

# Products of 16-bit codes summed over < 2^22 columns stay below 2^53, so float64
# matrix products are exact integer sums.
MAX_EXACT_COLUMNS = 1 << 22


def exact_matvec(weight_codes: np.ndarray, act_codes: np.ndarray) -> np.ndarray:
    """acc[b, r] = sum_c W[r, c] * a[b, c], exactly, as int64."""
    if weight_codes.shape[1] >= MAX_EXACT_COLUMNS:
        raise ValueError(f"{weight_codes.shape[1]} columns exceed the exact-sum bound")
    acc = act_codes.astype(np.float64) @ weight_codes.astype(np.float64).T
    return acc.astype(np.int64)


def finish(
    acc: np.ndarray,
    bias: np.ndarray | None,
    shift: int,
    relu: bool,
    act_bits: int,
    acc_bits: int,
) -> np.ndarray:
    """y = sat(round_half_even(sat(acc + bias, acc_bits) * 2^-shift), act_bits), ReLU'd."""
    if bias is not None:
        acc = acc + bias
    acc = saturate(acc, acc_bits)
    y = saturate(shift_round(acc, shift), act_bits)
    if relu:
        y = np.maximum(y, 0)
    return y
