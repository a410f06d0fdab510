"""Semantics of the `ese` dialect: the fixed-point golden model of the ESE accelerator.

`ese.rnn` runs ONNX's recurrence (directions, sequence_lens, initial states, layout) on
integer codes, each step as the ISA's `gates` and `cell` pseudo-code and the guide's
formulas define it (spec/ese/isa.py, backends/ese/README.md "Step arithmetic"). It is
written apart from the simulator's arithmetic (runtime/ese/arith.py) and imports
nothing of runtime/: the weight codes come from the IR's `comp.weight`s, the products
are dense exact sums (backends/golden.py), the table evaluation and every rounding are
written out here. Shared on purpose: the number formats (spec/fixedpoint.py) and the
table contents (spec/ese/lut.py), which are machine definition, not arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, PythonValues, impl, register_impls

from dlhwc.backends.golden import exact_products, rescale, saturate_signed
from dlhwc.dialects import ese
from dlhwc.spec.ese.lut import ACT_FRAC, SLOPE_FRAC, Lut, build_lut, gate_frac
from dlhwc.spec.fixedpoint import FixedFormat, frac_bits_for, from_codes, to_codes


def sat16(q: np.ndarray) -> np.ndarray:
    return saturate_signed(q, 16)


@dataclass
class _Layer:
    """One `ese.rnn`'s constants as codes, and its fraction bits."""

    W: np.ndarray  # [dirs, gates*H, input], frac fw
    R: np.ndarray  # [dirs, gates*H, H], frac fr
    bias: np.ndarray  # [dirs, gates*H], frac fl (Wb + Rb, but Rb_h with lbr = 1)
    rb_h: np.ndarray | None  # [dirs, H], frac fl (GRU with linear_before_reset = 1)
    peep: np.ndarray | None  # [dirs, 3H], frac fp (LSTM peepholes, order i, o, f)
    clip: int | None  # frac fl
    input_forget: bool
    tables: dict[str, Lut]
    fx: int
    fh: int
    fw: int
    fr: int
    fl: int
    fc: int
    fp: int


def _layer(op: ese.RNNOp) -> _Layer:
    gates, hidden, dirs = op.gates, op.hidden_size.value.data, op.num_directions
    w_op, r_op = op.operand(1).owner, op.operand(2).owner
    fw, fr = w_op.fixed_format, r_op.fixed_format
    fl = op.lut_in_frac.value.data
    rows = gates * hidden
    b = np.zeros((dirs, 2 * rows))
    if op.operand(3) is not None:
        b = np.asarray(_dense(op.operand(3)), dtype=np.float64).reshape(dirs, 2 * rows)
    wb, rb = b[:, :rows], b[:, rows:]
    rb_h = None
    if op.kind.data == "GRU" and op.linear_before_reset.value.data:
        # Rb_h is added inside r * (R_h h + Rb_h); only Rb_z, Rb_r join Wb.
        rb_h = to_codes(rb[:, 2 * hidden :], FixedFormat(32, fl))
        rb = np.concatenate([rb[:, : 2 * hidden], np.zeros((dirs, hidden))], axis=1)
    peep, fp = None, 15
    if op.kind.data == "LSTM" and op.operand(7) is not None:
        p = np.asarray(_dense(op.operand(7))).reshape(dirs, 3 * hidden)
        # The most fraction bits (at most 15) that hold the largest peephole unsaturated.
        fp = min(frac_bits_for(float(np.abs(p).max()) if p.size else 0.0, 16), 15)
        peep = to_codes(p, FixedFormat(16, fp))
    clip = None
    if op.clip is not None:
        clip = int(to_codes(np.array(op.clip.value.data), FixedFormat(16, fl)))
    segments = op.lut_segments.value.data
    return _Layer(
        W=to_codes(w_op.dense(), fw).reshape(dirs, rows, -1),
        R=to_codes(r_op.dense(), fr).reshape(dirs, rows, hidden),
        bias=to_codes(wb + rb, FixedFormat(32, fl)),
        rb_h=rb_h,
        peep=peep,
        clip=clip,
        input_forget=bool(op.input_forget.value.data),
        tables={name: build_lut(name, fl, segments) for name in ("Sigmoid", "Tanh")},
        fx=op.x_format.format.frac,
        fh=op.h_format.format.frac,
        fw=fw.frac,
        fr=fr.frac,
        fl=fl,
        fc=op.cell_frac.value.data,
        fp=fp,
    )


# -- the element-wise units ----------------------------------------------------------------


