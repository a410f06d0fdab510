"""The integer primitives of the golden models (backends/eie/golden.py, backends/ese/golden.py).

Written from the hardware guides' rules, apart from the simulators' arithmetic
(runtime/eie/arith.py, runtime/ese/arith.py, spec/fixedpoint.shift_round): the golden
models import nothing of runtime/, so a rounding slip in either side shows as a
difference in `dlhwc verify` and the differential tests instead of agreeing with itself.

- saturation clamps to the signed range of the width, no wrap-around;
- every right shift rounds half to even; a negative shift is a left shift (exact);
- sums of products are exact integers.
"""

from __future__ import annotations

import numpy as np


def saturate_signed(q: np.ndarray, bits: int) -> np.ndarray:
    """Clamp integer codes to [-2^(bits-1), 2^(bits-1) - 1]."""
    return np.minimum(np.maximum(q, -(1 << (bits - 1))), (1 << (bits - 1)) - 1)


def round_shift_right(q: np.ndarray, shift: int) -> np.ndarray:
    """round_half_even(q * 2^-shift) for integer q and shift > 0.

    Adding 2^(shift-1) - 1, plus 1 when the kept part q >> shift is odd, then shifting
    (a floor) rounds every fraction below one half down, above it up, and exactly one
    half to the even neighbour.
    """
    q = np.asarray(q, dtype=np.int64)
    odd = (q >> shift) & 1
    return (q + ((1 << (shift - 1)) - 1) + odd) >> shift


def rescale(q: np.ndarray, frac: int, to_frac: int) -> np.ndarray:
    """Codes at ``frac`` fraction bits as codes at ``to_frac``: rounded half to even when
    bits are dropped, exact when bits are added; never saturated."""
    q = np.asarray(q, dtype=np.int64)
    if frac > to_frac:
        return round_shift_right(q, frac - to_frac)
    return q * (1 << (to_frac - frac))


def exact_products(act_codes: np.ndarray, weight_codes: np.ndarray) -> np.ndarray:
    """acc[..., r] = sum_c a[..., c] * W[r, c], exact, int64.

    float64 adds integers exactly while every partial sum stays below 2^53; the bound
    below is the largest sum the operands could make. Beyond it the product is in int64.
    """
    bound = (
        float(np.abs(act_codes).max(initial=0))
        * float(np.abs(weight_codes).max(initial=0))
        * max(act_codes.shape[-1], 1)
    )
    if bound < 2.0**53:
        product = act_codes.astype(np.float64) @ weight_codes.astype(np.float64).T
        return product.astype(np.int64)
    return np.asarray(act_codes, dtype=np.int64) @ np.asarray(weight_codes, dtype=np.int64).T
