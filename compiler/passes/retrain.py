"""retrain: fine-tune the surviving weights after prune / share-weights (Deep Compression)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from compiler.errors import DlhwcError
from compiler.passes.weights import erase_weight, find_weights
from dialects import comp
from dialects import onnx as onnx_d

# Ops whose gradient is the output gradient reshaped to the input's shape. comp.quantize
# is among them: training sees it as the identity (a straight-through estimator).
_SHAPE_ONLY = (onnx_d.IdentityOp, onnx_d.FlattenOp, onnx_d.ReshapeOp, comp.QuantizeOp)
_COMPUTE = (onnx_d.GemmOp, onnx_d.MatMulOp, onnx_d.AddOp, onnx_d.ReluOp, onnx_d.SigmoidOp,
            onnx_d.TanhOp)  # fmt: skip
_LEAVES = (onnx_d.ConstantOp, comp.WeightOp, onnx_d.NoValueOp)
_FINAL = (onnx_d.SoftmaxOp, onnx_d.LogSoftmaxOp)
_SUPPORTED = ("Gemm, MatMul, Add, Relu, Sigmoid, Tanh, Identity, Flatten, Reshape, "
              "comp.quantize and a final Softmax/LogSoftmax")  # fmt: skip

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8  # Adam's defaults (Kingma & Ba)


@dataclass(frozen=True)
class RetrainPass(ModulePass):
    """Fine-tune the weights on training data, keeping the compression structure.

    The retraining steps of Deep Compression (Han, Mao & Dally, ICLR 2016): after
    pruning, the surviving weights are retrained with the pruned ones held at zero
    (masked retraining, section 2); after weight sharing, the shared values themselves
    are trained (trained quantization, section 3.3): the gradient of a centroid is the
    sum of the gradients of the weights in its cluster, and the cluster assignment
    (indices) and the mask stay fixed.

    Options:
      data     an .npz with the model's input arrays keyed by input name (as for
               `dlhwc run`) and the integer class labels (required).
      labels   the key of the labels in `data` (default "labels"): one label per row
               of the logits, i.e. shape = logits shape without the last axis.
      epochs   passes over the data (default 20).
      lr       Adam's learning rate (default 1e-3).
      batch    mini-batch size (default 64).
      seed     seed of the per-epoch shuffling (numpy default_rng; default 0).

    The loss is softmax cross-entropy on the logits: the input of a final Softmax or
    LogSoftmax over the last axis, or the function's single result when there is none.
    Training is mini-batch Adam, deterministic for a given seed and data file.

    What is trained: every Gemm/MatMul weight matrix, every Gemm bias and every constant
    operand of an Add (a MatMul's bias), each according to its form:
      comp.weight with values (pruned)  the values; pruned weights stay exactly zero
                                        (their gradient and update are masked)
      comp.weight with a codebook       the codebook entries; indices and mask are
                                        kept; an entry that is exactly 0.0 (the
                                        zero code of share-weights) stays 0.0
      onnx.Constant                     every element, densely
    The codebook is not re-sorted after training (the indices are kept as they are).
    The results are new comp.weight / onnx.Constant ops of the same structure; a
    Huffman record is dropped (it no longer applies). Run retrain before quantize:
    weights that already have a fixed-point format are refused.

    Scope: a module with one function, a feed-forward graph of Gemm (transA=0,
    alpha=beta=1), MatMul with a constant 2-D weight, Add, Relu, Sigmoid, Tanh,
    Identity, Flatten, Reshape and comp.quantize (treated as the identity:
    straight-through), ending in Softmax/LogSoftmax over the last axis or in logits.
    Anything else is refused.
    """

    name: ClassVar[str] = "retrain"
    lossy: ClassVar[bool] = True  # changes values on purpose: `verify` reports, not flags

    data: str
    labels: str = "labels"
    epochs: int = 20
    lr: float = 1e-3
    batch: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        # Checked at construction so that a bad -p fails before the model is imported.
        if not self.data:
            raise DlhwcError("retrain: option data must name an .npz of inputs and labels")
        for option, low in (("epochs", 1), ("batch", 1), ("seed", 0)):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DlhwcError(f"retrain: option {option}={value!r} must be an integer >= {low}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) or not self.lr > 0:
            raise DlhwcError(f"retrain: option lr={self.lr!r} must be a number > 0")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        fn = _single_function(op)
        _refuse_quantized(op)
        graph = _Graph(fn, _trainable_sources(op))
        # Read and check the data before changing anything: a bad file leaves the IR as is.
        args, labels = self._load(fn)
        graph.train(args, labels, self)
        graph.write_back()

    def _load(self, fn: func.FuncOp) -> tuple[list[np.ndarray], np.ndarray]:
        from compiler.fileio import load_arrays
        from runtime.interpreters.interpreter import check_inputs, input_names

        def error(reason: str) -> DlhwcError:
            return DlhwcError(f"retrain: {reason}", file=self.data)

        try:
            arrays = load_arrays(self.data)
        except DlhwcError as e:
            raise error(e.reason) from None
        if self.labels not in arrays:
            raise error(f"no labels '{self.labels}' (keys: {', '.join(sorted(arrays))})")
        labels = arrays[self.labels]
        inputs = {k: v for k, v in arrays.items() if k in input_names(fn)}
        try:
            args = check_inputs(fn, inputs)
        except DlhwcError as e:
            raise error(e.reason) from None
        if not np.issubdtype(labels.dtype, np.integer) or labels.ndim == 0:
            raise error(f"labels '{self.labels}' must be integer class numbers, one per row")
        rows = {a.shape[0] for a in args if a.ndim} | {labels.shape[0]}
        if len(rows) != 1:
            raise error(f"inputs and labels have different row counts {sorted(rows)}")
        if labels.shape[0] == 0:
            raise error("the data has no rows")
        return args, labels.astype(np.int64)


# -- scope checks ----------------------------------------------------------------------


def _single_function(module: ModuleOp) -> func.FuncOp:
    funcs = [o for o in module.walk() if isinstance(o, func.FuncOp)]
    if len(funcs) != 1:
        raise DlhwcError(f"retrain: the module has {len(funcs)} functions, retrain needs one")
    return funcs[0]


def _refuse_quantized(module: ModuleOp) -> None:
    for o in module.walk():
        if isinstance(o, comp.WeightOp) and o.format is not None:
            raise DlhwcError(
                f"retrain: weight '{o.node_name or '?'}' is already quantized "
                f"({o.fixed_format}): run retrain before quantize"
            )


def _describe(op: Operation) -> str:
    # A generic onnx.Node is named by its ONNX op type (onnx.Softplus), not by onnx.Node.
    what = f"onnx.{op.onnx_type}" if isinstance(op, onnx_d.NodeOp) else op.name
    name = getattr(op, "node_name", None)
    return f"{what} '{name}'" if name else what


def _rank(value: SSAValue) -> int | None:
    return len(value.type.get_shape()) if isinstance(value.type, TensorType) else None


def _is_weight(value: SSAValue) -> bool:
    return isinstance(value.owner, onnx_d.ConstantOp | comp.WeightOp)


def _trainable_sources(module: ModuleOp) -> list[Operation]:
    """The weight ops to train, in program order: the sources of every weight slot (Gemm
    and MatMul matrices, Gemm biases) and the constant operands of Adds (biases)."""
    sources: dict[Operation, None] = {}
    for slot in find_weights(module):
        sources[slot.source] = None
    for o in module.walk():
        if isinstance(o, onnx_d.AddOp):
            for v in o.operands:
                if _is_weight(v):
                    sources[v.owner] = None
    return list(sources)


# -- parameters ------------------------------------------------------------------------


class _Param:
    """One trained weight op: the array Adam updates and how it makes the dense weight.

    kind "dense": `train` is the tensor; "masked": `train` is the values (zero where
    pruned); "shared": `train` is the codebook, the tensor codebook[indices] under the mask.
    """

    def __init__(self, op: Operation):
        self.op = op
        self.mask = self.indices = None
        self.zero: np.ndarray | None = None  # codebook entries held at exactly 0.0
        if isinstance(op, onnx_d.ConstantOp):
            self.kind, train = "dense", op.to_array()
        else:
            self.mask = op.mask_array()
            if op.is_shared:
                self.kind, train = "shared", op.codebook_array()
                self.indices = op.indices_array().astype(np.intp)
                self.zero = train == 0
                # The surviving weights' positions and clusters, for the centroid gradients.
                self._where = np.flatnonzero(self.mask)
                self._cluster = self.indices.reshape(-1)[self._where]
            else:
                self.kind, train = "masked", op.values_array()
        if train.dtype != np.float32:
            raise DlhwcError(f"retrain: {_describe(op)} is {train.dtype}, not float32")
        self.train = np.array(train, dtype=np.float32)  # a writable copy
        if self.kind == "masked":
            self.train *= self.mask  # pruned values are zero, whatever the IR held there
        self.m = np.zeros_like(self.train)
        self.v = np.zeros_like(self.train)

    def dense(self) -> np.ndarray:
        if self.kind == "shared":
            return np.where(self.mask, self.train[self.indices], np.float32(0))
        return self.train

    def step(self, grad: np.ndarray, lr: float, t: int) -> None:
        """One Adam update from the gradient of the dense tensor."""
        if self.kind == "masked":
            grad = grad * self.mask
        elif self.kind == "shared":
            # A centroid's gradient is the sum of its surviving weights' gradients.
            flat = grad.reshape(-1)[self._where]
            grad = np.bincount(self._cluster, weights=flat, minlength=self.train.size)
            grad = grad.astype(np.float32)
        self.m *= _BETA1
        self.m += (1 - _BETA1) * grad
        self.v *= _BETA2
        self.v += (1 - _BETA2) * grad * grad
        m_hat = self.m / np.float32(1 - _BETA1**t)
        v_hat = self.v / np.float32(1 - _BETA2**t)
        self.train -= np.float32(lr) * m_hat / (np.sqrt(v_hat) + np.float32(_EPS))
        # Adam's update is zero where the gradient always was, but pin the structure
        # exactly rather than rely on that.
        if self.kind == "masked":
            self.train *= self.mask
        elif self.kind == "shared":
            self.train[self.zero] = 0.0

    def new_op(self) -> Operation:
        """The weight op holding the trained values, with the old op's structure."""
        op = self.op
        if self.kind == "dense":
            return onnx_d.ConstantOp(self.train.copy(), op.node_name)
        if self.kind == "masked":
            return comp.WeightOp.from_arrays(
                op.output.type, self.mask, values=self.train, node_name=op.node_name
            )
        bits = op.index_bits.value.data if op.index_bits is not None else None
        return comp.WeightOp.from_arrays(
            op.output.type,
            self.mask,
            codebook=self.train,
            indices=op.indices_array(),
            index_bits=bits,
            node_name=op.node_name,
        )


# -- the graph: forward, backward, training --------------------------------------------


class _Graph:
    """The function as a list of differentiable ops from its inputs to the logits."""

    def __init__(self, fn: func.FuncOp, sources: list[Operation]):
        self.fn = fn
        self.ops: list[Operation] = []
        self.constants: dict[SSAValue, np.ndarray | None] = {}
        self.params = {op.results[0]: _Param(op) for op in sources}
        ret = fn.body.block.last_op
        if not isinstance(ret, func.ReturnOp) or len(ret.operands) != 1:
            raise DlhwcError("retrain: the function must return one tensor (the class scores)")
        final = ret.operands[0].owner
        if isinstance(final, _FINAL):
            axis = final.onnx_attributes().get("axis", -1)
            rank = _rank(final.operands[0])
            if rank is None or axis not in (-1, rank - 1):
                raise DlhwcError(f"retrain: {_describe(final)} must be over the last axis")
            if len(list(final.results[0].uses)) != 1:
                raise DlhwcError(f"retrain: {_describe(final)} must be the last op")
            self.logits = final.operands[0]
        else:
            final, self.logits = None, ret.operands[0]
        for op in fn.body.block.ops:
            if op is ret or op is final:
                continue
            if isinstance(op, _LEAVES):
                if op.results[0] not in self.params:
                    array = None if isinstance(op, onnx_d.NoValueOp) else _leaf_value(op)
                    self.constants[op.results[0]] = array
                continue
            _check_op(op)
            self.ops.append(op)
        # Which values carry a gradient: the parameters and what is computed from them.
        self.needs = set(self.params)
        for op in self.ops:
            if any(v in self.needs for v in op.operands):
                self.needs.add(op.results[0])

    def forward(self, args: list[np.ndarray]) -> dict[SSAValue, np.ndarray]:
        from runtime.interpreters.interpreter import evaluate_op

        env: dict[SSAValue, np.ndarray | None] = dict(self.constants)
        env.update(zip(self.fn.body.block.args, args, strict=True))
        for value, param in self.params.items():
            env[value] = param.dense()
        for op in self.ops:
            operands = [env[v] for v in op.operands]
            if isinstance(op, comp.QuantizeOp):
                env[op.results[0]] = operands[0]  # straight-through: no rounding in training
            else:
                (env[op.results[0]],) = evaluate_op(op, operands)[:1]
        return env

    def backward(
        self, env: dict[SSAValue, np.ndarray], d_logits: np.ndarray
    ) -> dict[SSAValue, np.ndarray]:
        grads: dict[SSAValue, np.ndarray] = {self.logits: d_logits}
        for op in reversed(self.ops):
            g = grads.pop(op.results[0], None)
            if g is None:
                continue
            operands = list(op.operands)
            wanted = [v in self.needs for v in operands]
            values = [env[v] for v in operands]
            for v, d in zip(operands, _backward(op, values, env[op.results[0]], g, wanted),
                            strict=True):  # fmt: skip
                if d is None or v not in self.needs:
                    continue
                grads[v] = grads[v] + d if v in grads else d
        return grads

    def train(self, args: list[np.ndarray], labels: np.ndarray, options: RetrainPass) -> None:
        rng = np.random.default_rng(options.seed)
        rows = labels.shape[0]
        t = 0
        checked = False
        for _ in range(options.epochs):
            order = rng.permutation(rows)
            for start in range(0, rows, options.batch):
                idx = order[start : start + options.batch]
                env = self.forward([a[idx] for a in args])
                logits = env[self.logits]
                if not checked:
                    _check_labels(logits, labels, options)
                    checked = True
                grads = self.backward(env, _cross_entropy_grad(logits, labels[idx]))
                t += 1
                for value, param in self.params.items():
                    if value in grads:
                        param.step(grads[value], options.lr, t)

    def write_back(self) -> None:
        """Replace every trained weight op by one holding its trained values."""
        for value, param in self.params.items():
            new = param.new_op()
            old = param.op
            old.parent_block().insert_op_before(new, old)
            new.results[0].name_hint = value.name_hint
            value.replace_all_uses_with(new.results[0])
            erase_weight(old)


def _leaf_value(op: Operation) -> np.ndarray:
    return op.to_array() if isinstance(op, onnx_d.ConstantOp) else op.dense()


def _check_op(op: Operation) -> None:
    """Refuse an op outside retrain's scope, in one line."""
    if not isinstance(op, _COMPUTE + _SHAPE_ONLY):
        what = "must be the final op" if isinstance(op, _FINAL) else "is not supported"
        raise DlhwcError(f"retrain: {_describe(op)} {what} (retrain handles {_SUPPORTED})")
    if isinstance(op, onnx_d.GemmOp):
        attrs = op.onnx_attributes()
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1 or attrs.get("beta", 1.0) != 1:
            raise DlhwcError(f"retrain: {_describe(op)} needs transA=0 and alpha=beta=1")
    if isinstance(op, onnx_d.MatMulOp):
        a, b = op.operands
        weight = (_is_weight(b) and _rank(b) == 2) or (_is_weight(a) and _rank(a) == 2)
        if not weight or (_rank(a) or 0) < 2 or (_rank(b) or 0) < 2:
            raise DlhwcError(
                f"retrain: {_describe(op)} needs a constant 2-D weight and a data operand "
                "of rank >= 2"
            )
    if isinstance(op, onnx_d.ReshapeOp | onnx_d.FlattenOp | onnx_d.IdentityOp):
        if len(op.results) != 1:
            raise DlhwcError(f"retrain: {_describe(op)} must have one result")


def _check_labels(logits: np.ndarray, labels: np.ndarray, options: RetrainPass) -> None:
    if logits.ndim < 1 or labels.shape[1:] != logits.shape[1:-1]:
        raise DlhwcError(
            f"retrain: labels '{options.labels}' have shape {list(labels.shape)}, the logits "
            f"[N{''.join(f', {d}' for d in logits.shape[1:])}]: expected "
            f"[N{''.join(f', {d}' for d in logits.shape[1:-1])}]",
            file=options.data,
        )
    classes = logits.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise DlhwcError(
            f"retrain: labels '{options.labels}' must lie in 0..{classes - 1} "
            f"(found {labels.min()}..{labels.max()})",
            file=options.data,
        )


def _cross_entropy_grad(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The gradient of the mean softmax cross-entropy with respect to the logits."""
    z = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    np.put_along_axis(p, labels[..., None], np.take_along_axis(p, labels[..., None], -1) - 1, -1)
    return (p / np.float32(labels.size)).astype(np.float32, copy=False)


def _unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` over the axes numpy broadcast a tensor of ``shape`` along."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _backward(
    op: Operation, x: list, y: np.ndarray, g: np.ndarray, wanted: list[bool]
) -> list[np.ndarray | None]:
    """The gradients of the op's operands (None where not wanted) given the output's."""
    out: list[np.ndarray | None] = [None] * len(x)
    if isinstance(op, onnx_d.GemmOp):
        a, b = x[0], x[1]
        trans_b = op.onnx_attributes().get("transB", 0)
        if wanted[0]:
            out[0] = g @ b if trans_b else g @ b.T
        if wanted[1]:
            out[1] = g.T @ a if trans_b else a.T @ g
        if len(x) > 2 and x[2] is not None and wanted[2]:
            out[2] = _unbroadcast(g, x[2].shape)
    elif isinstance(op, onnx_d.MatMulOp):
        a, b = x
        if wanted[0]:
            out[0] = _unbroadcast(g @ np.swapaxes(b, -1, -2), a.shape)
        if wanted[1]:
            out[1] = _unbroadcast(np.swapaxes(a, -1, -2) @ g, b.shape)
    elif isinstance(op, onnx_d.AddOp):
        out = [_unbroadcast(g, v.shape) if w else None for v, w in zip(x, wanted, strict=True)]
    elif isinstance(op, onnx_d.ReluOp):
        out[0] = g * (x[0] > 0)
    elif isinstance(op, onnx_d.SigmoidOp):
        out[0] = g * y * (1 - y)
    elif isinstance(op, onnx_d.TanhOp):
        out[0] = g * (1 - y * y)
    else:  # _SHAPE_ONLY: the data operand only (a Reshape's shape has no gradient)
        out[0] = g.reshape(x[0].shape)
    return out
