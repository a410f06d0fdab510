"""Reference numpy kernels for the dedicated ONNX ops.

Each kernel implements the newest opset form of its op (the importer normalizes older forms),
keeps the dtypes onnxruntime produces, and vectorizes over elements. Kernels never write to
their inputs; an output may share memory with an input (Identity, Reshape, ...), so callers
must not write to outputs either.
"""

import numpy as np
import onnx

from dlhwc.compiler.interpreters.registry import kernel

# numpy maps these through ml_dtypes, but a plain astype does not follow ONNX's saturating
# float8 conversion rules, so casts to them are refused rather than silently wrong.
_FLOAT8_TYPES = frozenset(
    getattr(onnx.TensorProto, name)
    for name in (
        "FLOAT8E4M3FN",
        "FLOAT8E4M3FNUZ",
        "FLOAT8E5M2",
        "FLOAT8E5M2FNUZ",
        "FLOAT8E8M0",
    )
    if hasattr(onnx.TensorProto, name)
)


def _outputs(*arrays) -> tuple[np.ndarray, ...]:
    # numpy ufuncs and indexing turn 0-d results into numpy scalars; callers expect ndarrays.
    return tuple(np.asarray(a) for a in arrays)


def _ints(values: np.ndarray | None) -> list[int] | None:
    return None if values is None else [int(v) for v in np.asarray(values).reshape(-1)]


def _normalize_axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < rank:
        raise ValueError(f"{op}: axis {axis} out of range for rank {rank}")
    return axis % rank


# -- linear algebra ------------------------------------------------------------------------------


@kernel("Gemm")
def Gemm(A, B, C=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    """Y = alpha * A' @ B' + beta * C, with A' / B' optionally transposed and C broadcast
    unidirectionally to (M, N)."""
    a = A.T if transA else A
    b = B.T if transB else B
    y = np.matmul(a, b)
    # Scaling by a Python float would promote integer products to float64.
    if alpha != 1.0:
        y = y * np.asarray(alpha).astype(y.dtype)
    if C is not None and beta != 0.0:
        c = C if beta == 1.0 else C * np.asarray(beta).astype(C.dtype)
        y = y + np.broadcast_to(c, y.shape)
    return _outputs(y)


@kernel("MatMul")
def MatMul(A, B):
    """numpy.matmul semantics: 1-D operands are promoted then squeezed, batch dims broadcast."""
    return _outputs(np.matmul(A, B))


# -- elementwise ---------------------------------------------------------------------------------


@kernel("Add")
def Add(A, B):
    """Elementwise A + B with multidirectional broadcasting; integers wrap around."""
    return _outputs(np.add(A, B))


@kernel("Sub")
def Sub(A, B):
    """Elementwise A - B with multidirectional broadcasting; integers wrap around."""
    return _outputs(np.subtract(A, B))


@kernel("Mul")
def Mul(A, B):
    """Elementwise A * B with multidirectional broadcasting; integers wrap around."""
    return _outputs(np.multiply(A, B))


@kernel("Div")
def Div(A, B):
    """Elementwise A / B with broadcasting: IEEE for floats, truncation toward zero for
    integers (C semantics, as onnxruntime does)."""
    A = np.asarray(A)
    B = np.asarray(B)
    if not np.issubdtype(np.result_type(A, B), np.integer):
        with np.errstate(divide="ignore", invalid="ignore"):
            return _outputs(np.true_divide(A, B))
    # Integer division by zero is undefined in ONNX (and traps in onnxruntime); numpy yields 0.
    with np.errstate(divide="ignore", over="ignore"):
        quotient, remainder = np.divmod(A, B)
    # floor and truncation differ exactly when the division is inexact and the signs differ.
    round_up = (remainder != 0) & ((A < 0) != (B < 0))
    return _outputs(quotient + round_up.astype(quotient.dtype))


@kernel("Relu")
def Relu(X):
    """max(X, 0) elementwise; NaN propagates."""
    return _outputs(np.maximum(X, X.dtype.type(0)))


@kernel("Sigmoid")
def Sigmoid(X):
    """1 / (1 + exp(-X)), evaluated without overflow for large |X|."""
    # exp(-|x|) never overflows, and both branches are exact rearrangements of the logistic.
    e = np.exp(-np.abs(X))
    one = X.dtype.type(1)
    return _outputs(np.where(X >= 0, one / (one + e), e / (one + e)))


@kernel("Tanh")
def Tanh(X):
    """Hyperbolic tangent elementwise."""
    return _outputs(np.tanh(X))


@kernel("Softmax")
def Softmax(X, *, axis=-1):
    """exp(X) / sum(exp(X)) along one axis (opset-13 form), shifted by the max for stability."""
    axis = _normalize_axis(axis, X.ndim, "Softmax")
    e = np.exp(X - np.max(X, axis=axis, keepdims=True))
    return _outputs(e / np.sum(e, axis=axis, keepdims=True))


@kernel("LogSoftmax")
def LogSoftmax(X, *, axis=-1):
    """X - log(sum(exp(X))) along one axis (opset-13 form), shifted by the max for stability."""
    axis = _normalize_axis(axis, X.ndim, "LogSoftmax")
    shifted = X - np.max(X, axis=axis, keepdims=True)
    return _outputs(shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True)))


