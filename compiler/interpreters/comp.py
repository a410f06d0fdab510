"""Semantics of the `comp` dialect for the reference interpreter."""

from __future__ import annotations

from xdsl.interpreter import Interpreter, InterpreterFunctions, PythonValues, impl, register_impls

from dlhwc.dialects import comp
from dlhwc.spec.fixedpoint import quantize


@register_impls
class CompFunctions(InterpreterFunctions):
    @impl(comp.WeightOp)
    def run_weight(self, interpreter: Interpreter, op: comp.WeightOp, args: PythonValues):
        """The dense tensor the compressed weight stands for."""
        return (op.dense(),)

    @impl(comp.QuantizeOp)
    def run_quantize(self, interpreter: Interpreter, op: comp.QuantizeOp, args: PythonValues):
        """Round half to even and saturate to the op's fixed-point format."""
        return (quantize(args[0], op.format.format),)
