"""The EIE simulator's fixed-point arithmetic, as written in the ISA's `spmv` pseudo-code.

The simulator (runtime/eie/sim.py) computes the accumulator from the decoded PE streams
of the container and finishes it here. The golden model (backends/eie/golden.py) and
the test oracle (tests/oracle/eie_exec.py) write the same rules again on their own, so
that a slip here shows as a difference (backends/eie/README.md, "What is shared on
purpose").
"""

from __future__ import annotations

import numpy as np

from dlhwc.spec.fixedpoint import saturate, shift_round


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
    if shift < 0:
        # A left shift of a sum beyond the output's range saturates whatever its size;
        # bounding it first keeps the shifted value inside int64 (62-bit accumulators,
        # shifts up to 32).
        bound = 1 << act_bits
        exact = shift_round(np.clip(acc, -bound, bound), shift)
        acc = np.clip(saturate(acc, acc_bits), -bound, bound)
    else:
        exact = shift_round(acc, shift)
        acc = saturate(acc, acc_bits)
    y = saturate(shift_round(acc, shift), act_bits)
    if relu:
        y = np.maximum(y, 0)
        exact = np.maximum(exact, 0)
    return y, y != exact
