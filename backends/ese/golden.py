"""Semantics of the `ese` dialect: the fixed-point golden model of the ESE accelerator.

`ese.rnn` runs ONNX's recurrence (directions, sequence_lens, initial states, layout)
with every step computed by runtime/ese/arith.py on integer codes. Products of weights
and vectors are exact integer sums (runtime/eie/arith.exact_matvec).
"""

from __future__ import annotations

import numpy as np

from dlhwc.compiler.interpreters.registry import impl
from dlhwc.dialects import ese
from dlhwc.runtime.eie.arith import exact_matvec
from dlhwc.runtime.ese import arith
from dlhwc.spec.fixedpoint import FixedFormat, from_codes, saturate, to_codes


def layer_constants(op: ese.RNNOp) -> dict:
    """Codes of the layer's weights, biases and peepholes, and its formats and tables.

    Shared with the compiler's back end, which writes the same codes to the container.
    """
    gates, hidden = op.gates, op.hidden_size.value.data
    w_op, r_op = op.operand(1).owner, op.operand(2).owner
    fw, fr = w_op.fixed_format, r_op.fixed_format
    fl = op.lut_in_frac.value.data
    fc = op.cell_frac.value.data
    dirs = op.num_directions
    bias = np.zeros((dirs, 2 * gates * hidden), dtype=np.float64)
    if op.operand(3) is not None:
        bias = _value(op.operand(3)).astype(np.float64).reshape(dirs, 2 * gates * hidden)
    wb, rb = bias[:, : gates * hidden], bias[:, gates * hidden :]
    gru_h = slice(2 * hidden, 3 * hidden)
    if op.kind.data == "GRU" and op.linear_before_reset.value.data:
        # Rb_h stays inside the reset gate's product; the rest of the biases add up.
        combined = wb.copy()
        combined[:, : gru_h.start] += rb[:, : gru_h.start]
        rb_h = to_codes(rb[:, gru_h], FixedFormat(32, fl))
    else:
        combined, rb_h = wb + rb, None
    peep = None
    fp = 15
    if op.kind.data == "LSTM" and op.operand(7) is not None:
        p = _value(op.operand(7)).reshape(dirs, 3 * hidden)
        fp = _frac_for(p)
        peep = to_codes(p, FixedFormat(16, fp))
    clip = op.clip.value.data if op.clip is not None else None
    formats = arith.CellFormats(
        fx=op.x_format.format.frac, fh=op.h_format.format.frac, fw=fw.frac, fr=fr.frac,
        fl=fl, fc=fc, fp=fp,
    )  # fmt: skip
    segments = op.lut_segments.value.data
    luts = {name: arith.build_lut(name, fl, segments) for name in arith.LUT_FUNCTIONS}
    return {
        "W": to_codes(w_op.dense(), fw).reshape(dirs, gates * hidden, -1),
        "R": to_codes(r_op.dense(), fr).reshape(dirs, gates * hidden, hidden),
        "bias": to_codes(combined, FixedFormat(32, fl)),
        "rb_h": rb_h,
        "peep": peep,
        "clip": None if clip is None else int(to_codes(np.array(clip), FixedFormat(16, fl))),
        "formats": formats,
        "luts": luts,
    }


