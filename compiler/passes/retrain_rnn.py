"""Backpropagation through time for `retrain`: the ONNX LSTM, GRU and RNN ops.

The forward pass restates the reference kernels (compiler/interpreters/onnx_rnn.py, whose
docstring defines the semantics: gate orders, directions, sequence lengths, layout,
activations, clip, peepholes) and keeps what the backward pass needs: for every time step
of every direction the state it started from and its gates, before and after their
activation. The backward pass walks the steps of each direction in reverse, vectorized
over the batch, and returns the gradients of X, W, R, B, the initial states and the
peepholes P.

Per direction ``d`` (step order: the time order of that direction, see `_time_order`)::

    XW = X_s @ W[d]^T + Wb[d]                 X_s: X read in step order, [T, N, I]
    for t:  new, cache_t = cell(XW[t], state)
            state = new where t < len, else kept;  out[t] = new[0] where t < len, else 0
    Y[:, d] = out in time order;  Y_h[d] (, Y_c[d]) = state, 0 where len == 0

    backward:  dXW[t], d state  <- cell' (cache_t, d new) for t = T-1 .. 0
               dW[d] = sum_t dXW[t]^T @ X_s[t],  dWb[d] = sum_t,n dXW[t],  dX_s = dXW @ W[d]

The cell's own weights (R, Rb, P) collect their gradients step by step in `_Cell.back`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from xdsl.ir import Operation

from dlhwc.spec.errors import DlhwcError

# -- activations -------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -x))


# name -> (f(x, alpha, beta), f'(x, y, alpha, beta) with y = f(x), default alpha, default
# beta). A default of None: the function takes no such parameter and consumes no entry of
# activation_alpha / activation_beta. Where f has a kink, f' takes the side that the
# forward formula's comparison selects (Relu's gradient at 0 is 0, LeakyRelu's is 1).
_ACTIVATIONS: dict[str, tuple[Callable, Callable, float | None, float | None]] = {
    "relu": (
        lambda x, a, b: np.maximum(x, 0),
        lambda x, y, a, b: (x > 0).astype(x.dtype),
        None, None,
    ),
    "tanh": (lambda x, a, b: np.tanh(x), lambda x, y, a, b: 1 - y * y, None, None),
    "sigmoid": (lambda x, a, b: _sigmoid(x), lambda x, y, a, b: y * (1 - y), None, None),
    "affine": (lambda x, a, b: a * x + b, lambda x, y, a, b: np.full_like(x, a), 1.0, 0.0),
    "leakyrelu": (
        lambda x, a, b: np.where(x >= 0, x, a * x),
        lambda x, y, a, b: np.where(x >= 0, 1, a).astype(x.dtype),
        0.01, None,
    ),
    "thresholdedrelu": (
        lambda x, a, b: np.where(x > a, x, 0),
        lambda x, y, a, b: (x > a).astype(x.dtype),
        1.0, None,
    ),
    "scaledtanh": (
        lambda x, a, b: a * np.tanh(b * x),
        lambda x, y, a, b: a * b * (1 - np.tanh(b * x) ** 2),
        1.0, 1.0,
    ),
    "hardsigmoid": (
        lambda x, a, b: np.clip(a * x + b, 0, 1),
        lambda x, y, a, b: np.where((a * x + b > 0) & (a * x + b < 1), a, 0).astype(x.dtype),
        0.2, 0.5,
    ),
    "elu": (
        lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))),
        lambda x, y, a, b: np.where(x >= 0, 1, y + a).astype(x.dtype),
        1.0, None,
    ),
    "softsign": (
        lambda x, a, b: x / (1 + np.abs(x)),
        lambda x, y, a, b: 1 / (1 + np.abs(x)) ** 2,
        None, None,
    ),
    "softplus": (lambda x, a, b: np.logaddexp(0, x), lambda x, y, a, b: _sigmoid(x), None, None),
}  # fmt: skip


@dataclass(frozen=True)
class Activation:
    """One activation function of a recurrent op with its alpha and beta."""

    name: str
    alpha: float | None
    beta: float | None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return _ACTIVATIONS[self.name][0](x, self.alpha, self.beta)

    def grad(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """f'(x), given y = f(x)."""
        return _ACTIVATIONS[self.name][1](x, y, self.alpha, self.beta)


