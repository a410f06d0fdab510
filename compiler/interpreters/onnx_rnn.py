"""Reference numpy kernels for the ONNX recurrent ops LSTM, GRU and RNN (opset 14+ form).

The three ops share everything except their cell equations; this module implements the
shared part once (``_run_recurrence``) and gives each op only its cell.

Tensors (``D`` = num_directions, 2 if ``direction == "bidirectional"`` else 1; ``G`` = number
of gates: 4 for LSTM, 3 for GRU, 1 for RNN; ``H`` = hidden_size)::

    X              [T, N, I]   (layout=1: [N, T, I])
    W              [D, G*H, I]     gate blocks stacked along dim 1 (LSTM iofc, GRU zrh)
    R              [D, G*H, H]
    B              [D, 2*G*H]      [Wb | Rb], default 0
    sequence_lens  [N]             int, default T for every batch entry
    initial_h/c    [D, N, H]   (layout=1: [N, D, H]), default 0
    P (LSTM)       [D, 3*H]        peepholes, order i, o, f; default 0
    Y              [T, D, N, H] (layout=1: [N, T, D, H])
    Y_h, Y_c       [D, N, H]   (layout=1: [N, D, H])

Per direction ``d`` the recurrence is::

    XW = X @ W[d]^T + Wb[d]                       # all time steps at once, [T, N, G*H]
    state = (initial_h[d], initial_c[d])          # (H,) for GRU and RNN
    for t in 0 .. T-1:                            # time order of this direction (below)
        new = cell(XW[t], state)                  # op-specific, new[0] is the hidden H_t
        for each batch entry b with t < sequence_lens[b]:
            state[b] = new[b];  Y[t, d, b] = new[0][b]
        for the others (padding):  state is kept;  Y[t, d, b] = 0
    Y_h[d] (, Y_c[d]) = state                     # i.e. the state at the last valid step

Direction: "forward" runs t = 0 .. len-1; "reverse" runs the sequence backwards *within its
own length*: step k reads X[len-1-k] and its output is stored at Y[len-1-k], so each valid
output stays aligned with its input and Y_h is the state after reading X[0].
"bidirectional" runs forward as d=0 and reverse as d=1, each with its own W/R/B/P/initial
state and its own activations.  A batch entry with sequence length 0 has all-zero outputs,
including Y_h/Y_c (as onnxruntime does), not its initial state.

Activations (``activations``, ``activation_alpha``, ``activation_beta``): the list holds
the op's per-direction functions (LSTM f, g, h; GRU f, g; RNN f), the forward direction's
first, then the reverse direction's.  Omitted, it defaults to LSTM Sigmoid, Tanh, Tanh;
GRU Sigmoid, Tanh; RNN Tanh, for every direction.  A list for two directions given to a
one-direction op uses its first half (the RNN schema's default, ["Tanh", "Tanh"], is such
a list).  Names are matched case-insensitively.  ``activation_alpha`` / ``activation_beta``
are consumed in list order by the functions that take that parameter (e.g. for
[HardSigmoid, Tanh, LeakyRelu] alpha=[a1, a2] gives HardSigmoid a1 and LeakyRelu a2); a
function left without a value uses the default of the ONNX operator of the same name:

    Relu(x)            max(0, x)
    Tanh(x)            tanh(x)
    Sigmoid(x)         1 / (1 + e^-x)
    Affine(x)          alpha*x + beta                  alpha=1.0  beta=0.0
    LeakyRelu(x)       x if x >= 0 else alpha*x        alpha=0.01
    ThresholdedRelu(x) x if x > alpha else 0           alpha=1.0
    ScaledTanh(x)      alpha*tanh(beta*x)              alpha=1.0  beta=1.0 (ONNX gives none)
    HardSigmoid(x)     min(max(alpha*x + beta, 0), 1)  alpha=0.2  beta=0.5
    Elu(x)             x if x >= 0 else alpha*(e^x-1)  alpha=1.0
    Softsign(x)        x / (1 + |x|)
    Softplus(x)        log(1 + e^x)

(onnxruntime instead uses 0 for a missing Affine, ThresholdedRelu and ScaledTanh parameter,
and for every missing RNN parameter.)  ThresholdedRelu follows the ThresholdedRelu op
(x > alpha); the RNN op text writes x >= alpha, which differs only at x == alpha.

``clip`` (if given) bounds the argument of every gate activation, after all its terms
(bias, peephole) are added, to [-clip, clip]; the LSTM cell state fed to h is not clipped
(as in onnxruntime).

Computation runs in the input's float dtype (float16 is computed in float32) and the
outputs are cast back to X's dtype.
"""

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from dlhwc.compiler.interpreters.registry import kernel

