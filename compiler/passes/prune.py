"""prune: magnitude pruning of weight matrices, optionally load-balanced over PEs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from dlhwc.compiler.passes.recipe import load_recipe
from dlhwc.compiler.passes.weights import WeightSlot, find_weights, layer_names, replace_source
from dlhwc.dialects import comp
from dlhwc.spec.errors import DlhwcError

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
    lossy: ClassVar[bool] = True  # changes values on purpose: `verify` reports, not flags

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


# Elements per step of the chunked loops: bounds their temporaries (a few times 16 MiB)
# whatever the size of the matrix.
_CHUNK = 1 << 22
_ABS = np.uint32(0x7FFFFFFF)  # all bits but the sign
_INF = np.uint32(0x7F800000)  # the bits of +inf; NaNs lie above


def _prune_slot(slot: WeightSlot, sparsity: float | None, quality: float | None, pes: int | None):
    source = slot.source
    shape = tuple(source.results[0].type.get_shape())
    if pes is not None:
        mask = _balanced_mask(slot, sparsity, quality, pes)
    else:
        mask = _largest_mask(slot, source, shape, sparsity, quality)
    if isinstance(source, comp.WeightOp) and source.is_shared:
        props = dict(source.properties)
        props["mask"] = mask.attr()
        new = comp.WeightOp(source.output.type, props, source.node_name)
    else:
        props = {"values": _pruned_values(source, mask.array), "mask": mask.attr()}
        fmt = source.fixed_format if isinstance(source, comp.WeightOp) else None
        if fmt is not None:
            props["format"] = comp.FixedAttr.get(fmt)
        new = comp.WeightOp(slot.consumer.operands[slot.operand].type, props, slot.name)
    replace_source(slot, new)


# -- magnitude pruning without balance ---------------------------------------------------
#
# Keeping the `keep` largest magnitudes of a matrix, ties going to the earlier position
# (in the row-per-output orientation), is done without sorting: the magnitudes' float32
# bit patterns (sign cleared) order like the magnitudes, so the keep-th largest can be
# found with two counting passes, over the high and then the low 16 bits. Every weight
# above that threshold survives, and of those equal to it the first ones by position.
# All passes go over the tensor in its stored layout, chunk by chunk, so that no
# temporary the size of the matrix is made; the mask is written straight into the
# bytes the IR keeps.


def _largest_mask(
    slot: WeightSlot, source, shape: tuple[int, ...], sparsity: float | None, quality: float | None
) -> comp.DenseBuffer:
    """The mask keeping the largest magnitudes of every matrix of the slot (no balance)."""
    value, old_mask = _flat_source(source)
    mask = comp.DenseBuffer(np.bool_, shape)
    flat_mask = mask.array.reshape(-1)
    # Every matrix of the slot (an RNN direction) is a contiguous run of the stored tensor.
    matrices = shape[0] if len(shape) == 3 else 1
    size = flat_mask.size // max(matrices, 1)
    std = None
    if quality is not None:
        # np.std of the dense matrix, as the rule is defined (same float32 reduction).
        stack = slot.to_rows(slot.value())
        std = [float(np.std(stack[m])) for m in range(stack.shape[0])]
        del stack
    for m in range(matrices):
        lo, hi = m * size, (m + 1) * size
        if quality is not None:
            threshold = quality * std[m]
            keep = 0
            for a, b in _chunks(lo, hi):
                # |w| > quality * std over the weights not pruned yet (others count -1).
                above = np.abs(value(a, b)) > threshold
                if old_mask is not None:
                    above &= old_mask(a, b)
                keep += int(np.count_nonzero(above))
        else:
            keep = int(round((1.0 - sparsity) * size))
        _keep_largest(value, old_mask, lo, hi, keep, flat_mask, _row_order(slot, shape))
    return mask


def _flat_source(source):
    """Chunk readers of the slot's flat stored value and of the mask of its weights not
    pruned yet: ``value(lo, hi)`` (float32) and ``old_mask(lo, hi)`` (bool), None for a
    constant, whose pruned weights are the zeros (which never survive anyway)."""
    if isinstance(source, comp.WeightOp):
        mask = source.mask_array().reshape(-1)
        if source.is_shared:
            codebook = source.codebook_array().astype(np.float32, copy=False)
            indices = source.indices_array().reshape(-1)
            return (lambda lo, hi: codebook[indices[lo:hi]]), (lambda lo, hi: mask[lo:hi])
        values = source.values_array().reshape(-1)
        return (lambda lo, hi: values[lo:hi]), (lambda lo, hi: mask[lo:hi])
    values = np.asarray(source.to_array(), dtype=np.float32).reshape(-1)
    return (lambda lo, hi: values[lo:hi]), None


def _chunks(lo: int, hi: int):
    for a in range(lo, hi, _CHUNK):
        yield a, min(a + _CHUNK, hi)


def _keys(value, old_mask, a: int, b: int) -> np.ndarray:
    """uint32 keys ordered like the magnitudes, for positions a..b; 0 where a weight
    cannot survive (pruned before, zero, or NaN)."""
    v = np.ascontiguousarray(value(a, b), dtype=np.float32)
    key = v.view(np.uint32) & _ABS
    key[key > _INF] = 0
    if old_mask is not None:
        key *= old_mask(a, b)
    return key


def _keep_largest(value, old_mask, lo: int, hi: int, keep: int, out: np.ndarray, order) -> None:
    """Set ``out[lo:hi]`` to the mask of the ``keep`` largest magnitudes of positions
    lo..hi, ties going to the earliest in ``order`` (see `_row_order`)."""
    # Pass 1: how many candidates, and a histogram of their keys' high 16 bits.
    high = np.zeros((int(_INF) >> 16) + 1, dtype=np.int64)
    candidates = 0
    for a, b in _chunks(lo, hi):
        key = _keys(value, old_mask, a, b)
        nonzero = int(np.count_nonzero(key))
        candidates += nonzero
        high += np.bincount(key >> 16, minlength=high.size)
        high[0] -= key.size - nonzero  # the zero keys are no candidates
    keep = min(keep, candidates)
    if keep == 0:
        return  # the buffer is zero-filled: nothing survives
    top, rank = _bucket(high, keep)
    # Pass 2: the low 16 bits within the bucket of the keep-th largest key.
    low = np.zeros(1 << 16, dtype=np.int64)
    for a, b in _chunks(lo, hi):
        key = _keys(value, old_mask, a, b)
        inside = key[(key >> 16) == top]
        if top == 0:
            inside = inside[inside > 0]
        low += np.bincount(inside & 0xFFFF, minlength=low.size)
    bottom, ties = _bucket(low, rank)
    threshold = np.uint32((top << 16) | bottom)
    # Pass 3: everything above the threshold survives; note where it is reached. In
    # stored order the first `ties` of those are enough; a transposed matrix needs them
    # all, to pick the first in row order.
    equal, found = [], 0
    for a, b in _chunks(lo, hi):
        key = _keys(value, old_mask, a, b)
        np.greater(key, threshold, out=out[a:b])
        if order is not None or found < ties:
            equal.append(np.flatnonzero(key == threshold) + a)
            found += equal[-1].size
    at = np.concatenate(equal)
    if order is not None:
        at = at[np.argsort(order(at), kind="stable")]
    out[at[:ties]] = True


def _bucket(histogram: np.ndarray, rank: int) -> tuple[int, int]:
    """The bucket holding the ``rank``-th largest entry (1-based), and its rank there."""
    above = np.cumsum(histogram[::-1])  # entries in this bucket or higher, from the top
    i = int(np.searchsorted(above, rank))  # the first that reaches the rank
    bucket = histogram.size - 1 - i
    return bucket, rank - (int(above[i - 1]) if i else 0)


def _row_order(slot: WeightSlot, shape: tuple[int, ...]):
    """Where stored flat positions fall in the row-per-output orientation, when the two
    differ (a transposed matrix); None when they agree."""
    if len(shape) != 2 or not slot.transpose:
        return None
    rows_stored, cols_stored = shape
    return lambda flat: (flat % cols_stored) * rows_stored + flat // cols_stored


def _pruned_values(source, mask: np.ndarray):
    """The pruned weight's values, zero where the mask is false, as an attribute."""
    value, _ = _flat_source(source)
    flat_mask = mask.reshape(-1)
    out = comp.DenseBuffer(np.float32, mask.shape)
    flat = out.array.reshape(-1)
    for a, b in _chunks(0, flat.size):
        # The buffer is zero-filled, so copying the kept weights is np.where(mask, w, 0).
        np.copyto(flat[a:b], value(a, b), where=flat_mask[a:b])
    del flat
    return out.attr()


# -- load-balanced pruning -----------------------------------------------------------------


def _balanced_mask(
    slot: WeightSlot, sparsity: float | None, quality: float | None, pes: int
) -> comp.DenseBuffer:
    """The mask of load-balance-aware pruning, matrix by matrix in row orientation."""
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
        new_mask[m] = _keep_largest_balanced(magnitude, keep, pes)
    mask = comp.DenseBuffer(np.bool_, value.shape)
    mask.array[...] = slot.from_rows(new_mask, value.shape)
    return mask


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
