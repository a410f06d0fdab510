"""retrain: fine-tune the surviving weights after prune / share-weights (Deep Compression)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import AnyFloat, ArrayAttr, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from dlhwc.compiler.passes.retrain_rnn import (
    RecurrentSpec,
    prepare_recurrent,
    recurrent_backward,
    recurrent_forward,
)
from dlhwc.compiler.passes.weights import erase_weight, find_weights
from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d
from dlhwc.spec import progress
from dlhwc.spec.errors import DlhwcError

_LEAVES = (onnx_d.ConstantOp, comp.WeightOp, onnx_d.NoValueOp)
_RECURRENT = (onnx_d.LSTMOp, onnx_d.GRUOp, onnx_d.RNNOp)
_FINAL = (onnx_d.SoftmaxOp, onnx_d.LogSoftmaxOp)
# The ops of `_RULES` (at the end of the file), as the refusal message lists them.
_SUPPORTED = ("Gemm, MatMul, Conv, LSTM, GRU, RNN, Add, Relu, Sigmoid, Tanh, MaxPool, "
              "AveragePool, GlobalAveragePool, BatchNormalization, Concat, Identity, "
              "Dropout, Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Slice, Gather, "
              "Expand, comp.quantize and a final Softmax/LogSoftmax")  # fmt: skip

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
               `dlhwc run`) and the integer class labels (required). Mini-batches
               take samples along each input's batch axis: the dimension named like
               the first dimension of the model's output (its batch symbol: N of a
               time-major sequence [T, N, I]), else its first symbolic dimension,
               else its first axis.
      labels   the key of the labels in `data` (default "labels"): one label per row
               of the logits, i.e. shape = logits shape without the last axis.
      epochs   passes over the data (default 20).
      lr       Adam's learning rate (default 1e-3).
      batch    mini-batch size (default 64).
      seed     seed of the per-epoch shuffling (numpy default_rng; default 0).

    The loss is softmax cross-entropy on the logits: the input of a final Softmax or
    LogSoftmax over the last axis, or the function's single result when there is none.
    Training is mini-batch Adam, deterministic for a given seed and data file.

    What is trained: every Gemm/MatMul weight matrix, Conv kernel and LSTM/GRU/RNN W
    and R, every Gemm, Conv and recurrent bias, every constant operand of an Add (a
    MatMul's bias), and a recurrent op's constant initial_h / initial_c and peepholes P,
    each according to its form (a kernel [out, in/group, kh, kw] is masked and shared as
    prune and share-weights left it, as the matrix [out, in/group*kh*kw]; W and R as
    they left them, [directions, gates*hidden, in]):
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

    Scope: a module with one function whose ops, in a graph that may branch and join
    (residual connections: the gradients of a value's users are summed), are
      Gemm (any transA, transB, alpha, beta), MatMul with a constant 2-D weight, Add
        (of a bias or of two activations), Relu, Sigmoid, Tanh, Concat;
      Conv 2-D (NCHW): kernel_shape, strides, pads (also asymmetric), dilations, group
        (1, depthwise or any divisor), auto_pad NOTSET/VALID/SAME_UPPER/SAME_LOWER, with
        or without bias;
      MaxPool and AveragePool 2-D (the same window attributes, ceil_mode, AveragePool's
        count_include_pad; MaxPool's gradient goes to the maximum of each window, its
        Indices output must be unused), GlobalAveragePool;
      BatchNormalization in inference mode: its scale, bias, mean and var are constants
        held fixed (the backward pass sees the per-channel affine they make);
      LSTM, GRU and RNN (backpropagation through time, vectorized over the batch): every
        attribute of the ONNX ops (directions forward, reverse and bidirectional,
        layout 0 and 1, sequence_lens, initial_h/initial_c, peepholes, clip,
        input_forget, linear_before_reset, activations with their alpha and beta), any
        of their results used; a constant initial state must be one state shared by
        every sequence (batch dimension 1);
      Identity, Dropout (inference mode: the identity, in training too), Flatten,
        Reshape, Squeeze, Unsqueeze, Transpose, Slice, Gather, Expand (the layout ops
        PyTorch exports around recurrent layers), and comp.quantize (the identity in
        training: straight-through);
    ending in Softmax/LogSoftmax over the last axis or in logits. These rules apply to
    the data path (the float tensors computed from the inputs and the weights that
    lead to the logits), where anything else is refused, naming the op; the rest
    (shape arithmetic, and what it makes with constants, such as the zero initial
    states PyTorch builds from the input's batch size) runs forward only, in the
    reference interpreter. Conv, the pools, BatchNormalization and the recurrent ops are
    computed by retrain's own numpy kernels (im2col and matrix products; the recurrence
    keeps every step's gates for the backward pass), which agree with the reference
    interpreter to float32 rounding.
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
        args, axes, labels = self._load(fn)
        graph.train(args, axes, labels, self)
        graph.write_back()

    def _load(self, fn: func.FuncOp) -> tuple[list[np.ndarray], list, np.ndarray]:
        from dlhwc.compiler.functions import input_names
        from dlhwc.compiler.interpreters.interpreter import check_inputs
        from dlhwc.spec.fileio import load_arrays

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
        axes = _batch_axes(fn)
        rows = {a.shape[k] for a, k in zip(args, axes, strict=True) if k is not None}
        rows.add(labels.shape[0])
        if len(rows) != 1:
            raise error(f"inputs and labels have different sample counts {sorted(rows)}")
        if labels.shape[0] == 0:
            raise error("the data has no rows")
        return args, axes, labels.astype(np.int64)


# -- scope checks ----------------------------------------------------------------------


def _batch_axes(fn: func.FuncOp) -> list[int | None]:
    """Each input's batch axis (see the option `data`); None for a scalar."""

    def names(attrs, index: int) -> list[str]:
        entry = attrs.data[index].data.get("onnx.dim_params") if attrs is not None else None
        return [s.data for s in entry.data] if isinstance(entry, ArrayAttr) else []

    batch = (names(fn.res_attrs, 0) or [""])[0] if fn.function_type.outputs.data else ""
    axes: list[int | None] = []
    for i, arg in enumerate(fn.body.block.args):
        shape = arg.type.get_shape() if isinstance(arg.type, TensorType) else ()
        named = names(fn.arg_attrs, i)
        dynamic = [k for k, d in enumerate(shape) if d < 0]
        if not shape:
            axes.append(None)
        elif batch and named.count(batch) == 1:
            axes.append(named.index(batch))
        else:
            axes.append(dynamic[0] if dynamic else 0)
    return axes


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


