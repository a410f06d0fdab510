"""ESE's fixed-point arithmetic: piecewise-linear activation tables and the gate math.

Shared by the golden model (backends/ese/golden.py) and the simulator: each
computes the sparse matrix x vector products its own way (dense products of the IR's
weight codes, or the decoded PE streams of the container) and finishes a time step here.

Formats (spec/fixedpoint.py; every rounding is half to even, every result saturates):

    x   input activations        fixed<16, fx>
    h   hidden state             fixed<16, fh>
    W,R weights                  fixed<12, fw>, fixed<12, fr> (linear quantization)
    p   gate pre-activations     fixed<16, fl>    (the activation tables' input format)
    a   gate activations         fixed<16, 15>    (sigmoid and tanh outputs, |a| < 1)
    c   LSTM cell state          fixed<16, fc>

A gate's pre-activation is

    p = sat16( rnd(W@x >> (fx+fw-fl)) + rnd(R@h >> (fh+fr-fl)) + b [+ rnd(P*c >> (fP+fc-fl))] )

with b the sum of ONNX's two biases, quantized at frac fl; with `clip`, p is clamped to
[-clip, clip] before the activation.

Activation tables (the hardware's LUT units): a function f is approximated on the input
range [-2^(15-fl), 2^(15-fl)) by `segments` equal pieces (a power of two, so the segment
index is the top bits of the code); segment s holds the chord of f between its ends,
y = slope_s * x + icpt_s, slope as a fixed<32, 16> code and icpt as a fixed<32, 15> code:

    y = sat16( rnd(slope_s * x_code >> (16 + fl - 15)) + icpt_s )        (frac 15)

`Relu` needs no table (max with 0). `lut_error` measures a table's worst error over
every 16-bit input code.

Inside LSTM and GRU cells a gate activation is held at `gate_frac(name, fl)`: frac 15 for
Sigmoid and Tanh (|a| < 1), frac fl for Relu (max(p, 0) of a pre-activation code, exact:
a Relu gate may exceed 1). Every product below takes its operands' own fractions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlhwc.spec.ese.isa import HARDWARE_ACTIVATIONS  # noqa: F401 (the ISA declares them)
from dlhwc.spec.fixedpoint import FixedFormat, saturate, shift_round, to_codes

ACT_FRAC = 15  # sigmoid/tanh outputs
SLOPE_FRAC = 16


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


LUT_FUNCTIONS = {"Sigmoid": _sigmoid, "Tanh": np.tanh}


@dataclass(frozen=True)
class Lut:
    """A piecewise-linear table of one function over fixed<16, in_frac> inputs."""

    function: str
    in_frac: int
    segments: int
    slopes: np.ndarray  # int64 [segments], frac SLOPE_FRAC
    intercepts: np.ndarray  # int64 [segments], frac ACT_FRAC

    @property
    def segment_shift(self) -> int:
        return 16 - int(np.log2(self.segments))

    def __call__(self, x_codes: np.ndarray) -> np.ndarray:
        """Activation codes (frac 15) of pre-activation codes (frac in_frac)."""
        x = np.clip(np.asarray(x_codes, dtype=np.int64), -(1 << 15), (1 << 15) - 1)
        seg = (x + (1 << 15)) >> self.segment_shift
        prod = self.slopes[seg] * x
        y = shift_round(prod, SLOPE_FRAC + self.in_frac - ACT_FRAC) + self.intercepts[seg]
        return saturate(y, 16)


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


def lut_error(lut: Lut) -> float:
    """The largest |table(x) - f(x)| over every 16-bit input code x."""
    codes = np.arange(-(1 << 15), 1 << 15, dtype=np.int64)
    exact = LUT_FUNCTIONS[lut.function](codes / 2.0**lut.in_frac)
    return float(np.max(np.abs(lut(codes) / 2.0**ACT_FRAC - exact)))


def gate_frac(name: str, in_frac: int) -> int:
    """The fraction bits a gate activation ``name`` is held at inside LSTM and GRU cells:
    15 for the tables' outputs (|a| < 1), ``in_frac`` for Relu (exact, and not bounded by 1).
    """
    return ACT_FRAC if name in LUT_FUNCTIONS else in_frac


def activation(
    name: str, pre: np.ndarray, luts: dict[str, Lut], in_frac: int, out_frac: int = ACT_FRAC
) -> np.ndarray:
    """The hardware activation ``name`` of pre-activation codes (frac in_frac), at out_frac.

    Sigmoid and Tanh come from their tables (frac 15, then rounded to out_frac); Relu is
    max(p, 0) rounded from in_frac to out_frac. Results saturate to 16 bits. Inside LSTM
    and GRU cells activations are held at `gate_frac` (see there); a simple RNN's
    activation is produced directly in the hidden state's format.
    """
    if name == "Relu":
        return saturate(shift_round(np.maximum(pre, 0), in_frac - out_frac), 16)
    return saturate(shift_round(luts[name](pre), ACT_FRAC - out_frac), 16)


def align(acc: np.ndarray, frac: int, to_frac: int) -> np.ndarray:
    """Integer codes at ``frac`` rounded to ``to_frac`` (no saturation)."""
    return shift_round(acc, frac - to_frac)


def mul(a: np.ndarray, a_frac: int, b: np.ndarray, b_frac: int, out_frac: int) -> np.ndarray:
    """rnd(a * b) at ``out_frac`` (exact product, one rounding, no saturation)."""
    return shift_round(
        np.asarray(a, np.int64) * np.asarray(b, np.int64), a_frac + b_frac - out_frac
    )


# -- one time step of each cell, on codes ------------------------------------------------


@dataclass(frozen=True)
class CellFormats:
    """The fractions of a recurrent layer's fixed-point values (see the module docstring)."""

    fx: int  # input x
    fh: int  # hidden state h
    fw: int  # input weights W
    fr: int  # recurrent weights R
    fl: int  # gate pre-activations (the tables' input)
    fc: int  # LSTM cell state
    fp: int  # LSTM peepholes


