"""Running lowerings written as xDSL rewrite patterns.

A lowering is a table of `RewritePattern`s applied by xDSL's `PatternRewriteWalker` in
one forward walk. A pattern that finds input it cannot lower raises `DlhwcError`; the
walker would attach a dump of the whole module to any exception raised inside it
(seconds for a large model), so `LoweringPattern` records the first error instead, stops
rewriting, and `apply_once` raises it when the walk is over.
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.dialects.builtin import ModuleOp
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriteWalker,
    RewritePattern,
)

from dlhwc.spec.errors import DlhwcError


class LoweringPattern(RewritePattern):
    """A pattern whose rewrites may raise DlhwcError: the first one is kept in `error`
    and ends the lowering (`run` does nothing once it is set)."""

    error: DlhwcError | None = None

    def run(self, rewrite: Callable[..., None], *args: object) -> None:
        """Call ``rewrite(*args)`` unless an error was met; keep the error it raises."""
        if self.error is not None:
            return
        try:
            rewrite(*args)
        except DlhwcError as e:
            self.error = e


def apply_once(module: ModuleOp, *patterns: RewritePattern) -> None:
    """Apply ``patterns`` to every op of ``module`` in one forward walk (ops a pattern
    creates are not visited again), then raise the first error a pattern met."""
    pattern = patterns[0] if len(patterns) == 1 else GreedyRewritePatternApplier(list(patterns))
    PatternRewriteWalker(pattern, apply_recursively=False).rewrite_module(module)
    for p in patterns:
        if isinstance(p, LoweringPattern) and p.error is not None:
            raise p.error
