"""ESE's activation tables: which functions the hardware has, and what its tables hold.

This is machine definition, not arithmetic: the compiler writes these tables into the
container (sections `L<i>.lut.Sigmoid`, `L<i>.lut.Tanh`), the simulator reads them from
there, and the golden model builds the same ones from the IR's `lut_in_frac` and
`lut_segments`. How a table is *evaluated* (the multiply, the rounding, the saturation)
is arithmetic, and each of them writes it itself (backends/ese/README.md,
"What is shared on purpose").

A table approximates f on the 16-bit input codes of fixed<16, in_frac>, i.e. on
[-2^(15-in_frac), 2^(15-in_frac)), by `segments` pieces of equal width (a power of two,
so that the segment index is the top log2(segments) bits of the offset code
x + 2^15). Segment s covers the codes [-2^15 + s*W, -2^15 + (s+1)*W), W = 2^16 /
segments, and holds the chord of f between its two ends x0 = (-2^15 + s*W) / 2^in_frac
and x1 = x0 + W / 2^in_frac:

    slope_s = (f(x1) - f(x0)) / (x1 - x0)     stored as a fixed<32, 16> code
    icpt_s  = f(x0) - slope_s * x0             stored as a fixed<32, 15> code

(both rounded half to even, saturated; spec/fixedpoint.to_codes). Sigmoid is computed as
0.5 * (1 + tanh(x / 2)) in float64, Tanh as numpy's tanh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dlhwc.spec.ese.isa import HARDWARE_ACTIVATIONS  # noqa: F401 - the activations ESE runs
from dlhwc.spec.fixedpoint import FixedFormat, to_codes

ACT_FRAC = 15
"""Fraction bits of a table's output (sigmoid and tanh lie in (-1, 1))."""

SLOPE_FRAC = 16
"""Fraction bits of a table's slopes."""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


LUT_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Sigmoid": _sigmoid,
    "Tanh": np.tanh,
}
"""The functions the hardware has tables for, and their float definitions."""


@dataclass(frozen=True)
class Lut:
    """The contents of one piecewise-linear table over fixed<16, in_frac> inputs."""

    function: str
    in_frac: int
    segments: int
    slopes: np.ndarray  # int64 [segments], frac SLOPE_FRAC
    intercepts: np.ndarray  # int64 [segments], frac ACT_FRAC

    @property
    def segment_shift(self) -> int:
        """The segment of a code x is (x + 2^15) >> segment_shift."""
        return 16 - int(np.log2(self.segments))


def build_lut(function: str, in_frac: int, segments: int) -> Lut:
    """The chord table of ``function`` ("Sigmoid" or "Tanh") with ``segments`` pieces."""
    if function not in LUT_FUNCTIONS:
        raise ValueError(f"no activation table for {function}")
    if segments < 1 or segments & (segments - 1) or segments > 1 << 16:
        raise ValueError(f"segments must be a power of two in 1..65536, not {segments}")
    f = LUT_FUNCTIONS[function]
    width = (1 << 16) // segments  # codes per segment
    starts = -(1 << 15) + width * np.arange(segments)
    x0 = starts / 2.0**in_frac
    x1 = (starts + width) / 2.0**in_frac
    slope = (f(x1) - f(x0)) / (x1 - x0)
    icpt = f(x0) - slope * x0
    return Lut(
        function,
        in_frac,
        segments,
        to_codes(slope, FixedFormat(32, SLOPE_FRAC)),
        to_codes(icpt, FixedFormat(32, ACT_FRAC)),
    )


def gate_frac(name: str, in_frac: int) -> int:
    """The fraction bits a gate activation ``name`` is held at inside LSTM and GRU cells:
    15 for the tables' outputs (|a| < 1), ``in_frac`` for Relu (exact, and not bounded by 1).
    """
    return ACT_FRAC if name in LUT_FUNCTIONS else in_frac
