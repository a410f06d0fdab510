"""Canonicalization patterns of the `onnx` dialect (run by xDSL's `canonicalize` pass).

Each pattern rewrites one op kind into a simpler equivalent; the ops name them through
their `HasCanonicalizationPatternsTrait` (imported lazily, as xDSL does, so that the
dialect module stays import-light).
"""

from __future__ import annotations

from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from dlhwc.dialects import onnx as onnx_d


class RemoveIdentity(RewritePattern):
    """Identity(x) -> x, when the result has x's type."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: onnx_d.IdentityOp, rewriter: PatternRewriter) -> None:
        if len(op.results) != 1 or op.results[0].type != op.input.type:
            return
        rewriter.replace_all_uses_with(op.results[0], op.input)
        rewriter.erase_op(op)


class CancelTransposes(RewritePattern):
    """Transpose(Transpose(x)) -> x when the second undoes the first (both with an
    explicit perm); the inner Transpose goes too once nothing else reads it.

    The EIE lowering applies it to a convolution's NHWC -> NCHW result read by the next
    convolution's NCHW -> NHWC input, so that consecutive layers pass their activations
    on chip instead of through the host."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: onnx_d.TransposeOp, rewriter: PatternRewriter) -> None:
        inner = op.data.owner
        if not isinstance(inner, onnx_d.TransposeOp):
            return
        p1, p2 = _perm(inner), _perm(op)
        if p1 is None or p2 is None or [p1[i] for i in p2] != list(range(len(p1))):
            return
        rewriter.replace_all_uses_with(op.results[0], inner.data)
        rewriter.erase_op(op)
        if not inner.results[0].uses:
            rewriter.erase_op(inner)


def _perm(op: onnx_d.TransposeOp) -> list[int] | None:
    return None if op.perm is None else [int(p) for p in op.perm.get_values()]