def _is_float(value: SSAValue) -> bool:
    return isinstance(value.type, TensorType) and isinstance(
        value.type.get_element_type(), AnyFloat
    )


def _rank(value: SSAValue) -> int | None:
    return len(value.type.get_shape()) if isinstance(value.type, TensorType) else None


def _is_weight(value: SSAValue) -> bool:
    return isinstance(value.owner, onnx_d.ConstantOp | comp.WeightOp)


# The operands of a recurrent op that are trained when they are constants, besides its
# weight slots W, R and B: initial_h, initial_c and the LSTM's peepholes P.
_RECURRENT_EXTRAS = (5, 6, 7)


def _trainable_sources(module: ModuleOp) -> list[Operation]:
    """The weight ops to train, in program order: the sources of every weight slot (Gemm
    and MatMul matrices, Conv kernels, LSTM/GRU/RNN W and R, and their biases), the
    constant operands of Adds (biases) and the constant initial states and peepholes of
    recurrent ops."""
    sources: dict[Operation, None] = {}
    for slot in find_weights(module):
        sources[slot.source] = None
    for o in module.walk():
        if isinstance(o, onnx_d.AddOp):
            operands = list(o.operands)
        elif isinstance(o, _RECURRENT):
            operands = [v for i, v in enumerate(o.operands) if i in _RECURRENT_EXTRAS]
        else:
            continue
        for v in operands:
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


class _Env(dict):
    """The values of one forward pass by SSA value, and what each op saved for its
    backward pass (im2col patches, argmax positions) by op."""

    def __init__(self) -> None:
        super().__init__()
        self.saved: dict[Operation, object] = {}


