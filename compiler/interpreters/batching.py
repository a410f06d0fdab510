"""When a function may run a large batch in chunks of rows, with the same results.

`rowwise(fn)` says whether every result row of ``fn`` depends only on the same row of
its inputs: then `run_module` streams a batch of many rows through the interpreter in
chunks (`CHUNK_ROWS`), so the memory a run needs beyond its inputs and outputs stays
bounded. The check is conservative: every argument has a dynamic first dimension (the
batch), every op is one whose rows are independent along axis 0 given its attributes
(the table below), its other operands are constants or weights that do not reach the
batch axis, and every result keeps the batch first. Anything else (a Shape op, a
reduction over the batch, a recurrent layer, a generic op) runs the batch whole.
"""

from __future__ import annotations

from typing import cast

from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from dlhwc.compiler.interpreters.segments import DATA_OPS
from dlhwc.dialects import comp, eie
from dlhwc.dialects import onnx as onnx_d

CHUNK_ROWS = 16384
"""The rows `run_module` runs at a time when a function is row-wise."""

_ELEMENTWISE = {
    "Relu", "Sigmoid", "Tanh", "Identity", "Dropout", "Cast", "Clip", "LeakyRelu", "Elu",
    "Selu", "Exp", "Log", "Sqrt", "Erf", "Neg", "Abs", "Floor", "Ceil", "Round", "Sign",
    "Softplus", "Softsign", "HardSigmoid", "HardSwish", "Gelu", "Mish", "Not", "Reciprocal",
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Where", "Equal", "Less", "Greater",
    "And", "Or", "PRelu",
}  # fmt: skip
_LAST_AXES = {"Softmax", "LogSoftmax", "Hardmax", "ArgMax", "ArgMin"}  # need axis != 0
_SPATIAL = {
    "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "BatchNormalization", "LRN", "InstanceNormalization",
}  # fmt: skip


def rowwise(fn: func.FuncOp) -> bool:
    """Whether ``fn``'s result rows depend only on the same rows of its arguments."""
    batched: set[SSAValue] = set()
    for arg in fn.body.block.args:
        if not isinstance(arg.type, TensorType) or not arg.type.get_shape():
            return False
        if arg.type.get_shape()[0] >= 0:
            return False
        batched.add(arg)
    for op in fn.body.block.ops:
        if isinstance(op, func.ReturnOp):
            return all(v in batched for v in op.operands)
        if isinstance(op, DATA_OPS):
            continue
        if not any(v in batched for v in op.operands):
            continue  # computes on constants alone
        if not _op_rowwise(op, batched):
            return False
        batched.update(r for r in op.results if isinstance(r.type, TensorType))
    return False


def _op_rowwise(op: Operation, batched: set[SSAValue]) -> bool:
    if isinstance(op, comp.QuantizeOp | eie.FCOp):
        return all(v in batched or isinstance(v.owner, DATA_OPS) for v in op.operands)
    if not isinstance(op, onnx_d.OnnxOp) or isinstance(op, onnx_d.NodeOp):
        return False
    kind = op.onnx_type
    attrs = op.onnx_attributes()
    ins = [v for v in op.operands if not isinstance(v.owner, onnx_d.NoValueOp)]
    rank = _rank(op.results[0]) if op.results else None
    first, rest = ins[0], ins[1:]
    if kind in _ELEMENTWISE:
        # Other operands must broadcast without reaching the batch axis.
        return rank is not None and all(
            v in batched or _broadcasts_below_batch(v, rank) for v in ins
        )
    if first not in batched or any(v in batched for v in rest):
        return False
    if kind in _LAST_AXES:
        # Only Softmax and LogSoftmax get here (the others are NodeOps): an integer axis.
        return rank is not None and cast(int, attrs.get("axis", -1)) % rank != 0
    if kind in _SPATIAL:
        return True
    if kind == "Gemm":
        return not attrs.get("transA", 0)
    if kind == "MatMul":
        first_rank = _rank(first)
        return first_rank is not None and first_rank >= 2
    if kind == "Flatten":
        return attrs.get("axis", 1) != 0
    return False


def _rank(value: SSAValue) -> int | None:
    return len(value.type.get_shape()) if isinstance(value.type, TensorType) else None


def _broadcasts_below_batch(value: SSAValue, rank: int) -> bool:
    """A constant that, broadcast to ``rank`` dimensions, has size 1 on axis 0."""
    if not isinstance(value.owner, DATA_OPS) or not isinstance(value.type, TensorType):
        return False
    shape = value.type.get_shape()
    return len(shape) < rank or (len(shape) == rank and shape[0] == 1)