Cell = Callable[..., tuple[np.ndarray, ...]]


# --- activations -----------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-log(1 + e^-x)): neither overflows nor loses precision for large |x|.
    return np.exp(-np.logaddexp(0, -x))


# name -> (function of (x, alpha, beta), default alpha, default beta).  A default of None
# means the function takes no such parameter, so it consumes no activation_alpha/beta entry.
_ACTIVATIONS: dict[str, tuple[Callable[..., np.ndarray], float | None, float | None]] = {
    "relu": (lambda x, alpha, beta: np.maximum(x, 0), None, None),
    "tanh": (lambda x, alpha, beta: np.tanh(x), None, None),
    "sigmoid": (lambda x, alpha, beta: _sigmoid(x), None, None),
    "affine": (lambda x, alpha, beta: alpha * x + beta, 1.0, 0.0),
    "leakyrelu": (lambda x, alpha, beta: np.where(x >= 0, x, alpha * x), 0.01, None),
    "thresholdedrelu": (lambda x, alpha, beta: np.where(x > alpha, x, 0), 1.0, None),
    "scaledtanh": (lambda x, alpha, beta: alpha * np.tanh(beta * x), 1.0, 1.0),
    "hardsigmoid": (lambda x, alpha, beta: np.clip(alpha * x + beta, 0, 1), 0.2, 0.5),
    "elu": (
        lambda x, alpha, beta: np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0))),
        1.0,
        None,
    ),
    "softsign": (lambda x, alpha, beta: x / (1 + np.abs(x)), None, None),
    "softplus": (lambda x, alpha, beta: np.logaddexp(0, x), None, None),
}

Activation = Callable[[np.ndarray], np.ndarray]


def _resolve_activations(
    names: Sequence[str] | None,
    alphas: Sequence[float] | None,
    betas: Sequence[float] | None,
    defaults: Sequence[str],
    num_directions: int,
) -> list[list[Activation]]:
    """Return the activation functions of each direction, ``[direction][slot]``."""
    per_direction = len(defaults)
    if names is None:
        names = list(defaults) * num_directions
    names = list(names)
    if num_directions == 1 and len(names) == 2 * per_direction:
        names = names[:per_direction]
    if len(names) != per_direction * num_directions:
        raise ValueError(
            f"activations must list {per_direction} function(s) per direction for "
            f"{num_directions} direction(s), got {names}"
        )
    alpha_iter = iter(alphas or [])
    beta_iter = iter(betas or [])
    functions: list[Activation] = []
    for name in names:
        try:
            fn, default_alpha, default_beta = _ACTIVATIONS[name.lower()]
        except KeyError:
            raise ValueError(f"unknown RNN activation function {name!r}") from None
        alpha = next(alpha_iter, default_alpha) if default_alpha is not None else None
        beta = next(beta_iter, default_beta) if default_beta is not None else None
        functions.append(partial(fn, alpha=alpha, beta=beta))
    return [functions[d * per_direction : (d + 1) * per_direction] for d in range(num_directions)]


def _clipper(clip: float | None) -> Callable[[np.ndarray], np.ndarray]:
    if clip is None:
        return lambda x: x
    return lambda x: np.clip(x, -clip, clip)


# --- the shared recurrence ---------------------------------------------------------------------


def _compute_dtype(X: np.ndarray) -> np.dtype:
    """The dtype the kernels compute in: X's float dtype, at least float32."""
    return np.promote_types(X.dtype, np.float32)


