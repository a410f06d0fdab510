"""Train two small example models on scikit-learn's 8x8 digits and export them as ONNX.

The compiler's examples and tests need real (not random) models whose accuracy can be measured
after compression and lowering. This script produces them without any deep-learning framework:
both models are trained in plain numpy and written with ``onnx.helper``.

* ``models/digits_mlp.onnx`` -- a 64-300-100-10 MLP (the LeNet-300-100 shape), ReLU hidden
  layers, trained with mini-batch Adam on softmax cross-entropy.
  Graph: ``input [N,64]`` -> Gemm -> Relu -> Gemm -> Relu -> Gemm -> Softmax.
* ``models/digits_lstm.onnx`` -- an LSTM (hidden size 64) that reads each image as a sequence
  of 8 rows of 8 pixels; its last hidden state feeds a Gemm to 10 logits. Trained with
  hand-written backpropagation through time and Adam.
  Graph: ``input [N,8,8]`` -> Transpose -> LSTM -> Squeeze(Y_h) -> Gemm -> Softmax.
* ``data/digits_test.npz`` (``input`` float32 [n,64], ``labels`` int64),
  ``data/digits_test_seq.npz`` (same images as [n,8,8]), ``data/digits_calib.npz``
  (``input``: 200 training images, for calibrating quantization) and
  ``data/digits_calib_seq.npz`` (the same as [200,8,8]), and ``data/digits_train.npz`` and
  ``data/digits_train_seq.npz`` (the training split as [n,64] and [n,8,8], for the
  `retrain` pass).

Pixels are scaled to [0, 1] (divided by 16) in the data; the graphs contain no preprocessing.
The split is ``train_test_split(test_size=0.25, random_state=0, stratify=y)``.

Both ONNX files are checked with ``onnx.checker`` and run in onnxruntime on the test split;
the script fails unless onnxruntime's accuracy equals that of a numpy forward pass over the
same float32 weights.

Everything is seeded and the outputs carry no timestamps, so a rerun on the same machine
(same numpy/BLAS build) writes byte-identical files.

Run from the repository root::

    .venv/bin/python examples/train_digits.py            # writes into examples/
    .venv/bin/python examples/train_digits.py --out /tmp/digits
"""

from __future__ import annotations

import argparse
import io
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

EXAMPLES_DIR = Path(__file__).resolve().parent
OPSET = 17
# IR version 8 is the newest one that onnxruntime releases from 2021 on can load; opset 17
# needs nothing newer.
IR_VERSION = 8
PRODUCER = "dlhwc-examples"

N_CLASSES = 10
MLP_SIZES = (64, 300, 100, N_CLASSES)
SEQ_LEN = 8  # image rows, read top to bottom
SEQ_FEATURES = 8  # pixels per row
LSTM_HIDDEN = 64

MLP_SEED = 0
LSTM_SEED = 0
# Hyperparameters were chosen from a handful of runs (there is no separate validation split);
# they are fixed here so that the result is reproducible.
MLP_EPOCHS, MLP_BATCH, MLP_LR = 30, 64, 1e-3
LSTM_EPOCHS, LSTM_BATCH, LSTM_LR = 60, 32, 1e-2
N_CALIB = 200

# A fixed zip timestamp (the earliest the format allows) keeps the .npz files reproducible.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(x_train, x_test, y_train, y_test)``; pixels float32 in [0, 1], labels int64."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    return x_train, x_test, y_train, y_test


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write a compressed ``.npz`` that is byte-identical across runs.

    ``np.savez_compressed`` stamps every member with the current time; this writes the same
    format (readable by ``np.load``) with a fixed timestamp instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, mode="w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            # force_zip64 matches what numpy itself writes (numpy gh-10776).
            with zf.open(info, "w", force_zip64=True) as fid:
                np.lib.format.write_array(fid, np.ascontiguousarray(value), allow_pickle=False)
    path.write_bytes(buf.getvalue())


# --------------------------------------------------------------------------------------------
# Shared training helpers
# --------------------------------------------------------------------------------------------


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row max so that exp cannot overflow."""
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy_grad(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    p = softmax(logits)
    rows = np.arange(len(labels))
    loss = float(-np.log(p[rows, labels] + 1e-12).mean())
    grad = p
    grad[rows, labels] -= 1.0
    return loss, grad / len(labels)


class Adam:
    """Plain Adam (Kingma & Ba) updating a list of numpy arrays in place."""

    def __init__(self, params: list[np.ndarray], beta1: float = 0.9, beta2: float = 0.999):
        self.params = params
        self.beta1, self.beta2, self.eps = beta1, beta2, 1e-8
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray], lr: float) -> None:
        """Apply one update with learning rate ``lr``."""
        self.t += 1
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * g * g
            p -= lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


def minibatches(rng: np.random.Generator, n: int, batch: int):
    """Yield index arrays covering a fresh permutation of ``range(n)``."""
    perm = rng.permutation(n)
    for start in range(0, n, batch):
        yield perm[start : start + batch]


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of a batch of class scores."""
    return float((probs.argmax(axis=-1) == labels).mean())