def pre_activation(
    wx: np.ndarray, rh: np.ndarray, bias: np.ndarray, f: CellFormats, clip_code: int | None
) -> np.ndarray:
    """p = sat16(rnd(W@x) + rnd(R@h) + b), clamped to +-clip; codes at frac fl."""
    p = align(wx, f.fx + f.fw, f.fl) + align(rh, f.fh + f.fr, f.fl) + bias
    p = saturate(p, 16)
    if clip_code is not None:
        p = np.clip(p, -clip_code, clip_code)
    return p


def _act(name, p, luts, f: CellFormats) -> tuple[np.ndarray, int]:
    """A gate activation inside an LSTM/GRU cell: (codes, their frac)."""
    frac = gate_frac(name, f.fl)
    return activation(name, p, luts, f.fl, frac), frac


def lstm_step(
    wx, rh, bias, c_prev, peep, acts, luts, f: CellFormats, clip_code, input_forget
) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM step; gates i, o, f, c in ONNX order. Returns (h codes, c codes).

    i = f1(p_i + P_i*c)   f = f1(p_f + P_f*c)   (or f = 1 - i, exact, with input_forget)
    g = f2(p_c)           c' = sat16(rnd(f*c) + rnd(i*g))
    o = f1(p_o + P_o*c')  h' = sat16(rnd(o * f3(c')))      (f1, f2, f3 = acts)

    Activations are held at `gate_frac` (15 for Sigmoid/Tanh, fl for Relu).
    """
    h4 = wx.shape[-1] // 4
    pi, po, pf, pc = np.split(_no_clip(wx, rh, bias, f), 4, axis=-1)
    if peep is not None:
        pi = pi + mul(peep[..., :h4], f.fp, c_prev, f.fc, f.fl)
        pf = pf + mul(peep[..., 2 * h4 :], f.fp, c_prev, f.fc, f.fl)
    pi, pf, pc = (_clip(saturate(v, 16), clip_code) for v in (pi, pf, pc))
    i, fi = _act(acts[0], pi, luts, f)
    if input_forget:
        # Exact: 1.0 has no 16-bit code at frac 15, and 1 - i reaches 2 for a Tanh i, so
        # the element-wise unit holds this one value in 17 bits.
        fg = (1 << fi) - i
    else:
        fg, _ = _act(acts[0], pf, luts, f)
    g, fgt = _act(acts[1], pc, luts, f)
    c = saturate(mul(fg, fi, c_prev, f.fc, f.fc) + mul(i, fi, g, fgt, f.fc), 16)
    if peep is not None:
        po = po + mul(peep[..., h4 : 2 * h4], f.fp, c, f.fc, f.fl)
    po = _clip(saturate(po, 16), clip_code)
    o, fo = _act(acts[0], po, luts, f)
    tc, ft = _act(acts[2], saturate(align(c, f.fc, f.fl), 16), luts, f)
    h = saturate(mul(o, fo, tc, ft, f.fh), 16)
    return h, c


def gru_step(
    wx, rh_zr, r_times_rh, bias, h_prev, acts, luts, f: CellFormats, clip_code, lbr
) -> np.ndarray:
    """One GRU step; gates z, r, h in ONNX order. Returns the new h codes.

    ``rh_zr`` is R@h for the z and r rows (frac fh+fr); ``r_times_rh(r, r_frac)`` gives
    the h gate's recurrent term at frac fl from the reset gate r (codes at frac r_frac,
    `gate_frac(acts[0], fl)`: 15 unless f1 is Relu):
      lbr=0: rnd(R_h @ rnd(r*h)) + Rb_h;   lbr=1: rnd(r * (rnd(R_h @ h) + Rb_h)).
    z = f1(p_z)  r = f1(p_r)  n = f2(Wx_h + Wb_h + recurrent term)
    h' = sat16(n + rnd(z * (h - n)))          (= (1-z)*n + z*h without a 1.0 code)
    """
    hh = wx.shape[-1] // 3
    wz, wr, wn = np.split(wx, 3, axis=-1)
    rz, rr = rh_zr[..., :hh], rh_zr[..., hh:]
    bz, br, bn = np.split(bias, 3, axis=-1)
    z, fz = _act(acts[0], pre_activation(wz, rz, bz, f, clip_code), luts, f)
    r, r_frac = _act(acts[0], pre_activation(wr, rr, br, f, clip_code), luts, f)
    pn = saturate(align(wn, f.fx + f.fw, f.fl) + bn + r_times_rh(r, r_frac), 16)
    n, fn = _act(acts[1], _clip(pn, clip_code), luts, f)
    n_h = align(n, fn, f.fh)
    return saturate(n_h + mul(z, fz, h_prev - n_h, f.fh, f.fh), 16)


def rnn_step(wx, rh, bias, acts, luts, f: CellFormats, clip_code) -> np.ndarray:
    """One simple RNN step: h' = f1(W@x + R@h + b), at frac fh."""
    return activation(acts[0], pre_activation(wx, rh, bias, f, clip_code), luts, f.fl, f.fh)


def _no_clip(wx, rh, bias, f: CellFormats) -> np.ndarray:
    return align(wx, f.fx + f.fw, f.fl) + align(rh, f.fh + f.fr, f.fl) + bias


def _clip(p: np.ndarray, clip_code: int | None) -> np.ndarray:
    return p if clip_code is None else np.clip(p, -clip_code, clip_code)