# -- shape manipulation --------------------------------------------------------------------------


@kernel("Flatten")
def Flatten(input, *, axis=1):
    """Reshape to 2-D: dims before ``axis`` form the rows, the rest the columns."""
    rank = input.ndim
    if not -rank <= axis <= rank:
        raise ValueError(f"Flatten: axis {axis} out of range for rank {rank}")
    if axis < 0:
        axis += rank
    # Spelled out rather than with -1, which numpy cannot infer for zero-size tensors.
    rows = int(np.prod(input.shape[:axis], dtype=np.int64))
    cols = int(np.prod(input.shape[axis:], dtype=np.int64))
    return _outputs(input.reshape(rows, cols))


@kernel("Reshape")
def Reshape(data, shape, *, allowzero=0):
    """Reshape to ``shape``: one -1 is inferred; a 0 copies the input dim at that index
    unless ``allowzero``, in which case it is a literal zero-size dim."""
    dims = _ints(shape)
    if not allowzero:
        for i, d in enumerate(dims):
            if d == 0:
                if i >= data.ndim:
                    raise ValueError(f"Reshape: dim {i} is 0 but the input has rank {data.ndim}")
                dims[i] = data.shape[i]
    if dims.count(-1) > 1:
        raise ValueError("Reshape: more than one -1 in shape")
    if any(d < -1 for d in dims):
        raise ValueError(f"Reshape: invalid shape {dims}")
    if -1 in dims:
        # numpy refuses -1 for zero-size data, so the missing dim is worked out here.
        known = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
        if known == 0 or data.size % known:
            raise ValueError(f"Reshape: cannot infer -1 in {dims} for {data.size} elements")
        dims[dims.index(-1)] = data.size // known
    return _outputs(data.reshape(dims))


@kernel("Transpose")
def Transpose(data, *, perm=None):
    """Permute the axes by ``perm``; the default reverses them."""
    return _outputs(np.transpose(data, perm))


@kernel("Squeeze")
def Squeeze(data, axes=None):
    """Remove the listed size-1 axes, or every size-1 axis when ``axes`` is omitted or empty."""
    # onnxruntime treats an empty axes tensor like an omitted one.
    axes = _ints(axes)
    if not axes:
        return _outputs(data.reshape([d for d in data.shape if d != 1]))
    axes = [_normalize_axis(a, data.ndim, "Squeeze") for a in axes]
    if any(data.shape[a] != 1 for a in axes):
        raise ValueError(f"Squeeze: axes {axes} of shape {data.shape} are not all 1")
    return _outputs(np.squeeze(data, axis=tuple(axes)))


@kernel("Unsqueeze")
def Unsqueeze(data, axes):
    """Insert size-1 axes at ``axes``, which index the output (negatives count from its end)."""
    return _outputs(np.expand_dims(data, tuple(_ints(axes))))


@kernel("Concat")
def Concat(*inputs, axis):
    """Join the inputs along ``axis``."""
    axis = _normalize_axis(axis, inputs[0].ndim, "Concat")
    return _outputs(np.concatenate(inputs, axis=axis))


@kernel("Gather")
def Gather(data, indices, *, axis=0):
    """Take entries of ``data`` along ``axis`` at ``indices``; negative indices count from the
    end. Output shape is data.shape[:axis] + indices.shape + data.shape[axis + 1:]."""
    axis = _normalize_axis(axis, data.ndim, "Gather")
    n = data.shape[axis]
    if np.any((indices < -n) | (indices >= n)):
        raise ValueError(f"Gather: indices out of range [-{n}, {n})")
    return _outputs(np.take(data, indices, axis=axis))


