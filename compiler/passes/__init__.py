"""Every pass dlhwc ships, registered in this one place.

A pass is a frozen-dataclass `xdsl.passes.ModulePass` in a file of its own, with a
kebab-case `name`; its fields are its options and its docstring is its documentation
(`dlhwc passes` prints both). Passes from `--load-pass-plugin FILE.py` and from the
`dlhwc.passes` entry-point group join this table at run time (see `compiler.plugins`).
"""

from collections.abc import Callable

from xdsl.passes import ModulePass


def _fold_constants() -> type[ModulePass]:
    from dlhwc.compiler.passes.fold_constants import FoldConstantsPass

    return FoldConstantsPass


def _prune() -> type[ModulePass]:
    from dlhwc.compiler.passes.prune import PrunePass

    return PrunePass


def _share_weights() -> type[ModulePass]:
    from dlhwc.compiler.passes.share_weights import ShareWeightsPass

    return ShareWeightsPass


def _quantize() -> type[ModulePass]:
    from dlhwc.compiler.passes.quantize import QuantizePass

    return QuantizePass


def _huffman() -> type[ModulePass]:
    from dlhwc.compiler.passes.huffman import HuffmanPass

    return HuffmanPass


def _retrain() -> type[ModulePass]:
    from dlhwc.compiler.passes.retrain import RetrainPass

    return RetrainPass


def _canonicalize() -> type[ModulePass]:
    from dlhwc.compiler.passes.generic import CanonicalizePass

    return CanonicalizePass


def _cse() -> type[ModulePass]:
    from dlhwc.compiler.passes.generic import CSEPass

    return CSEPass


def _dce() -> type[ModulePass]:
    from dlhwc.compiler.passes.generic import DCEPass

    return DCEPass


# name -> a function returning the pass class; passes import lazily so that start-up
# stays fast.
BUILTIN_PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "fold-constants": _fold_constants,
    "prune": _prune,
    "share-weights": _share_weights,
    "retrain": _retrain,
    "quantize": _quantize,
    "huffman": _huffman,
    "canonicalize": _canonicalize,
    "cse": _cse,
    "dce": _dce,
}

XDSL_PASSES = ("canonicalize", "cse", "dce")
"""xDSL's own passes in the table (stock `xdsl-opt` already has them)."""


def target_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Every registered target's own passes (its lowering among them), by name."""
    from dlhwc.spec.targets import targets

    return {name: ref.load for target in targets().values() for name, ref in target.passes.items()}


def dlhwc_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """dlhwc's own passes and its targets' passes."""
    return {**BUILTIN_PASSES, **target_passes()}