@impl(ese.RNNOp)
def rnn(op: ese.RNNOp, args: list) -> tuple:
    """The layer over the whole sequence, on codes, as the accelerator computes it."""
    k = layer_constants(op)
    f: arith.CellFormats = k["formats"]
    hidden, dirs = op.hidden_size.value.data, op.num_directions
    x = args[0]
    if op.layout.value.data:
        x = np.swapaxes(x, 0, 1)  # [batch, seq, in] -> [seq, batch, in]
    steps, batch = x.shape[0], x.shape[1]
    x_codes = to_codes(x, op.x_format.format)
    lens = np.full(batch, steps, dtype=np.int64)
    if op.operand(4) is not None:
        lens = np.asarray(args[4], dtype=np.int64).reshape(batch)
    h0 = _state(args, 5, op, dirs, batch, hidden, FixedFormat(16, f.fh))
    c0 = _state(args, 6, op, dirs, batch, hidden, FixedFormat(16, f.fc))
    acts = op.activation_names
    per_dir = len(acts) // dirs
    y = np.zeros((steps, dirs, batch, hidden), dtype=np.int64)
    y_h = np.zeros((dirs, batch, hidden), dtype=np.int64)
    y_c = np.zeros((dirs, batch, hidden), dtype=np.int64)
    rows = np.arange(batch)
    for d in range(dirs):
        reverse = op.direction.data == "reverse" or d == 1
        h, c = h0[d].copy(), c0[d].copy()
        dir_acts = acts[d * per_dir : (d + 1) * per_dir]
        for step in range(steps):
            active = step < lens
            t = np.where(reverse, lens - 1 - step, step).clip(0, steps - 1)
            wx = exact_matvec(k["W"][d], x_codes[t, rows])
            h_new, c_new = _cell(op, k, d, wx, h, c, dir_acts)
            h = np.where(active[:, None], h_new, h)
            c = np.where(active[:, None], c_new, c)
            y[t[active], d, rows[active]] = h[active]
        # A sequence of length 0 leaves zero states, as onnxruntime does.
        y_h[d] = np.where((lens > 0)[:, None], h, 0)
        y_c[d] = np.where((lens > 0)[:, None], c, 0)
    y_f = from_codes(y, op.h_format.format)
    if op.layout.value.data:
        y_f = np.transpose(y_f, (2, 0, 1, 3))  # [batch, seq, dirs, hidden]
    results = [y_f, _layout(from_codes(y_h, op.h_format.format), op)]
    if op.kind.data == "LSTM":
        results.append(_layout(from_codes(y_c, FixedFormat(16, f.fc)), op))
    return tuple(results[: len(op.outputs)])


def _cell(op, k, d, wx, h, c, acts):
    f, luts = k["formats"], k["luts"]
    kind = op.kind.data
    R = k["R"][d]
    bias = k["bias"][d]
    if kind == "LSTM":
        rh = exact_matvec(R, h)
        peep = None if k["peep"] is None else k["peep"][d]
        return arith.lstm_step(
            wx, rh, bias, c, peep, acts, luts, f, k["clip"], op.input_forget.value.data
        )
    if kind == "GRU":
        hidden = h.shape[-1]
        rh_zr = exact_matvec(R[: 2 * hidden], h)
        r_h = R[2 * hidden :]
        if op.linear_before_reset.value.data:
            inner = arith.align(exact_matvec(r_h, h), f.fh + f.fr, f.fl) + k["rb_h"][d]

            def r_times_rh(r, r_frac):
                return arith.mul(r, r_frac, inner, f.fl, f.fl)
        else:

            def r_times_rh(r, r_frac):
                # r*h is the 16-bit vector the matrix unit multiplies by R_h, in h's
                # format: exact for a Sigmoid/Tanh r (|r| < 1); a Relu r > 1 saturates.
                rh_prod = saturate(arith.mul(r, r_frac, h, f.fh, f.fh), 16)
                return arith.align(exact_matvec(r_h, rh_prod), f.fh + f.fr, f.fl)

        h_new = arith.gru_step(wx, rh_zr, r_times_rh, bias, h, acts, luts, f, k["clip"], 0)
        return h_new, c
    rh = exact_matvec(R, h)
    return arith.rnn_step(wx, rh, bias, acts, luts, f, k["clip"]), c


def _state(args, index, op, dirs, batch, hidden, fmt) -> np.ndarray:
    if op.operand(index) is None:
        return np.zeros((dirs, batch, hidden), dtype=np.int64)
    value = args[index]
    if op.layout.value.data:
        value = np.swapaxes(value, 0, 1)
    return to_codes(value, fmt)


def _layout(state: np.ndarray, op) -> np.ndarray:
    return np.swapaxes(state, 0, 1) if op.layout.value.data else state


def _value(v) -> np.ndarray:
    owner = v.owner
    return owner.dense() if hasattr(owner, "dense") else np.asarray(owner.to_array())


def _frac_for(values: np.ndarray) -> int:
    from dlhwc.spec.fixedpoint import frac_bits_for

    return min(frac_bits_for(float(np.max(np.abs(values))) if values.size else 0.0, 16), 15)