@kernel("Slice")
def Slice(data, starts, ends, axes=None, steps=None):
    """Strided slice per axis; starts/ends are clamped to the dim (negatives count from the
    end), and negative steps walk backwards."""
    starts, ends = _ints(starts), _ints(ends)
    axes = list(range(len(starts))) if axes is None else _ints(axes)
    steps = [1] * len(starts) if steps is None else _ints(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError("Slice: starts, ends, axes and steps differ in length")
    index = [slice(None)] * data.ndim
    seen = set()
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis = _normalize_axis(axis, data.ndim, "Slice")
        if axis in seen:
            raise ValueError(f"Slice: axis {axis} repeated")
        seen.add(axis)
        if step == 0:
            raise ValueError("Slice: step 0")
        dim = data.shape[axis]
        # The clamping is the ONNX spec's; Python ints keep INT64_MIN/MAX arithmetic exact.
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start = min(max(start, 0), dim)
            end = min(max(end, 0), dim)
        else:
            start = min(max(start, 0), dim - 1)
            end = min(max(end, -1), dim - 1)
        # A clamped end of -1 means "past the front", which a Python slice spells as None.
        index[axis] = slice(start, None if end < 0 else end, step)
    return _outputs(data[tuple(index)])


@kernel("Shape")
def Shape(data, *, start=0, end=None):
    """The dims of ``data`` in [start, end) as int64; negatives count from the rank and both
    bounds are clamped to [0, rank]."""
    # Python slicing applies exactly this offsetting and clamping.
    return _outputs(np.array(data.shape[start:end], dtype=np.int64))


@kernel("Expand")
def Expand(input, shape):
    """Broadcast ``input`` bidirectionally with ``shape`` (either may have the larger rank or
    the larger dim)."""
    out_shape = np.broadcast_shapes(input.shape, tuple(_ints(shape)))
    # broadcast_to gives a read-only view with zero strides; a copy is an ordinary tensor.
    return _outputs(np.broadcast_to(input, out_shape).copy())


@kernel("Identity")
def Identity(input):
    """The input, unchanged."""
    return _outputs(input)


@kernel("Dropout")
def Dropout(data, ratio=None, training_mode=None, *, seed=None):
    """Inference-mode dropout: output = data, mask = all True. Both outputs are returned; the
    mask is optional in the graph."""
    if training_mode is not None and bool(np.asarray(training_mode)):
        raise ValueError("Dropout: training_mode=1 is not supported by the reference interpreter")
    return _outputs(data, np.ones(data.shape, dtype=bool))


# -- constants and casts -------------------------------------------------------------------------


@kernel("Constant")
def Constant(
    *,
    value=None,
    value_float=None,
    value_floats=None,
    value_int=None,
    value_ints=None,
    value_string=None,
    value_strings=None,
    sparse_value=None,
):
    """The tensor given by exactly one attribute: floats are float32, ints int64, strings
    object arrays as onnx.numpy_helper produces them."""
    given = {
        name: v
        for name, v in (
            ("value", value),
            ("value_float", value_float),
            ("value_floats", value_floats),
            ("value_int", value_int),
            ("value_ints", value_ints),
            ("value_string", value_string),
            ("value_strings", value_strings),
            ("sparse_value", sparse_value),
        )
        if v is not None
    }
    if len(given) != 1:
        raise ValueError(f"Constant: exactly one value attribute expected, got {sorted(given)}")
    name, v = given.popitem()
    if name == "sparse_value":
        raise ValueError("Constant: sparse_value is not supported by the reference interpreter")
    if name == "value":
        return _outputs(np.array(v))
    if name in ("value_float", "value_floats"):
        return _outputs(np.array(v, dtype=np.float32))
    if name in ("value_int", "value_ints"):
        return _outputs(np.array(v, dtype=np.int64))
    return _outputs(np.array(v, dtype=object))


@kernel("ConstantOfShape")
def ConstantOfShape(input, *, value=None):
    """A tensor of shape ``input`` filled with the one element of ``value`` (default float32
    0), in its dtype; an empty shape gives a scalar."""
    if value is None:
        value = np.zeros(1, dtype=np.float32)
    value = np.asarray(value)
    if value.size != 1:
        raise ValueError(f"ConstantOfShape: value must have one element, got {value.shape}")
    dims = _ints(input)
    if any(d < 0 for d in dims):
        raise ValueError(f"ConstantOfShape: negative dim in {dims}")
    return _outputs(np.full(dims, value.reshape(()), dtype=value.dtype))


@kernel("Cast")
def Cast(input, *, to, saturate=1, round_mode="up"):
    """Convert to the ONNX data type ``to`` like numpy's astype: floats truncate toward zero
    into integers, integers wrap, anything nonzero (including NaN) is True."""
    # saturate and round_mode only affect float8 targets, which are refused below.
    if to in _FLOAT8_TYPES:
        raise ValueError(f"Cast: float8 target {onnx.TensorProto.DataType.Name(to)} unsupported")
    if to == onnx.TensorProto.STRING or input.dtype.kind in "OSU":
        raise ValueError("Cast: string casts are not supported by the reference interpreter")
    dtype = onnx.helper.tensor_dtype_to_np_dtype(to)
    # Out-of-range and NaN conversions are undefined in ONNX; numpy's result is kept, unwarned.
    with np.errstate(invalid="ignore", over="ignore"):
        return _outputs(input.astype(dtype))
