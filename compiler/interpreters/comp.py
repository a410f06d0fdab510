"""Semantics of the `comp` dialect for the reference interpreter."""

from __future__ import annotations

from dlhwc.compiler.interpreters.registry import impl
from dlhwc.dialects import comp
from dlhwc.spec.fixedpoint import quantize


@impl(comp.WeightOp)
def weight(op: comp.WeightOp, args: list) -> tuple:
    """The dense tensor the compressed weight stands for."""
    return (op.dense(),)


@impl(comp.QuantizeOp)
def quantize_activation(op: comp.QuantizeOp, args: list) -> tuple:
    """Round half to even and saturate to the op's fixed-point format."""
    return (quantize(args[0], op.format.format),)