def table(lut: Lut, x: np.ndarray) -> np.ndarray:
    """A table's output codes (frac 15) for pre-activation codes x (frac lut.in_frac).

    Segment s covers the codes [-2^15 + s*W, -2^15 + (s+1)*W), W = 2^16 / segments;
    y = sat16(rnd(slope_s * x, 16 + in_frac -> 15) + icpt_s).
    """
    x = np.clip(np.asarray(x, dtype=np.int64), -32768, 32767)
    width = 65536 // lut.segments
    s = (x + 32768) // width
    y = rescale(lut.slopes[s] * x, SLOPE_FRAC + lut.in_frac, ACT_FRAC) + lut.intercepts[s]
    return sat16(y)


def act(name: str, p: np.ndarray, k: _Layer, out_frac: int) -> np.ndarray:
    """The hardware activation of pre-activation codes p (frac fl), at out_frac, sat16."""
    if name == "Relu":
        return sat16(rescale(np.where(p > 0, p, 0), k.fl, out_frac))
    return sat16(rescale(table(k.tables[name], p), ACT_FRAC, out_frac))


def gate(name: str, p: np.ndarray, k: _Layer) -> tuple[np.ndarray, int]:
    """A gate activation inside an LSTM/GRU cell and its frac (15, or fl for Relu)."""
    frac = gate_frac(name, k.fl)
    return act(name, p, k, frac), frac


def times(a: np.ndarray, fa: int, b: np.ndarray, fb: int, to: int) -> np.ndarray:
    """rnd(a * b) at frac ``to``: the exact product, rounded once, not saturated."""
    return rescale(np.asarray(a, np.int64) * np.asarray(b, np.int64), fa + fb, to)


def clamp_clip(p: np.ndarray, k: _Layer) -> np.ndarray:
    return p if k.clip is None else np.minimum(np.maximum(p, -k.clip), k.clip)


def lstm(k: _Layer, d: int, wx, rh, c, acts):
    """One LSTM step (gates i, o, f, c): (h', c')."""
    hh = wx.shape[-1] // 4
    p = rescale(wx, k.fx + k.fw, k.fl) + rescale(rh, k.fh + k.fr, k.fl) + k.bias[d]
    p_i, p_o, p_f, p_c = (p[:, g * hh : (g + 1) * hh] for g in range(4))
    if k.peep is not None:
        pe = k.peep[d]
        p_i = p_i + times(pe[:hh], k.fp, c, k.fc, k.fl)
        p_f = p_f + times(pe[2 * hh :], k.fp, c, k.fc, k.fl)
    i, fi = gate(acts[0], clamp_clip(sat16(p_i), k), k)
    if k.input_forget:
        f = (1 << fi) - i  # 1 - i, exact (17 bits)
    else:
        f, _ = gate(acts[0], clamp_clip(sat16(p_f), k), k)
    g, fg = gate(acts[1], clamp_clip(sat16(p_c), k), k)
    c_new = sat16(times(f, fi, c, k.fc, k.fc) + times(i, fi, g, fg, k.fc))
    if k.peep is not None:
        p_o = p_o + times(k.peep[d][hh : 2 * hh], k.fp, c_new, k.fc, k.fl)
    o, fo = gate(acts[0], clamp_clip(sat16(p_o), k), k)
    t, ft = gate(acts[2], sat16(rescale(c_new, k.fc, k.fl)), k)
    return sat16(times(o, fo, t, ft, k.fh)), c_new


def gru(k: _Layer, d: int, wx, h, acts, lbr: bool):
    """One GRU step (gates z, r, h): h'."""
    hh = h.shape[-1]
    R = k.R[d]
    x_part = rescale(wx, k.fx + k.fw, k.fl) + k.bias[d]
    h_zr = rescale(exact_products(h, R[: 2 * hh]), k.fh + k.fr, k.fl)
    p_z = clamp_clip(sat16(x_part[:, :hh] + h_zr[:, :hh]), k)
    p_r = clamp_clip(sat16(x_part[:, hh : 2 * hh] + h_zr[:, hh:]), k)
    z, fz = gate(acts[0], p_z, k)
    r, fr = gate(acts[0], p_r, k)
    if lbr:
        inner = rescale(exact_products(h, R[2 * hh :]), k.fh + k.fr, k.fl) + k.rb_h[d]
        term = times(r, fr, inner, k.fl, k.fl)
    else:
        rh = sat16(times(r, fr, h, k.fh, k.fh))  # the vector R_h multiplies
        term = rescale(exact_products(rh, R[2 * hh :]), k.fh + k.fr, k.fl)
    n, fn = gate(acts[1], clamp_clip(sat16(x_part[:, 2 * hh :] + term), k), k)
    n_h = rescale(n, fn, k.fh)
    return sat16(n_h + times(z, fz, h - n_h, k.fh, k.fh))  # (1 - z) n + z h


