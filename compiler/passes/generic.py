"""xDSL's generic cleanup passes, offered under their xDSL names with dlhwc's docs.

They apply to dlhwc IR because every op of the onnx, comp, eie and ese dialects that
has no side effects is `Pure` (`onnx.Node`, which may stand for any ONNX operator, is
not: it is never merged or removed).
"""

from xdsl.transforms.canonicalize import CanonicalizePass as _Canonicalize
from xdsl.transforms.common_subexpression_elimination import (
    CommonSubexpressionElimination as _CSE,
)
from xdsl.transforms.dead_code_elimination import DeadCodeElimination as _DCE


class CanonicalizePass(_Canonicalize):
    """Apply every op's canonicalization patterns until none applies, then remove dead
    ops: Identity(x) -> x; Transpose(Transpose(x)) -> x when the second undoes the first."""


class CSEPass(_CSE):
    """Merge ops that compute the same value: same op, operands, properties and
    discardable attributes (an op the EIE lowering left on the host keeps its reason and
    merges only with its like). The first op stays, with its location (ONNX node name)."""


class DCEPass(_DCE):
    """Remove ops whose results nobody reads (weights no layer uses, unused constants)."""
