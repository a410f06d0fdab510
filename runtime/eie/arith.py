"""EIE's fixed-point arithmetic, as written in the ISA's `spmv` pseudo-code.

Shared by the golden model (backends/eie/golden.py) and the simulator
(runtime/eie/sim.py): each computes the accumulator its own way (a dense product of
the IR's weight codes, or the decoded PE streams of the container), then finishes it here.
"""

from __future__ import annotations

import numpy as np

from dlhwc.spec.fixedpoint import saturate, shift_round


def exact_matvec(weight_codes: np.ndarray, act_codes: np.ndarray) -> np.ndarray:
    """acc[b, r] = sum_c W[r, c] * a[b, c], exactly, as int64.

    A float64 product is exact while no partial sum can reach 2^53 (16-bit codes over
    fewer than 2^22 columns); wider codes or longer rows take an int64 product.
    """
    w_max = int(np.abs(weight_codes).max(initial=0))
    a_max = int(np.abs(act_codes).max(initial=0))
    if w_max * a_max * max(weight_codes.shape[1], 1) < 1 << 53:
        acc = act_codes.astype(np.float64) @ weight_codes.astype(np.float64).T
        return acc.astype(np.int64)
    return act_codes.astype(np.int64) @ weight_codes.astype(np.int64).T


def finish(
    acc: np.ndarray,
    bias: np.ndarray | None,
    shift: int,
    relu: bool,
    act_bits: int,
    acc_bits: int,
) -> np.ndarray:
    """y = sat(round_half_even(sat(acc + bias, acc_bits) * 2^-shift), act_bits), ReLU'd."""
    return finish_counted(acc, bias, shift, relu, act_bits, acc_bits)[0]


def finish_counted(
    acc: np.ndarray,
    bias: np.ndarray | None,
    shift: int,
    relu: bool,
    act_bits: int,
    acc_bits: int,
) -> tuple[np.ndarray, np.ndarray]:
    """`finish`, and where saturation changed a result: a bool array, True where y differs
    from the same sum rounded without any saturation (a negative sum that ReLU zeroes
    anyway does not count)."""
    if bias is not None:
        acc = acc + bias
    exact = shift_round(acc, shift)
    y = saturate(shift_round(saturate(acc, acc_bits), shift), act_bits)
    if relu:
        y = np.maximum(y, 0)
        exact = np.maximum(exact, 0)
    return y, y != exact