def simple(k: _Layer, d: int, wx, rh, acts):
    """One simple RNN step: h' = f(p), produced at frac fh."""
    p = rescale(wx, k.fx + k.fw, k.fl) + rescale(rh, k.fh + k.fr, k.fl) + k.bias[d]
    return act(acts[0], clamp_clip(sat16(p), k), k, k.fh)


# -- the recurrence --------------------------------------------------------------------------


def rnn(op: ese.RNNOp, args: list) -> tuple:
    """The layer over the whole sequence, on codes, as the accelerator computes it."""
    k = _layer(op)
    kind = op.kind.data
    hidden, dirs = op.hidden_size.value.data, op.num_directions
    batch_first = bool(op.layout.value.data)
    x = np.swapaxes(args[0], 0, 1) if batch_first else args[0]  # [seq, batch, in]
    steps, batch = x.shape[0], x.shape[1]
    x_codes = to_codes(x, op.x_format.format)
    lens = np.full(batch, steps, dtype=np.int64)
    if op.operand(4) is not None:
        lens = np.asarray(args[4], dtype=np.int64).reshape(batch)
    h0 = _state(args, 5, op, dirs, batch, hidden, FixedFormat(16, k.fh))
    c0 = _state(args, 6, op, dirs, batch, hidden, FixedFormat(16, k.fc))
    acts = op.activation_names
    per_dir = len(acts) // dirs
    lbr = bool(op.linear_before_reset.value.data)
    y = np.zeros((steps, dirs, batch, hidden), dtype=np.int64)
    y_h = np.zeros((dirs, batch, hidden), dtype=np.int64)
    y_c = np.zeros((dirs, batch, hidden), dtype=np.int64)
    rows = np.arange(batch)
    for d in range(dirs):
        reverse = op.direction.data == "reverse" or d == 1
        dir_acts = acts[d * per_dir : (d + 1) * per_dir]
        h, c = h0[d].copy(), c0[d].copy()
        for s in range(steps):
            running = s < lens
            t = np.clip(lens - 1 - s if reverse else np.full(batch, s), 0, steps - 1)
            wx = exact_products(x_codes[t, rows], k.W[d])
            if kind == "LSTM":
                h_new, c_new = lstm(k, d, wx, exact_products(h, k.R[d]), c, dir_acts)
            elif kind == "GRU":
                h_new, c_new = gru(k, d, wx, h, dir_acts, lbr), c
            else:
                h_new, c_new = simple(k, d, wx, exact_products(h, k.R[d]), dir_acts), c
            h = np.where(running[:, None], h_new, h)
            c = np.where(running[:, None], c_new, c)
            y[t[running], d, rows[running]] = h[running]
        # A sequence of length 0 leaves zero states, as onnxruntime does.
        y_h[d] = np.where((lens > 0)[:, None], h, 0)
        y_c[d] = np.where((lens > 0)[:, None], c, 0)
    y_f = from_codes(y, op.h_format.format)
    if batch_first:
        y_f = np.transpose(y_f, (2, 0, 1, 3))  # [batch, seq, dirs, hidden]
    results = [y_f, _layout(from_codes(y_h, op.h_format.format), op)]
    if kind == "LSTM":
        results.append(_layout(from_codes(y_c, FixedFormat(16, k.fc)), op))
    return tuple(results[: len(op.outputs)])


def _state(args, index, op, dirs, batch, hidden, fmt) -> np.ndarray:
    if op.operand(index) is None:
        return np.zeros((dirs, batch, hidden), dtype=np.int64)
    value = args[index]
    if op.layout.value.data:
        value = np.swapaxes(value, 0, 1)
    return to_codes(value, fmt)


def _layout(state: np.ndarray, op) -> np.ndarray:
    return np.swapaxes(state, 0, 1) if op.layout.value.data else state


def _dense(v) -> np.ndarray:
    owner = v.owner
    return owner.dense() if hasattr(owner, "dense") else np.asarray(owner.to_array())


@register_impls
class EseFunctions(InterpreterFunctions):
    """The reference interpreter's semantics of the `ese` dialect: `rnn` above."""

    @impl(ese.RNNOp)
    def run_rnn(self, interpreter: Interpreter, op: ese.RNNOp, args: PythonValues):
        return rnn(op, list(args))