def _num_directions(direction: str) -> int:
    if direction in ("forward", "reverse"):
        return 1
    if direction == "bidirectional":
        return 2
    raise ValueError(f"direction must be forward, reverse or bidirectional, got {direction!r}")


def _hidden_size(R: np.ndarray, hidden_size: int | None) -> int:
    size = R.shape[-1]
    if hidden_size is not None and hidden_size != size:
        raise ValueError(f"hidden_size={hidden_size} but R has shape {R.shape}")
    return size


def _time_order(lengths: np.ndarray, seq_length: int, reverse: bool) -> np.ndarray:
    """``[T, N]`` index of the input step read at each step of one direction.

    Forward reads step t at step t.  Reverse reads step len-1-t at step t while t < len and
    leaves the padding in place, so a sequence is reversed within its own length.  Either
    way the map is its own inverse, so it also puts the outputs back in input order.
    """
    t = np.arange(seq_length)[:, None]
    if not reverse:
        return np.broadcast_to(t, (seq_length, lengths.size))
    return np.where(t < lengths, lengths - 1 - t, t)


def _run_recurrence(
    X: np.ndarray,
    W: np.ndarray,
    R: np.ndarray,
    B: np.ndarray | None,
    sequence_lens: np.ndarray | None,
    initial_states: Sequence[np.ndarray | None],
    *,
    num_gates: int,
    hidden_size: int | None,
    direction: str,
    layout: int,
    make_cell: Callable[[int, np.ndarray], Cell],
) -> tuple[np.ndarray, ...]:
    """Run one recurrent op over all directions; return ``(Y, *final_states)``.

    ``initial_states`` are the op's optional initial states (h, and c for LSTM) in the op's
    layout.  ``make_cell(d, Rb)`` returns direction ``d``'s cell: given the input projection
    ``X_t @ W[d]^T + Wb[d]`` (``[N, G*H]``) and the current states (each ``[N, H]``), it returns
    the new states, hidden state first.  ``Rb`` is that direction's recurrence bias.
    """
    out_dtype = X.dtype
    dtype = _compute_dtype(X)
    num_directions = _num_directions(direction)
    hid = _hidden_size(R, hidden_size)
    if layout not in (0, 1):
        raise ValueError(f"layout must be 0 or 1, got {layout}")
    if layout == 1:  # batch-major -> time-major
        X = X.swapaxes(0, 1)
        initial_states = [None if s is None else s.swapaxes(0, 1) for s in initial_states]
    X = X.astype(dtype, copy=False)
    seq_length, batch, _ = X.shape
    if W.shape[0] != num_directions or W.shape[1] != num_gates * hid:
        raise ValueError(
            f"W has shape {W.shape}, expected [{num_directions}, {num_gates * hid}, _]"
        )
    if B is None:
        B = np.zeros((num_directions, 2 * num_gates * hid), dtype)
    if sequence_lens is None:
        lengths = np.full(batch, seq_length)
    else:
        lengths = np.asarray(sequence_lens).astype(np.int64)
        if lengths.shape != (batch,) or np.any((lengths < 0) | (lengths > seq_length)):
            raise ValueError(f"sequence_lens must be {batch} values in [0, {seq_length}]")
    states0 = [
        np.zeros((num_directions, batch, hid), dtype) if s is None else s.astype(dtype)
        for s in initial_states
    ]

    Y = np.zeros((seq_length, num_directions, batch, hid), dtype)
    finals = [np.zeros((num_directions, batch, hid), dtype) for _ in states0]
    batch_index = np.arange(batch)
    for d in range(num_directions):
        reverse = direction == "reverse" or d == 1
        order = _time_order(lengths, seq_length, reverse)
        bias = B[d].astype(dtype)
        Wb, Rb = bias[: num_gates * hid], bias[num_gates * hid :]
        XW = X[order, batch_index] @ W[d].astype(dtype).T + Wb  # [T, N, G*H] in step order
        cell = make_cell(d, Rb)
        states = tuple(s[d] for s in states0)
        outputs = np.zeros((seq_length, batch, hid), dtype)
        for t in range(seq_length):
            valid = (t < lengths)[:, None]
            new = cell(XW[t], *states)
            states = tuple(np.where(valid, n, s) for n, s in zip(new, states, strict=True))
            outputs[t] = np.where(valid, new[0], 0)
        Y[:, d] = outputs[order, batch_index]
        for final, state in zip(finals, states, strict=True):
            final[d] = np.where((lengths > 0)[:, None], state, 0)

    if layout == 1:  # time-major -> batch-major
        Y = Y.transpose(2, 0, 1, 3)
        finals = [f.swapaxes(0, 1) for f in finals]
    return tuple(a.astype(out_dtype, copy=False) for a in (Y, *finals))