_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"),
                        "RNN": ("Tanh",)}  # fmt: skip
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _activations(what: str, kind: str, attrs: dict, directions: int) -> tuple:
    """The activations of each direction, read from the op's attributes as the reference
    kernel reads them (a two-direction list given to a one-direction op: its first half;
    alpha and beta consumed in list order by the functions that take them)."""
    defaults = _DEFAULT_ACTIVATIONS[kind]
    per = len(defaults)
    names = list(attrs.get("activations") or defaults * directions)
    if directions == 1 and len(names) == 2 * per:
        names = names[:per]
    if len(names) != per * directions:
        raise DlhwcError(
            f"retrain: {what} lists {len(names)} activations; {kind} takes {per} per "
            f"direction for {directions} direction(s)"
        )
    alphas = iter(attrs.get("activation_alpha") or [])
    betas = iter(attrs.get("activation_beta") or [])
    acts = []
    for name in names:
        entry = _ACTIVATIONS.get(str(name).lower())
        if entry is None:
            raise DlhwcError(f"retrain: {what} has an unknown activation '{name}'")
        _, _, alpha, beta = entry
        alpha = float(next(alphas, alpha)) if alpha is not None else None
        beta = float(next(betas, beta)) if beta is not None else None
        acts.append(Activation(str(name).lower(), alpha, beta))
    return tuple(tuple(acts[d * per : (d + 1) * per]) for d in range(directions))


# -- the op's spec -----------------------------------------------------------------------


@dataclass(frozen=True)
class RecurrentSpec:
    """What the forward and backward passes read from a recurrent op's attributes."""

    kind: str  # "LSTM", "GRU" or "RNN"
    directions: int
    reverse: tuple[bool, ...]  # per direction
    layout: int
    acts: tuple  # per direction, the cell's activations (f, g, h / f, g / f)
    clip: float | None
    input_forget: bool
    linear_before_reset: bool
    results: int  # how many results the op has


def _describe(op: Operation) -> str:
    name = getattr(op, "node_name", None)
    return f"{op.name} '{name}'" if name else op.name


def prepare_recurrent(op: Operation, kind: str, trained: Callable[[int], bool]) -> RecurrentSpec:
    """Read and check ``op``'s attributes. ``trained(i)``: whether operand i is a weight
    that retrain trains (a constant initial state must then be one shared state)."""
    what = _describe(op)
    attrs = op.onnx_attributes()
    direction = attrs.get("direction", "forward")
    directions = 2 if direction == "bidirectional" else 1
    layout = attrs.get("layout", 0)  # direction and layout are checked by the op's verifier
    for i, state in ((5, "initial_h"), (6, "initial_c")):
        if i < len(op.operands) and trained(i):
            shape = op.operands[i].type.get_shape()
            if len(shape) != 3 or shape[1 - layout] != 1:
                raise DlhwcError(
                    f"retrain: {what}: the constant {state} {list(shape)} must hold one state "
                    f"for every sequence (batch dimension 1) to be trained"
                )
    clip = attrs.get("clip")
    return RecurrentSpec(
        kind=kind,
        directions=directions,
        reverse=(direction == "reverse",) if directions == 1 else (False, True),
        layout=layout,
        acts=_activations(what, kind, attrs, directions),
        clip=None if clip is None else float(clip),
        input_forget=bool(attrs.get("input_forget", 0)),
        linear_before_reset=bool(attrs.get("linear_before_reset", 0)),
        results=len(op.results),
    )


# -- cells -------------------------------------------------------------------------------


def _clipped(spec: RecurrentSpec, u: np.ndarray) -> np.ndarray:
    return u if spec.clip is None else np.clip(u, -spec.clip, spec.clip)


def _through(spec: RecurrentSpec, act: Activation, u: np.ndarray, y: np.ndarray, dy):
    """The gradient of y = act(clip(u)) with respect to u, given that of y."""
    z = _clipped(spec, u)
    d = dy * act.grad(z, y)
    return d if spec.clip is None else d * (np.abs(u) <= spec.clip)