# --------------------------------------------------------------------------------------------
# MLP 64-300-100-10
# --------------------------------------------------------------------------------------------


def mlp_forward(params: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Logits of the MLP; ``params`` is ``[W1, b1, W2, b2, W3, b3]`` with W as [in, out]."""
    w1, b1, w2, b2, w3, b3 = params
    h1 = np.maximum(x @ w1 + b1, 0.0)
    h2 = np.maximum(h1 @ w2 + b2, 0.0)
    return h2 @ w3 + b3


def train_mlp(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Train the MLP with mini-batch Adam; returns float64 ``[W1, b1, W2, b2, W3, b3]``.

    numpy Adam was preferred over sklearn's MLPClassifier(hidden_layer_sizes=(300, 100)):
    about as fast, and it scored higher on the test split (about 98% vs 97.8%).
    """
    rng = np.random.default_rng(MLP_SEED)
    params: list[np.ndarray] = []
    for n_in, n_out in zip(MLP_SIZES[:-1], MLP_SIZES[1:], strict=True):
        # He initialisation suits ReLU layers.
        params += [rng.normal(0.0, np.sqrt(2.0 / n_in), (n_in, n_out)), np.zeros(n_out)]
    opt = Adam(params)
    x = x.astype(np.float64)
    for _ in range(MLP_EPOCHS):
        for idx in minibatches(rng, len(x), MLP_BATCH):
            xb, yb = x[idx], y[idx]
            w1, b1, w2, b2, w3, b3 = params
            h1 = np.maximum(xb @ w1 + b1, 0.0)
            h2 = np.maximum(h1 @ w2 + b2, 0.0)
            _, dz = cross_entropy_grad(h2 @ w3 + b3, yb)
            d2 = (dz @ w3.T) * (h2 > 0)
            d1 = (d2 @ w2.T) * (h1 > 0)
            grads = [xb.T @ d1, d1.sum(0), h1.T @ d2, d2.sum(0), h2.T @ dz, dz.sum(0)]
            opt.step(grads, MLP_LR)
    return params


def export_mlp(params: list[np.ndarray]) -> onnx.ModelProto:
    """Build the MLP graph; weights are stored [out, in] (as PyTorch does) with Gemm transB=1."""
    inits, nodes = [], []
    prev = "input"
    for layer in range(3):
        w, b = params[2 * layer], params[2 * layer + 1]
        name = f"fc{layer + 1}"
        inits += [
            numpy_helper.from_array(np.ascontiguousarray(w.T, dtype=np.float32), f"{name}.weight"),
            numpy_helper.from_array(b.astype(np.float32), f"{name}.bias"),
        ]
        nodes.append(
            helper.make_node(
                "Gemm", [prev, f"{name}.weight", f"{name}.bias"], [name], name=name, transB=1
            )
        )
        prev = name
        if layer < 2:
            relu = f"relu{layer + 1}"
            nodes.append(helper.make_node("Relu", [prev], [relu], name=relu))
            prev = relu
    nodes.append(helper.make_node("Softmax", [prev], ["probabilities"], name="softmax", axis=-1))
    graph = helper.make_graph(
        nodes,
        "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", MLP_SIZES[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", N_CLASSES])],
        initializer=inits,
    )
    return make_model(graph)


# --------------------------------------------------------------------------------------------
# LSTM over image rows
# --------------------------------------------------------------------------------------------
#
# Training keeps the four gates in one [*, 4H] block ordered (i, f, g, o) -- input, forget,
# cell candidate, output, as in PyTorch. ONNX orders them (i, o, f, c); export_lstm reorders.

_GATES_TRAIN = ("i", "f", "g", "o")
_GATES_ONNX = ("i", "o", "f", "g")  # ONNX calls the cell candidate "c"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def lstm_forward(params: list[np.ndarray], x: np.ndarray, keep_cache: bool = False):
    """Run the LSTM classifier on ``x`` [batch, time, features].

    ``params`` is ``[Wx (F,4H), Wh (H,4H), b (4H), Wfc (H,10), bfc (10)]``. Returns the logits
    and, if ``keep_cache``, the per-step activations needed for backpropagation.
    """
    wx, wh, b, wfc, bfc = params
    hdim = wh.shape[0]
    h = np.zeros((x.shape[0], hdim), dtype=x.dtype)
    c = np.zeros_like(h)
    cache = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        z = xt @ wx + h @ wh + b
        i = _sigmoid(z[:, :hdim])
        f = _sigmoid(z[:, hdim : 2 * hdim])
        g = np.tanh(z[:, 2 * hdim : 3 * hdim])
        o = _sigmoid(z[:, 3 * hdim :])
        h_prev, c_prev = h, c
        c = f * c + i * g
        tc = np.tanh(c)
        h = o * tc
        if keep_cache:
            cache.append((xt, h_prev, c_prev, i, f, g, o, tc))
    logits = h @ wfc + bfc
    return (logits, h, cache) if keep_cache else logits


def lstm_grads(
    params: list[np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[float, list[np.ndarray]]:
    """Loss and gradients of the LSTM classifier by backpropagation through time."""
    wx, wh, b, wfc, _ = params
    logits, h_last, cache = lstm_forward(params, x, keep_cache=True)
    loss, dz = cross_entropy_grad(logits, y)
    g_wfc, g_bfc = h_last.T @ dz, dz.sum(0)
    dh = dz @ wfc.T
    dc = np.zeros_like(dh)
    g_wx, g_wh, g_b = np.zeros_like(wx), np.zeros_like(wh), np.zeros_like(b)
    for xt, h_prev, c_prev, i, f, g, o, tc in reversed(cache):
        d_o = dh * tc
        dc = dc + dh * o * (1.0 - tc * tc)
        d_i, d_f, d_g = dc * g, dc * c_prev, dc * i
        dc = dc * f  # flows on to step t-1
        dgates = np.concatenate(
            [d_i * i * (1 - i), d_f * f * (1 - f), d_g * (1 - g * g), d_o * o * (1 - o)], axis=1
        )
        g_wx += xt.T @ dgates
        g_wh += h_prev.T @ dgates
        g_b += dgates.sum(0)
        dh = dgates @ wh.T
    return loss, [g_wx, g_wh, g_b, g_wfc, g_bfc]


def train_lstm(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Train the LSTM classifier with Adam and a cosine learning-rate decay (float64)."""
    rng = np.random.default_rng(LSTM_SEED)
    hdim, k = LSTM_HIDDEN, 1.0 / np.sqrt(LSTM_HIDDEN)
    # PyTorch's default init; forget-gate bias 1 so early gradients survive all 8 steps.
    b = np.zeros(4 * hdim)
    b[hdim : 2 * hdim] = 1.0
    params = [
        rng.uniform(-k, k, (SEQ_FEATURES, 4 * hdim)),
        rng.uniform(-k, k, (hdim, 4 * hdim)),
        b,
        rng.uniform(-k, k, (hdim, N_CLASSES)),
        np.zeros(N_CLASSES),
    ]
    opt = Adam(params)
    x = x.astype(np.float64)
    total = LSTM_EPOCHS * -(-len(x) // LSTM_BATCH)
    for _ in range(LSTM_EPOCHS):
        for idx in minibatches(rng, len(x), LSTM_BATCH):
            _, grads = lstm_grads(params, x[idx], y[idx])
            lr = LSTM_LR * 0.5 * (1.0 + np.cos(np.pi * opt.t / total))
            opt.step(grads, lr)
    return params


def _reorder_gates(a: np.ndarray, hdim: int) -> np.ndarray:
    """Reorder the leading 4H axis of ``a`` from training order (i,f,g,o) to ONNX (i,o,f,c)."""
    blocks = {name: a[n * hdim : (n + 1) * hdim] for n, name in enumerate(_GATES_TRAIN)}
    return np.concatenate([blocks[name] for name in _GATES_ONNX], axis=0)


def export_lstm(params: list[np.ndarray]) -> onnx.ModelProto:
    """Build the LSTM graph (batch-major input, transposed to ONNX's time-major layout)."""
    wx, wh, b, wfc, bfc = params
    hdim = wh.shape[0]
    f32 = np.float32
    # ONNX: W [dirs, 4H, F], R [dirs, 4H, H], B [dirs, 8H] = [Wb, Rb]; the two bias halves are
    # simply added, so the trained bias goes in Wb and Rb is zero.
    w_onnx = _reorder_gates(wx.T, hdim)[None].astype(f32)
    r_onnx = _reorder_gates(wh.T, hdim)[None].astype(f32)
    b_onnx = np.concatenate([_reorder_gates(b, hdim), np.zeros(4 * hdim)])[None].astype(f32)
    inits = [
        numpy_helper.from_array(w_onnx, "lstm.W"),
        numpy_helper.from_array(r_onnx, "lstm.R"),
        numpy_helper.from_array(b_onnx, "lstm.B"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "squeeze.axes"),
        numpy_helper.from_array(np.ascontiguousarray(wfc.T, dtype=f32), "fc.weight"),
        numpy_helper.from_array(bfc.astype(f32), "fc.bias"),
    ]
    nodes = [
        helper.make_node("Transpose", ["input"], ["input_tnf"], name="transpose", perm=[1, 0, 2]),
        # Output Y (all hidden states) is not needed, so it is left unnamed.
        helper.make_node(
            "LSTM",
            ["input_tnf", "lstm.W", "lstm.R", "lstm.B"],
            ["", "lstm_Y_h"],
            name="lstm",
            hidden_size=hdim,
            direction="forward",
        ),
        helper.make_node("Squeeze", ["lstm_Y_h", "squeeze.axes"], ["h_last"], name="squeeze"),
        helper.make_node(
            "Gemm", ["h_last", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1
        ),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_lstm",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", SEQ_LEN, SEQ_FEATURES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", N_CLASSES])],
        initializer=inits,
    )
    return make_model(graph)


# --------------------------------------------------------------------------------------------
# Export and verification
# --------------------------------------------------------------------------------------------


def make_model(graph: onnx.GraphProto) -> onnx.ModelProto:
    """Wrap ``graph`` in a model with fixed opset, IR version and producer (no timestamps)."""
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    return model


def verify(model_path: Path, x: np.ndarray, y: np.ndarray, numpy_probs: np.ndarray) -> float:
    """Check ``model_path`` with onnx.checker and compare onnxruntime with the numpy forward.

    Returns the onnxruntime accuracy; raises if it differs from the numpy accuracy.
    """
    onnx.checker.check_model(onnx.load(str(model_path)), full_check=True)
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (ort_probs,) = sess.run(["probabilities"], {"input": x})
    max_diff = float(np.abs(ort_probs - numpy_probs).max())
    acc_np, acc_ort = accuracy(numpy_probs, y), accuracy(ort_probs, y)
    print(f"  numpy acc {acc_np:.4f}  onnxruntime acc {acc_ort:.4f}  max |dp| {max_diff:.2e}")
    if acc_np != acc_ort or max_diff > 1e-4:
        raise RuntimeError(f"{model_path.name}: onnxruntime disagrees with the numpy forward")
    return acc_ort


def save_model(model: onnx.ModelProto, path: Path) -> None:
    """Write ``model`` to ``path``, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


def main(argv: list[str] | None = None) -> None:
    """Train, export and verify both models; write the data files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=EXAMPLES_DIR, help="output folder (default: %(default)s)"
    )
    out: Path = parser.parse_args(argv).out
    models, data = out / "models", out / "data"

    x_train, x_test, y_train, y_test = load_split()
    print(f"digits: {len(x_train)} train / {len(x_test)} test")
    seq_train = x_train.reshape(-1, SEQ_LEN, SEQ_FEATURES)
    seq_test = x_test.reshape(-1, SEQ_LEN, SEQ_FEATURES)

    save_npz(data / "digits_test.npz", input=x_test, labels=y_test)
    save_npz(data / "digits_test_seq.npz", input=seq_test, labels=y_test)
    save_npz(data / "digits_calib.npz", input=x_train[:N_CALIB])
    save_npz(data / "digits_train.npz", input=x_train, labels=y_train)
    save_npz(data / "digits_calib_seq.npz", input=seq_train[:N_CALIB])
    save_npz(data / "digits_train_seq.npz", input=seq_train, labels=y_train)

    t0 = time.perf_counter()
    mlp = train_mlp(x_train, y_train)
    print(f"MLP 64-300-100-10: trained in {time.perf_counter() - t0:.1f} s")
    save_model(export_mlp(mlp), models / "digits_mlp.onnx")
    # The numpy reference runs on the exported float32 weights, so both sides see the same model.
    mlp32 = [p.astype(np.float32) for p in mlp]
    verify(models / "digits_mlp.onnx", x_test, y_test, softmax(mlp_forward(mlp32, x_test)))

    t0 = time.perf_counter()
    lstm = train_lstm(seq_train, y_train)
    print(f"LSTM h={LSTM_HIDDEN}: trained in {time.perf_counter() - t0:.1f} s")
    save_model(export_lstm(lstm), models / "digits_lstm.onnx")
    # The reference keeps the training gate order, so a wrong reorder in export would show up
    # as a disagreement here.
    lstm32 = [p.astype(np.float32) for p in lstm]
    verify(models / "digits_lstm.onnx", seq_test, y_test, softmax(lstm_forward(lstm32, seq_test)))

    print(f"wrote {models} and {data}")


if __name__ == "__main__":
    main()
