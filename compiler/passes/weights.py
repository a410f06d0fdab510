"""Where the weights are: the operands that compression passes work on.

A *weight slot* is an operand of a Gemm, MatMul, Conv, LSTM, GRU or RNN that is fed by
a constant (`onnx.Constant`) or an already compressed weight (`comp.weight`). Matrices
are seen with one row per output neuron, the orientation the accelerators interleave
over their PEs (row i on PE i mod N):

    Gemm B            transB=1: [out, in] as is; transB=0: [in, out], transposed
    MatMul X @ W      W [in, out], transposed;   MatMul W @ X: W [out, in] as is
    Conv W            [out, in/group, k1, k2, ...]: [out, in/group * k1 * k2 * ...], the
                      matrix that multiplies patch vectors (im2col order)
    LSTM/GRU/RNN W/R  [directions, gates*hidden, in]: one matrix per direction

Biases (Gemm C, Conv B, LSTM/GRU/RNN B) are slots with role "bias": quantized, never
pruned or shared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation
from xdsl.pattern_rewriter import PatternRewriter

from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d
from dlhwc.spec.errors import DlhwcError

_RNN = (onnx_d.LSTMOp, onnx_d.GRUOp, onnx_d.RNNOp)


@dataclass(eq=False)
class WeightSlot:
    """One weight operand: which op, which operand, and how to see it as matrices."""

    consumer: onnx_d.OnnxOp
    operand: int
    role: str  # "matrix" or "bias"
    transpose: bool  # the stored tensor is [in, out] and must be transposed to rows
    conv: bool = False  # a convolution kernel [out, in/group, k...]: rows are outputs

    @property
    def source(self) -> Operation:
        """The `onnx.Constant` or `comp.weight` that feeds the slot."""
        return self.consumer.operands[self.operand].owner

    @property
    def layer(self) -> str:
        """The layer's name: the consumer's node name, else the weight's name."""
        return self.consumer.node_name or self.name

    @property
    def name(self) -> str:
        """The weight's own name (its initializer name), else derived from the layer."""
        src = self.source
        own = getattr(src, "node_name", None)
        if own:
            return own
        suffix = {1: "weight", 2: "recurrence"}.get(self.operand, f"operand{self.operand}")
        if self.role == "bias":
            suffix = "bias"
        return f"{self.consumer.node_name or self.consumer.name}.{suffix}"

    @property
    def keys(self) -> tuple[str, ...]:
        """The names a recipe may use for this slot: layer name, then weight name."""
        return tuple(dict.fromkeys([self.layer, self.name]))

    def value(self) -> np.ndarray:
        """The slot's current dense float32 value."""
        src = self.source
        if isinstance(src, comp.WeightOp):
            return src.dense()
        return np.asarray(src.to_array(), dtype=np.float32)

    def to_rows(self, array: np.ndarray) -> np.ndarray:
        """The tensor as a stack of matrices [m, rows (outputs), cols (inputs)]."""
        if self.conv and self.role == "matrix":
            return array.reshape(1, array.shape[0], -1)
        if array.ndim == 3:
            return array
        if array.ndim == 2:
            return (array.T if self.transpose else array)[None]
        return array.reshape(1, 1, -1)

    def from_rows(self, stack: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The inverse of `to_rows` for a tensor of ``shape``."""
        if self.conv and self.role == "matrix":
            return stack.reshape(shape)
        if len(shape) == 3:
            return stack
        if len(shape) == 2:
            return stack[0].T if self.transpose else stack[0]
        return stack.reshape(shape)


def _is_weight_source(value) -> bool:
    owner = value.owner
    return isinstance(owner, onnx_d.ConstantOp | comp.WeightOp) and isinstance(
        value.type, TensorType
    )


def find_weights(module: ModuleOp, role: str | None = None) -> list[WeightSlot]:
    """Every weight slot of the module's functions, in program order."""
    slots: list[WeightSlot] = []
    for fn in module.walk():
        if not isinstance(fn, func.FuncOp):
            continue
        for op in fn.body.block.ops:
            slots.extend(_slots_of(op))
    if role is not None:
        slots = [s for s in slots if s.role == role]
    return slots


def _slots_of(op: Operation) -> list[WeightSlot]:
    ops = list(op.operands)
    if isinstance(op, onnx_d.GemmOp):
        attrs = op.onnx_attributes()
        found = []
        if len(ops) > 1 and _is_weight_source(ops[1]):
            found.append(WeightSlot(op, 1, "matrix", transpose=not attrs.get("transB", 0)))
        if len(ops) > 2 and _is_weight_source(ops[2]):
            found.append(WeightSlot(op, 2, "bias", transpose=False))
        return found
    if isinstance(op, onnx_d.MatMulOp):
        if _is_weight_source(ops[1]) and len(ops[1].type.get_shape()) == 2:
            return [WeightSlot(op, 1, "matrix", transpose=True)]
        if _is_weight_source(ops[0]) and len(ops[0].type.get_shape()) == 2:
            return [WeightSlot(op, 0, "matrix", transpose=False)]
        return []
    if is_conv(op):
        found = []
        if len(ops) > 1 and _is_weight_source(ops[1]) and len(ops[1].type.get_shape()) >= 3:
            found.append(WeightSlot(op, 1, "matrix", transpose=False, conv=True))
            if len(ops) > 2 and _is_weight_source(ops[2]):
                found.append(WeightSlot(op, 2, "bias", transpose=False, conv=True))
        return found
    if isinstance(op, _RNN):
        found = [
            WeightSlot(op, i, "matrix", transpose=False)
            for i in (1, 2)
            if i < len(ops) and _is_weight_source(ops[i])
        ]
        if len(ops) > 3 and _is_weight_source(ops[3]):
            found.append(WeightSlot(op, 3, "bias", transpose=False))
        return found
    return []


PATCHES = "dlhwc.patches"
"""Marks the Conv a lowering inserted to form patch vectors: a layout op, not a layer."""


def is_conv(op: Operation) -> bool:
    """Whether ``op`` is an ONNX Conv layer (a generic `onnx.Node` of the default domain)."""
    return (
        isinstance(op, onnx_d.NodeOp)
        and op.onnx_type == "Conv"
        and op.onnx_domain in ("", "ai.onnx")
        and PATCHES not in op.attributes
    )


def replace_source(slot: WeightSlot, new: comp.WeightOp) -> None:
    """Feed ``slot`` from ``new`` (inserted before the consumer); drop an unused old source."""
    old = slot.source
    block = slot.consumer.parent_block()
    block.insert_op_before(new, slot.consumer)
    if old.results[0].name_hint:
        new.results[0].name_hint = old.results[0].name_hint
    slot.consumer.operands[slot.operand] = new.results[0]
    if not old.results[0].uses:
        erase_weight(old)


def erase_weight(op: Operation, rewriter: PatternRewriter | None = None) -> None:
    """Remove an unused weight op from the IR (through ``rewriter`` in a rewrite pattern)
    and free its payload now.

    An erased op stays alive in a reference cycle (op <-> its results) until Python's
    cycle collector runs, and with it its properties: the bytes of a weight, hundreds of
    MB for a large layer. Dropping them at once keeps the next pass's peak memory down.
    """
    if rewriter is not None:
        rewriter.erase(op)
    else:
        op.detach()
        op.erase()
    op.properties.clear()
    op.attributes.clear()


def layer_names(module: ModuleOp) -> list[str]:
    """The names recipes can refer to (layer and weight names of every matrix slot)."""
    names: list[str] = []
    for slot in find_weights(module):
        for k in slot.keys:
            if k not in names:
                names.append(k)
    return names


def check_finite(slot: WeightSlot) -> None:
    """Refuse a weight or bias with NaN or infinite values: fixed point has no code for
    them, and formats or codebooks chosen around them would be garbage. (The reference
    interpreter runs such a model in float, as onnxruntime does.)"""
    source = slot.source
    if isinstance(source, comp.WeightOp):
        values = source.codebook_array() if source.is_shared else source.dense()
    else:
        values = np.asarray(source.to_array())
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        what = "bias" if slot.role == "bias" else "weight"
        raise DlhwcError(
            f"layer '{slot.layer}': {what} '{slot.name}' has NaN or infinite values; "
            "fixed point cannot represent them"
        )
