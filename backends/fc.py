"""The fully connected layer the targets' lowerings share.

A layer starts at a Gemm or MatMul (or another op a target accepts, such as EIE's Conv)
and fuses what follows it: optionally an `Add` of a constant bias, then optionally a
single-use `Relu`, ending in the `comp.quantize` that gives the layer its output format.
`match_epilogue` finds that chain or says why the layer stays on the host;
`Epilogue.replace` puts the target's layer op in its place. A target's lowering keeps
what its hardware decides: which weights it accepts and how it stores them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter

from dlhwc.compiler.passes.weights import erase_weight
from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat


def sole_user(value: SSAValue) -> Operation | None:
    """The op using ``value``, if exactly one use does."""
    uses = list(value.uses)
    return uses[0].operation if len(uses) == 1 else None


def is_constant(value: SSAValue) -> bool:
    return isinstance(value.owner, onnx_d.ConstantOp | comp.WeightOp)


def bias_shape_ok(value: SSAValue, rows: int) -> bool:
    """A bias a layer can hold: [N], [1, N] (any leading 1s), or a scalar broadcast to N."""
    if not isinstance(value.type, TensorType):
        return False
    shape = value.type.get_shape()
    size = int(np.prod(shape))
    return size == 1 or (size == rows and all(d == 1 for d in shape[:-1]))


@dataclass
class Epilogue:
    """What a layer fuses after its first op."""

    bias: SSAValue | None  # the layer's own bias operand, or the fused Add's constant
    relu: bool
    chain: list[Operation]  # the first op and the ops fused after it, in order
    quantize: comp.QuantizeOp  # gives the layer's output format; replaced too

    def replace(self, rewriter: PatternRewriter, result: SSAValue, weight: comp.WeightOp,
                bias: SSAValue | None) -> None:  # fmt: skip
        """Use ``result`` for the quantized output, erase the chain, and the old weight
        and bias where nothing else uses them (``bias`` is the bias the new op reads)."""
        result.name_hint = self.quantize.output.name_hint or self.chain[-1].results[0].name_hint
        rewriter.replace_all_uses_with(self.quantize.output, result)
        for dead in [self.quantize, *reversed(self.chain)]:
            rewriter.erase(dead)
        if not weight.output.uses:
            erase_weight(weight, rewriter)
        old = self.bias
        if (
            old is not None
            and bias is not old
            and isinstance(old.owner, Operation)
            and not old.uses
        ):
            erase_weight(old.owner, rewriter)


def match_epilogue(
    op: Operation, bias: SSAValue | None, rows: int, fuse_add: bool = True
) -> Epilogue | str:
    """The ops ``op`` (whose own bias operand is ``bias``, for ``rows`` outputs) fuses,
    or why the layer stays on the host. An `Add` is fused only when ``fuse_add`` holds
    and the layer has no bias of its own."""
    chain: list[Operation] = [op]
    value = op.results[0]
    user = sole_user(value)
    if bias is None and fuse_add and isinstance(user, onnx_d.AddOp):
        other = user.B if user.A is value else user.A
        if is_constant(other) and bias_shape_ok(other, rows):
            bias, value = other, user.results[0]
            chain.append(user)
            user = sole_user(value)
    if bias is not None and not (is_constant(bias) and bias_shape_ok(bias, rows)):
        return "its bias is not a constant vector"
    relu = isinstance(user, onnx_d.ReluOp)
    if relu:
        assert user is not None
        chain.append(user)
        user = sole_user(user.results[0])
    if not isinstance(user, comp.QuantizeOp):
        return "its result has no fixed-point format (no comp.quantize)"
    return Epilogue(bias, relu, chain, user)


def check_act_bits(name: str, in_format: FixedFormat, out_format: FixedFormat, act_bits: int,
                   machine: str) -> None:  # fmt: skip
    """Refuse a layer whose activations are not the ``act_bits`` wide ``machine`` computes on."""
    for what, fmt in (("input", in_format), ("output", out_format)):
        if fmt.bits != act_bits:
            raise DlhwcError(
                f"layer '{name}': {what} activations are {fmt.bits}-bit, {machine} computes "
                f"on {act_bits}-bit activations (quantize{{act-bits={act_bits}}})"
            )