# --- the ops -----------------------------------------------------------------------------------


@kernel("LSTM")
def LSTM(
    X: np.ndarray,
    W: np.ndarray,
    R: np.ndarray,
    B: np.ndarray | None = None,
    sequence_lens: np.ndarray | None = None,
    initial_h: np.ndarray | None = None,
    initial_c: np.ndarray | None = None,
    P: np.ndarray | None = None,
    *,
    activation_alpha: list[float] | None = None,
    activation_beta: list[float] | None = None,
    activations: list[str] | None = None,
    clip: float | None = None,
    direction: str = "forward",
    hidden_size: int | None = None,
    input_forget: int = 0,
    layout: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX LSTM; returns ``(Y, Y_h, Y_c)``.

    Gate blocks of W, R, Wb, Rb are ordered i, o, f, c; peepholes P are ordered i, o, f.
    With activations f, g, h (default Sigmoid, Tanh, Tanh) and clip() as in the module
    docstring, one step of direction d is::

        i = f(clip(Xt*Wi^T + Ht-1*Ri^T + Wbi + Rbi + Pi (.) Ct-1))
        f_t = 1 - i                                               if input_forget
            = f(clip(Xt*Wf^T + Ht-1*Rf^T + Wbf + Rbf + Pf (.) Ct-1))   otherwise
        c = g(clip(Xt*Wc^T + Ht-1*Rc^T + Wbc + Rbc))
        Ct = f_t (.) Ct-1 + i (.) c
        o = f(clip(Xt*Wo^T + Ht-1*Ro^T + Wbo + Rbo + Po (.) Ct))
        Ht = o (.) h(Ct)
    """
    num_directions = _num_directions(direction)
    acts = _resolve_activations(
        activations, activation_alpha, activation_beta, ("Sigmoid", "Tanh", "Tanh"), num_directions
    )
    clipped = _clipper(clip)
    hid = _hidden_size(R, hidden_size)
    dtype = _compute_dtype(X)
    if P is None:
        P = np.zeros((num_directions, 3 * hid), dtype)

    def make_cell(d: int, Rb: np.ndarray) -> Cell:
        R_t = R[d].astype(dtype).T
        p_i, p_o, p_f = np.split(P[d].astype(dtype), 3)
        f, g, h = acts[d]

        def cell(xw: np.ndarray, H: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x_i, x_o, x_f, x_c = np.split(xw + H @ R_t + Rb, 4, axis=-1)
            i = f(clipped(x_i + p_i * C))
            forget = 1 - i if input_forget else f(clipped(x_f + p_f * C))
            C_new = forget * C + i * g(clipped(x_c))
            o = f(clipped(x_o + p_o * C_new))
            return o * h(C_new), C_new

        return cell

    Y, Y_h, Y_c = _run_recurrence(
        X,
        W,
        R,
        B,
        sequence_lens,
        [initial_h, initial_c],
        num_gates=4,
        hidden_size=hidden_size,
        direction=direction,
        layout=layout,
        make_cell=make_cell,
    )
    return Y, Y_h, Y_c


@kernel("GRU")
def GRU(
    X: np.ndarray,
    W: np.ndarray,
    R: np.ndarray,
    B: np.ndarray | None = None,
    sequence_lens: np.ndarray | None = None,
    initial_h: np.ndarray | None = None,
    *,
    activation_alpha: list[float] | None = None,
    activation_beta: list[float] | None = None,
    activations: list[str] | None = None,
    clip: float | None = None,
    direction: str = "forward",
    hidden_size: int | None = None,
    layout: int = 0,
    linear_before_reset: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """ONNX GRU; returns ``(Y, Y_h)``.

    Gate blocks of W, R, Wb, Rb are ordered z, r, h.  With activations f, g (default
    Sigmoid, Tanh) and clip() as in the module docstring, one step of direction d is::

        z = f(clip(Xt*Wz^T + Ht-1*Rz^T + Wbz + Rbz))
        r = f(clip(Xt*Wr^T + Ht-1*Rr^T + Wbr + Rbr))
        h = g(clip(Xt*Wh^T + (r (.) Ht-1)*Rh^T + Rbh + Wbh))      if linear_before_reset == 0
          = g(clip(Xt*Wh^T + r (.) (Ht-1*Rh^T + Rbh) + Wbh))      otherwise
        Ht = (1 - z) (.) h + z (.) Ht-1
    """
    num_directions = _num_directions(direction)
    acts = _resolve_activations(
        activations, activation_alpha, activation_beta, ("Sigmoid", "Tanh"), num_directions
    )
    clipped = _clipper(clip)
    hid = _hidden_size(R, hidden_size)
    dtype = _compute_dtype(X)

    def make_cell(d: int, Rb: np.ndarray) -> Cell:
        R_zr_t = R[d, : 2 * hid].astype(dtype).T
        R_h_t = R[d, 2 * hid :].astype(dtype).T
        Rb_zr, Rb_h = Rb[: 2 * hid], Rb[2 * hid :]
        f, g = acts[d]

        def cell(xw: np.ndarray, H: np.ndarray) -> tuple[np.ndarray]:
            x_z, x_r, x_h = np.split(xw, 3, axis=-1)
            h_z, h_r = np.split(H @ R_zr_t + Rb_zr, 2, axis=-1)
            z = f(clipped(x_z + h_z))
            r = f(clipped(x_r + h_r))
            if linear_before_reset:
                h = g(clipped(x_h + r * (H @ R_h_t + Rb_h)))
            else:
                h = g(clipped(x_h + (r * H) @ R_h_t + Rb_h))
            return ((1 - z) * h + z * H,)

        return cell

    Y, Y_h = _run_recurrence(
        X,
        W,
        R,
        B,
        sequence_lens,
        [initial_h],
        num_gates=3,
        hidden_size=hidden_size,
        direction=direction,
        layout=layout,
        make_cell=make_cell,
    )
    return Y, Y_h


@kernel("RNN")
def RNN(
    X: np.ndarray,
    W: np.ndarray,
    R: np.ndarray,
    B: np.ndarray | None = None,
    sequence_lens: np.ndarray | None = None,
    initial_h: np.ndarray | None = None,
    *,
    activation_alpha: list[float] | None = None,
    activation_beta: list[float] | None = None,
    activations: list[str] | None = None,
    clip: float | None = None,
    direction: str = "forward",
    hidden_size: int | None = None,
    layout: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """ONNX RNN (simple RNN); returns ``(Y, Y_h)``.

    With activation f (default Tanh) and clip() as in the module docstring, one step of
    direction d is::

        Ht = f(clip(Xt*Wi^T + Ht-1*Ri^T + Wbi + Rbi))
    """
    num_directions = _num_directions(direction)
    acts = _resolve_activations(
        activations, activation_alpha, activation_beta, ("Tanh",), num_directions
    )
    clipped = _clipper(clip)
    dtype = _compute_dtype(X)

    def make_cell(d: int, Rb: np.ndarray) -> Cell:
        R_t = R[d].astype(dtype).T
        (f,) = acts[d]

        def cell(xw: np.ndarray, H: np.ndarray) -> tuple[np.ndarray]:
            return (f(clipped(xw + H @ R_t + Rb)),)

        return cell

    Y, Y_h = _run_recurrence(
        X,
        W,
        R,
        B,
        sequence_lens,
        [initial_h],
        num_gates=1,
        hidden_size=hidden_size,
        direction=direction,
        layout=layout,
        make_cell=make_cell,
    )
    return Y, Y_h