class _Graph:
    """The function as a list of differentiable ops from its inputs to the logits.

    The ops are kept in program order, which is topological: the backward pass visits
    them in reverse, so a value used by several ops (a residual connection) has the
    gradients of all its users summed before its producer is reached.
    """

    def __init__(self, fn: func.FuncOp, sources: list[Operation]):
        self.fn = fn
        self.ops: list[Operation] = []
        self.specs: dict[Operation, object] = {}  # what `_Rule.prepare` read from each op
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
            self.ops.append(op)
        toward = self._toward_logits()
        # The data path: float tensors computed from the inputs or the parameters through
        # float tensors, on the way to the logits. Its ops need a rule; the others (shape
        # arithmetic, and what is made from it and from constants, such as the zero
        # initial states PyTorch builds from the input's batch size) run forward only,
        # in the reference interpreter.
        path = self._float_flow(set(fn.body.block.args) | set(self.params)) & toward
        for op in self.ops:
            if any(r in path for r in op.results):
                self.specs[op] = _rule(op).prepare(op)
        # Which values carry a gradient: the parameters and what is computed from them.
        self.needs = self._float_flow(set(self.params)) & toward

    def _float_flow(self, sources: set[SSAValue]) -> set[SSAValue]:
        """``sources`` and the float results of the ops that read a float value of the
        set (a Shape, an integer index, stops it)."""
        reached = {v for v in sources if _is_float(v)}
        for op in self.ops:
            if any(v in reached for v in op.operands):
                reached.update(r for r in op.results if _is_float(r))
        return reached

    def _toward_logits(self) -> set[SSAValue]:
        """The values the logits are computed from."""
        toward = {self.logits}
        for op in reversed(self.ops):
            if any(r in toward for r in op.results):
                toward.update(op.operands)
        return toward

    def forward(self, args: list[np.ndarray]) -> _Env:
        from dlhwc.compiler.interpreters.interpreter import evaluate_op

        env = _Env()
        env.update(self.constants)
        env.update(zip(self.fn.body.block.args, args, strict=True))
        for value, param in self.params.items():
            env[value] = param.dense()
        for op in self.ops:
            operands = [env[v] for v in op.operands]
            rule = _rule(op) if op in self.specs else None
            try:
                if rule is None or rule.forward is None:
                    results = evaluate_op(op, operands)
                else:
                    results, env.saved[op] = rule.forward(self.specs[op], operands)
                    if not rule.multi:
                        results = (results,)
            except DlhwcError:
                raise
            except Exception as e:  # noqa: BLE001 - numpy errors on bad data, named here
                raise DlhwcError(
                    f"retrain: {_describe(op)}: {type(e).__name__}: {' '.join(str(e).split())}"
                ) from None
            env.update(zip(op.results, results, strict=False))
        return env

    def backward(self, env: _Env, d_logits: np.ndarray) -> dict[SSAValue, np.ndarray]:
        grads: dict[SSAValue, np.ndarray] = {self.logits: d_logits}
        for op in reversed(self.ops):
            if op not in self.specs:
                continue
            rule = _rule(op)
            g = [grads.pop(r, None) for r in op.results]
            if all(d is None for d in g):
                continue
            y = [env.get(r) for r in op.results]
            if not rule.multi:
                y, g = y[0], g[0]
            operands = list(op.operands)
            wanted = [v in self.needs for v in operands]
            values = [env[v] for v in operands]
            step = _Step(self.specs[op], values, y, g, wanted, env.saved.get(op))
            for v, d in zip(operands, rule.backward(step), strict=True):
                if d is None or v not in self.needs:
                    continue
                grads[v] = grads[v] + d if v in grads else d
        return grads

    def train(
        self, args: list[np.ndarray], axes: list, labels: np.ndarray, options: RetrainPass
    ) -> None:
        """Mini-batch Adam: ``axes`` gives each input's batch axis (None: passed whole)."""
        rng = np.random.default_rng(options.seed)
        rows = labels.shape[0]
        t = 0
        checked = False
        for _ in progress.track(range(options.epochs), "retrain", unit="epochs"):
            order = rng.permutation(rows)
            for start in range(0, rows, options.batch):
                idx = order[start : start + options.batch]
                env = self.forward(
                    [
                        a if k is None else np.take(a, idx, axis=k)
                        for a, k in zip(args, axes, strict=True)
                    ]
                )
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


# -- the op table: what retrain differentiates, one rule per op type --------------------


@dataclass(frozen=True)
class _Step:
    """What an op's backward rule reads: its static spec, operand and result values, the
    gradient of its result, which operands want a gradient, and what its forward saved.
    For an op with several results (a rule with `multi`), y and g are lists, one entry
    per result, g None where a result has no gradient."""

    spec: object
    x: list
    y: np.ndarray | list
    g: np.ndarray | list
    wanted: list[bool]
    saved: object


_Grads = list[np.ndarray | None]


