"""Example dlhwc pass plugin: two passes defined outside the project.

Load it with `--load-pass-plugin`; every `ModulePass` subclass defined here is registered
under its `name`:

    dlhwc passes --load-pass-plugin examples/plugins/count_ops.py
    dlhwc compile model.onnx --load-pass-plugin examples/plugins/count_ops.py \\
        -p 'fold-constants,count-ops,strip-node-names'

- `count-ops` prints a histogram of the module's ops to stderr and leaves the IR as it
  is; put it before and after a pass to see what the pass did.
- `strip-node-names` drops the ONNX node names (the `loc("...")` of every op), e.g. to
  diff the IR of two exports of the same model.

A plugin uses public xDSL APIs (`ModulePass`, `Operation.walk`, locations) and dlhwc's
dialect classes; it needs nothing else from dlhwc.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, UnknownLoc
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from dlhwc.dialects.onnx import NodeOp


def op_label(op: Operation) -> str:
    """The op's name; a generic `onnx.Node` is labelled with its ONNX operator too."""
    if isinstance(op, NodeOp):
        domain = f"{op.onnx_domain}." if op.onnx_domain else ""
        return f"{op.name}({domain}{op.onnx_type})"
    return op.name


@dataclass(frozen=True)
class CountOpsPass(ModulePass):
    """Print a histogram of the ops in the module to stderr; the IR is left unchanged.

    One line per op name, most frequent first, e.g. `     3  onnx.Gemm`. A generic
    onnx.Node is counted under its ONNX operator, e.g.
    `onnx.Node(ai.onnx.ml.ArrayFeatureExtractor)`. With `onnx-only=true` only ops of
    the onnx dialect are counted (not builtin.module, func.func, func.return).
    """

    name: ClassVar[str] = "count-ops"

    onnx_only: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        counts = Counter(
            op_label(o)
            for o in op.walk()
            if o is not op and (not self.onnx_only or o.name.startswith("onnx."))
        )
        lines = [f"// count-ops: {sum(counts.values())} ops"]
        for label, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"{count:6d}  {label}")
        print("\n".join(lines), file=sys.stderr)


@dataclass(frozen=True)
class StripNodeNamesPass(ModulePass):
    """Drop the ONNX node names: every op's location becomes unknown (no `loc(...)`)."""

    name: ClassVar[str] = "strip-node-names"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for o in op.walk():
            o.location = UnknownLoc()
