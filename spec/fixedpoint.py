"""Fixed-point arithmetic shared by the compiler's golden model and the simulator.

A format `fixed<N, F>` is a signed two's-complement integer of N bits with F fraction
bits: the code q stands for q * 2**-F, and codes range over [-2**(N-1), 2**(N-1) - 1].

Rounding and saturation, everywhere in dlhwc:

- to_fixed(x): q = round_half_even(x * 2**F), then saturate to the code range. Half to
  even is what ONNX QuantizeLinear does, so an exported model computes the same values;
- shifts right (requantization, after a multiply) round half to even too, on integers;
- saturation clamps; there is no wrap-around.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_BITS = 62
"""The widest format: codes and their sums of two stay inside int64 (accumulators up to
62 bits; the compiler's activation and weight formats are at most 32 bits wide)."""


@dataclass(frozen=True)
class FixedFormat:
    """A signed fixed-point format: `bits` in total, `frac` of them after the point."""

    bits: int
    frac: int

    def __post_init__(self):
        if not 2 <= self.bits <= MAX_BITS:
            raise ValueError(f"fixed-point width {self.bits} outside 2..{MAX_BITS}")

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def scale(self) -> float:
        """The value of one code step, 2**-frac."""
        return float(2.0**-self.frac)

    @property
    def max_value(self) -> float:
        return self.qmax * self.scale

    def __str__(self) -> str:
        return f"fixed<{self.bits},{self.frac}>"


def to_codes(x: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    """Integer codes (int64) of ``x`` in ``fmt``: round half to even, then saturate."""
    scaled = np.asarray(x, dtype=np.float64) * (2.0**fmt.frac)
    return np.clip(np.rint(scaled), fmt.qmin, fmt.qmax).astype(np.int64)


def from_codes(q: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    """The float32 values that integer codes stand for in ``fmt``."""
    return (np.asarray(q, dtype=np.float64) * fmt.scale).astype(np.float32)


def quantize(x: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    """``x`` rounded and saturated to ``fmt``, as float32 (exactly representable)."""
    return from_codes(to_codes(x, fmt), fmt)


def overflow_rate(x: np.ndarray, fmt: FixedFormat) -> float:
    """The fraction of elements of ``x`` that saturate in ``fmt``."""
    x = np.asarray(x)
    if x.size == 0:
        return 0.0
    scaled = np.rint(x.astype(np.float64) * (2.0**fmt.frac))
    return float(np.mean((scaled > fmt.qmax) | (scaled < fmt.qmin)))


def frac_bits_for(max_abs: float, bits: int) -> int:
    """The most fraction bits that still represent ``max_abs`` without saturating."""
    if max_abs <= 0 or not np.isfinite(max_abs):
        return bits - 1
    qmax = (1 << (bits - 1)) - 1
    # Largest F with round(max_abs * 2**F) <= qmax.
    frac = int(np.floor(np.log2(qmax / max_abs)))
    while np.rint(max_abs * 2.0**frac) > qmax:
        frac -= 1
    while np.rint(max_abs * 2.0 ** (frac + 1)) <= qmax:
        frac += 1
    return frac


def shift_round(q: np.ndarray, shift: int) -> np.ndarray:
    """Integer ``q * 2**-shift`` rounded half to even (``shift`` may be negative: a left shift)."""
    q = np.asarray(q, dtype=np.int64)
    if shift <= 0:
        return q << (-shift)
    floor = q >> shift
    rem = q - (floor << shift)
    half = 1 << (shift - 1)
    up = (rem > half) | ((rem == half) & ((floor & 1) == 1))
    return floor + up.astype(np.int64)


def saturate(q: np.ndarray, bits: int) -> np.ndarray:
    """Clamp integer codes to the signed ``bits``-bit range."""
    return np.clip(q, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