@dataclass(frozen=True)
class _Rule:
    """How retrain runs and differentiates one op type.

    prepare   checks the op is in scope (raising a one-line DlhwcError) and returns what
              forward and backward need from its attributes, read once
    forward   (spec, operands) -> (result, saved), or None for the reference
              interpreter's kernel (the ops whose backward needs nothing saved)
    backward  _Step -> the operands' gradients (None where not wanted)
    multi     the op has several results: forward returns a tuple of them, and the
              _Step holds lists
    """

    backward: Callable[[_Step], _Grads]
    forward: Callable[[object, list], tuple[object, object]] | None = None
    prepare: Callable[[Operation], object] = lambda op: None
    multi: bool = False


def _kind(op: Operation) -> str:
    """The key of an op's rule: the ONNX op type for the default domain."""
    if isinstance(op, comp.QuantizeOp):
        return "comp.quantize"
    if isinstance(op, onnx_d.OnnxOp) and op.onnx_domain in ("", "ai.onnx"):
        return op.onnx_type
    return op.name


def _rule(op: Operation) -> _Rule:
    rule = _RULES.get(_kind(op))
    if rule is None:
        what = "must be the final op" if isinstance(op, _FINAL) else "is not supported"
        raise DlhwcError(f"retrain: {_describe(op)} {what} (retrain handles {_SUPPORTED})")
    return rule


def _only_first_result(op: Operation) -> None:
    """Refuse an op whose other results (MaxPool's Indices, BatchNormalization's running
    statistics) are used: retrain computes and differentiates the first one only."""
    if any(r.uses for r in op.results[1:]):
        raise DlhwcError(f"retrain: {_describe(op)} must have only its first result used")


# Dense layers and element-wise ops (their forward is the reference interpreter's kernel).


def _prepare_gemm(op: Operation) -> tuple[bool, bool, float, float]:
    attrs = op.onnx_attributes()
    return (
        bool(attrs.get("transA", 0)),
        bool(attrs.get("transB", 0)),
        attrs.get("alpha", 1.0),
        attrs.get("beta", 1.0),
    )


def _gemm_backward(s: _Step) -> _Grads:
    """Y = alpha * op(A) @ op(B) + beta * C: the gradients of op(A) and op(B), transposed
    back where the op transposes."""
    trans_a, trans_b, alpha, beta = s.spec
    a, b = s.x[0], s.x[1]
    op_a, op_b = (a.T if trans_a else a), (b.T if trans_b else b)
    g = s.g * s.g.dtype.type(alpha) if alpha != 1 else s.g
    out: _Grads = [None] * len(s.x)
    if s.wanted[0]:
        d = g @ op_b.T
        out[0] = d.T if trans_a else d
    if s.wanted[1]:
        d = op_a.T @ g
        out[1] = d.T if trans_b else d
    if len(s.x) > 2 and s.x[2] is not None and s.wanted[2]:
        out[2] = _unbroadcast(s.g * s.g.dtype.type(beta) if beta != 1 else s.g, s.x[2].shape)
    return out


def _prepare_matmul(op: Operation) -> None:
    a, b = op.operands
    weight = (_is_weight(b) and _rank(b) == 2) or (_is_weight(a) and _rank(a) == 2)
    if not weight or (_rank(a) or 0) < 2 or (_rank(b) or 0) < 2:
        raise DlhwcError(
            f"retrain: {_describe(op)} needs a constant 2-D weight and a data operand of rank >= 2"
        )


def _matmul_backward(s: _Step) -> _Grads:
    a, b = s.x
    return [
        _unbroadcast(s.g @ np.swapaxes(b, -1, -2), a.shape) if s.wanted[0] else None,
        _unbroadcast(np.swapaxes(a, -1, -2) @ s.g, b.shape) if s.wanted[1] else None,
    ]


def _add_backward(s: _Step) -> _Grads:
    # Either operand may be an activation (a residual connection) or a bias.
    return [_unbroadcast(s.g, v.shape) if w else None for v, w in zip(s.x, s.wanted, strict=True)]


def _relu_backward(s: _Step) -> _Grads:
    return [s.g * (s.x[0] > 0)]


def _sigmoid_backward(s: _Step) -> _Grads:
    return [s.g * s.y * (1 - s.y)]


def _tanh_backward(s: _Step) -> _Grads:
    return [s.g * (1 - s.y * s.y)]


