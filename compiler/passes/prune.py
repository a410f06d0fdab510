"""prune: magnitude pruning of weight matrices, optionally load-balanced over PEs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from compiler.errors import DlhwcError
from compiler.passes.recipe import load_recipe
from compiler.passes.weights import WeightSlot, find_weights, layer_names, replace_source
from dialects import comp
from dialects.onnx import dense_from_array

DEFAULT_SPARSITY = 0.9


@dataclass(frozen=True)
class PrunePass(ModulePass):
    """Remove the smallest-magnitude weights of every Gemm/MatMul/LSTM/GRU/RNN matrix.

    Options:
      sparsity     fraction of each matrix's weights to remove, in [0, 1); the largest
                   (1 - sparsity) * n magnitudes survive. Default 0.9 when neither
                   sparsity nor quality is given.
      quality      Deep Compression's threshold rule instead: remove |w| below
                   quality * std(w) of the layer.
      balance-pes  load-balance-aware pruning (ESE, Han et al. 2017): with rows
                   interleaved over N PEs (row i on PE i mod N, rows being output
                   neurons), every PE's share of each matrix keeps the same number of
                   non-zeros, K = round(kept / min(N, rows)), capped by the PE that has
                   fewest candidates.
      recipe       a TOML/JSON file with per-layer `sparsity`, `quality`, `balance_pes`
                   (see compiler/passes/recipe.py).

    Each matrix (each direction of a recurrent layer's W and R) is pruned on its own.
    Weights that are already zero count as pruned; a weight pruned before stays pruned.
    The result is a comp.weight with a mask; biases are never pruned.
    """

    name: ClassVar[str] = "prune"

    sparsity: float | None = None
    quality: float | None = None
    balance_pes: int | None = None
    recipe: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        recipe = load_recipe(self.recipe) if self.recipe else None
        if recipe is not None:
            recipe.check_names(layer_names(op))
        for slot in find_weights(op, role="matrix"):
            settings = {
                "sparsity": self.sparsity,
                "quality": self.quality,
                "balance_pes": self.balance_pes,
            }
            if recipe is not None:
                settings.update(recipe.settings(slot.keys))
            _prune_slot(slot, **_checked(settings, slot))


def _checked(settings: dict, slot: WeightSlot) -> dict:
    sparsity, quality, pes = settings["sparsity"], settings["quality"], settings["balance_pes"]
    where = f"prune: layer '{slot.layer}'"
    if sparsity is not None and quality is not None:
        raise DlhwcError(f"{where}: give sparsity or quality, not both")
    if sparsity is None and quality is None:
        sparsity = DEFAULT_SPARSITY
    if sparsity is not None and not (
        isinstance(sparsity, int | float) and 0.0 <= float(sparsity) < 1.0
    ):
        raise DlhwcError(f"{where}: sparsity {sparsity} outside [0, 1)")
    if quality is not None and not (isinstance(quality, int | float) and quality >= 0):
        raise DlhwcError(f"{where}: quality {quality} must be a number >= 0")
    if pes is not None and not (isinstance(pes, int) and pes >= 1):
        raise DlhwcError(f"{where}: balance-pes {pes} must be an integer >= 1")
    return {"sparsity": sparsity, "quality": quality, "pes": pes}


def _prune_slot(slot: WeightSlot, sparsity: float | None, quality: float | None, pes: int | None):
    source = slot.source
    value = slot.value()
    old_mask = source.mask_array() if isinstance(source, comp.WeightOp) else value != 0
    stack = slot.to_rows(value)
    mask_stack = slot.to_rows(old_mask)
    new_mask = np.empty(stack.shape, dtype=np.bool_)
    for m in range(stack.shape[0]):
        magnitude = np.where(mask_stack[m], np.abs(stack[m]), -1.0)
        if quality is not None:
            keep = int(np.count_nonzero(magnitude > quality * float(np.std(stack[m]))))
        else:
            keep = int(round((1.0 - sparsity) * stack[m].size))
        if pes is None:
            new_mask[m] = _keep_largest(magnitude, keep)
        else:
            new_mask[m] = _keep_largest_balanced(magnitude, keep, pes)
    mask = slot.from_rows(new_mask, value.shape)
    if isinstance(source, comp.WeightOp) and source.is_shared:
        props = dict(source.properties)
        props["mask"] = dense_from_array(mask)
        new = comp.WeightOp(source.output.type, props, source.node_name)
    else:
        new = comp.WeightOp.from_arrays(
            slot.consumer.operands[slot.operand].type,
            mask,
            values=np.where(mask, value, np.float32(0)),
            fmt=source.fixed_format if isinstance(source, comp.WeightOp) else None,
            node_name=slot.name,
        )
    replace_source(slot, new)


def _keep_largest(magnitude: np.ndarray, keep: int) -> np.ndarray:
    """The mask of the ``keep`` largest entries (pruned entries are marked -1)."""
    flat = magnitude.reshape(-1)
    keep = min(keep, int(np.count_nonzero(flat > 0)))
    mask = np.zeros(flat.shape, dtype=np.bool_)
    if keep > 0:
        # A stable sort makes ties go to the earlier index, the same on every run.
        order = np.argsort(-flat, kind="stable")
        mask[order[:keep]] = True
    return mask.reshape(magnitude.shape)


def _keep_largest_balanced(magnitude: np.ndarray, keep: int, pes: int) -> np.ndarray:
    """Keep the same number K of largest entries in every PE's rows (row i on PE i mod N)."""
    rows = magnitude.shape[0]
    pe_of_row = np.arange(rows) % pes
    available = np.bincount(pe_of_row, weights=np.count_nonzero(magnitude > 0, axis=1),
                            minlength=pes).astype(np.int64)  # fmt: skip
    # PEs beyond the row count hold nothing; the others share the kept weights equally.
    busy = min(pes, rows)
    per_pe = min(int(round(keep / busy)), int(available[:busy].min()))
    # Rank each entry within its PE: sort by (PE, -magnitude, position).
    flat = magnitude.reshape(-1)
    pe = np.repeat(pe_of_row, magnitude.shape[1])
    order = np.lexsort((np.arange(flat.size), -flat, pe))
    starts = np.searchsorted(pe[order], np.arange(pes))
    rank = np.arange(flat.size) - np.repeat(starts, np.bincount(pe, minlength=pes))
    mask = np.zeros(flat.size, dtype=np.bool_)
    mask[order[rank < per_pe]] = True
    return mask.reshape(magnitude.shape)