class _Cell:
    """One direction's cell: its recurrence weights, one forward step keeping its cache,
    one backward step collecting the gradients of R, Rb and P."""

    def __init__(self, spec: RecurrentSpec, d: int, R: np.ndarray, Rb: np.ndarray, P):
        self.spec = spec
        self.R = R[d]
        self.Rb = Rb
        self.acts = spec.acts[d]
        self.dR = np.zeros_like(self.R)
        self.dRb = np.zeros_like(Rb)

    def gradients(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return self.dR, self.dRb, None


class _RNNCell(_Cell):
    """H' = f(clip(xw + H @ R^T + Rb))"""

    def step(self, xw, H):
        u = xw + H @ self.R.T + self.Rb
        h = self.acts[0](_clipped(self.spec, u))
        return (h,), (H, u, h)

    def back(self, cache, dH):
        H, u, h = cache
        du = _through(self.spec, self.acts[0], u, h, dH)
        self.dR += du.T @ H
        self.dRb += du.sum(axis=0)
        return du, (du @ self.R,)


class _GRUCell(_Cell):
    """z, r = f(clip(xw_zr + H @ R_zr^T + Rb_zr));  h = g(clip(xw_h + (r H) @ R_h^T + Rb_h)),
    or with linear_before_reset g(clip(xw_h + r (H @ R_h^T + Rb_h)));  H' = (1-z) h + z H."""

    def __init__(self, spec: RecurrentSpec, d: int, R: np.ndarray, Rb: np.ndarray, P):
        super().__init__(spec, d, R, Rb, P)
        self.hid = self.R.shape[1]

    def step(self, xw, H):
        hid, (f, g) = self.hid, self.acts
        x_z, x_r, x_h = np.split(xw, 3, axis=-1)
        h_z, h_r = np.split(H @ self.R[: 2 * hid].T + self.Rb[: 2 * hid], 2, axis=-1)
        u_z, u_r = x_z + h_z, x_r + h_r
        z, r = f(_clipped(self.spec, u_z)), f(_clipped(self.spec, u_r))
        if self.spec.linear_before_reset:
            q = H @ self.R[2 * hid :].T + self.Rb[2 * hid :]  # kept for the backward pass
            u_h = x_h + r * q
        else:
            q = r * H
            u_h = x_h + q @ self.R[2 * hid :].T + self.Rb[2 * hid :]
        h = g(_clipped(self.spec, u_h))
        return ((1 - z) * h + z * H,), (H, u_z, z, u_r, r, q, u_h, h)

    def back(self, cache, dH_new):
        hid, (f, g) = self.hid, self.acts
        H, u_z, z, u_r, r, q, u_h, h = cache
        R_h = self.R[2 * hid :]
        du_h = _through(self.spec, g, u_h, h, dH_new * (1 - z))
        dH = dH_new * z
        if self.spec.linear_before_reset:
            dr = du_h * q
            dq = du_h * r
            self.dR[2 * hid :] += dq.T @ H
            self.dRb[2 * hid :] += dq.sum(axis=0)
            dH = dH + dq @ R_h
        else:
            dq = du_h @ R_h  # q = r H
            self.dR[2 * hid :] += du_h.T @ q
            self.dRb[2 * hid :] += du_h.sum(axis=0)
            dr = dq * H
            dH = dH + dq * r
        du_z = _through(self.spec, f, u_z, z, dH_new * (H - h))
        du_r = _through(self.spec, f, u_r, r, dr)
        du_zr = np.concatenate([du_z, du_r], axis=-1)
        self.dR[: 2 * hid] += du_zr.T @ H
        self.dRb[: 2 * hid] += du_zr.sum(axis=0)
        dH = dH + du_zr @ self.R[: 2 * hid]
        return np.concatenate([du_zr, du_h], axis=-1), (dH,)


class _LSTMCell(_Cell):
    """i = f(clip(a_i + P_i C)), f_t = f(clip(a_f + P_f C)) (or 1 - i with input_forget),
    c = g(clip(a_c)), C' = f_t C + i c, o = f(clip(a_o + P_o C')), H' = o h(C'), where
    a = xw + H @ R^T + Rb in gate order i, o, f, c."""

    def __init__(self, spec: RecurrentSpec, d: int, R: np.ndarray, Rb: np.ndarray, P):
        super().__init__(spec, d, R, Rb, P)
        hid = self.R.shape[1]
        self.P = np.zeros(3 * hid, Rb.dtype) if P is None else P[d]
        self.p_i, self.p_o, self.p_f = np.split(self.P, 3)
        self.dP = np.zeros_like(self.P)

    def gradients(self):
        return self.dR, self.dRb, self.dP

    def step(self, xw, H, C):
        spec, (f, g, h) = self.spec, self.acts
        a_i, a_o, a_f, a_c = np.split(xw + H @ self.R.T + self.Rb, 4, axis=-1)
        u_i = a_i + self.p_i * C
        i = f(_clipped(spec, u_i))
        if spec.input_forget:
            u_f, forget = None, 1 - i
        else:
            u_f = a_f + self.p_f * C
            forget = f(_clipped(spec, u_f))
        c = g(_clipped(spec, a_c))
        C_new = forget * C + i * c
        u_o = a_o + self.p_o * C_new
        o = f(_clipped(spec, u_o))
        h_c = h(C_new)
        return (o * h_c, C_new), (H, C, u_i, i, u_f, forget, a_c, c, C_new, u_o, o, h_c)

    def back(self, cache, dH_new, dC_new):
        spec, (f, g, h) = self.spec, self.acts
        H, C, u_i, i, u_f, forget, a_c, c, C_new, u_o, o, h_c = cache
        du_o = _through(spec, f, u_o, o, dH_new * h_c)
        dC_new = dC_new + dH_new * o * h.grad(C_new, h_c) + du_o * self.p_o  # h: no clip
        d_i = dC_new * c
        d_forget = dC_new * C
        dC = dC_new * forget
        da_c = _through(spec, g, a_c, c, dC_new * i)
        if spec.input_forget:
            d_i = d_i - d_forget
            du_f = np.zeros_like(d_i)
        else:
            du_f = _through(spec, f, u_f, forget, d_forget)
            dC = dC + du_f * self.p_f
        du_i = _through(spec, f, u_i, i, d_i)
        dC = dC + du_i * self.p_i
        da = np.concatenate([du_i, du_o, du_f, da_c], axis=-1)
        self.dR += da.T @ H
        self.dRb += da.sum(axis=0)
        self.dP += np.concatenate([(du_i * C).sum(0), (du_o * C_new).sum(0), (du_f * C).sum(0)])
        return da, (da @ self.R, dC)


_CELLS = {"LSTM": _LSTMCell, "GRU": _GRUCell, "RNN": _RNNCell}


# -- the recurrence ----------------------------------------------------------------------


def _time_order(lengths: np.ndarray, steps: int, reverse: bool) -> np.ndarray:
    """[T, N]: the input step read at each step of one direction (reverse: backwards
    within each sequence's own length, the padding left in place). It is its own
    inverse, so it also puts the outputs back in input order."""
    t = np.arange(steps)[:, None]
    if not reverse:
        return np.broadcast_to(t, (steps, lengths.size))
    return np.where(t < lengths, lengths - 1 - t, t)


@dataclass
class _Direction:
    """What one direction's forward pass keeps for its backward pass."""

    order: np.ndarray  # [T, N] step -> time
    xs: np.ndarray  # X in step order [T, N, I]
    cell: _Cell
    caches: list


@dataclass
class _Saved:
    lengths: np.ndarray
    dtype: np.dtype
    directions: list[_Direction]


def _operands(x: list) -> list:
    """X, W, R, B, sequence_lens, initial_h, initial_c, P (None where omitted)."""
    return list(x) + [None] * (8 - len(x))


def recurrent_forward(spec: RecurrentSpec, x: list) -> tuple[tuple, _Saved]:
    """The op's results (Y, Y_h[, Y_c], as many as it has) and what backward needs."""
    X, W, R, B, lens, h0, c0, P = _operands(x)
    # Computed in X's float type, at least float32 (W, R, B, P cast to it), the results
    # cast back to X's type, as the reference kernels do.
    x_dtype = X.dtype
    dtype = np.promote_types(x_dtype, np.float32)
    initial = [h0, c0] if spec.kind == "LSTM" else [h0]
    if spec.layout == 1:
        X = X.swapaxes(0, 1)
        initial = [None if s is None else s.swapaxes(0, 1) for s in initial]
    X = X.astype(dtype, copy=False)
    steps, batch, _ = X.shape
    hid = R.shape[-1]
    gates = _GATES[spec.kind]
    B = (
        np.zeros((spec.directions, 2 * gates * hid), dtype)
        if B is None
        else B.astype(dtype, copy=False)
    )
    lengths = np.full(batch, steps) if lens is None else np.asarray(lens).astype(np.int64)
    if lengths.shape != (batch,) or np.any((lengths < 0) | (lengths > steps)):
        raise ValueError(f"sequence_lens must be {batch} values in [0, {steps}]")
    zeros = np.zeros((spec.directions, batch, hid), dtype)
    initial = [zeros if s is None else s.astype(dtype, copy=False) for s in initial]
    Y = np.zeros((steps, spec.directions, batch, hid), dtype)
    finals = [np.zeros((spec.directions, batch, hid), dtype) for _ in initial]
    everyone = np.arange(batch)
    saved = _Saved(lengths, dtype, [])
    for d in range(spec.directions):
        order = _time_order(lengths, steps, spec.reverse[d])
        xs = X[order, everyone]
        XW = xs @ W[d].astype(dtype, copy=False).T + B[d, : gates * hid]
        cell = _CELLS[spec.kind](spec, d, R.astype(dtype, copy=False), B[d, gates * hid :],
                                 None if P is None else P.astype(dtype, copy=False))  # fmt: skip
        states = tuple(np.broadcast_to(s[d], (batch, hid)) for s in initial)
        outputs = np.zeros((steps, batch, hid), dtype)
        caches = []
        for t in range(steps):
            valid = (t < lengths)[:, None]
            new, cache = cell.step(XW[t], *states)
            caches.append(cache)
            states = tuple(np.where(valid, n, s) for n, s in zip(new, states, strict=True))
            outputs[t] = np.where(valid, new[0], 0)
        Y[:, d] = outputs[order, everyone]
        for final, state in zip(finals, states, strict=True):
            final[d] = np.where((lengths > 0)[:, None], state, 0)
        saved.directions.append(_Direction(order, xs, cell, caches))
    if spec.layout == 1:
        Y = Y.transpose(2, 0, 1, 3)
        finals = [f.swapaxes(0, 1) for f in finals]
    results = tuple(a.astype(x_dtype, copy=False) for a in (Y, *finals))
    return results[: spec.results], saved


def recurrent_backward(
    spec: RecurrentSpec, x: list, g: list, wanted: list[bool], saved: _Saved
) -> list[np.ndarray | None]:
    """The gradients of the op's operands, from those of its results (None: no gradient)."""
    X, W, R, B, lens, h0, c0, P = _operands(x)
    dtype, lengths = saved.dtype, saved.lengths
    g = list(g) + [None] * (3 - len(g))
    gY, g_finals = g[0], g[1:3] if spec.kind == "LSTM" else g[1:2]
    if spec.layout == 1:
        gY = None if gY is None else gY.transpose(1, 2, 0, 3)
        g_finals = [None if s is None else s.swapaxes(0, 1) for s in g_finals]
    steps, batch = saved.directions[0].xs.shape[:2]
    hid = R.shape[-1]
    gates = _GATES[spec.kind]
    everyone = np.arange(batch)
    dX = np.zeros((steps, batch, X.shape[-1]), dtype)
    dW, dR = np.zeros(W.shape, dtype), np.zeros(R.shape, dtype)
    dB = np.zeros((spec.directions, 2 * gates * hid), dtype)
    dP = np.zeros((spec.directions, 3 * hid), dtype)
    d_initial = [np.zeros((spec.directions, batch, hid), dtype) for _ in g_finals]
    started = (lengths > 0)[:, None]
    for d, run in enumerate(saved.directions):
        d_out = (
            np.zeros((steps, batch, hid), dtype) if gY is None else gY[:, d][run.order, everyone]
        )
        d_states = [
            np.zeros((batch, hid), dtype) if s is None else np.where(started, s[d], 0)
            for s in g_finals
        ]
        dXW = np.zeros((steps, batch, gates * hid), dtype)
        for t in reversed(range(steps)):
            valid = (t < lengths)[:, None]
            d_new = [np.where(valid, s, 0) for s in d_states]
            d_new[0] = d_new[0] + np.where(valid, d_out[t], 0)
            dXW[t], d_prev = run.cell.back(run.caches[t], *d_new)
            d_states = [np.where(valid, p, s) for p, s in zip(d_prev, d_states, strict=True)]
        for total, s in zip(d_initial, d_states, strict=True):
            total[d] = s
        flat = dXW.reshape(-1, gates * hid)
        dW[d] = flat.T @ run.xs.reshape(-1, run.xs.shape[-1])
        dX += (dXW @ W[d].astype(dtype, copy=False))[run.order, everyone]
        cell_dR, cell_dRb, cell_dP = run.cell.gradients()
        dR[d] = cell_dR
        dB[d] = np.concatenate([flat.sum(axis=0), cell_dRb])
        if cell_dP is not None:
            dP[d] = cell_dP
    if spec.layout == 1:
        dX = dX.swapaxes(0, 1)
        d_initial = [s.swapaxes(0, 1) for s in d_initial]
    out: list[np.ndarray | None] = [dX, dW, dR, dB, None, *d_initial]
    if spec.kind == "LSTM":
        out.append(dP)
    out = out[: len(x)]
    for i, value in enumerate(x):
        if value is None or not wanted[i] or out[i] is None:
            out[i] = None
        elif out[i].shape != value.shape:  # a shared initial state [D, 1, H]
            axes = tuple(k for k, n in enumerate(value.shape) if n == 1 and out[i].shape[k] != 1)
            out[i] = out[i].sum(axis=axes, keepdims=True)
    return [o if o is None else o.astype(v.dtype, copy=False) for o, v in zip(out, x, strict=True)]