def _prepare_shape_only(op: Operation) -> None:
    if len(op.results) != 1:
        raise DlhwcError(f"retrain: {_describe(op)} must have one result")


def _shape_only_backward(s: _Step) -> _Grads:
    # The data operand only: a Reshape's shape has no gradient. comp.quantize is the
    # identity in training (a straight-through estimator).
    return [s.g.reshape(s.x[0].shape)] + [None] * (len(s.x) - 1)


def _straight_through(spec: None, x: list) -> tuple[np.ndarray, object]:
    """comp.quantize in training: no rounding (a straight-through estimator)."""
    return x[0], None


def _prepare_dropout(op: onnx_d.OnnxOp) -> None:
    """Dropout in inference mode, the identity, as the reference interpreter runs it;
    retrain does not drop units while training either."""
    _only_first_result(op)
    mode = op.onnx_input(2)  # training_mode (the op may also be a generic onnx.Node)
    if mode is not None:
        if not isinstance(mode.owner, onnx_d.NoValueOp) and (
            not isinstance(mode.owner, onnx_d.ConstantOp) or mode.owner.to_array().any()
        ):
            raise DlhwcError(f"retrain: {_describe(op)} must be in inference mode")


def _prepare_transpose(op: Operation) -> list[int] | None:
    return op.onnx_attributes().get("perm")


def _transpose_backward(s: _Step) -> _Grads:
    perm = s.spec if s.spec is not None else list(reversed(range(s.g.ndim)))
    return [np.transpose(s.g, np.argsort(perm))]


def _prepare_moved(op: Operation) -> Operation:
    _prepare_shape_only(op)
    return op


def _moved_backward(s: _Step) -> _Grads:
    """Slice, Gather and Expand take (or repeat) elements of their data operand: each
    element's gradient is the sum of the gradients where the op put it, found by running
    the op on the elements' positions instead of their values."""
    from dlhwc.compiler.interpreters.interpreter import evaluate_op

    data = s.x[0]
    positions = np.arange(data.size).reshape(data.shape)
    moved = evaluate_op(s.spec, [positions, *s.x[1:]])[0]
    d = np.bincount(moved.reshape(-1), weights=s.g.reshape(-1), minlength=data.size)
    return [d.reshape(data.shape).astype(s.g.dtype)] + [None] * (len(s.x) - 1)


def _prepare_recurrent(op: Operation) -> RecurrentSpec:
    return prepare_recurrent(op, _kind(op), lambda i: _is_weight(op.operands[i]))


def _recurrent_backward(s: _Step) -> _Grads:
    return recurrent_backward(s.spec, s.x, s.g, s.wanted, s.saved)


def _prepare_concat(op: Operation) -> int:
    return op.onnx_attributes()["axis"]


def _concat_backward(s: _Step) -> _Grads:
    axis = s.spec % s.g.ndim
    ends = np.cumsum([v.shape[axis] for v in s.x])[:-1]
    parts = np.split(s.g, ends, axis=axis)
    return [p if w else None for p, w in zip(parts, s.wanted, strict=True)]


# Convolutions and pooling over NCHW images, by im2col: a window view of the padded
# input ([N, C, OH, OW, kh, kw]) for the forward pass and its adjoint (`_fold`, a sum
# over the kh*kw kernel offsets) for the backward pass.


