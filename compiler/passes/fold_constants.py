"""fold-constants: fold what is known at compile time and drop the exporters' shape noise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from dlhwc.dialects import onnx as onnx_d

# Ops whose results are never folded: recurrent layers are the model, not noise, and
# generic nodes may be non-deterministic or have non-tensor results.
_NEVER_FOLD = (onnx_d.LSTMOp, onnx_d.GRUOp, onnx_d.RNNOp, onnx_d.NodeOp, onnx_d.ConstantOp,
               onnx_d.NoValueOp)  # fmt: skip
# Ops that only move or reinterpret the elements of their first input.
_LAYOUT_OPS = (onnx_d.ReshapeOp, onnx_d.TransposeOp, onnx_d.SqueezeOp, onnx_d.UnsqueezeOp,
               onnx_d.SliceOp, onnx_d.IdentityOp, onnx_d.FlattenOp, onnx_d.ExpandOp)  # fmt: skip
# The operands that hold a layer's weights (matrices, kernels, biases), by op: a constant
# computed for one of them is folded whatever its size (the compression passes and the
# lowerings work only on constant weights).
_WEIGHT_OPERANDS = {onnx_d.GemmOp: (1, 2), onnx_d.MatMulOp: (0, 1), onnx_d.LSTMOp: (1, 2, 3, 7),
                    onnx_d.GRUOp: (1, 2, 3), onnx_d.RNNOp: (1, 2, 3)}  # fmt: skip
_GENERIC_WEIGHT_OPERANDS = {"Conv": (1, 2), "ConvTranspose": (1, 2)}


@dataclass(frozen=True)
class FoldConstantsPass(ModulePass):
    """Fold everything computable at compile time, then delete what is no longer used.

    - an op whose inputs are all constants becomes a constant (evaluated by the
      reference kernels), unless its result has more than `max-elements` elements and
      is not a weight: a result that feeds a weight operand (of Gemm, MatMul, LSTM, GRU,
      RNN, Conv), directly or through layout ops and casts, folds whatever its size, so
      that weights built by constant subgraphs (ConstantOfShape, Transpose of an
      initializer, ...) become the constants the compression passes work on;
    - shape arithmetic is tracked element by element: `Shape` of a tensor gives its
      static dimensions even when others are symbolic, and `Gather`, `Slice`, `Concat`,
      `Squeeze`, `Unsqueeze`, `Cast` and `Mul` over such vectors fold as far as they are
      known; a `Reshape` whose target keeps symbolic input dimensions in place gets a
      constant target with 0 there (ONNX's "copy this dimension");
    - an all-zero initial state of an LSTM, GRU or RNN (ConstantOfShape or Expand of
      zero, through layout ops) is replaced by no value, which ONNX defines as zero;
    - `Identity`, inference `Dropout` and a `Cast` to the type it already has are bypassed;
    - ops without uses are deleted.

    This turns a PyTorch-exported LSTM or GRU into its recurrent op and the layers
    around it.
    """

    name: ClassVar[str] = "fold-constants"

    max_elements: int = 1 << 24

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for fn in op.walk():
            if isinstance(fn, func.FuncOp):
                _Folder(self.max_elements, fn).run()


# A shape vector element: a known int, or the symbolic dimension `index` of `value`.
_Dim = int | tuple[SSAValue, int]


class _Folder:
    def __init__(self, max_elements: int, fn: func.FuncOp):
        self.max_elements = max_elements
        self.block = fn.body.block
        self.shapes: dict[SSAValue, list[_Dim]] = {}

    def run(self) -> None:
        changed = True
        while changed:
            changed = False
            for op in list(self.block.ops):
                if op.parent is None:
                    continue
                changed |= self.visit(op)
            changed |= self.delete_dead()

    # -- per-op rules --------------------------------------------------------------

    def visit(self, op: Operation) -> bool:
        if isinstance(op, onnx_d.IdentityOp | onnx_d.DropoutOp) and self._bypass(op):
            return True
        if isinstance(op, onnx_d.CastOp) and op.input.type == op.results[0].type:
            op.results[0].replace_all_uses_with(op.input)  # a cast to its own type
            return True
        if isinstance(op, onnx_d.LSTMOp | onnx_d.GRUOp | onnx_d.RNNOp):
            return self._zero_states(op)
        if isinstance(op, _NEVER_FOLD) or not isinstance(op, onnx_d.OnnxOp):
            return False
        values = [self.constant_value(v) for v in op.operands]
        if all(v is not None or isinstance(o.type, onnx_d.NoneType)
               for v, o in zip(values, op.operands, strict=True)):  # fmt: skip
            return self._fold(op, values)
        vector = self._shape_vector(op)
        if vector is not None:
            self.shapes[op.results[0]] = vector
            if all(isinstance(d, int) for d in vector):
                return self._replace_by_constant(op, [np.array(vector, dtype=np.int64)])
        if isinstance(op, onnx_d.ReshapeOp):
            return self._reshape_in_place(op)
        return False

    def _bypass(self, op: onnx_d.IdentityOp | onnx_d.DropoutOp) -> bool:
        source = op.input if isinstance(op, onnx_d.IdentityOp) else op.data
        if source.type != op.results[0].type:
            return False  # the op also carries a type refinement (e.g. to a return)
        if isinstance(op, onnx_d.DropoutOp):
            if op.training_mode is not None or (len(op.results) > 1 and op.results[1].uses):
                return False
        op.results[0].replace_all_uses_with(source)
        return True

    def _fold(self, op: onnx_d.OnnxOp, values: list) -> bool:
        from dlhwc.compiler.interpreters.interpreter import evaluate_op as evaluate

        for r in op.results:
            if isinstance(r.type, TensorType) and _num_elements(r.type) > self.max_elements:
                if not feeds_weight(r):
                    return False
        try:
            results = evaluate(op, values)
        except Exception:  # noqa: BLE001 - leave what cannot be evaluated to run time
            return False
        return self._replace_by_constant(op, results)

    def _replace_by_constant(self, op: Operation, arrays: list) -> bool:
        for result, array in zip(op.results, arrays, strict=False):
            if not result.uses:
                continue
            const = onnx_d.ConstantOp(np.asarray(array), getattr(op, "node_name", None))
            if const.outputs[0].type != result.type and not _compatible(result.type, const):
                return False
            self.block.insert_op_before(const, op)
            const.outputs[0].name_hint = result.name_hint
            result.replace_all_uses_with(const.outputs[0])
        return True

    def constant_value(self, value: SSAValue):
        owner = value.owner
        if isinstance(owner, onnx_d.ConstantOp):
            return owner.to_array()
        return None

    # -- shape vectors -------------------------------------------------------------

    def vector(self, value: SSAValue) -> list[_Dim] | None:
        if value in self.shapes:
            return self.shapes[value]
        const = self.constant_value(value)
        if const is not None and const.dtype == np.int64 and const.ndim <= 1:
            return [int(v) for v in const.reshape(-1)]
        return None

    def _shape_vector(self, op: onnx_d.OnnxOp) -> list[_Dim] | None:
        if isinstance(op, onnx_d.ShapeOp):
            typ = op.data.type
            if not isinstance(typ, TensorType):
                return None
            shape = typ.get_shape()
            dims = [d if d >= 0 else (op.data, i) for i, d in enumerate(shape)]
            attrs = op.onnx_attributes()
            return _slice_list(dims, attrs.get("start", 0), attrs.get("end"))
        if isinstance(op, onnx_d.CastOp | onnx_d.SqueezeOp | onnx_d.UnsqueezeOp):
            source = self.vector(op.input if isinstance(op, onnx_d.CastOp) else op.data)
            if source is None or len(source) != 1:
                return None
            return list(source)
        if isinstance(op, onnx_d.GatherOp):
            source, index = self.vector(op.data), self.constant_value(op.indices)
            if source is None or index is None or index.ndim > 1:
                return None
            return [source[int(i)] for i in index.reshape(-1)]
        if isinstance(op, onnx_d.SliceOp) and op.steps is None:
            source = self.vector(op.data)
            starts, ends = self.constant_value(op.starts), self.constant_value(op.ends)
            if source is None or starts is None or ends is None:
                return None
            return _slice_list(source, int(starts[0]), int(ends[0]))
        if isinstance(op, onnx_d.ConcatOp):
            parts = [self.vector(v) for v in op.operands]
            if any(p is None for p in parts):
                return None
            return [d for p in parts for d in p]
        if isinstance(op, onnx_d.MulOp):
            a, b = self.vector(op.A), self.vector(op.B)
            if a is None or b is None or len(a) != len(b):
                return None
            if all(isinstance(d, int) for d in a + b):
                return [x * y for x, y in zip(a, b, strict=True)]
        return None

    def _reshape_in_place(self, op: onnx_d.ReshapeOp) -> bool:
        target = self.vector(op.shape)
        if target is None or all(isinstance(d, int) for d in target):
            return False
        if op.onnx_attributes().get("allowzero", 0):
            return False
        source = op.data
        shape = []
        for i, d in enumerate(target):
            if isinstance(d, int):
                if d == 0:
                    return False  # already means "copy", keep the rule simple
                shape.append(d)
            elif d == (source, i) or self._same_dim(d, source, i):
                shape.append(0)
            else:
                return False
        if sum(1 for d in shape if d == -1) > 1:
            return False
        const = onnx_d.ConstantOp(np.array(shape, dtype=np.int64), None)
        self.block.insert_op_before(const, op)
        op.operands[1] = const.outputs[0]  # shape (named operands are read-only)
        return True

    def _same_dim(self, dim: tuple[SSAValue, int], value: SSAValue, index: int) -> bool:
        # The same dimension seen through ops that keep it at the same position.
        seen, i = dim
        while seen is not value:
            owner = seen.owner
            if isinstance(owner, onnx_d.TransposeOp):
                perm = owner.onnx_attributes().get("perm")
                if perm is None:
                    return False
                seen, i = owner.data, perm[i]
            elif isinstance(owner, onnx_d.IdentityOp | onnx_d.ReluOp | onnx_d.SigmoidOp
                            | onnx_d.TanhOp):  # fmt: skip
                seen = owner.operands[0]
            else:
                return False
        return i == index

    # -- recurrent initial states ----------------------------------------------------

    def _zero_states(self, op: onnx_d.OnnxOp) -> bool:
        changed = False
        for i in (5, 6):  # initial_h, initial_c
            if i < len(op.operands) and self._is_zero_fill(op.operands[i]):
                op.operands[i] = self._no_value(op)
                changed = True
        while op.operands and isinstance(op.operands[-1].owner, onnx_d.NoValueOp):
            op.set_inputs(list(op.operands)[:-1])
            changed = True
        return changed

    def _is_zero_fill(self, value: SSAValue) -> bool:
        owner = value.owner
        if isinstance(owner, onnx_d.NoValueOp):
            return False
        const = self.constant_value(value)
        if const is not None:
            return const.dtype.kind == "f" and not np.any(const)
        if isinstance(owner, onnx_d.ConstantOfShapeOp):
            fill = owner.onnx_attributes().get("value")
            return fill is None or not np.any(fill)
        if isinstance(owner, _LAYOUT_OPS):
            return self._is_zero_fill(owner.operands[0])
        return False

    def _no_value(self, before: Operation) -> SSAValue:
        for op in self.block.ops:
            if isinstance(op, onnx_d.NoValueOp):
                if op.is_before_in_block(before):
                    return op.results[0]
                break
        none = onnx_d.NoValueOp()
        self.block.insert_op_before(none, before)
        none.results[0].name_hint = "none"
        return none.results[0]

    # -- dead code -----------------------------------------------------------------

    def delete_dead(self) -> bool:
        changed = False
        for op in reversed(list(self.block.ops)):
            if isinstance(op, onnx_d.OnnxOp) and all(not r.uses for r in op.results):
                self.shapes.pop(op.results[0], None) if op.results else None
                op.detach()
                op.erase()
                changed = True
        return changed


def feeds_weight(value: SSAValue) -> bool:
    """Whether ``value`` is a weight operand of a layer, directly or through ops that only
    move, reinterpret or cast its elements (see `_WEIGHT_OPERANDS`)."""
    for use in value.uses:
        user = use.operation
        if isinstance(user, onnx_d.NodeOp):
            generic = _GENERIC_WEIGHT_OPERANDS if user.onnx_domain == "" else {}
            positions = generic.get(user.onnx_type, ())
        else:
            positions = _WEIGHT_OPERANDS.get(type(user), ())
        if use.index in positions:
            return True
        if use.index == 0 and isinstance(user, (*_LAYOUT_OPS, onnx_d.CastOp)):
            if any(feeds_weight(r) for r in user.results):
                return True
    return False


def _slice_list(items: list, start: int, end: int | None) -> list:
    return items[slice(start, end)]


def _num_elements(typ: TensorType) -> int:
    shape = typ.get_shape()
    if any(d < 0 for d in shape):
        return 0
    return int(np.prod(shape)) if shape else 1


def _compatible(result_type, const: onnx_d.ConstantOp) -> bool:
    # Shape inference may have left a result less precise than its folded value.
    typ = const.outputs[0].type
    if not isinstance(result_type, TensorType):
        return True
    if result_type.get_element_type() != typ.get_element_type():
        return False
    shape, folded = result_type.get_shape(), typ.get_shape()
    return len(shape) == len(folded) and all(
        a < 0 or a == b for a, b in zip(shape, folded, strict=True)
    )