@dataclass(frozen=True)
class _Window:
    """The sliding window of a 2-D Conv, MaxPool or AveragePool, from its ONNX attributes."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]  # ONNX order: begin H, begin W, end H, end W
    auto_pad: str
    ceil_mode: bool

    def extent(self, axis: int) -> int:
        return (self.kernel[axis] - 1) * self.dilations[axis] + 1

    def layout(self, size: tuple[int, ...]) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        """For an input of spatial ``size``: per axis the (begin, end) padding, the output
        size, and the rows past the end padding that ceil_mode's last window reaches
        (read as fill, never counted as padding by AveragePool)."""
        pads, outs, extra = [], [], []
        for axis in (0, 1):
            n, k, s = size[axis], self.extent(axis), self.strides[axis]
            if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                out = -(-n // s)
                total = max(0, (out - 1) * s + k - n)
                # An odd total puts the extra row at the end (UPPER) or the beginning.
                low = total // 2 if self.auto_pad == "SAME_UPPER" else total - total // 2
                begin, end = low, total - low
            else:
                begin, end = (0, 0) if self.auto_pad == "VALID" else self.pads[axis::2]
                span = n + begin + end - k
                out = span // s + 1
                if self.ceil_mode:
                    out = -(-span // s) + 1
                    if (out - 1) * s >= n + begin:  # a last window starting in the padding
                        out -= 1
            if out < 1:
                raise DlhwcError(f"retrain: a window of {k} does not fit an input of {n}")
            pads.append((begin, end))
            outs.append(out)
            extra.append(max(0, (out - 1) * s + k - (n + begin + end)))
        return pads, outs, extra


def _prepare_window(op: Operation, kernel: list[int] | None, pooling: bool) -> _Window:
    attrs = op.onnx_attributes()
    if _rank(op.operands[0]) != 4:
        raise DlhwcError(f"retrain: {_describe(op)} must be 2-D (an NCHW input of rank 4)")
    kernel = attrs.get("kernel_shape", kernel)
    strides = attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    pads = attrs.get("pads", [0, 0, 0, 0])
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise DlhwcError(f"retrain: {_describe(op)} has an unknown auto_pad '{auto_pad}'")
    shapes = (kernel, strides, dilations, pads)
    if kernel is None or [len(v) for v in shapes] != [2, 2, 2, 4] or min(pads) < 0:
        raise DlhwcError(f"retrain: {_describe(op)} must have a 2-D kernel and pads >= 0")
    if not pooling and attrs.get("ceil_mode", 0):
        raise DlhwcError(f"retrain: {_describe(op)} has no ceil_mode")
    return _Window(
        tuple(kernel), tuple(strides), tuple(dilations), tuple(pads), auto_pad,
        bool(attrs.get("ceil_mode", 0)),
    )  # fmt: skip


def _windows(
    x: np.ndarray, window: _Window, fill: float
) -> tuple[np.ndarray, tuple[int, ...], list[tuple[int, int]]]:
    """The view [N, C, OH, OW, kh, kw] of the windows over ``x`` padded with ``fill``,
    the padded shape, and the (begin, end + ceil_mode's extra) padding per axis."""
    pads, (oh, ow), extra = window.layout(x.shape[2:])
    pads = [(b, e + more) for (b, e), more in zip(pads, extra, strict=True)]
    padded = np.pad(x, ((0, 0), (0, 0), *pads), constant_values=fill)
    (sh, sw), (dh, dw) = window.strides, window.dilations
    view = sliding_window_view(padded, (window.extent(0), window.extent(1)), axis=(2, 3))
    view = view[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, ::dh, ::dw]
    return view, padded.shape, pads


def _fold(d: np.ndarray, padded: tuple[int, ...], pads: list, window: _Window) -> np.ndarray:
    """The adjoint of `_windows`: ``d`` [N, C, OH, OW, kh, kw] summed back onto the
    positions each window read, cropped to the unpadded input."""
    out = np.zeros(padded, d.dtype)
    _, _, oh, ow, kh, kw = d.shape
    (sh, sw), (dh, dw) = window.strides, window.dilations
    for i in range(kh):  # one vectorized sum per kernel offset
        for j in range(kw):
            rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
            cols = slice(j * dw, j * dw + (ow - 1) * sw + 1, sw)
            out[:, :, rows, cols] += d[:, :, :, :, i, j]
    (top, bottom), (left, right) = pads
    return out[:, :, top : padded[2] - bottom, left : padded[3] - right]


@dataclass(frozen=True)
class _ConvSpec:
    window: _Window
    group: int


def _prepare_conv(op: Operation) -> _ConvSpec:
    w_shape = op.operands[1].type.get_shape() if _rank(op.operands[1]) == 4 else None
    if w_shape is None:
        raise DlhwcError(f"retrain: {_describe(op)} must be 2-D (a kernel of rank 4)")
    window = _prepare_window(op, list(w_shape[2:]), pooling=False)
    if window.kernel != tuple(w_shape[2:]):
        raise DlhwcError(f"retrain: {_describe(op)} has kernel_shape unlike its weight's")
    group = op.onnx_attributes().get("group", 1)
    if group < 1 or w_shape[0] % group:
        raise DlhwcError(f"retrain: {_describe(op)}: group {group} does not divide its outputs")
    return _ConvSpec(window, group)


def _conv_forward(spec: _ConvSpec, x: list) -> tuple[np.ndarray, object]:
    """Y = W * X + B as one matrix product per group over im2col columns [K, N*OH*OW]
    (K = C/group * kh * kw, the order of the weight's rows as `to_rows` sees them)."""
    data, w = x[0], x[1]
    bias = x[2] if len(x) > 2 else None
    view, padded, pads = _windows(data, spec.window, 0)
    n, c, oh, ow, kh, kw = view.shape
    group, m = spec.group, w.shape[0]
    cols = view.reshape(n, group, c // group, oh, ow, kh, kw).transpose(1, 2, 5, 6, 0, 3, 4)
    cols = cols.reshape(group, -1, n * oh * ow)
    y = w.reshape(group, m // group, -1) @ cols  # [group, M/group, N*OH*OW]
    y = y.reshape(m, n, oh, ow).transpose(1, 0, 2, 3)
    if bias is not None:
        y = y + bias.reshape(1, m, 1, 1)
    return np.ascontiguousarray(y), (cols, padded, pads)


def _conv_backward(s: _Step) -> _Grads:
    data, w = s.x[0], s.x[1]
    cols, padded, pads = s.saved
    group, (n, c) = s.spec.group, data.shape[:2]
    m, _, kh, kw = w.shape
    oh, ow = s.g.shape[2:]
    gy = s.g.transpose(1, 0, 2, 3).reshape(group, m // group, -1)
    out: _Grads = [None] * len(s.x)
    if s.wanted[0]:
        d = w.reshape(group, m // group, -1).transpose(0, 2, 1) @ gy  # [group, K, N*OH*OW]
        d = d.reshape(group, c // group, kh, kw, n, oh, ow).transpose(4, 0, 1, 5, 6, 2, 3)
        out[0] = _fold(d.reshape(n, c, oh, ow, kh, kw), padded, pads, s.spec.window)
    if s.wanted[1]:
        out[1] = (gy @ cols.transpose(0, 2, 1)).reshape(w.shape)
    if len(s.x) > 2 and s.x[2] is not None and s.wanted[2]:
        out[2] = s.g.sum(axis=(0, 2, 3))
    return out


def _prepare_maxpool(op: Operation) -> _Window:
    _only_first_result(op)
    return _prepare_window(op, None, pooling=True)


def _maxpool_forward(window: _Window, x: list) -> tuple[np.ndarray, object]:
    view, padded, pads = _windows(x[0], window, -np.inf)
    flat = view.reshape(*view.shape[:4], -1)
    arg = flat.argmax(axis=-1)[..., None]
    return np.take_along_axis(flat, arg, -1)[..., 0], (arg, view.shape, padded, pads)


def _maxpool_backward(s: _Step) -> _Grads:
    """Each output's gradient goes to the input its window took the maximum from."""
    arg, shape, padded, pads = s.saved
    d = np.zeros((*shape[:4], shape[4] * shape[5]), s.g.dtype)
    np.put_along_axis(d, arg, s.g[..., None], -1)
    return [_fold(d.reshape(shape), padded, pads, s.spec)]


@dataclass(frozen=True)
class _AveragePoolSpec:
    window: _Window
    count_include_pad: bool


def _prepare_averagepool(op: Operation) -> _AveragePoolSpec:
    window = _prepare_window(op, None, pooling=True)
    return _AveragePoolSpec(window, bool(op.onnx_attributes().get("count_include_pad", 0)))


def _pool_counts(spec: _AveragePoolSpec, size: tuple[int, ...]) -> np.ndarray:
    """The divisor of each output [OH, OW]: the window's input positions, plus with
    count_include_pad its padding (but not ceil_mode's overhang), as ONNX defines it."""
    window = spec.window
    pads, _, extra = window.layout(size)
    inside = np.pad(np.ones(size), pads, constant_values=float(spec.count_include_pad))
    inside = np.pad(inside, [(0, e) for e in extra])[None, None]
    unpadded = _Window(window.kernel, window.strides, window.dilations, (0, 0, 0, 0),
                       "VALID", False)  # fmt: skip
    view, _, _ = _windows(inside, unpadded, 0)
    return view.sum(axis=(-2, -1))[0, 0]


def _averagepool_forward(spec: _AveragePoolSpec, x: list) -> tuple[np.ndarray, object]:
    view, padded, pads = _windows(x[0], spec.window, 0)
    counts = _pool_counts(spec, x[0].shape[2:]).astype(x[0].dtype)
    return view.sum(axis=(-2, -1)) / counts, (counts, view.shape, padded, pads)


def _averagepool_backward(s: _Step) -> _Grads:
    counts, shape, padded, pads = s.saved
    d = np.broadcast_to((s.g / counts)[..., None, None], shape)
    return [_fold(d, padded, pads, s.spec.window)]


def _global_average_pool_forward(spec: None, x: list) -> tuple[np.ndarray, object]:
    return x[0].mean(axis=tuple(range(2, x[0].ndim)), keepdims=True), None


def _global_average_pool_backward(s: _Step) -> _Grads:
    size = np.prod(s.x[0].shape[2:])
    return [np.broadcast_to(s.g / s.g.dtype.type(size), s.x[0].shape)]


def _prepare_batchnorm(op: Operation) -> float:
    attrs = op.onnx_attributes()
    if attrs.get("training_mode", 0) or not attrs.get("spatial", 1):
        raise DlhwcError(f"retrain: {_describe(op)} must be in inference mode, per channel")
    if not all(_is_weight(v) for v in op.operands[1:]):
        raise DlhwcError(f"retrain: {_describe(op)} needs constant scale, bias, mean and var")
    _only_first_result(op)
    return attrs.get("epsilon", 1e-5)


def _batchnorm_affine(epsilon: float, x: list) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode BatchNormalization as the per-channel affine Y = a * X + b."""
    scale, bias, mean, var = x[1:5]
    shape = (1, -1) + (1,) * (x[0].ndim - 2)
    a = scale / np.sqrt(var + np.float32(epsilon))
    return a.reshape(shape), (bias - mean * a).reshape(shape)


def _batchnorm_forward(epsilon: float, x: list) -> tuple[np.ndarray, object]:
    a, b = _batchnorm_affine(epsilon, x)
    return (x[0] * a + b).astype(np.result_type(x[0], a), copy=False), a


def _batchnorm_backward(s: _Step) -> _Grads:
    # The statistics and the affine parameters are held fixed: only X gets a gradient.
    return [s.g * s.saved] + [None] * (len(s.x) - 1)


_RULES: dict[str, _Rule] = {
    "Gemm": _Rule(_gemm_backward, prepare=_prepare_gemm),
    "MatMul": _Rule(_matmul_backward, prepare=_prepare_matmul),
    "Add": _Rule(_add_backward),
    "Relu": _Rule(_relu_backward),
    "Sigmoid": _Rule(_sigmoid_backward),
    "Tanh": _Rule(_tanh_backward),
    "Identity": _Rule(_shape_only_backward, prepare=_prepare_shape_only),
    "Flatten": _Rule(_shape_only_backward, prepare=_prepare_shape_only),
    "Reshape": _Rule(_shape_only_backward, prepare=_prepare_shape_only),
    "Squeeze": _Rule(_shape_only_backward, prepare=_prepare_shape_only),
    "Unsqueeze": _Rule(_shape_only_backward, prepare=_prepare_shape_only),
    "Transpose": _Rule(_transpose_backward, prepare=_prepare_transpose),
    "Slice": _Rule(_moved_backward, prepare=_prepare_moved),
    "Gather": _Rule(_moved_backward, prepare=_prepare_moved),
    "Expand": _Rule(_moved_backward, prepare=_prepare_moved),
    "comp.quantize": _Rule(_shape_only_backward, _straight_through),
    "Dropout": _Rule(_shape_only_backward, _straight_through, _prepare_dropout),
    "Concat": _Rule(_concat_backward, prepare=_prepare_concat),
    "Conv": _Rule(_conv_backward, _conv_forward, _prepare_conv),
    "MaxPool": _Rule(_maxpool_backward, _maxpool_forward, _prepare_maxpool),
    "AveragePool": _Rule(_averagepool_backward, _averagepool_forward, _prepare_averagepool),
    "GlobalAveragePool": _Rule(_global_average_pool_backward, _global_average_pool_forward),
    "BatchNormalization": _Rule(_batchnorm_backward, _batchnorm_forward, _prepare_batchnorm),
    "LSTM": _Rule(_recurrent_backward, recurrent_forward, _prepare_recurrent, multi=True),
    "GRU": _Rule(_recurrent_backward, recurrent_forward, _prepare_recurrent, multi=True),
    "RNN": _Rule(_recurrent_backward, recurrent_forward, _prepare_recurrent, multi=True),
}
